//! Terminal input as bytes → crossterm events, for a console whose terminal is not this
//! process's tty: under `ospdeck serve` the keys arrive as the bytes the SSH client's terminal
//! sent. crossterm's own byte parser is private, so this is a small one of our own. It maps bytes
//! the way crossterm 0.29 does on Unix (same key codes, modifiers and mouse kinds), so that
//! `drive` and the keymap cannot tell a remote console from a local one.
//!
//! Chunks. Bytes come in arbitrary chunks (one SSH data packet each). An escape sequence, a
//! UTF-8 character or a paste split across chunks is kept in a small pending buffer and finished
//! by the next chunk, with one exception: a chunk that ends in a lone ESC is the Esc key, at
//! once. A terminal writes a whole escape sequence at a time, so an ESC with nothing after it in
//! the same packet is someone pressing Esc; waiting for more bytes would need a timer and would
//! leave Esc unanswered until the next key. The price: a sequence split right after its ESC (only
//! a client that cuts its reads at a byte count does that) comes out as Esc and typed characters.
//! `ESC [` and `ESC O` at the end of a chunk are kept as the start of a sequence, so Alt+[ and
//! Alt+Shift+O (which send exactly those bytes) are not reported, and may swallow the next key.
//!
//! Bounds. Nothing grows without limit: an escape sequence longer than `MAX_SEQUENCE` is dropped,
//! and a bracketed paste keeps its first `MAX_PASTE` bytes (the rest is read and discarded up to
//! the paste's end marker).
//!
//! Dropped silently: invalid UTF-8, cursor position reports, and every escape sequence that is
//! not a key, mouse, paste or focus report (their bytes are consumed, never typed as keys).
//!
//! Where this differs from crossterm, on purpose: 0x08 is Backspace (crossterm: Ctrl-H) and LF is
//! Enter (crossterm in raw mode: Ctrl-J), since that is what clients send for those keys; CR LF
//! is one Enter; ESC ESC is two Escs (crossterm: one); a sequence broken off by a byte that
//! cannot be part of it is dropped and that byte parsed afresh (crossterm drops the byte too);
//! a paste whose end marker never comes holds all later input, as it does in crossterm.

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

const ESC: u8 = 0x1b;

/// Longest escape sequence waited for. Real ones are under 30 bytes; the bound only keeps a
/// stream of garbage from growing the pending buffer.
pub const MAX_SEQUENCE: usize = 256;

/// Most bytes of one bracketed paste that are kept. Larger pastes are cut (at a character
/// boundary), so a runaway paste cannot grow memory without limit.
pub const MAX_PASTE: usize = 64 * 1024;

/// What ends a bracketed paste (xterm's `CSI 201 ~`).
const PASTE_END: &[u8] = b"\x1b[201~";

/// Turns the bytes of a terminal's input into crossterm events; see the module comment for how
/// chunks, Esc and pastes are handled.
#[derive(Debug, Default)]
pub struct InputParser {
    /// The start of a sequence or character that the next chunk will finish (at most
    /// `MAX_SEQUENCE` bytes; empty while a paste is being read).
    pending: Vec<u8>,
    /// Set between `CSI 200 ~` and `CSI 201 ~`.
    paste: Option<Paste>,
    /// The last key was a CR: a LF right after it is the same Enter (clients that send CR LF for
    /// Enter would otherwise press it twice, and a second Enter can confirm a dialog).
    after_cr: bool,
}

/// A bracketed paste being read.
#[derive(Debug, Default)]
struct Paste {
    text: Vec<u8>,
    /// Bytes were discarded past `MAX_PASTE`.
    cut: bool,
    /// How many bytes of `PASTE_END` the latest bytes matched: they are held back until it is
    /// clear whether they end the paste or belong to it.
    matched: usize,
}

/// What the bytes at the front of the buffer are.
enum Step {
    /// An event, made of this many bytes.
    Event(Event, usize),
    /// This many bytes that are no event (unknown sequences, invalid UTF-8): dropped.
    Skip(usize),
    /// `CSI 200 ~`, this many bytes: what follows is pasted text.
    StartPaste(usize),
    /// The start of something the next chunk finishes.
    Incomplete,
}

impl InputParser {
    /// The events in `bytes`, the next chunk of the terminal's input.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        let joined;
        let buf: &[u8] = if self.pending.is_empty() {
            bytes
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(bytes);
            joined = pending;
            &joined
        };
        let mut at = 0;
        while at < buf.len() {
            if let Some(paste) = self.paste.as_mut() {
                match paste.take(&buf[at..]) {
                    Some(used) => {
                        at += used;
                        if let Some(paste) = self.paste.take() {
                            events.push(Event::Paste(paste.finish()));
                        }
                    }
                    None => at = buf.len(),
                }
                continue;
            }
            match next_step(&buf[at..]) {
                Step::Event(event, used) => {
                    let lf_after_cr = self.after_cr && buf[at] == b'\n';
                    self.after_cr = buf[at] == b'\r';
                    if !lf_after_cr {
                        events.push(event);
                    }
                    at += used;
                }
                Step::Skip(used) => {
                    self.after_cr = false;
                    at += used;
                }
                Step::StartPaste(used) => {
                    self.after_cr = false;
                    self.paste = Some(Paste::default());
                    at += used;
                }
                Step::Incomplete => break,
            }
        }
        let rest = &buf[at..];
        if rest == [ESC] {
            // A lone ESC ending the chunk is the Esc key (module comment).
            self.after_cr = false;
            events.push(key(KeyCode::Esc, KeyModifiers::NONE));
        } else if rest.len() <= MAX_SEQUENCE {
            // `next_step` never leaves more than MAX_SEQUENCE bytes incomplete; were it to, they
            // would be dropped here rather than kept without bound.
            self.pending = rest.to_vec();
        }
        events
    }
}

