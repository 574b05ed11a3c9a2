//! Figures, their targets, the table and `results.json`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::sys::Machine;

/// Which way a figure must go to meet its target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// At most the target.
    AtMost,
    /// At least the target.
    AtLeast,
    /// Reported only.
    None,
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Stable key, e.g. `latency_p50`.
    pub key: String,
    /// The figure's name in the table.
    pub name: String,
    /// The value, in `unit`; `None` when the measurement failed.
    pub value: Option<f64>,
    /// The unit of `value` and `target`.
    pub unit: String,
    /// The target, in `unit`.
    pub target: Option<f64>,
    /// Which way the target goes.
    pub goal: Goal,
    /// Whether the target is met; `None` when there is no target or no value.
    pub pass: Option<bool>,
    /// How it was measured (server in-process or a child process, sizes).
    pub how: String,
    /// More numbers that explain the figure.
    pub detail: String,
}

impl Figure {
    /// A figure with a target.
    pub fn new(key: &str, name: &str, value: f64, unit: &str, goal: Goal, target: f64) -> Self {
        let pass = match goal {
            Goal::AtMost => Some(value <= target),
            Goal::AtLeast => Some(value >= target),
            Goal::None => None,
        };
        Figure {
            key: key.to_owned(),
            name: name.to_owned(),
            value: Some(value),
            unit: unit.to_owned(),
            target: (goal != Goal::None).then_some(target),
            goal,
            pass,
            how: String::new(),
            detail: String::new(),
        }
    }

    /// A figure reported without a target.
    pub fn info(key: &str, name: &str, value: f64, unit: &str) -> Self {
        Figure::new(key, name, value, unit, Goal::None, 0.0)
    }

    /// A figure whose measurement failed.
    pub fn failed(key: &str, name: &str, unit: &str, error: &anyhow::Error) -> Self {
        Figure {
            key: key.to_owned(),
            name: name.to_owned(),
            value: None,
            unit: unit.to_owned(),
            target: None,
            goal: Goal::None,
            pass: None,
            how: String::new(),
            detail: format!("measurement failed: {error:#}"),
        }
    }

    /// Says how it was measured.
    pub fn how(mut self, how: impl Into<String>) -> Self {
        self.how = how.into();
        self
    }

    /// Adds explaining numbers.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// The value as the table shows it.
    fn shown_value(&self) -> String {
        match self.value {
            Some(value) => format!("{} {}", human(value), self.unit),
            None => "failed".to_owned(),
        }
    }

    /// The target as the table shows it.
    fn shown_target(&self) -> String {
        match (self.goal, self.target) {
            (Goal::AtMost, Some(t)) => format!("<= {} {}", human(t), self.unit),
            (Goal::AtLeast, Some(t)) => format!(">= {} {}", human(t), self.unit),
            _ => "(report)".to_owned(),
        }
    }

    /// Pass, miss or nothing.
    fn shown_verdict(&self) -> &'static str {
        match (self.pass, self.value) {
            (Some(true), _) => "pass",
            (Some(false), _) => "MISS",
            (None, None) => "FAILED",
            (None, Some(_)) => "-",
        }
    }
}

/// A number with a sensible precision and thousands separators.
pub fn human(value: f64) -> String {
    let abs = value.abs();
    if abs >= 1000.0 {
        let rounded = value.round() as i64;
        let digits = rounded.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if rounded < 0 { format!("-{out}") } else { out }
    } else if abs >= 100.0 {
        format!("{value:.0}")
    } else if abs >= 10.0 {
        format!("{value:.1}")
    } else if abs >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// Percentile `p` (0..=100) of sorted samples, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Microseconds in a duration, as a float.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Everything one run produced.
#[derive(Debug, Serialize)]
pub struct Results {
    /// The command line that produced it.
    pub command: String,
    /// The source measured: the commit, and whether tracked files differ from it.
    pub revision: String,
    /// `quick` or `full`.
    pub mode: String,
    /// The machine.
    pub machine: Machine,
    /// Worker threads of the in-process servers' runtime (0: current-thread).
    pub server_threads: usize,
    /// How long the whole run took, in seconds.
    pub duration_s: f64,
    /// Every figure, in the order measured.
    pub figures: Vec<Figure>,
    /// Throughput against worker loops: (loops, jobs/s).
    pub throughput_by_loops: Vec<(usize, f64)>,
    /// Every latency sample, in microseconds, in the order taken.
    pub latency_samples_us: Vec<f64>,
    /// The same with the server's sync off, in microseconds.
    pub latency_nosync_samples_us: Vec<f64>,
}

impl Results {
    /// The table, with the machine header.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(out, "buildcat bench ({} mode)", self.mode);
        let _ = writeln!(
            out,
            "machine: {} cores, {}, {} MiB, Linux {}",
            m.cores, m.cpu, m.memory_mib, m.kernel
        );
        let _ = writeln!(
            out,
            "date:    {} (load average {:.2} at the start)",
            m.date, m.load_1min
        );
        let _ = writeln!(out, "command: {}", self.command);
        let _ = writeln!(out, "source:  {}", self.revision);
        let _ = writeln!(
            out,
            "in-process servers run on a runtime of {} worker thread(s){}",
            self.server_threads,
            if self.server_threads == 0 {
                " (current-thread)"
            } else {
                ""
            }
        );
        let _ = writeln!(out);
        let rows: Vec<[String; 4]> = self
            .figures
            .iter()
            .map(|f| {
                [
                    f.name.clone(),
                    f.shown_value(),
                    f.shown_target(),
                    f.shown_verdict().to_owned(),
                ]
            })
            .collect();
        let headers = ["figure", "value", "target", "result"];
        let mut widths = headers.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 4]| {
            format!(
                "{:<w0$}  {:>w1$}  {:<w2$}  {}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
            )
        };
        let _ = writeln!(out, "{}", line(headers));
        let _ = writeln!(
            out,
            "{}",
            "-".repeat(widths.iter().sum::<usize>() + 3 * 2 + 4)
        );
        for row in &rows {
            let _ = writeln!(out, "{}", line([&row[0], &row[1], &row[2], &row[3]]));
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "how each figure was measured:");
        for f in &self.figures {
            let mut note = f.how.clone();
            if !f.detail.is_empty() {
                if !note.is_empty() {
                    note.push_str("; ");
                }
                note.push_str(&f.detail);
            }
            let _ = writeln!(out, "  {}: {}", f.name, note);
        }
        let missed: Vec<&str> = self
            .figures
            .iter()
            .filter(|f| f.pass == Some(false))
            .map(|f| f.name.as_str())
            .collect();
        let failed: Vec<&str> = self
            .figures
            .iter()
            .filter(|f| f.value.is_none())
            .map(|f| f.name.as_str())
            .collect();
        let _ = writeln!(out);
        if missed.is_empty() {
            let _ = writeln!(out, "every target met");
        } else {
            let _ = writeln!(out, "missed targets: {}", missed.join(", "));
        }
        if !failed.is_empty() {
            let _ = writeln!(out, "measurements that failed: {}", failed.join(", "));
        }
        let _ = writeln!(out, "run took {:.1} s", self.duration_s);
        out
    }

    /// Writes `results.json` into `dir`.
    pub fn write_json(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join("results.json");
        let text = serde_json::to_string_pretty(self).context("encoding results.json")?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }
}
