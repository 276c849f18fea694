//! How long ago, as the screens show it: in the one unit that fits four columns, and when that
//! text next changes, so a screen can redraw exactly when a value on it does.

use chrono::{DateTime, Duration, Utc};

/// "42s", "5m", "3h", "2d": how long ago, in the unit that fits four columns.
pub fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3_600 => format!("{}m", secs / 60),
        3_600..86_400 => format!("{}h", secs / 3_600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// When `age(now, then)` next shows a different text: the next second while under a minute, then
/// the next whole minute, hour or day. The console sleeps until the earliest of these on screen.
pub fn age_changes_at(now: DateTime<Utc>, then: DateTime<Utc>) -> DateTime<Utc> {
    let elapsed = (now - then).num_milliseconds().max(0);
    let unit_ms: i64 = match elapsed / 1_000 {
        0..60 => 1_000,
        60..3_600 => 60_000,
        3_600..86_400 => 3_600_000,
        _ => 86_400_000,
    };
    let next = (elapsed / unit_ms + 1) * unit_ms;
    then + Duration::milliseconds(next)
}

/// When `age(until, now)` (time left until `until`) next shows a different text.
pub fn countdown_changes_at(now: DateTime<Utc>, until: DateTime<Utc>) -> DateTime<Utc> {
    let left = (until - now).num_milliseconds();
    if left <= 0 {
        return now;
    }
    let unit_ms: i64 = match left / 1_000 {
        0..60 => 1_000,
        60..3_600 => 60_000,
        3_600..86_400 => 3_600_000,
        _ => 86_400_000,
    };
    until - Duration::milliseconds(((left - 1) / unit_ms) * unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_text_changes_exactly_at_the_boundary_given() {
        let then = Utc::now();
        for offset_ms in [
            0, 999, 1_000, 59_500, 60_000, 61_234, 3_599_999, 3_600_000, 90_000_000,
        ] {
            let now = then + Duration::milliseconds(offset_ms);
            let at = age_changes_at(now, then);
            assert!(at > now, "{offset_ms}");
            assert_eq!(
                age(at - Duration::milliseconds(1), then),
                age(now, then),
                "{offset_ms}"
            );
            assert_ne!(age(at, then), age(now, then), "{offset_ms}");
        }
    }
}
