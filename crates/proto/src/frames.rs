//! Frame specs: `1,7,9,10-25,75-100:2`.
//!
//! Comma-separated items; each is a frame `N`, an inclusive range `A-B`, or a range with a
//! step `A-B:S` (or `A-BxS`, as other farms write it). Spaces around the separators are
//! allowed (`1 - 10 x 2, 20`). Internally a list of half-open ranges (start, stop, step), as
//! the original kept them. Negative frames are written with a leading sign (`-5`,
//! `-10--1`). A frame past `i64`'s end is refused, never wrapped.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Frames `start`, `start + step`, ... below `stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRange {
    /// The first frame.
    pub start: i64,
    /// One past the last frame that may be rendered.
    pub stop: i64,
    /// The distance between frames (at least 1).
    pub step: i64,
}

impl FrameRange {
    /// The frames in this range, in order.
    pub fn frames(&self) -> impl Iterator<Item = i64> + use<> {
        let step = usize::try_from(self.step.max(1)).unwrap_or(usize::MAX);
        (self.start..self.stop).step_by(step)
    }
}

/// A parsed `--frames` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameSpec {
    /// The ranges, in the order given.
    pub ranges: Vec<FrameRange>,
}

/// Why a frame spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad frame spec `{spec}`: {problem} (expected items like `7`, `10-25`, `75-100:2` or `1-100x2`, separated by commas)"
)]
pub struct FrameSpecError {
    /// The whole spec.
    pub spec: String,
    /// What is wrong with it.
    pub problem: String,
}

/// The most frames one spec may name, so a typo like `1-1000000000` is caught early.
pub const MAX_FRAMES: u64 = 1_000_000;

impl FrameSpec {
    /// Every frame, in the order given (duplicates kept as written).
    pub fn frames(&self) -> Vec<i64> {
        self.ranges.iter().flat_map(FrameRange::frames).collect()
    }

    /// Every frame once, in the order first given, and the frames listed more than once
    /// (each named once, in order), for a warning.
    pub fn unique_frames(&self) -> (Vec<i64>, Vec<i64>) {
        let mut seen = std::collections::HashSet::new();
        let mut repeated = Vec::new();
        let mut frames = Vec::new();
        for frame in self.ranges.iter().flat_map(FrameRange::frames) {
            if seen.insert(frame) {
                frames.push(frame);
            } else if !repeated.contains(&frame) {
                repeated.push(frame);
            }
        }
        (frames, repeated)
    }

    /// The first and last frames named (`None` for no ranges).
    pub fn bounds(&self) -> Option<(i64, i64)> {
        let first = self.ranges.iter().map(|r| r.start).min()?;
        let last = self.ranges.iter().map(|r| r.stop - 1).max()?;
        Some((first, last))
    }
}

impl Default for FrameSpec {
    /// Frame 1, the original's default.
    fn default() -> Self {
        FrameSpec {
            ranges: vec![FrameRange {
                start: 1,
                stop: 2,
                step: 1,
            }],
        }
    }
}

/// Reads a signed integer at the start of `text`; returns it (`Err` if it does not fit an
/// `i64`) and the rest; `None` if `text` does not start with one.
fn number(text: &str) -> Option<(Result<i64, std::num::ParseIntError>, &str)> {
    let digits_from = usize::from(text.starts_with('-'));
    let end = text[digits_from..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(text.len(), |i| i + digits_from);
    if end == digits_from {
        return None;
    }
    Some((text[..end].parse(), &text[end..]))
}

/// One item: `N`, `A-B`, `A-B:S` or `A-BxS`, with spaces allowed around the separators.
fn parse_item(item: &str) -> Result<FrameRange, String> {
    let item = item.trim();
    if item.is_empty() {
        return Err("an item is empty".to_owned());
    }
    let (range, step) = match item.split_once([':', 'x', 'X']) {
        Some((range, step)) => {
            let step: i64 = step
                .trim()
                .parse()
                .map_err(|_| format!("`{step}` in `{item}` is not a whole number step"))?;
            if step < 1 {
                return Err(format!("the step in `{item}` must be 1 or more"));
            }
            (range.trim(), Some(step))
        }
        None => (item, None),
    };
    let too_big = || {
        format!(
            "`{item}` names a frame beyond {} or below {}, which no renderer has",
            i64::MAX - 1,
            i64::MIN
        )
    };
    let Some((first, rest)) = number(range) else {
        return Err(format!("`{item}` does not start with a frame number"));
    };
    let first = first.map_err(|_| too_big())?;
    let rest = rest.trim_start();
    if rest.is_empty() {
        if step.is_some() {
            return Err(format!("`{item}` has a step but no range"));
        }
        return Ok(FrameRange {
            start: first,
            stop: first.checked_add(1).ok_or_else(too_big)?,
            step: 1,
        });
    }
    let Some(after_dash) = rest.strip_prefix('-') else {
        return Err(format!("`{item}` is not a frame or a range"));
    };
    let after_dash = after_dash.trim_start();
    let Some((last, tail)) = number(after_dash) else {
        return Err(format!("`{item}` has no end frame after `-`"));
    };
    let last = last.map_err(|_| too_big())?;
    if !tail.trim().is_empty() {
        return Err(format!("unexpected `{}` in `{item}`", tail.trim()));
    }
    if last < first {
        return Err(format!(
            "`{item}` runs backwards; write the smaller frame first"
        ));
    }
    Ok(FrameRange {
        start: first,
        stop: last.checked_add(1).ok_or_else(too_big)?,
        step: step.unwrap_or(1),
    })
}

impl FromStr for FrameSpec {
    type Err = FrameSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let error = |problem: String| FrameSpecError {
            spec: spec.to_owned(),
            problem,
        };
        if spec.trim().is_empty() {
            return Err(error("it is empty".to_owned()));
        }
        let ranges = spec
            .split(',')
            .map(parse_item)
            .collect::<Result<Vec<_>, _>>()
            .map_err(error)?;
        let count: u64 = ranges
            .iter()
            .map(|r| r.stop.abs_diff(r.start).div_ceil(r.step.unsigned_abs()))
            .fold(0u64, u64::saturating_add);
        if count > MAX_FRAMES {
            return Err(error(format!(
                "it names {count} frames, more than the limit of {MAX_FRAMES}"
            )));
        }
        Ok(FrameSpec { ranges })
    }
}

