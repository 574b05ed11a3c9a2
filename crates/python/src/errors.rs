//! Python exceptions for what went wrong, carrying the messages the `buildcat` command
//! prints.
//!
//! The classes are Python ones (`buildcat/_errors.py`: `Error(message, description)` as the
//! original had, and its subclasses), handed to the extension once at import by
//! `register_errors`. Holding them rather than importing `buildcat` by name keeps the
//! package working when it is vendored under another name (the Blender add-on).

use buildcat_client::render::PlanError;
use buildcat_client::{ClientError, ErrorKind};
use pyo3::IntoPyObjectExt;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyDict;

/// The exception classes by name (`Error`, `ConnectionFailed`, `JobFailed`, ...).
static CLASSES: GILOnceCell<Py<PyDict>> = GILOnceCell::new();

/// Takes the package's exception classes, by name; called once by `buildcat/__init__.py`.
#[pyfunction]
pub fn register_errors(py: Python<'_>, classes: Bound<'_, PyDict>) -> PyResult<()> {
    // A second import of the package (a reload) keeps the first classes: exceptions
    // already raised are instances of them.
    let _ = CLASSES.set(py, classes.unbind());
    Ok(())
}

/// An exception of the class named `class` (falling back to `Error`), made as
/// `class(message, description)`.
pub fn raise(py: Python<'_>, class: &str, message: String, description: Option<String>) -> PyErr {
    raise_with(py, class, message, description, &[])
}

/// As [`raise`], with attributes set on the exception (`job`, `task`, `reason`).
pub fn raise_with(
    py: Python<'_>,
    class: &str,
    message: String,
    description: Option<String>,
    attributes: &[(&str, PyObject)],
) -> PyErr {
    let Some(classes) = CLASSES.get(py) else {
        return PyRuntimeError::new_err(message);
    };
    let classes = classes.bind(py);
    let found = classes
        .get_item(class)
        .ok()
        .flatten()
        .or_else(|| classes.get_item("Error").ok().flatten());
    let Some(class) = found else {
        return PyRuntimeError::new_err(message);
    };
    match class.call1((message, description)) {
        Ok(exception) => {
            for (name, value) in attributes {
                if let Err(error) = exception.setattr(*name, value) {
                    return error;
                }
            }
            PyErr::from_value(exception)
        }
        Err(error) => error,
    }
}

/// The class a client error is raised as.
fn class_of(error: &ClientError) -> &'static str {
    match error.kind() {
        ErrorKind::Connection | ErrorKind::Handshake => "ConnectionFailed",
        ErrorKind::Tls => "TlsError",
        ErrorKind::Refused => "RequestRefused",
        ErrorKind::Invalid => "InvalidRequest",
        ErrorKind::JobFailed => "JobFailed",
        ErrorKind::JobCanceled => "JobCanceled",
        _ => "Error",
    }
}

/// A client error as a Python exception; a failed task's exception also carries `task`,
/// `reason`, `exit_code`, `output_tail` and `gpu_fault`.
pub fn client_error(py: Python<'_>, error: ClientError) -> PyErr {
    let message = error.to_string();
    match &error {
        ClientError::JobFailed { task, failure } => {
            let reason = failure.as_ref().map(|failure| failure.reason.clone());
            let exit_code = failure.as_ref().and_then(|failure| failure.exit_code);
            let tail = failure.as_ref().map(|failure| failure.output_tail.clone());
            let gpu_fault = failure
                .as_ref()
                .and_then(|failure| failure.gpu_fault.clone());
            let attributes = [
                ("task", task.clone().into_py_any(py)),
                ("reason", reason.into_py_any(py)),
                ("exit_code", exit_code.into_py_any(py)),
                ("output_tail", tail.into_py_any(py)),
                ("gpu_fault", gpu_fault.into_py_any(py)),
            ];
            let mut set = Vec::new();
            for (name, value) in attributes {
                match value {
                    Ok(value) => set.push((name, value)),
                    Err(error) => return error,
                }
            }
            raise_with(py, "JobFailed", message, None, &set)
        }
        _ => raise(py, class_of(&error), message, None),
    }
}

/// A render refused before sending, as `InvalidRequest`, naming the Python arguments where
/// the shared message names the command's flags.
pub fn plan_error(py: Python<'_>, error: PlanError) -> PyErr {
    raise(py, "InvalidRequest", python_words(&error.to_string()), None)
}

/// `message` with each `--flag` the render plans name (they are the CLI's words) as the
/// Python keyword argument: `--chunk must be at least 1` reads `chunk must be at least 1`
/// (tester finding 14: a Python user passed `chunk=0`, not `--chunk`), `--cycles-device`
/// reads `cycles_device`, and a switch reads as set: `pass --movie` is `pass movie=True`.
fn python_words(message: &str) -> String {
    /// Switches, which Python takes as `NAME=True`.
    const SWITCHES: [&str; 4] = [
        "movie",
        "gpu",
        "allow_missing_libraries",
        "allow_outside_root",
    ];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("--") {
        let after = &rest[at + 2..];
        let length = after
            .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
            .unwrap_or(after.len());
        let flag = &after[..length];
        let starts_word = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == '(' || c == '`');
        out.push_str(&rest[..at]);
        if flag.is_empty() || !starts_word || flag.starts_with('-') {
            out.push_str("--");
            rest = after;
            continue;
        }
        let name = flag.replace('-', "_");
        if SWITCHES.contains(&name.as_str()) {
            out.push_str(&format!("{name}=True"));
        } else {
            out.push_str(&name);
        }
        rest = &after[length..];
    }
    out.push_str(rest);
    out
}

/// Turns client errors into Python exceptions with `?`.
pub trait OrRaise<T> {
    /// The value, or the error raised as its Python exception.
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, ClientError> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|error| client_error(py, error))
    }
}

impl<T> OrRaise<T> for Result<T, PlanError> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|error| plan_error(py, error))
    }
}
