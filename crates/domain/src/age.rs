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

/// A span as the screens show it, two units at most: "42s", "1m05s", "2h03m", "3d4h". Negative
/// spans (clocks a little apart) show as "0s".
pub fn duration(span: Duration) -> String {
    let secs = span.num_seconds().max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match secs {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{m}m{s:02}s"),
        3_600..86_400 => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// The span from `from` to `to`, or to `now` while `to` has not happened yet.
pub fn span(from: DateTime<Utc>, to: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Duration {
    to.unwrap_or(now) - from
}

/// When `duration(now - from)` of a span still open shows a different text: each second under an
/// hour, each minute under a day, then each hour.
pub fn duration_changes_at(now: DateTime<Utc>, from: DateTime<Utc>) -> DateTime<Utc> {
    let elapsed = (now - from).num_milliseconds().max(0);
    let unit_ms: i64 = match elapsed / 1_000 {
        0..3_600 => 1_000,
        3_600..86_400 => 60_000,
        _ => 3_600_000,
    };
    from + Duration::milliseconds((elapsed / unit_ms + 1) * unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_duration_changes_exactly_at_the_boundary_given() {
        let from = Utc::now();
        for offset_ms in [0, 999, 59_999, 3_599_999, 3_600_000, 3_660_500, 90_000_000] {
            let now = from + Duration::milliseconds(offset_ms);
            let at = duration_changes_at(now, from);
            assert!(at > now, "{offset_ms}");
            let shown = |t: DateTime<Utc>| duration(t - from);
            assert_eq!(
                shown(at - Duration::milliseconds(1)),
                shown(now),
                "{offset_ms}"
            );
            assert_ne!(shown(at), shown(now), "{offset_ms}");
        }
    }

    #[test]
    fn durations_show_two_units_at_most() {
        let cases = [
            (0, "0s"),
            (-5, "0s"),
            (42, "42s"),
            (59, "59s"),
            (60, "1m00s"),
            (65, "1m05s"),
            (3_599, "59m59s"),
            (3_600, "1h00m"),
            (2 * 3_600 + 3 * 60 + 59, "2h03m"),
            (86_399, "23h59m"),
            (86_400, "1d0h"),
            (3 * 86_400 + 4 * 3_600 + 59 * 60, "3d4h"),
            (400 * 86_400, "400d0h"),
        ];
        for (secs, text) in cases {
            assert_eq!(duration(Duration::seconds(secs)), text, "{secs}s");
        }
    }

    #[test]
    fn an_open_span_runs_to_now() {
        let from = Utc::now();
        let now = from + Duration::seconds(90);
        assert_eq!(duration(span(from, None, now)), "1m30s");
        let to = from + Duration::seconds(30);
        assert_eq!(duration(span(from, Some(to), now)), "30s");
    }

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
