//! What both drawing modules (`view` and `view_catalog`) share: the colour theme and the
//! time formatting, so that neither has to import the other.

use ratatui::style::{Color, Modifier, Style};

use chrono::{DateTime, FixedOffset, Utc};

use crate::domain::deployment::Liveness;
use crate::domain::manifest::ManifestStatus;
use crate::domain::run::RunStatus;

/// Colours limited to the 16 ANSI ones, or none at all (NO_COLOR).
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    pub fn from_env() -> Self {
        Self {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    /// A colour, or no style at all under NO_COLOR.
    pub fn fg(self, color: Color) -> Style {
        if self.color {
            Style::default().fg(color)
        } else {
            Style::default()
        }
    }

    pub fn status(self, status: RunStatus) -> Style {
        let color = match status {
            RunStatus::Queued => Color::Blue,
            RunStatus::Claimed => Color::Cyan,
            RunStatus::Running => Color::Yellow,
            RunStatus::Succeeded => Color::Green,
            RunStatus::Failed => Color::Red,
            RunStatus::Canceled => Color::Magenta,
        };
        let style = self.fg(color);
        if status == RunStatus::Failed {
            style.add_modifier(Modifier::BOLD)
        } else {
            style
        }
    }

    pub(super) fn selected(self) -> Style {
        // Reverse video reads as a selection with or without colour.
        Style::default().add_modifier(Modifier::REVERSED)
    }

    pub fn dim(self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default().add_modifier(Modifier::DIM)
        }
    }

    /// A manifest version's status: cyan draft, green active, yellow locked, grey superseded.
    pub fn manifest(self, status: ManifestStatus) -> Style {
        self.fg(match status {
            ManifestStatus::Draft => Color::Cyan,
            ManifestStatus::Active => Color::Green,
            ManifestStatus::Locked => Color::Yellow,
            ManifestStatus::Superseded => Color::DarkGray,
        })
    }

    /// Green alive, yellow stale, red missing.
    pub fn liveness(self, l: Liveness) -> Style {
        self.fg(match l {
            Liveness::Alive => Color::Green,
            Liveness::Stale => Color::Yellow,
            Liveness::Missing => Color::Red,
        })
    }

    pub(super) fn error(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
}

pub use crate::domain::age::age;

/// A time of day in `offset`, or "-".
pub fn clock_time(offset: &FixedOffset, t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.with_timezone(offset).format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// A moment in `offset`: the time of day when it is `now`'s day there, else with its date
/// ("Nov 21 09:23:32", or with the year when not this year); "-" for none.
pub fn date_time(offset: &FixedOffset, now: DateTime<Utc>, t: Option<DateTime<Utc>>) -> String {
    let Some(t) = t else {
        return "-".into();
    };
    let (t, today) = (t.with_timezone(offset), now.with_timezone(offset));
    let format = if t.date_naive() == today.date_naive() {
        "%H:%M:%S"
    } else if t.format("%Y").to_string() == today.format("%Y").to_string() {
        "%b %d %H:%M:%S"
    } else {
        "%Y-%m-%d %H:%M:%S"
    };
    t.format(format).to_string()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn times_carry_a_date_unless_they_are_today_in_the_consoles_offset() {
        let utc = FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!());
        let plus2 = FixedOffset::east_opt(2 * 3600).unwrap_or_else(|| unreachable!());
        let now = Utc
            .with_ymd_and_hms(2026, 11, 22, 9, 30, 0)
            .single()
            .unwrap_or_default();
        let at = |d, h| {
            Utc.with_ymd_and_hms(2026, 11, d, h, 5, 7)
                .single()
                .unwrap_or_default()
        };
        assert_eq!(date_time(&utc, now, Some(at(22, 1))), "01:05:07");
        assert_eq!(date_time(&utc, now, Some(at(21, 23))), "Nov 21 23:05:07");
        // 23:05 UTC on the 21st is already the 22nd at +02:00.
        assert_eq!(date_time(&plus2, now, Some(at(21, 23))), "01:05:07");
        let last_year = now - chrono::Duration::days(400);
        assert_eq!(date_time(&utc, now, Some(last_year)), "2025-10-18 09:30:00");
        assert_eq!(date_time(&utc, now, None), "-");
    }
}
