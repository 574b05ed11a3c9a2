//! Times as people read them: RFC 3339 in UTC, and short durations.

use std::time::Duration;

pub use buildcat_proto::view::rfc3339;

/// `3h 07m`, `4m 05s`, `12.3s`.
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 3600 {
        format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(human(Duration::from_secs(245)), "4m 05s");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 7 * 60)), "3h 07m");
    }
}
