//! How things are printed: trees, the farm as a table and as JSON. Formatting only; the
//! commands that fetch what is printed live in their own modules.

use buildcat_proto::{FarmInfo, JobState};
use serde_json::{Value, json};

/// Prints a JSON object as an indented `key: value` tree.
pub fn print_tree(value: &Value, depth: usize) {
    let indent = "  ".repeat(depth);
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::Object(_) => {
                        outln!("{indent}{key}:");
                        print_tree(value, depth + 1);
                    }
                    other => outln!("{indent}{key}: {}", scalar(other)),
                }
            }
        }
        other => outln!("{indent}{}", scalar(other)),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// `info --json`'s shape.
pub fn info_json(info: &FarmInfo) -> Value {
    let queues: Vec<Value> = info
        .queues
        .iter()
        .map(|queue| {
            let mut entry = serde_json::Map::new();
            entry.insert("name".into(), json!(queue.name));
            for state in JobState::ALL {
                entry.insert(state.as_str().into(), json!(queue.count(state)));
            }
            Value::Object(entry)
        })
        .collect();
    let workers: Vec<Value> = info
        .workers
        .iter()
        .map(|worker| {
            json!({
                "name": worker.name,
                "host": worker.host,
                "root": worker.root,
                "queues": worker.queues,
                "state": worker.activity.as_str(),
                "job": worker.job.map(|id| id.to_string()),
            })
        })
        .collect();
    let unserved: Vec<Value> = info
        .unserved
        .iter()
        .map(|u| {
            json!({
                "queue": u.queue,
                "kind": u.kind,
                "jobs": u.jobs,
                "tool": buildcat_proto::dcc::tool_for_kind(&u.kind),
            })
        })
        .collect();
    json!({ "queues": queues, "workers": workers, "unserved": unserved })
}

/// `info` as a table.
pub fn info_text(info: &FarmInfo) -> String {
    let mut out = String::new();
    let name_width = info
        .queues
        .iter()
        .map(|q| q.name.len())
        .chain(["queue".len()])
        .max()
        .unwrap_or(5);
    out.push_str(&format!("{:<name_width$}", "queue"));
    for state in JobState::ALL {
        out.push_str(&format!("  {:>9}", state.as_str()));
    }
    out.push('\n');
    if info.queues.is_empty() {
        out.push_str("(no jobs)\n");
    }
    for queue in &info.queues {
        out.push_str(&format!("{:<name_width$}", queue.name));
        for state in JobState::ALL {
            out.push_str(&format!("  {:>9}", queue.count(state)));
        }
        out.push('\n');
    }
    for waiting in &info.unserved {
        let why = match buildcat_proto::dcc::tool_for_kind(&waiting.kind) {
            Some(tool) => format!("no worker with {tool} serves it"),
            None => "no connected worker serving it can run that kind".to_owned(),
        };
        out.push_str(&format!(
            "waiting: {} {} job(s) in `{}`: {why}\n",
            waiting.jobs, waiting.kind, waiting.queue
        ));
    }
    out.push('\n');
    let count = info.workers.len();
    out.push_str(&format!(
        "{count} worker{}\n",
        if count == 1 { "" } else { "s" }
    ));
    if count > 0 {
        let width = |f: &dyn Fn(&buildcat_proto::WorkerSummary) -> usize, title: &str| {
            info.workers
                .iter()
                .map(f)
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        };
        let name_w = width(&|w| w.name.len(), "name");
        let host_w = width(&|w| w.host.len(), "host");
        let queues_w = width(&|w| w.queues.join(",").len(), "queues");
        out.push_str(&format!(
            "{:<name_w$}  {:<host_w$}  {:<5}  {:<queues_w$}  {:<36}  root\n",
            "name", "host", "state", "queues", "job"
        ));
        for worker in &info.workers {
            let job = worker
                .job
                .map_or_else(|| "-".to_owned(), |id| id.to_string());
            out.push_str(&format!(
                "{:<name_w$}  {:<host_w$}  {:<5}  {:<queues_w$}  {:<36}  {}\n",
                worker.name,
                worker.host,
                worker.activity.as_str(),
                worker.queues.join(","),
                job,
                worker.root
            ));
        }
    }
    out
}
