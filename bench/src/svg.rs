//! The two charts, written as SVG text by hand (axes, ticks, labels, a polyline, bars).

use std::fmt::Write as _;

use crate::report::human;

/// Width and height of every chart, in pixels.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
/// The plot area inside the chart.
const LEFT: f64 = 80.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 64.0;

/// Plot-area width and height.
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;

/// Escapes text for SVG.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The document start: background, title and subtitle.
fn open(out: &mut String, title: &str, subtitle: &str) {
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        esc(title)
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="40" text-anchor="middle" fill="#555555">{}</text>"##,
        WIDTH / 2.0,
        esc(subtitle)
    );
}

/// The frame of the plot area and the axis titles.
fn axes(out: &mut String, x_title: &str, y_title: &str) {
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="none" stroke="#333333"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + PLOT_W / 2.0,
        HEIGHT - 18.0,
        esc(x_title)
    );
    let _ = writeln!(
        out,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
        TOP + PLOT_H / 2.0,
        TOP + PLOT_H / 2.0,
        esc(y_title)
    );
}

/// A horizontal grid line with its label on the y axis.
fn y_tick(out: &mut String, y: f64, label: &str) {
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#e4e4e4"/>"##,
        LEFT + PLOT_W
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
        LEFT - 6.0,
        y + 4.0,
        esc(label)
    );
}

/// A tick on the x axis with its label.
fn x_tick(out: &mut String, x: f64, label: &str) {
    let bottom = TOP + PLOT_H;
    let _ = writeln!(
        out,
        r##"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{}" stroke="#333333"/>"##,
        bottom + 5.0
    );
    let _ = writeln!(
        out,
        r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
        bottom + 19.0,
        esc(label)
    );
}

/// A tick value as a label: whole numbers without decimals.
fn tick_label(value: f64) -> String {
    if value.fract().abs() < 1e-9 && value.abs() < 1000.0 {
        format!("{value:.0}")
    } else {
        human(value)
    }
}

