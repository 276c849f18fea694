//! A backend that sends nothing for a frame with nothing new. ratatui's crossterm backend ends
//! every draw with colour resets and hides the cursor again, about 24 bytes a frame even when no
//! cell changed; an idle console over SSH redraws for every refresh and clock tick, so those
//! bytes would be most of what it sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use ratatui::backend::{Backend, ClearType, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};

pub struct QuietBackend<B> {
    inner: B,
    cursor_hidden: bool,
    /// The size of a terminal that is not this process's own (an SSH session's, as its client
    /// reports it), which the inner backend cannot ask for.
    size: Option<ScreenSize>,
}

/// A terminal size that another task updates (an SSH window-change), read at every draw.
#[derive(Clone, Default)]
pub struct ScreenSize(Arc<AtomicU32>);

impl ScreenSize {
    pub fn new(width: u16, height: u16) -> Self {
        let size = Self::default();
        size.set(width, height);
        size
    }

    pub fn set(&self, width: u16, height: u16) {
        self.0.store(
            u32::from(width) << 16 | u32::from(height),
            Ordering::Relaxed,
        );
    }

    pub fn get(&self) -> Size {
        let packed = self.0.load(Ordering::Relaxed);
        // Both halves fit in u16 by construction.
        Size::new((packed >> 16) as u16, (packed & 0xffff) as u16)
    }
}

impl<B> QuietBackend<B> {
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            cursor_hidden: false,
            size: None,
        }
    }

    /// A backend for a terminal elsewhere, whose size `size` tells.
    pub fn sized(inner: B, size: ScreenSize) -> Self {
        Self {
            size: Some(size),
            ..Self::new(inner)
        }
    }
}

impl<B: Backend> Backend for QuietBackend<B> {
    type Error = B::Error;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        let mut content = content.peekable();
        if content.peek().is_none() {
            return Ok(());
        }
        self.inner.draw(content)
    }

    fn append_lines(&mut self, n: u16) -> Result<(), Self::Error> {
        self.inner.append_lines(n)
    }

    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        if !self.cursor_hidden {
            self.inner.hide_cursor()?;
            self.cursor_hidden = true;
        }
        Ok(())
    }

    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.show_cursor()?;
        self.cursor_hidden = false;
        Ok(())
    }

    fn get_cursor_position(&mut self) -> Result<Position, Self::Error> {
        self.inner.get_cursor_position()
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Self::Error> {
        self.inner.set_cursor_position(position)
    }

    fn clear(&mut self) -> Result<(), Self::Error> {
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Self::Error> {
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> Result<Size, Self::Error> {
        match &self.size {
            Some(size) => Ok(size.get()),
            None => self.inner.size(),
        }
    }

    fn window_size(&mut self) -> Result<WindowSize, Self::Error> {
        match &self.size {
            Some(size) => Ok(WindowSize {
                columns_rows: size.get(),
                pixels: Size::default(),
            }),
            None => self.inner.window_size(),
        }
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::CrosstermBackend;
    use ratatui::widgets::Paragraph;

    #[derive(Clone, Default)]
    struct Counted(Arc<AtomicUsize>);

    impl std::io::Write for Counted {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.fetch_add(buf.len(), Ordering::Relaxed);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_frame_with_nothing_new_sends_nothing() {
        let sent = Counted::default();
        let mut terminal = Terminal::new(QuietBackend::new(CrosstermBackend::new(sent.clone())))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut draw = |text: &'static str| {
            terminal
                .draw(|f| f.render_widget(Paragraph::new(text), f.area()))
                .unwrap_or_else(|e| panic!("{e}"));
            sent.0.load(Ordering::Relaxed)
        };
        let first = draw("42s");
        assert!(first > 0);
        assert_eq!(draw("42s"), first, "the same frame again sent bytes");
        let changed = draw("43s");
        assert!(
            changed > first && changed - first < 40,
            "{}",
            changed - first
        );
    }
}
