//! Results and views as Python values: serialized to JSON by serde and read by Python's
//! `json.loads`, so a dict has exactly the shape `buildcat ... --json` prints.

use buildcat_client::TaskStatus;
use buildcat_client::proto::view::TaskStatusView;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use serde::Serialize;

/// A serializable value as the Python value its JSON reads as.
pub fn to_python<V: Serialize>(py: Python<'_>, value: &V) -> PyResult<PyObject> {
    let text = serde_json::to_string(value).map_err(|error| {
        PyRuntimeError::new_err(format!("buildcat could not serialize a value: {error}"))
    })?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// The result of a finished task as JSON, as `buildcat status JOB.TASK --json` shows it:
/// decoded for the built-in kinds, `{"bytes": N}` for others.
pub fn result_json(task: &TaskStatus) -> Result<serde_json::Value, String> {
    serde_json::to_value(TaskStatusView::from(task).result).map_err(|error| error.to_string())
}
