//! Column widths sized to what the rows hold and to the terminal: a table takes the width its
//! content needs, drops its least useful columns when the screen is narrow, and shrinks the
//! widest ones last (a cut cell can be read in full in the row's detail).

use ratatui::layout::Constraint;
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Cell, Row};

/// One column: how wide its content is (header included), the least it can be cut to, and when
/// it goes (0: never; higher numbers go first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Col {
    pub header: &'static str,
    pub want: u16,
    pub min: u16,
    pub drop: u8,
}

impl Col {
    /// A column whose widest cell is `content` wide.
    pub fn new(header: &'static str, content: usize, min: u16, drop: u8) -> Self {
        let want = content.max(header.chars().count()).min(u16::MAX as usize) as u16;
        Self {
            header,
            want,
            min: min.min(want),
            drop,
        }
    }
}

/// The width of each column in `width` cells (one cell between columns), None for a dropped one.
/// Spare width stays at the right: spreading it would push a row's cells apart.
pub fn fit(cols: &[Col], width: u16) -> Vec<Option<u16>> {
    let mut kept: Vec<bool> = vec![true; cols.len()];
    // Cells the kept columns take at the widths `f` gives, gaps included.
    let need = |kept: &[bool], f: &dyn Fn(usize) -> u16| -> u32 {
        let n = kept.iter().filter(|k| **k).count() as u32;
        (0..cols.len())
            .filter(|&i| kept[i])
            .map(|i| u32::from(f(i)))
            .sum::<u32>()
            + n.saturating_sub(1)
    };
    // Drop columns, highest `drop` first, while the rest do not fit at their content.
    let mut order: Vec<usize> = (0..cols.len()).filter(|&i| cols[i].drop > 0).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(cols[i].drop));
    for i in order {
        if need(&kept, &|c| cols[c].want) <= u32::from(width) {
            break;
        }
        kept[i] = false;
    }
    let mut widths: Vec<u16> = cols.iter().map(|c| c.want).collect();
    // Too wide still: shrink the widest kept column a cell at a time, never under its minimum.
    while need(&kept, &|i| widths[i]) > u32::from(width) {
        let widest = (0..cols.len())
            .filter(|&i| kept[i] && widths[i] > cols[i].min)
            .max_by_key(|&i| widths[i]);
        match widest {
            Some(i) => widths[i] -= 1,
            None => break,
        }
    }
    (0..cols.len())
        .map(|i| kept[i].then_some(widths[i]))
        .collect()
}

/// A table's columns fitted to a width: its header, its widths and each row's cells, the
/// dropped columns left out of all three.
pub struct Fitted<'a> {
    cols: &'a [Col],
    widths: Vec<Option<u16>>,
}

impl<'a> Fitted<'a> {
    pub fn new(cols: &'a [Col], width: u16) -> Self {
        Self {
            cols,
            widths: fit(cols, width),
        }
    }

    pub fn header(&self) -> Row<'static> {
        self.row(self.cols.iter().map(|c| Cell::from(c.header)))
            .style(Style::default().add_modifier(Modifier::BOLD))
    }

    pub fn constraints(&self) -> Vec<Constraint> {
        self.widths
            .iter()
            .flatten()
            .map(|w| Constraint::Length(*w))
            .collect()
    }

    /// A row of the kept columns' cells (`cells` has one per column, in order).
    pub fn row<'c>(&self, cells: impl IntoIterator<Item = Cell<'c>>) -> Row<'c> {
        Row::new(
            cells
                .into_iter()
                .zip(&self.widths)
                .filter(|(_, w)| w.is_some())
                .map(|(c, _)| c),
        )
    }
}

/// How wide the widest of `texts` is, in characters.
pub fn widest<'a>(texts: impl Iterator<Item = &'a str>) -> usize {
    texts.map(|t| t.chars().count()).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_take_their_content_drop_the_least_useful_and_shrink_the_widest() {
        let cols = [
            Col::new("ID", 6, 2, 0),
            Col::new("NAME", 30, 10, 0),
            Col::new("QUEUE", 20, 6, 2),
            Col::new("AGE", 3, 3, 0),
        ];
        // Wide: everything at its content (6+30+20+3 and 3 gaps: 62).
        assert_eq!(fit(&cols, 100), vec![Some(6), Some(30), Some(20), Some(3)]);
        assert_eq!(fit(&cols, 62), vec![Some(6), Some(30), Some(20), Some(3)]);
        // 50: QUEUE goes, NAME keeps its content.
        assert_eq!(fit(&cols, 50), vec![Some(6), Some(30), None, Some(3)]);
        // 20: NAME is cut to its minimum, then the next widest.
        assert_eq!(fit(&cols, 20), vec![Some(5), Some(10), None, Some(3)]);
    }
}