impl Paste {
    /// Reads pasted bytes; `Some(used)` once the end marker is read, the marker's last byte being
    /// `bytes[used - 1]`.
    fn take(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &byte) in bytes.iter().enumerate() {
            if byte == PASTE_END[self.matched] {
                self.matched += 1;
                if self.matched == PASTE_END.len() {
                    return Some(i + 1);
                }
                continue;
            }
            // Not the marker after all: what was held back is text. ESC occurs only at the
            // marker's start, so the only way the marker can restart here is with an ESC.
            let held = std::mem::take(&mut self.matched);
            self.push(&PASTE_END[..held]);
            if byte == ESC {
                self.matched = 1;
            } else {
                self.push(&[byte]);
            }
        }
        None
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_PASTE.saturating_sub(self.text.len());
        if bytes.len() > room {
            self.cut = true;
        }
        self.text.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The pasted text; invalid UTF-8 becomes U+FFFD (as crossterm does), but a character cut in
    /// half by `MAX_PASTE` is dropped rather than turned into one.
    fn finish(mut self) -> String {
        if self.cut {
            let keep = complete_utf8_len(&self.text);
            self.text.truncate(keep);
        }
        String::from_utf8_lossy(&self.text).into_owned()
    }
}

/// How much of `bytes` is left once a UTF-8 character cut off at its end is removed.
fn complete_utf8_len(bytes: &[u8]) -> usize {
    // A character is at most 4 bytes, so only the last 3 can start a cut one.
    for back in 1..=3.min(bytes.len()) {
        let start = bytes.len() - back;
        let lead = bytes[start];
        if lead & 0xc0 == 0x80 {
            continue; // a continuation byte: the lead is further back
        }
        return match utf8_width(lead) {
            Some(width) if width > back => start,
            _ => bytes.len(),
        };
    }
    bytes.len()
}

/// The length of the UTF-8 character that `lead` starts (None: not a lead byte).
fn utf8_width(lead: u8) -> Option<usize> {
    match lead {
        0x00..=0x7f => Some(1),
        0xc2..=0xdf => Some(2),
        0xe0..=0xef => Some(3),
        0xf0..=0xf4 => Some(4),
        _ => None,
    }
}

fn key(code: KeyCode, modifiers: KeyModifiers) -> Event {
    Event::Key(KeyEvent::new(code, modifiers))
}

/// What the (non-empty) bytes at the front of the buffer are.
fn next_step(buf: &[u8]) -> Step {
    if buf[0] == ESC {
        escape(buf)
    } else {
        plain(buf)
    }
}

/// A key that is one byte or one UTF-8 character.
fn plain(buf: &[u8]) -> Step {
    let one = |code, modifiers| Step::Event(key(code, modifiers), 1);
    let ctrl = KeyModifiers::CONTROL;
    match buf[0] {
        // \n too: in raw mode the terminal sends \r, but some clients send \n (or CR LF).
        b'\r' | b'\n' => one(KeyCode::Enter, KeyModifiers::NONE),
        b'\t' => one(KeyCode::Tab, KeyModifiers::NONE),
        // 0x08 is Ctrl-H to crossterm, but it is what many terminals send for Backspace.
        0x7f | 0x08 => one(KeyCode::Backspace, KeyModifiers::NONE),
        ESC => one(KeyCode::Esc, KeyModifiers::NONE),
        0x00 => one(KeyCode::Char(' '), ctrl),
        c @ 0x01..=0x1a => one(KeyCode::Char(char::from(b'a' + c - 1)), ctrl),
        // Ctrl-\ ] ^ _, which crossterm reports as Ctrl-4..7 (the keys that send them on a US
        // keyboard with Ctrl).
        c @ 0x1c..=0x1f => one(KeyCode::Char(char::from(b'4' + c - 0x1c)), ctrl),
        c @ 0x20..=0x7e => Step::Event(char_key(char::from(c)), 1),
        _ => utf8_char(buf),
    }
}

