//! How things are printed: trees, the farm as a table and as JSON. Formatting only; the
//! commands that fetch what is printed live in their own modules.

use buildcat_proto::{FarmInfo, JobState};
use serde_json::Value;

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
        let state_w = width(&|w| w.activity.as_str().len(), "state");
        out.push_str(&format!(
            "{:<name_w$}  {:<host_w$}  {:<state_w$}  {:<queues_w$}  {:<36}  root\n",
            "name", "host", "state", "queues", "job"
        ));
        for worker in &info.workers {
            let job = worker
                .job
                .map_or_else(|| "-".to_owned(), |id| id.to_string());
            out.push_str(&format!(
                "{:<name_w$}  {:<host_w$}  {:<state_w$}  {:<queues_w$}  {:<36}  {}\n",
                worker.name,
                worker.host,
                worker.activity.as_str(),
                worker.queues.join(","),
                job,
                worker.root
            ));
        }
        for worker in &info.workers {
            if let Some(reason) = &worker.quarantine {
                out.push_str(&format!(
                    "{} is quarantined: {reason}\n  let it back: buildcat worker-enable {}\n",
                    worker.name, worker.name
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use buildcat_proto::view::FarmView;
    use buildcat_proto::{
        FarmInfo, JobId, QueueSummary, Timestamp, Unserved, WorkerActivity, WorkerSummary,
    };

    /// `info --json` keeps the shape scripts read (and end-to-end tests pin): keys in
    /// alphabetical order, job ids as strings, `null` for what is absent.
    #[test]
    fn info_json_keeps_its_shape() {
        let info = FarmInfo {
            queues: vec![QueueSummary {
                name: "default".to_owned(),
                queued: 1,
                started: 2,
                finished: 3,
                failed: 4,
                canceled: 5,
                deferred: 6,
            }],
            workers: vec![WorkerSummary {
                name: "w1".to_owned(),
                host: "render01".to_owned(),
                root: "/farm".to_owned(),
                queues: vec!["default".to_owned()],
                activity: WorkerActivity::Busy,
                job: Some(
                    "0190f0c0-5d1e-7a3b-9c4d-2e5f6a7b8c9d"
                        .parse::<JobId>()
                        .unwrap(),
                ),
                connected_at: Timestamp::now(),
                quarantine: None,
            }],
            unserved: vec![Unserved {
                queue: "default".to_owned(),
                kind: "buildcat.blender.render".to_owned(),
                jobs: 7,
            }],
            truncated: false,
        };
        let text = serde_json::to_string_pretty(&FarmView::from(&info)).unwrap();
        let expected = r#"{
  "queues": [
    {
      "canceled": 5,
      "deferred": 6,
      "failed": 4,
      "finished": 3,
      "name": "default",
      "queued": 1,
      "started": 2
    }
  ],
  "unserved": [
    {
      "jobs": 7,
      "kind": "buildcat.blender.render",
      "queue": "default",
      "tool": "blender"
    }
  ],
  "workers": [
    {
      "host": "render01",
      "job": "0190f0c0-5d1e-7a3b-9c4d-2e5f6a7b8c9d",
      "name": "w1",
      "queues": [
        "default"
      ],
      "root": "/farm",
      "state": "busy"
    }
  ]
}"#;
        assert_eq!(text, expected);
    }
}
