//! What both drawing modules (`view` and `view_catalog`) share: the colour theme and the
//! time formatting, so that neither has to import the other.

use ratatui::style::{Color, Modifier, Style};

use chrono::{DateTime, FixedOffset, Utc};

use crate::domain::deployment::Liveness;
use crate::domain::manifest::ManifestStatus;
use crate::domain::run::RunStatus;

/// The colours the console draws with: none at all (NO_COLOR), only the 16 ANSI ones (which
/// every terminal has, in the user's own palette), or those plus a few of the 256 where the
/// ANSI one reads badly (the "bright black" grey is invisible on many dark schemes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
    pub palette: Palette,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Palette {
    Ansi16,
    Extended,
}

/// The 256-colour grey that dims text: readable on dark and light backgrounds alike.
const GREY_256: Color = Color::Indexed(244);

impl Default for Theme {
    fn default() -> Self {
        Self {
            color: true,
            palette: Palette::Extended,
        }
    }
}

impl Theme {
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok();
        Self::detect(
            var("NO_COLOR").as_deref(),
            var("COLORTERM").as_deref(),
            var("TERM").as_deref(),
        )
    }

    /// The theme for these environment values: NO_COLOR (set and not empty) turns colour off;
    /// COLORTERM set, or a TERM naming 256 colours or more, allows the 256; anything else
    /// (`xterm-16color`, `screen`, `linux`, no TERM) keeps to the 16 ANSI colours.
    pub fn detect(no_color: Option<&str>, colorterm: Option<&str>, term: Option<&str>) -> Self {
        let many = colorterm.is_some_and(|c| !c.is_empty())
            || term.is_some_and(|t| {
                ["256color", "truecolor", "direct"]
                    .iter()
                    .any(|w| t.contains(w))
            });
        Self {
            color: no_color.is_none_or(str::is_empty),
            palette: if many {
                Palette::Extended
            } else {
                Palette::Ansi16
            },
        }
    }

    /// Only the 16 ANSI colours.
    pub fn ansi16() -> Self {
        Self {
            color: true,
            palette: Palette::Ansi16,
        }
    }

    /// A colour, or no style at all under NO_COLOR. Greys are the palette's grey.
    pub fn fg(self, color: Color) -> Style {
        match (self.color, color) {
            (false, _) => Style::default(),
            (true, Color::DarkGray) => Style::default().fg(self.grey()),
            (true, Color::Indexed(_) | Color::Rgb(..)) if self.palette == Palette::Ansi16 => {
                Style::default()
            }
            (true, c) => Style::default().fg(c),
        }
    }

    fn grey(self) -> Color {
        match self.palette {
            Palette::Ansi16 => Color::DarkGray,
            Palette::Extended => GREY_256,
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
            Style::default().fg(self.grey())
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

    #[test]
    fn the_terminal_decides_the_palette() {
        let t = |no, ct, term| Theme::detect(no, ct, term);
        assert_eq!(
            t(None, None, Some("xterm-256color")).palette,
            Palette::Extended
        );
        assert_eq!(
            t(None, Some("truecolor"), Some("screen")).palette,
            Palette::Extended
        );
        assert_eq!(
            t(None, None, Some("xterm-direct")).palette,
            Palette::Extended
        );
        for term in [Some("xterm-16color"), Some("screen"), Some("linux"), None] {
            assert_eq!(t(None, None, term).palette, Palette::Ansi16, "{term:?}");
        }
        assert!(!t(Some("1"), None, Some("xterm-256color")).color);
        assert!(
            t(Some(""), None, None).color,
            "an empty NO_COLOR is not set"
        );
        assert_eq!(Theme::ansi16().dim().fg, Some(Color::DarkGray));
        assert_eq!(Theme::default().dim().fg, Some(GREY_256));
    }
}