/// A printable character; crossterm adds SHIFT to upper-case ones, and so do we.
fn char_key(c: char) -> Event {
    let modifiers = if c.is_uppercase() {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    key(KeyCode::Char(c), modifiers)
}

/// A multi-byte UTF-8 character at the front of `buf`.
fn utf8_char(buf: &[u8]) -> Step {
    let Some(width) = utf8_width(buf[0]).filter(|width| *width > 1) else {
        return Step::Skip(1); // a stray continuation byte or a byte UTF-8 never uses
    };
    let have = buf.len().min(width);
    if let Some(bad) = (1..have).find(|i| buf[*i] & 0xc0 != 0x80) {
        // The character stopped short: drop what there was of it, go on from the next byte.
        return Step::Skip(bad);
    }
    if have < width {
        return Step::Incomplete;
    }
    match std::str::from_utf8(&buf[..width])
        .ok()
        .and_then(|s| s.chars().next())
    {
        Some(c) => Step::Event(char_key(c), width),
        // Overlong forms and surrogates: well-formed in shape, invalid all the same.
        None => Step::Skip(width),
    }
}

/// The bytes at the front of `buf` start with ESC.
fn escape(buf: &[u8]) -> Step {
    match buf.get(1) {
        None => Step::Incomplete,
        Some(b'[') => csi(buf),
        Some(b'O') => ss3(buf),
        // ESC ESC: the first is the Esc key, the second starts over (an Esc or a sequence).
        Some(&ESC) => Step::Event(key(KeyCode::Esc, KeyModifiers::NONE), 1),
        // ESC before a key is that key with Alt (the terminal's "meta sends escape").
        Some(_) => match plain(&buf[1..]) {
            Step::Event(Event::Key(mut alt), used) => {
                alt.modifiers |= KeyModifiers::ALT;
                Step::Event(Event::Key(alt), used + 1)
            }
            Step::Incomplete => Step::Incomplete,
            // ESC before bytes that are no key: Esc, and those bytes are dropped next.
            _ => Step::Event(key(KeyCode::Esc, KeyModifiers::NONE), 1),
        },
    }
}

/// `ESC O`: SS3, which terminals send for arrows, Home/End and F1–F4 in application cursor mode
/// (optionally with a modifier digit before the final byte, as some older xterms do).
fn ss3(buf: &[u8]) -> Step {
    // A modifier is a number of at most 3 digits; a longer run is garbage.
    let digits = buf[2..]
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    let end = 2 + digits;
    if digits > 3 {
        return Step::Skip(end);
    }
    let Some(&last) = buf.get(end) else {
        return Step::Incomplete;
    };
    let modifiers = match digits {
        0 => KeyModifiers::NONE,
        _ => match parse_number(&buf[2..end]) {
            Some(mask) => modifiers(mask),
            None => return Step::Skip(end + 1),
        },
    };
    let code = match last {
        b'A' => KeyCode::Up,
        b'B' => KeyCode::Down,
        b'C' => KeyCode::Right,
        b'D' => KeyCode::Left,
        b'H' => KeyCode::Home,
        b'F' => KeyCode::End,
        b'P' => KeyCode::F(1),
        b'Q' => KeyCode::F(2),
        b'R' => KeyCode::F(3),
        b'S' => KeyCode::F(4),
        // An unknown SS3 sequence: consumed, not typed.
        0x20..=0x7e => return Step::Skip(end + 1),
        // `ESC O` before a control byte or non-ASCII can be no SS3: it was Alt+Shift+O, and the
        // byte after it starts over.
        _ if digits == 0 => {
            let alt_o = key(KeyCode::Char('O'), KeyModifiers::ALT | KeyModifiers::SHIFT);
            return Step::Event(alt_o, 2);
        }
        _ => return Step::Skip(end),
    };
    Step::Event(key(code, modifiers), end + 1)
}

/// `ESC [`: a CSI sequence.
fn csi(buf: &[u8]) -> Step {
    match buf.get(2) {
        None => return Step::Incomplete,
        // X10 mouse: `CSI M` and three raw bytes (button, column, row, each + 32), what a
        // terminal without SGR mouse mode sends.
        Some(b'M') => {
            return match *buf {
                [_, _, _, cb, cx, cy, ..] => match x10_mouse(cb, cx, cy) {
                    Some(event) => Step::Event(event, 6),
                    None => Step::Skip(6),
                },
                _ => Step::Incomplete,
            };
        }
        // The Linux console's F1–F5: `CSI [ A` … `CSI [ E`.
        Some(b'[') => {
            return match buf.get(3) {
                None => Step::Incomplete,
                Some(&c @ b'A'..=b'E') => {
                    Step::Event(key(KeyCode::F(1 + c - b'A'), KeyModifiers::NONE), 4)
                }
                Some(0x20..=0x7e) => Step::Skip(4),
                Some(_) => Step::Skip(3),
            };
        }
        Some(_) => {}
    }
    // ECMA-48: parameter bytes 0x30–0x3F, intermediate bytes 0x20–0x2F, one final byte
    // 0x40–0x7E. Any other byte cannot be inside a CSI sequence: the sequence was broken off
    // (a terminal would abandon it too), so it is dropped and parsing goes on from that byte.
    let mut last = None;
    for (i, &byte) in buf.iter().enumerate().take(MAX_SEQUENCE).skip(2) {
        match byte {
            0x20..=0x3f => {}
            0x40..=0x7e => {
                last = Some(i);
                break;
            }
            _ => return Step::Skip(i),
        }
    }
    let Some(last) = last else {
        return if buf.len() >= MAX_SEQUENCE {
            Step::Skip(MAX_SEQUENCE)
        } else {
            Step::Incomplete
        };
    };
    let params = &buf[2..last];
    let used = last + 1;
    if params == b"200" && buf[last] == b'~' {
        return Step::StartPaste(used);
    }
    match csi_event(params, buf[last]) {
        Some(event) => Step::Event(event, used),
        None => Step::Skip(used),
    }
}

/// The event a complete CSI sequence stands for, if any.
fn csi_event(params: &[u8], last: u8) -> Option<Event> {
    if let Some(sgr) = params.strip_prefix(b"<") {
        return match last {
            b'M' => sgr_mouse(sgr, false),
            b'm' => sgr_mouse(sgr, true),
            _ => None,
        };
    }
    // Other private markers (`?`, `=`, `>`) start replies to queries (device attributes,
    // keyboard flags), which are not input.
    if params.first().is_some_and(|b| (b'<'..=b'?').contains(b)) {
        return None;
    }
    let numbers = parse_numbers(params)?;
    // `CSI 1 ; m X`: the modifier is the second number. Crossterm also reads a lone number as
    // the modifier (`CSI 5 A`), which some terminals send.
    let letter_modifiers = || match numbers.as_slice() {
        [] => KeyModifiers::NONE,
        [mask] | [_, mask, ..] => modifiers(*mask),
    };
    let code = match last {
        b'A' => KeyCode::Up,
        b'B' => KeyCode::Down,
        b'C' => KeyCode::Right,
        b'D' => KeyCode::Left,
        b'H' => KeyCode::Home,
        b'F' => KeyCode::End,
        // `CSI P`/`Q`/`S` (kitty's legacy F1, F2, F4). F3's `CSI 1 ; m R` is indistinguishable
        // from a cursor position report, so crossterm treats every `CSI … R` as one, as here.
        b'P' => KeyCode::F(1),
        b'Q' => KeyCode::F(2),
        b'S' => KeyCode::F(4),
        b'Z' => {
            let modifiers = KeyModifiers::SHIFT | letter_modifiers();
            return Some(key(KeyCode::BackTab, modifiers));
        }
        b'I' if params.is_empty() => return Some(Event::FocusGained),
        b'O' if params.is_empty() => return Some(Event::FocusLost),
        b'~' => return special_key(&numbers),
        // urxvt's mouse mode 1015: `CSI b ; x ; y M` with b + 32.
        b'M' => return rxvt_mouse(&numbers),
        _ => return None,
    };
    Some(key(code, letter_modifiers()))
}

/// `CSI n ~` and `CSI n ; m ~`: the keys of the editing block and the function keys.
fn special_key(numbers: &[u16]) -> Option<Event> {
    let (&first, rest) = numbers.split_first()?;
    let code = match first {
        1 | 7 => KeyCode::Home,
        2 => KeyCode::Insert,
        3 => KeyCode::Delete,
        4 | 8 => KeyCode::End,
        5 => KeyCode::PageUp,
        6 => KeyCode::PageDown,
        // The gaps (16, 22, 27, 30) are VT220 history; u8 casts are safe as n ≤ 34.
        n @ 11..=15 => KeyCode::F((n - 10) as u8),
        n @ 17..=21 => KeyCode::F((n - 11) as u8),
        n @ 23..=26 => KeyCode::F((n - 12) as u8),
        n @ 28..=29 => KeyCode::F((n - 15) as u8),
        n @ 31..=34 => KeyCode::F((n - 17) as u8),
        _ => return None,
    };
    let modifiers = rest
        .first()
        .map_or(KeyModifiers::NONE, |mask| modifiers(*mask));
    Some(key(code, modifiers))
}

/// xterm's modifier parameter: 1 + a bit mask of shift 1, alt 2, ctrl 4, then (as crossterm
/// reads them) super 8, hyper 16, meta 32.
fn modifiers(mask: u16) -> KeyModifiers {
    let bits = mask.saturating_sub(1);
    let mut modifiers = KeyModifiers::NONE;
    for (bit, modifier) in [
        (1, KeyModifiers::SHIFT),
        (2, KeyModifiers::ALT),
        (4, KeyModifiers::CONTROL),
        (8, KeyModifiers::SUPER),
        (16, KeyModifiers::HYPER),
        (32, KeyModifiers::META),
    ] {
        if bits & bit != 0 {
            modifiers |= modifier;
        }
    }
    modifiers
}

/// SGR mouse (mode 1006): `CSI < b ; x ; y M` for a press, motion or wheel, `… m` for a
/// release; x and y count from 1.
fn sgr_mouse(params: &[u8], release: bool) -> Option<Event> {
    let numbers = parse_numbers(params)?;
    let [cb, x, y, ..] = numbers.as_slice() else {
        return None;
    };
    let (kind, modifiers) = mouse_button(u8::try_from(*cb).ok()?)?;
    // In SGR mode the release says which button it was: the lower-case final.
    let kind = match kind {
        MouseEventKind::Down(button) if release => MouseEventKind::Up(button),
        kind => kind,
    };
    Some(mouse(kind, modifiers, *x, *y))
}

/// urxvt mouse (mode 1015): `CSI b ; x ; y M`, b offset by 32 as in X10.
fn rxvt_mouse(numbers: &[u16]) -> Option<Event> {
    let [cb, x, y, ..] = numbers else {
        return None;
    };
    let cb = u8::try_from(cb.checked_sub(32)?).ok()?;
    let (kind, modifiers) = mouse_button(cb)?;
    Some(mouse(kind, modifiers, *x, *y))
}

/// X10 mouse: three bytes, each offset by 32.
fn x10_mouse(cb: u8, cx: u8, cy: u8) -> Option<Event> {
    let (kind, modifiers) = mouse_button(cb.checked_sub(32)?)?;
    let x = u16::from(cx.saturating_sub(32));
    let y = u16::from(cy.saturating_sub(32));
    Some(mouse(kind, modifiers, x, y))
}

/// A mouse event at 1-based terminal coordinates (0 is taken as 1 rather than underflowing).
fn mouse(kind: MouseEventKind, modifiers: KeyModifiers, x: u16, y: u16) -> Event {
    Event::Mouse(MouseEvent {
        kind,
        column: x.saturating_sub(1),
        row: y.saturating_sub(1),
        modifiers,
    })
}

/// The button byte of a mouse report, as crossterm reads it. Bits from low to high: button
/// (2 bits), shift, alt, ctrl, motion, then 2 more button bits (64: wheel, 128: extra buttons).
fn mouse_button(cb: u8) -> Option<(MouseEventKind, KeyModifiers)> {
    let button = (cb & 0b11) | ((cb & 0b1100_0000) >> 4);
    let motion = cb & 0b10_0000 != 0;
    let kind = match (button, motion) {
        (0, false) => MouseEventKind::Down(MouseButton::Left),
        (1, false) => MouseEventKind::Down(MouseButton::Middle),
        (2, false) => MouseEventKind::Down(MouseButton::Right),
        (0, true) => MouseEventKind::Drag(MouseButton::Left),
        (1, true) => MouseEventKind::Drag(MouseButton::Middle),
        (2, true) => MouseEventKind::Drag(MouseButton::Right),
        // Button 3 is X10's "released, button unknown"; crossterm calls it Left.
        (3, false) => MouseEventKind::Up(MouseButton::Left),
        // Motion with no button held (any-event tracking).
        (3, true) | (4, true) | (5, true) => MouseEventKind::Moved,
        (4, false) => MouseEventKind::ScrollUp,
        (5, false) => MouseEventKind::ScrollDown,
        (6, false) => MouseEventKind::ScrollLeft,
        (7, false) => MouseEventKind::ScrollRight,
        _ => return None,
    };
    let mut modifiers = KeyModifiers::NONE;
    if cb & 0b100 != 0 {
        modifiers |= KeyModifiers::SHIFT;
    }
    if cb & 0b1000 != 0 {
        modifiers |= KeyModifiers::ALT;
    }
    if cb & 0b1_0000 != 0 {
        modifiers |= KeyModifiers::CONTROL;
    }
    Some((kind, modifiers))
}

/// `n;n;n` → the numbers; an empty field is 0 and a `:`-sub-parameter (kitty's event type) is
/// ignored. None if a field is not a number or does not fit a u16.
fn parse_numbers(params: &[u8]) -> Option<Vec<u16>> {
    if params.is_empty() {
        return Some(Vec::new());
    }
    params
        .split(|b| *b == b';')
        .map(|field| {
            let number = field.split(|b| *b == b':').next().unwrap_or_default();
            if number.is_empty() {
                Some(0)
            } else {
                parse_number(number)
            }
        })
        .collect()
}

/// Decimal digits → u16; None for anything else or an overflow.
fn parse_number(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u16, |n, d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u16::from(d - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: KeyModifiers = KeyModifiers::NONE;
    const SHIFT: KeyModifiers = KeyModifiers::SHIFT;
    const ALT: KeyModifiers = KeyModifiers::ALT;
    const CTRL: KeyModifiers = KeyModifiers::CONTROL;

    fn parse(bytes: &[u8]) -> Vec<Event> {
        InputParser::default().feed(bytes)
    }

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<Event> {
        let mut parser = InputParser::default();
        chunks.iter().flat_map(|chunk| parser.feed(chunk)).collect()
    }

    fn k(code: KeyCode, modifiers: KeyModifiers) -> Event {
        key(code, modifiers)
    }

    fn ch(c: char) -> Event {
        k(KeyCode::Char(c), NONE)
    }

    fn click(kind: MouseEventKind, column: u16, row: u16, modifiers: KeyModifiers) -> Event {
        Event::Mouse(MouseEvent {
            kind,
            column,
            row,
            modifiers,
        })
    }

    #[test]
    fn printable_ascii_and_shift_on_upper_case() {
        assert_eq!(
            parse(b"aZ 1~"),
            vec![
                ch('a'),
                k(KeyCode::Char('Z'), SHIFT),
                ch(' '),
                ch('1'),
                ch('~')
            ]
        );
    }

    #[test]
    fn multi_byte_utf8_whole_and_split() {
        let text = "é€😀Ä";
        let expected = vec![ch('é'), ch('€'), ch('😀'), k(KeyCode::Char('Ä'), SHIFT)];
        assert_eq!(parse(text.as_bytes()), expected);
        // One byte per chunk: every character is split.
        let bytes = text.as_bytes();
        let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_chunks(&chunks), expected);
    }

    #[test]
    fn invalid_utf8_is_dropped() {
        // A stray continuation byte, a byte UTF-8 never uses, a lead cut short by ASCII, an
        // overlong form and a surrogate.
        let events = parse(b"a\x80b\xffc\xc3d\xe2\x82e\xc0\xafg\xed\xa0\x80h");
        assert_eq!(
            events,
            vec![
                ch('a'),
                ch('b'),
                ch('c'),
                ch('d'),
                ch('e'),
                ch('g'),
                ch('h')
            ]
        );
    }

    #[test]
    fn enter_tab_backspace() {
        assert_eq!(
            parse(b"\r\t\x7f\x08"),
            vec![
                k(KeyCode::Enter, NONE),
                k(KeyCode::Tab, NONE),
                k(KeyCode::Backspace, NONE),
                k(KeyCode::Backspace, NONE),
            ]
        );
        assert_eq!(parse(b"\n"), vec![k(KeyCode::Enter, NONE)]);
        assert_eq!(parse(b"\n\n").len(), 2);
        assert_eq!(parse(b"\r\r").len(), 2);
    }

    #[test]
    fn cr_lf_is_one_enter_even_across_chunks() {
        assert_eq!(parse(b"\r\n"), vec![k(KeyCode::Enter, NONE)]);
        assert_eq!(parse_chunks(&[b"\r", b"\n"]), vec![k(KeyCode::Enter, NONE)]);
        // Anything between them makes the LF an Enter of its own.
        assert_eq!(
            parse(b"\rx\n"),
            vec![k(KeyCode::Enter, NONE), ch('x'), k(KeyCode::Enter, NONE)]
        );
    }

    #[test]
    fn backtab() {
        assert_eq!(parse(b"\x1b[Z"), vec![k(KeyCode::BackTab, SHIFT)]);
    }

    #[test]
    fn control_letters_and_ctrl_space() {
        assert_eq!(
            parse(b"\x01\x03\x1a\x00\x1c\x1f"),
            vec![
                k(KeyCode::Char('a'), CTRL),
                k(KeyCode::Char('c'), CTRL),
                k(KeyCode::Char('z'), CTRL),
                k(KeyCode::Char(' '), CTRL),
                k(KeyCode::Char('4'), CTRL),
                k(KeyCode::Char('7'), CTRL),
            ]
        );
        // The ones that are Backspace, Tab and Enter are not Ctrl-h, Ctrl-i, Ctrl-j, Ctrl-m.
        for byte in [0x08u8, 0x09, 0x0a, 0x0d] {
            let events = parse(&[byte]);
            assert!(
                !matches!(events.as_slice(), [Event::Key(KeyEvent { modifiers, .. })] if modifiers.contains(CTRL)),
                "{byte:#x} gave {events:?}"
            );
        }
    }

    #[test]
    fn esc_alone_and_at_the_end_of_a_chunk() {
        assert_eq!(parse(b"\x1b"), vec![k(KeyCode::Esc, NONE)]);
        assert_eq!(
            parse(b"jk\x1b"),
            vec![ch('j'), ch('k'), k(KeyCode::Esc, NONE)]
        );
        // Nothing is left pending: the next chunk starts afresh.
        assert_eq!(
            parse_chunks(&[b"\x1b", b"a"]),
            vec![k(KeyCode::Esc, NONE), ch('a')]
        );
        assert_eq!(
            parse_chunks(&[b"\x1b", b"\x1b"]),
            vec![k(KeyCode::Esc, NONE), k(KeyCode::Esc, NONE)]
        );
    }

    #[test]
    fn esc_esc_is_esc_then_whatever_follows() {
        assert_eq!(
            parse(b"\x1b\x1b"),
            vec![k(KeyCode::Esc, NONE), k(KeyCode::Esc, NONE)]
        );
        assert_eq!(
            parse(b"\x1b\x1b[A"),
            vec![k(KeyCode::Esc, NONE), k(KeyCode::Up, NONE)]
        );
    }

    #[test]
    fn alt_keys() {
        assert_eq!(parse(b"\x1bx"), vec![k(KeyCode::Char('x'), ALT)]);
        assert_eq!(parse(b"\x1bX"), vec![k(KeyCode::Char('X'), ALT | SHIFT)]);
        assert_eq!(parse("\x1bé".as_bytes()), vec![k(KeyCode::Char('é'), ALT)]);
        assert_eq!(parse(b"\x1b\r"), vec![k(KeyCode::Enter, ALT)]);
        assert_eq!(parse(b"\x1b\x7f"), vec![k(KeyCode::Backspace, ALT)]);
        assert_eq!(parse(b"\x1b\x03"), vec![k(KeyCode::Char('c'), CTRL | ALT)]);
        // Split after the ESC's companion byte of a multi-byte character.
        assert_eq!(
            parse_chunks(&[b"\x1b\xc3", b"\xa9"]),
            vec![k(KeyCode::Char('é'), ALT)]
        );
        // ESC before a byte that is no key is Esc; the byte is dropped.
        assert_eq!(parse(b"\x1b\xffa"), vec![k(KeyCode::Esc, NONE), ch('a')]);
    }

    #[test]
    fn arrows_in_both_modes() {
        let expected = vec![
            k(KeyCode::Up, NONE),
            k(KeyCode::Down, NONE),
            k(KeyCode::Right, NONE),
            k(KeyCode::Left, NONE),
        ];
        assert_eq!(parse(b"\x1b[A\x1b[B\x1b[C\x1b[D"), expected);
        assert_eq!(parse(b"\x1bOA\x1bOB\x1bOC\x1bOD"), expected);
    }

    #[test]
    fn modified_arrows_use_the_xterm_encoding() {
        let cases: [(&[u8], KeyCode, KeyModifiers); 8] = [
            (b"\x1b[1;2A", KeyCode::Up, SHIFT),
            (b"\x1b[1;3B", KeyCode::Down, ALT),
            (b"\x1b[1;4C", KeyCode::Right, SHIFT | ALT),
            (b"\x1b[1;5D", KeyCode::Left, CTRL),
            (b"\x1b[1;6A", KeyCode::Up, SHIFT | CTRL),
            (b"\x1b[1;7A", KeyCode::Up, ALT | CTRL),
            (b"\x1b[1;8A", KeyCode::Up, SHIFT | ALT | CTRL),
            (b"\x1bO5A", KeyCode::Up, CTRL),
        ];
        for (bytes, code, modifiers) in cases {
            assert_eq!(parse(bytes), vec![k(code, modifiers)], "{bytes:?}");
        }
        // A kitty-style event type after the modifier is ignored.
        assert_eq!(parse(b"\x1b[1;5:1A"), vec![k(KeyCode::Up, CTRL)]);
    }

    #[test]
    fn home_end_insert_delete_pages() {
        let cases: [(&[u8], KeyCode); 14] = [
            (b"\x1b[H", KeyCode::Home),
            (b"\x1b[F", KeyCode::End),
            (b"\x1bOH", KeyCode::Home),
            (b"\x1bOF", KeyCode::End),
            (b"\x1b[1~", KeyCode::Home),
            (b"\x1b[7~", KeyCode::Home),
            (b"\x1b[4~", KeyCode::End),
            (b"\x1b[8~", KeyCode::End),
            (b"\x1b[2~", KeyCode::Insert),
            (b"\x1b[3~", KeyCode::Delete),
            (b"\x1b[5~", KeyCode::PageUp),
            (b"\x1b[6~", KeyCode::PageDown),
            (b"\x1b[1;1H", KeyCode::Home),
            (b"\x1b[3;1~", KeyCode::Delete),
        ];
        for (bytes, code) in cases {
            assert_eq!(parse(bytes), vec![k(code, NONE)], "{bytes:?}");
        }
        assert_eq!(parse(b"\x1b[3;5~"), vec![k(KeyCode::Delete, CTRL)]);
        assert_eq!(parse(b"\x1b[1;2F"), vec![k(KeyCode::End, SHIFT)]);
        assert_eq!(parse(b"\x1b[6;3~"), vec![k(KeyCode::PageDown, ALT)]);
    }

    #[test]
    fn function_keys() {
        let cases: [(&[u8], u8); 17] = [
            (b"\x1bOP", 1),
            (b"\x1bOQ", 2),
            (b"\x1bOR", 3),
            (b"\x1bOS", 4),
            (b"\x1b[11~", 1),
            (b"\x1b[12~", 2),
            (b"\x1b[13~", 3),
            (b"\x1b[14~", 4),
            (b"\x1b[15~", 5),
            (b"\x1b[17~", 6),
            (b"\x1b[18~", 7),
            (b"\x1b[19~", 8),
            (b"\x1b[20~", 9),
            (b"\x1b[21~", 10),
            (b"\x1b[23~", 11),
            (b"\x1b[24~", 12),
            (b"\x1b[[A", 1),
        ];
        for (bytes, n) in cases {
            assert_eq!(parse(bytes), vec![k(KeyCode::F(n), NONE)], "{bytes:?}");
        }
        assert_eq!(parse(b"\x1b[15;2~"), vec![k(KeyCode::F(5), SHIFT)]);
        assert_eq!(parse(b"\x1b[1;5P"), vec![k(KeyCode::F(1), CTRL)]);
        assert_eq!(parse(b"\x1b[24;5~"), vec![k(KeyCode::F(12), CTRL)]);
        // 16 and 22 are gaps in the VT220 numbering, not keys.
        assert_eq!(parse(b"\x1b[16~\x1b[22~"), vec![]);
    }

    #[test]
    fn sgr_mouse_buttons_and_positions() {
        use MouseButton::{Left, Middle, Right};
        use MouseEventKind::*;
        let cases: [(&[u8], MouseEventKind); 11] = [
            (b"\x1b[<0;1;1M", Down(Left)),
            (b"\x1b[<1;1;1M", Down(Middle)),
            (b"\x1b[<2;1;1M", Down(Right)),
            (b"\x1b[<0;1;1m", Up(Left)),
            (b"\x1b[<2;1;1m", Up(Right)),
            (b"\x1b[<32;1;1M", Drag(Left)),
            (b"\x1b[<34;1;1M", Drag(Right)),
            (b"\x1b[<35;1;1M", Moved),
            (b"\x1b[<64;1;1M", ScrollUp),
            (b"\x1b[<65;1;1M", ScrollDown),
            (b"\x1b[<66;1;1M", ScrollLeft),
        ];
        for (bytes, kind) in cases {
            assert_eq!(parse(bytes), vec![click(kind, 0, 0, NONE)], "{bytes:?}");
        }
        // Columns and rows count from 1 on the wire and from 0 in the event.
        assert_eq!(
            parse(b"\x1b[<0;80;24M"),
            vec![click(Down(Left), 79, 23, NONE)]
        );
        // Large terminals: SGR coordinates are not limited to 223 as X10's are.
        assert_eq!(
            parse(b"\x1b[<0;1000;500M"),
            vec![click(Down(Left), 999, 499, NONE)]
        );
    }

    #[test]
    fn sgr_mouse_modifiers() {
        use MouseEventKind::*;
        assert_eq!(
            parse(b"\x1b[<4;3;2M"),
            vec![click(Down(MouseButton::Left), 2, 1, SHIFT)]
        );
        assert_eq!(
            parse(b"\x1b[<8;3;2M"),
            vec![click(Down(MouseButton::Left), 2, 1, ALT)]
        );
        assert_eq!(
            parse(b"\x1b[<16;3;2M"),
            vec![click(Down(MouseButton::Left), 2, 1, CTRL)]
        );
        assert_eq!(
            parse(b"\x1b[<84;3;2M"),
            vec![click(ScrollUp, 2, 1, SHIFT | CTRL)]
        );
        assert_eq!(
            parse(b"\x1b[<56;3;2M"),
            vec![click(Drag(MouseButton::Left), 2, 1, ALT | CTRL)]
        );
    }

    #[test]
    fn bad_mouse_reports_are_dropped_without_panicking() {
        // Coordinate 0 (never sent, but must not underflow), a coordinate past u16, a button
        // past u8, buttons crossterm does not know, too few fields, a field that is no number.
        assert_eq!(
            parse(b"\x1b[<0;0;0M"),
            vec![click(MouseEventKind::Down(MouseButton::Left), 0, 0, NONE)]
        );
        for bytes in [
            &b"\x1b[<0;70000;1M"[..],
            b"\x1b[<300;1;1M",
            b"\x1b[<128;1;1M",
            b"\x1b[<0;1M",
            b"\x1b[<0;1=;1M",
            b"\x1b[<0;1;1X",
        ] {
            assert_eq!(parse(bytes), vec![], "{bytes:?}");
        }
    }

    #[test]
    fn x10_and_rxvt_mouse() {
        let left_at_5_3 = click(MouseEventKind::Down(MouseButton::Left), 4, 2, NONE);
        assert_eq!(parse(b"\x1b[M %#"), vec![left_at_5_3.clone()]);
        assert_eq!(parse(b"\x1b[32;5;3M"), vec![left_at_5_3]);
        // The raw bytes of an X10 report are never typed, even split over chunks.
        assert_eq!(
            parse_chunks(&[b"\x1b[M", b" %", b"#x"]),
            vec![
                click(MouseEventKind::Down(MouseButton::Left), 4, 2, NONE),
                ch('x')
            ]
        );
    }

    #[test]
    fn bracketed_paste() {
        assert_eq!(
            parse(b"a\x1b[200~hello\r\nworld\x1b[201~b"),
            vec![ch('a'), Event::Paste("hello\r\nworld".into()), ch('b')]
        );
        assert_eq!(
            parse(b"\x1b[200~\x1b[201~"),
            vec![Event::Paste(String::new())]
        );
        // Escape sequences inside are text, including a partial end marker.
        assert_eq!(
            parse(b"\x1b[200~\x1b[A\x1b\x1b[20x\x1b[201\x1b[201~"),
            vec![Event::Paste("\x1b[A\x1b\x1b[20x\x1b[201".into())]
        );
        assert_eq!(
            parse("\x1b[200~né\u{1F600}\x1b[201~".as_bytes()),
            vec![Event::Paste("né\u{1F600}".into())]
        );
        // Invalid UTF-8 inside a paste becomes U+FFFD, as crossterm does.
        assert_eq!(
            parse(b"\x1b[200~a\xffb\x1b[201~"),
            vec![Event::Paste("a\u{FFFD}b".into())]
        );
    }

    #[test]
    fn paste_split_at_every_position() {
        let bytes = "x\x1b[200~ab\x1b[Aé\x1b[201~y".as_bytes();
        let expected = vec![ch('x'), Event::Paste("ab\x1b[Aé".into()), ch('y')];
        for split in 1..bytes.len() {
            if bytes[split - 1] == ESC {
                continue; // a chunk ending in a lone ESC outside a paste is the Esc key
            }
            let events = parse_chunks(&[&bytes[..split], &bytes[split..]]);
            assert_eq!(events, expected, "split at {split}");
        }
        // Inside the paste, even a lone ESC ending a chunk waits: it may start the end marker.
        let mut parser = InputParser::default();
        let mut events = parser.feed(b"\x1b[200~ab\x1b");
        events.extend(parser.feed(b"[201~"));
        assert_eq!(events, vec![Event::Paste("ab".into())]);
        // One byte per chunk after the first ESC's companion.
        let mut chunks: Vec<&[u8]> = vec![&bytes[..3]];
        chunks.extend(bytes[3..].chunks(1));
        assert_eq!(parse_chunks(&chunks), expected, "one byte per chunk");
    }

    #[test]
    fn a_paste_past_the_bound_is_cut_and_input_goes_on() {
        let mut parser = InputParser::default();
        let mut events = parser.feed(b"\x1b[200~");
        // 'é' is two bytes and MAX_PASTE is even: offset by one 'a' so the bound cuts an 'é'.
        events.extend(parser.feed(b"a"));
        let block = "é".repeat(1000);
        for _ in 0..100 {
            events.extend(parser.feed(block.as_bytes()));
            let paste_len = parser.paste.as_ref().map_or(0, |paste| paste.text.len());
            assert!(paste_len <= MAX_PASTE);
        }
        events.extend(parser.feed(b"\x1b[201~q"));
        let [Event::Paste(text), last] = events.as_slice() else {
            panic!("expected a paste and a key, got {} events", events.len());
        };
        // Cut at the last whole character below the bound, with no U+FFFD from the cut.
        assert_eq!(text.len(), MAX_PASTE - 1);
        assert!(text.starts_with("aé"));
        assert!(text.ends_with('é'));
        assert_eq!(*last, ch('q'));
    }

    #[test]
    fn focus_reports() {
        assert_eq!(
            parse(b"\x1b[I\x1b[O"),
            vec![Event::FocusGained, Event::FocusLost]
        );
    }

    #[test]
    fn reports_and_unknown_sequences_are_consumed_silently() {
        for bytes in [
            &b"\x1b[12;40R"[..], // cursor position report
            b"\x1b[?1;2c",       // device attributes
            b"\x1b[?1u",         // keyboard enhancement flags
            b"\x1b[>0;276;0c",
            b"\x1b[99~",
            b"\x1b[201~", // a paste end without a start
            b"\x1b[x",
            b"\x1b[1;2;3;4;5q",
            b"\x1b[ q",
            b"\x1bOx",
            b"\x1b[[Z",
        ] {
            assert_eq!(parse(bytes), vec![], "{bytes:?}");
            let mut then_key = bytes.to_vec();
            then_key.push(b'k');
            assert_eq!(parse(&then_key), vec![ch('k')], "{bytes:?} then k");
        }
    }

    #[test]
    fn a_broken_off_sequence_is_dropped_and_what_follows_parses() {
        assert_eq!(parse(b"\x1b[1;\x1b[A"), vec![k(KeyCode::Up, NONE)]);
        assert_eq!(
            parse(b"\x1b[<0;1\rx"),
            vec![k(KeyCode::Enter, NONE), ch('x')]
        );
        assert_eq!(
            parse(b"\x1bO\x1b[B"),
            vec![k(KeyCode::Char('O'), ALT | SHIFT), k(KeyCode::Down, NONE)]
        );
    }

    #[test]
    fn an_overlong_sequence_is_dropped_and_pending_stays_small() {
        let mut parser = InputParser::default();
        let mut events = parser.feed(b"\x1b[");
        for _ in 0..100 {
            events.extend(parser.feed(&[b'1'; 50]));
            assert!(parser.pending.len() <= MAX_SEQUENCE);
        }
        // The dropped sequence took its first MAX_SEQUENCE bytes; the rest were typed.
        assert_eq!(events.len(), 2 + 100 * 50 - MAX_SEQUENCE);
        assert!(events.iter().all(|event| *event == ch('1')), "{events:?}");
    }

    /// Every kind of sequence above, each checked split at every point but right after its
    /// first byte when that is an ESC (that chunk is the Esc key by design).
    #[test]
    fn sequences_split_across_chunks_still_parse() {
        let cases: Vec<&[u8]> = vec![
            b"\x1b[A",
            b"\x1bOB",
            b"\x1b[1;5C",
            b"\x1bO5A",
            b"\x1b[3;5~",
            b"\x1b[24~",
            b"\x1b[Z",
            b"\x1b[I",
            b"\x1b[<35;120;40M",
            b"\x1b[<0;3;4m",
            b"\x1b[M %#",
            b"\x1b[[B",
            b"\x1bx",
            "\x1b€".as_bytes(),
            "😀".as_bytes(),
            b"\x1b[12;40Rz",
        ];
        for bytes in cases {
            let whole = parse(bytes);
            assert!(!whole.is_empty(), "{bytes:?}");
            let first_split = if bytes[0] == ESC { 2 } else { 1 };
            for split in first_split..bytes.len() {
                let events = parse_chunks(&[&bytes[..split], &bytes[split..]]);
                assert_eq!(events, whole, "{bytes:?} split at {split}");
            }
            // And the rest one byte at a time.
            let mut parser = InputParser::default();
            let mut events = parser.feed(&bytes[..first_split.min(bytes.len())]);
            for byte in &bytes[first_split.min(bytes.len())..] {
                events.extend(parser.feed(std::slice::from_ref(byte)));
            }
            assert_eq!(events, whole, "{bytes:?} byte by byte");
        }
    }

    /// Known sequences strung together and cut at random points (never right after an ESC)
    /// give the same events as the whole stream in one chunk.
    #[test]
    fn random_cuts_of_a_known_stream_give_the_same_events() {
        let pieces: [&[u8]; 14] = [
            b"a",
            b"Q",
            "é".as_bytes(),
            "😀".as_bytes(),
            b"\r",
            b"\x03",
            b"\x1b[A",
            b"\x1bOP",
            b"\x1b[1;5D",
            b"\x1b[6~",
            b"\x1b[<0;10;5M",
            b"\x1b[200~pa\x1bste\x1b[201~",
            b"\x1bk",
            b"\x1b[I",
        ];
        let mut rng = fastrand::Rng::with_seed(0x05dec);
        for _ in 0..50 {
            let mut stream = Vec::new();
            for _ in 0..200 {
                stream.extend_from_slice(pieces[rng.usize(..pieces.len())]);
            }
            let whole = parse(&stream);
            let mut parser = InputParser::default();
            let mut events = Vec::new();
            let mut at = 0;
            while at < stream.len() {
                let mut end = (at + rng.usize(1..=40)).min(stream.len());
                while end < stream.len() && stream[end - 1] == ESC {
                    end += 1;
                }
                events.extend(parser.feed(&stream[at..end]));
                at = end;
            }
            assert_eq!(events, whole);
        }
    }

    /// 1 MB of random bytes in random chunks: no panic, and the parser's buffers stay bounded.
    /// Once uniformly random, once strung from pieces of escape sequences (paste markers among
    /// them), so that the CSI, mouse and paste paths are actually reached.
    #[test]
    fn random_bytes_never_panic_and_stay_bounded() {
        let tokens: [&[u8]; 24] = [
            b"\x1b",
            b"\x1b[",
            b"\x1bO",
            b"\x1b[<",
            b"\x1b[M",
            b"\x1b[200~",
            b"\x1b[201~",
            b"0",
            b"1",
            b"5",
            b"35",
            b"65",
            b";",
            b":",
            b"~",
            b"M",
            b"m",
            b"A",
            b"R",
            b"?",
            b"\r",
            b"\n",
            "\u{e9}\u{1F600}".as_bytes(),
            b"\xc3\xff\x80",
        ];
        for (seed, from_tokens) in [(1u64, false), (2, true)] {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut stream = Vec::with_capacity((1 << 20) + 16);
            while stream.len() < 1 << 20 {
                if from_tokens {
                    stream.extend_from_slice(tokens[rng.usize(..tokens.len())]);
                } else {
                    stream.push(rng.u8(..));
                }
            }
            let mut parser = InputParser::default();
            let (mut keys, mut mice, mut pastes) = (0, 0, 0);
            let mut at = 0;
            while at < stream.len() {
                let end = (at + rng.usize(1..=4096)).min(stream.len());
                for event in parser.feed(&stream[at..end]) {
                    match event {
                        Event::Key(_) => keys += 1,
                        Event::Mouse(_) => mice += 1,
                        Event::Paste(text) => {
                            assert!(text.chars().count() <= MAX_PASTE);
                            pastes += 1;
                        }
                        _ => {}
                    }
                }
                at = end;
                assert!(parser.pending.len() <= MAX_SEQUENCE);
                let paste_len = parser.paste.as_ref().map_or(0, |paste| paste.text.len());
                assert!(paste_len <= MAX_PASTE);
            }
            assert!(keys > 0, "seed {seed}: no keys");
            if from_tokens {
                assert!(
                    mice > 0 && pastes > 0,
                    "seed {seed}: {mice} mice, {pastes} pastes"
                );
            }
        }
    }
}