impl fmt::Display for FrameSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, range) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let last = range.stop - 1;
            match (range.stop - range.start, range.step) {
                (1, _) => write!(f, "{}", range.start)?,
                (_, 1) => write!(f, "{}-{last}", range.start)?,
                (_, step) => write!(f, "{}-{last}:{step}", range.start)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: &str, frames: &[i64]) {
        let parsed: FrameSpec = spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(parsed.frames(), frames, "{spec}");
    }

    fn refuse(spec: &str, problem: &str) {
        let error = spec.parse::<FrameSpec>().expect_err(spec).to_string();
        assert!(error.contains(problem), "{spec}: {error}");
    }

    #[test]
    fn the_original_example() {
        let spec: FrameSpec = "1,7,9,10-25,75-100:2".parse().unwrap();
        let frames = spec.frames();
        assert_eq!(&frames[..4], &[1, 7, 9, 10]);
        assert_eq!(frames.len(), 3 + 16 + 13);
        assert_eq!(frames.last(), Some(&99));
        assert_eq!(spec.to_string(), "1,7,9,10-25,75-100:2");
        assert_eq!(
            spec.ranges[4],
            FrameRange {
                start: 75,
                stop: 101,
                step: 2
            }
        );
    }

    #[test]
    fn single_frames_ranges_and_steps() {
        check("1", &[1]);
        check("3-5", &[3, 4, 5]);
        check("1-10:3", &[1, 4, 7, 10]);
        check(" 2 , 4 ", &[2, 4]);
        check("5-5", &[5]);
        check("0", &[0]);
    }

    #[test]
    fn negative_frames_with_a_leading_sign() {
        check("-5", &[-5]);
        check("-3--1", &[-3, -2, -1]);
        check("-2-2:2", &[-2, 0, 2]);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        refuse("", "it is empty");
        refuse("1,,2", "an item is empty");
        refuse("10-1", "runs backwards");
        refuse("1-10:0", "step in `1-10:0` must be 1 or more");
        refuse("1-10:-2", "must be 1 or more");
        refuse("1-10:x", "not a whole number step");
        refuse("abc", "does not start with a frame number");
        refuse("1-", "no end frame");
        refuse("1-2-3", "unexpected `-3`");
        refuse("5:2", "has a step but no range");
        refuse("1-2000000000", "more than the limit");
        refuse("1-10x", "not a whole number step");
        refuse("1 2", "is not a frame or a range");
    }

    #[test]
    fn frames_past_the_end_of_i64_are_refused_not_wrapped() {
        refuse("9223372036854775807", "beyond 9223372036854775806");
        refuse(
            "9223372036854775800-9223372036854775807",
            "beyond 9223372036854775806",
        );
        refuse("99999999999999999999", "beyond");
        refuse("1-99999999999999999999", "beyond");
        refuse(
            "-9223372036854775808-9223372036854775806",
            "more than the limit",
        );
        check("9223372036854775806", &[9_223_372_036_854_775_806]);
    }

    #[test]
    fn steps_written_with_x_and_spaces_around_separators() {
        check("1-10x3", &[1, 4, 7, 10]);
        check("1 - 10 x 3", &[1, 4, 7, 10]);
        check("1 -10 : 3 , 12", &[1, 4, 7, 10, 12]);
        check("-3 - -1", &[-3, -2, -1]);
        let spec: FrameSpec = "1-100x2".parse().unwrap();
        assert_eq!(spec.to_string(), "1-100:2");
    }

    #[test]
    fn repeated_frames_come_once_and_are_named() {
        let spec: FrameSpec = "1-5,3,9,4-6".parse().unwrap();
        assert_eq!(
            spec.unique_frames(),
            (vec![1, 2, 3, 4, 5, 9, 6], vec![3, 4, 5])
        );
        assert_eq!(spec.bounds(), Some((1, 9)));
    }

    #[test]
    fn display_round_trips() {
        for spec in ["1", "1-10", "1-9:2", "-5--1,3"] {
            let parsed: FrameSpec = spec.parse().unwrap();
            assert_eq!(parsed.to_string(), spec);
        }
    }
}