/// A step of 1, 2 or 5 times a power of ten, near `range / 5`.
fn nice_step(range: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let rough = range / 5.0;
    let power = 10f64.powf(rough.log10().floor());
    let fraction = rough / power;
    let nice = if fraction < 1.5 {
        1.0
    } else if fraction < 3.5 {
        2.0
    } else if fraction < 7.5 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// Throughput against worker loops: a line through one point per loop count, with the
/// target as a dashed line.
pub fn throughput_chart(points: &[(usize, f64)], target: f64, subtitle: &str) -> String {
    let mut out = String::new();
    open(&mut out, "Throughput against worker loops", subtitle);
    axes(
        &mut out,
        "worker loops (one connection each)",
        "jobs per second (first submit to last finished)",
    );
    let max = points
        .iter()
        .map(|&(_, v)| v)
        .fold(target, f64::max)
        .max(1.0)
        * 1.12;
    let step = nice_step(max);
    let y_max = (max / step).ceil() * step;
    let y = |v: f64| TOP + PLOT_H - v / y_max * PLOT_H;
    let mut tick = 0.0;
    while tick <= y_max + step / 2.0 {
        y_tick(&mut out, y(tick), &tick_label(tick));
        tick += step;
    }
    // Loop counts are spaced evenly, whatever they are (1, 2, 4, 8 on a log-2 scale).
    let n = points.len().max(1) as f64;
    let x = |i: usize| LEFT + PLOT_W * (i as f64 + 0.5) / n;
    for (i, &(loops, _)) in points.iter().enumerate() {
        x_tick(&mut out, x(i), &loops.to_string());
    }
    let target_y = y(target);
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{target_y:.1}" x2="{}" y2="{target_y:.1}" stroke="#c0392b" stroke-dasharray="6 4"/>"##,
        LEFT + PLOT_W
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{:.1}" text-anchor="end" fill="#c0392b">target {} jobs/s</text>"##,
        LEFT + PLOT_W - 6.0,
        target_y - 6.0,
        human(target)
    );
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, &(_, v))| format!("{:.1},{:.1}", x(i), y(v)))
        .collect();
    let _ = writeln!(
        out,
        r##"<polyline points="{}" fill="none" stroke="#2471a3" stroke-width="2.5"/>"##,
        line.join(" ")
    );
    for (i, &(_, v)) in points.iter().enumerate() {
        let _ = writeln!(
            out,
            r##"<circle cx="{:.1}" cy="{:.1}" r="4.5" fill="#2471a3"/>"##,
            x(i),
            y(v)
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}</text>"#,
            x(i),
            y(v) - 10.0,
            human(v)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The latency distribution: the share of samples in each of 60 log-spaced bins, as bars
/// for `samples_us` and as an outline for `other` (a second run to compare), with the
/// percentiles and targets marked.
pub fn latency_chart(
    samples_us: &[f64],
    other: Option<(&str, &[f64])>,
    marks: &[(&str, f64, &str)],
    subtitle: &str,
) -> String {
    const BINS: usize = 60;
    let mut out = String::new();
    open(
        &mut out,
        "Submit-to-result latency of a no-op job",
        subtitle,
    );
    axes(
        &mut out,
        "latency (log scale)",
        "share of samples per bin (%)",
    );
    let positive: Vec<f64> = samples_us.iter().copied().filter(|v| *v > 0.0).collect();
    let others: Vec<f64> = other
        .map(|(_, samples)| samples.iter().copied().filter(|v| *v > 0.0).collect())
        .unwrap_or_default();
    if positive.is_empty() {
        out.push_str("</svg>\n");
        return out;
    }
    let everything = || {
        positive
            .iter()
            .chain(others.iter())
            .copied()
            .chain(marks.iter().map(|m| m.1))
    };
    let low = everything().fold(f64::INFINITY, f64::min) * 0.9;
    let high = everything().fold(0.0, f64::max) * 1.1;
    let (log_low, log_high) = (low.log10(), high.log10());
    let x = |v: f64| LEFT + (v.log10() - log_low) / (log_high - log_low) * PLOT_W;
    let shares = |samples: &[f64]| {
        let mut counts = [0usize; BINS];
        for v in samples {
            let position = (v.log10() - log_low) / (log_high - log_low) * BINS as f64;
            counts[(position.max(0.0) as usize).min(BINS - 1)] += 1;
        }
        counts.map(|c| c as f64 * 100.0 / samples.len().max(1) as f64)
    };
    let bars = shares(&positive);
    let outline = shares(&others);
    let max_share = bars
        .iter()
        .chain(outline.iter())
        .copied()
        .fold(0.0, f64::max)
        .max(1.0);
    let step = nice_step(max_share * 1.1);
    let y_max = ((max_share * 1.1) / step).ceil() * step;
    let y = |share: f64| TOP + PLOT_H - share / y_max * PLOT_H;
    let mut tick = 0.0;
    while tick <= y_max + step / 2.0 {
        y_tick(&mut out, y(tick), &tick_label(tick));
        tick += step;
    }
    // Ticks at 1, 2 and 5 times each power of ten within range.
    let mut decade = 10f64.powf(low.log10().floor());
    while decade <= high {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v >= low && v <= high {
                let label = if v >= 1000.0 {
                    format!("{} ms", tick_label(v / 1000.0))
                } else {
                    format!("{} µs", tick_label(v))
                };
                x_tick(&mut out, x(v), &label);
            }
        }
        decade *= 10.0;
    }
    let bin_w = PLOT_W / BINS as f64;
    for (i, &share) in bars.iter().enumerate() {
        if share == 0.0 {
            continue;
        }
        let top = y(share);
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="#2471a3"/>"##,
            LEFT + i as f64 * bin_w,
            (bin_w - 1.0).max(0.5),
            TOP + PLOT_H - top
        );
    }
    if let Some((label, _)) = other
        && !others.is_empty()
    {
        let mut points = vec![format!("{LEFT:.1},{:.1}", y(0.0))];
        for (i, &share) in outline.iter().enumerate() {
            let left = LEFT + i as f64 * bin_w;
            points.push(format!("{left:.1},{:.1}", y(share)));
            points.push(format!("{:.1},{:.1}", left + bin_w, y(share)));
        }
        let _ = writeln!(
            out,
            r##"<polyline points="{}" fill="none" stroke="#7d3c98" stroke-width="1.5"/>"##,
            points.join(" ")
        );
        let legend_y = TOP + PLOT_H - 40.0;
        let legend_x = LEFT + PLOT_W - 250.0;
        let _ = writeln!(
            out,
            r##"<rect x="{legend_x:.1}" y="{:.1}" width="14" height="10" fill="#2471a3"/><text x="{:.1}" y="{:.1}">durable (bars)</text>"##,
            legend_y - 9.0,
            legend_x + 20.0,
            legend_y
        );
        let _ = writeln!(
            out,
            r##"<line x1="{legend_x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#7d3c98" stroke-width="1.5"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            legend_y + 14.0,
            legend_x + 14.0,
            legend_y + 14.0,
            legend_x + 20.0,
            legend_y + 18.0,
            esc(label)
        );
    }
    for (index, (label, value, color)) in marks.iter().enumerate() {
        let mx = x(*value);
        let _ = writeln!(
            out,
            r#"<line x1="{mx:.1}" y1="{TOP}" x2="{mx:.1}" y2="{}" stroke="{color}" stroke-dasharray="5 3" stroke-width="1.5"/>"#,
            TOP + PLOT_H
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" fill="{color}" text-anchor="start">{}</text>"#,
            mx + 4.0,
            TOP + 16.0 + 15.0 * index as f64,
            esc(label)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_five() {
        assert_eq!(nice_step(10.0), 2.0);
        assert_eq!(nice_step(100.0), 20.0);
        assert_eq!(nice_step(60_000.0), 10_000.0);
    }

    #[test]
    fn charts_are_closed_svg_documents() {
        let chart = throughput_chart(&[(1, 10.0), (2, 20.0)], 50.0, "test");
        assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
        let chart = latency_chart(
            &[100.0, 200.0, 5000.0],
            Some(("other", &[150.0, 160.0][..])),
            &[("p50", 200.0, "red")],
            "t",
        );
        assert!(chart.contains("<rect") && chart.trim_end().ends_with("</svg>"));
    }
}
