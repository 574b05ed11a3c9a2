//! `buildcat._native`: the Python extension under the `buildcat` package, a thin PyO3 layer
//! over [`buildcat_client`], so Python speaks the farm's protocol through the one Rust
//! implementation.
//!
//! A tour of the modules:
//! - `runtime`: the one tokio runtime the module holds, and blocking on it with the GIL
//!   released (`block`), in short slices that look for Ctrl-C between them (`wait_for`).
//! - `errors`: the Python exception classes (defined in `buildcat/_errors.py`, handed over
//!   by `register_errors` at import) and the mapping of [`buildcat_client::ClientError`]s
//!   onto them, with the same messages the `buildcat` command prints.
//! - `client`: `Client`, a connection with the modern API (`run`, `blender_render`, `info`,
//!   `jobs`, ...).
//! - `job`: `Job`, a submitted job (`status`, `wait`, `cancel`).
//! - `original`: the original Python Buildcat's command names (`buildcat.worker.info`,
//!   `buildcat.hou.render_ifd`, ...) turned into jobs, for `buildcat.submit`.
//! - `values`: results and views into Python values (JSON through `json.loads`, so a dict
//!   has the shape `buildcat ... --json` prints).
#![deny(missing_docs)]

mod client;
mod errors;
mod job;
mod original;
mod runtime;
mod values;

use pyo3::prelude::*;

/// Refuses a path that is absolute or climbs out of the farm root, as every job path is
/// checked before it is sent; `what` names it in the message (`.blend file`).
#[pyfunction]
#[pyo3(signature = (path, what = "path"))]
fn check_relative_path(py: Python<'_>, path: &str, what: &str) -> PyResult<()> {
    buildcat_client::proto::paths::check_relative(path).map_err(|error| {
        errors::raise(
            py,
            "InvalidRequest",
            format!("the {what} cannot be used: {error}"),
            None,
        )
    })
}

/// The module: the classes, the default port and the version.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<client::Client>()?;
    module.add_class::<job::Job>()?;
    module.add_function(wrap_pyfunction!(errors::register_errors, module)?)?;
    module.add_function(wrap_pyfunction!(check_relative_path, module)?)?;
    module.add("DEFAULT_PORT", buildcat_client::DEFAULT_PORT)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
