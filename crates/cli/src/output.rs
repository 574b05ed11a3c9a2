//! How things are printed: trees, the farm as a table and as JSON. Formatting only; the
//! commands that fetch what is printed live in their own modules.

use buildcat_proto::{FarmInfo, TaskState};
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
    out.push_str(&format!("{:<name_width$}  {:>6}", "queue", "jobs"));
    for state in TaskState::ALL {
        out.push_str(&format!("  {:>9}", state.as_str()));
    }
    out.push('\n');
    if info.queues.is_empty() {
        out.push_str("(no jobs)\n");
    }
    for queue in &info.queues {
        out.push_str(&format!("{:<name_width$}  {:>6}", queue.name, queue.jobs));
        for state in TaskState::ALL {
            out.push_str(&format!("  {:>9}", queue.count(state)));
        }
        if queue.paused {
            out.push_str("  (paused: `buildcat resume --queue` lets it go)");
        }
        out.push('\n');
    }
    out.push_str("(jobs not ended; the other columns count tasks)\n");
    for waiting in &info.unserved {
        let why = if waiting.gpus.is_none() {
            crate::unserved::reason(info, &waiting.queue, Some(&waiting.kind), &waiting.gpus)
                .unwrap_or_else(|| match buildcat_proto::dcc::tool_for_kind(&waiting.kind) {
                    Some(tool) => format!("no worker with {tool} serves it"),
                    None => "no connected worker serving it can run that kind".to_owned(),
                })
        } else {
            crate::unserved::gpu_reason(&waiting.gpus, &waiting.queue)
        };
        out.push_str(&format!(
            "waiting: {} {} task(s) in `{}`: {why}\n",
            waiting.tasks, waiting.kind, waiting.queue
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
        let task_w = width(&|w| w.task.map_or(1, |task| task.to_string().len()), "task");
        let tools_w = width(&|w| tools_text(w).len(), "tools");
        out.push_str(&format!(
            "{:<name_w$}  {:<host_w$}  {:<state_w$}  {:<queues_w$}  {:<task_w$}  {:<tools_w$}  root\n",
            "name", "host", "state", "queues", "task", "tools"
        ));
        for worker in &info.workers {
            let task = worker
                .task
                .map_or_else(|| "-".to_owned(), |task| task.to_string());
            out.push_str(&format!(
                "{:<name_w$}  {:<host_w$}  {:<state_w$}  {:<queues_w$}  {:<task_w$}  {:<tools_w$}  {}\n",
                worker.name,
                worker.host,
                worker.activity.as_str(),
                worker.queues.join(","),
                task,
                tools_text(worker),
                worker.root
            ));
        }
        for worker in &info.workers {
            for gpu in &worker.gpus {
                out.push_str(&format!("{}: {}\n", worker.name, gpu_text(gpu)));
            }
        }
        for worker in &info.workers {
            if let Some(reason) = &worker.quarantine {
                out.push_str(&format!(
                    "{} is quarantined: {reason}\n  let it back: buildcat worker-enable {}\n",
                    worker.name, worker.name
                ));
            }
            if worker.paused {
                let running = if worker.task.is_some() {
                    "it finishes its task and takes no new one"
                } else {
                    "it takes no work"
                };
                out.push_str(&format!(
                    "{} is paused: {running}\n  let it work: buildcat worker-resume {}\n",
                    worker.name, worker.name
                ));
            }
        }
    }
    out
}

/// A GPU as `info` lists it under its worker: `GPU 0 NVIDIA H200 140 GiB`.
fn gpu_text(gpu: &buildcat_proto::Gpu) -> String {
    let mut text = format!("GPU {}", gpu.index);
    if !gpu.name.is_empty() {
        text.push(' ');
        text.push_str(&gpu.name);
    }
    /// MiB in a GiB.
    const MIB_PER_GIB: u64 = 1024;
    if gpu.memory_mib > 0 {
        // Rounded to the nearest GiB: what people call the card.
        let gib = (gpu.memory_mib + MIB_PER_GIB / 2) / MIB_PER_GIB;
        text.push_str(&format!(" {gib} GiB"));
    }
    text
}

/// A worker's tools as the table shows them: `blender 3.4.1, hython 20.5`; a tool whose
/// version could not be read by its name alone; `-` for none.
fn tools_text(worker: &buildcat_proto::WorkerSummary) -> String {
    if worker.tools.is_empty() {
        return "-".to_owned();
    }
    worker
        .tools
        .iter()
        .map(|tool| {
            if tool.version.is_empty() {
                tool.name.clone()
            } else {
                format!("{} {}", tool.name, tool.version)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use buildcat_proto::view::FarmView;
    use buildcat_proto::{
        FarmInfo, JobId, QueueSummary, RunningTask, TaskCounts, TaskId, Timestamp, ToolVersion,
        Unserved, WorkerActivity, WorkerSummary,
    };

    /// A farm of one queue, one busy worker and one kind no worker can run.
    fn farm() -> FarmInfo {
        let job: JobId = "0190f0c0-5d1e-7a3b-9c4d-2e5f6a7b8c9d".parse().unwrap();
        FarmInfo {
            queues: vec![QueueSummary {
                name: "default".to_owned(),
                jobs: 2,
                tasks: TaskCounts {
                    total: 28,
                    queued: 1,
                    started: 2,
                    finished: 3,
                    failed: 4,
                    canceled: 5,
                    deferred: 6,
                    paused: 7,
                },
                paused: true,
            }],
            workers: vec![WorkerSummary {
                name: "w1".to_owned(),
                host: "render01".to_owned(),
                root: "/farm".to_owned(),
                queues: vec!["default".to_owned()],
                activity: WorkerActivity::Busy,
                task: Some(RunningTask {
                    id: TaskId::new(job, 3),
                    number: 42,
                }),
                connected_at: Timestamp::now(),
                quarantine: None,
                tools: vec![
                    ToolVersion {
                        name: "blender".to_owned(),
                        version: "3.4.1".to_owned(),
                    },
                    ToolVersion {
                        name: "mantra".to_owned(),
                        version: String::new(),
                    },
                ],
                gpus: vec![buildcat_proto::Gpu {
                    index: 0,
                    uuid: "GPU-5f3c".to_owned(),
                    name: "NVIDIA H200".to_owned(),
                    memory_mib: 143_771,
                    driver: "550.54.15".to_owned(),
                    vendor: buildcat_proto::GpuVendor::Nvidia,
                }],
                paused: false,
            }],
            unserved: vec![Unserved {
                queue: "default".to_owned(),
                kind: "buildcat.blender.render".to_owned(),
                tasks: 7,
                gpus: buildcat_proto::GpuRequirement::NONE,
            }],
            truncated: false,
            output_bytes: 0,
        }
    }

    /// `info --json` keeps the shape scripts read (and end-to-end tests pin): keys in
    /// alphabetical order, job ids as strings, tasks as `42.3`.
    #[test]
    fn info_json_keeps_its_shape() {
        let text = serde_json::to_string_pretty(&FarmView::from(&farm())).unwrap();
        let expected = r#"{
  "queues": [
    {
      "canceled": 5,
      "deferred": 6,
      "failed": 4,
      "finished": 3,
      "held": true,
      "jobs": 2,
      "name": "default",
      "paused": 7,
      "queued": 1,
      "started": 2
    }
  ],
  "unserved": [
    {
      "kind": "buildcat.blender.render",
      "queue": "default",
      "tasks": 7,
      "tool": "blender"
    }
  ],
  "workers": [
    {
      "gpus": [
        {
          "driver": "550.54.15",
          "index": 0,
          "memory_mib": 143771,
          "name": "NVIDIA H200",
          "uuid": "GPU-5f3c",
          "vendor": "nvidia"
        }
      ],
      "host": "render01",
      "job": "0190f0c0-5d1e-7a3b-9c4d-2e5f6a7b8c9d",
      "name": "w1",
      "paused": false,
      "queues": [
        "default"
      ],
      "root": "/farm",
      "state": "busy",
      "task": "42.3",
      "tools": [
        {
          "name": "blender",
          "version": "3.4.1"
        },
        {
          "name": "mantra",
          "version": ""
        }
      ]
    }
  ]
}"#;
        assert_eq!(text, expected);
    }

    /// The table names each worker's task as people type it and says a queue is paused.
    #[test]
    fn info_text_names_tasks_and_paused_queues() {
        let text = super::info_text(&farm());
        assert!(
            text.contains("(paused: `buildcat resume --queue` lets it go)"),
            "{text}"
        );
        let worker = text.lines().find(|line| line.starts_with("w1")).unwrap();
        assert!(worker.contains(" 42.3 "), "{worker}");
        assert!(worker.contains(" blender 3.4.1, mantra "), "{worker}");
        assert!(
            text.contains("waiting: 7 buildcat.blender.render task(s) in `default`"),
            "{text}"
        );
        assert!(text.contains("w1: GPU 0 NVIDIA H200 140 GiB\n"), "{text}");
    }
}
