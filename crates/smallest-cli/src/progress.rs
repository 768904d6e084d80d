//! A status line updated in place (`\r` and "clear line") on a terminal, and the
//! number formatting the progress displays share.
//!
//! Nothing is ever written when the stream is not a terminal: scripts and logs get
//! only the summaries the commands print at the end.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Moves to the start of the line and clears it.
const CLEAR: &str = "\r\x1b[2K";

/// The shortest gap between two redraws (faster updates are skipped).
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// Which stream a line is drawn on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Stdout,
    Stderr,
}

impl Target {
    fn write(self, text: &str) {
        // A status line is a courtesy: a failed write to the terminal is ignored.
        match self {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
            Target::Stderr => {
                let mut out = std::io::stderr().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
        }
    }

    fn is_terminal(self) -> bool {
        match self {
            Target::Stdout => std::io::stdout().is_terminal(),
            Target::Stderr => std::io::stderr().is_terminal(),
        }
    }
}

/// One line of status, redrawn in place; off (every call a no-op) when its stream is
/// not a terminal.
#[derive(Debug)]
pub(crate) struct StatusLine {
    target: Option<Target>,
    shown: bool,
    last_draw: Option<Instant>,
}

impl StatusLine {
    /// A line on stderr, shown only when stderr is a terminal.
    pub(crate) fn stderr() -> Self {
        Self::on(Target::Stderr)
    }

    /// A line on `target`, shown only when it is a terminal.
    pub(crate) fn on(target: Target) -> Self {
        Self::new(target.is_terminal().then_some(target))
    }

    /// A line drawn on `target` (`None`: never drawn).
    pub(crate) fn new(target: Option<Target>) -> Self {
        StatusLine {
            target,
            shown: false,
            last_draw: None,
        }
    }

    /// Whether anything is drawn at all.
    pub(crate) fn is_on(&self) -> bool {
        self.target.is_some()
    }

    /// Redraws the line with `text`, unless it was redrawn less than 100 ms ago.
    pub(crate) fn update(&mut self, text: &str) {
        if self.last_draw.is_some_and(|at| at.elapsed() < REDRAW_EVERY) {
            return;
        }
        self.draw(text);
    }

    /// Redraws the line with `text` now.
    pub(crate) fn draw(&mut self, text: &str) {
        let Some(target) = self.target else {
            return;
        };
        target.write(&format!("{CLEAR}{}", fit_head(text, width())));
        self.shown = true;
        self.last_draw = Some(Instant::now());
    }

    /// Redraws the line with the end of `text` now (for text that grows at its end,
    /// such as an interim transcript).
    pub(crate) fn draw_tail(&mut self, text: &str) {
        let Some(target) = self.target else {
            return;
        };
        target.write(&format!("{CLEAR}{}", fit_tail(text, width())));
        self.shown = true;
        self.last_draw = Some(Instant::now());
    }

    /// Erases the line, if one is shown (the next update draws at once).
    pub(crate) fn clear(&mut self) {
        if let (Some(target), true) = (self.target, self.shown) {
            target.write(CLEAR);
        }
        self.shown = false;
        self.last_draw = None;
    }
}

impl Drop for StatusLine {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The terminal's width, from `COLUMNS` (80 when it is not set), less one column so
/// the line never wraps.
fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c >= 20)
        .unwrap_or(80)
        - 1
}

/// `text` cut to `width` characters, keeping its start (`…` at the end when cut).
pub(crate) fn fit_head(text: &str, width: usize) -> String {
    let text = one_line(text);
    if text.chars().count() <= width {
        return text;
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `text` cut to `width` characters, keeping its end (`…` at the start when cut).
pub(crate) fn fit_tail(text: &str, width: usize) -> String {
    let text = one_line(text);
    let count = text.chars().count();
    if count <= width {
        return text;
    }
    let keep = width.saturating_sub(1);
    let mut out = String::from("…");
    out.extend(text.chars().skip(count - keep));
    out
}

/// Line breaks and tabs as spaces, so a status never spans two lines.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A byte count for people: `512 B`, `12.3 KB`, `4.56 MB`, `1.23 GB` (powers of 1000).
pub(crate) fn bytes(n: u64) -> String {
    let n = n as f64;
    if n < 1e3 {
        format!("{n} B")
    } else if n < 1e6 {
        format!("{:.1} KB", n / 1e3)
    } else if n < 1e9 {
        format!("{:.2} MB", n / 1e6)
    } else {
        format!("{:.2} GB", n / 1e9)
    }
}

/// Seconds with two decimals: `1.25 s`.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_to_the_width() {
        assert_eq!(fit_head("short", 10), "short");
        assert_eq!(fit_head("0123456789abc", 10), "012345678…");
        assert_eq!(fit_tail("0123456789abc", 10), "…456789abc");
        assert_eq!(fit_tail("a\nb\tc", 10), "a b c");
        assert_eq!(fit_tail("héllo wörld", 6), "…wörld");
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(12_345), "12.3 KB");
        assert_eq!(bytes(4_560_000), "4.56 MB");
        assert_eq!(bytes(1_230_000_000), "1.23 GB");
        assert_eq!(secs(Duration::from_millis(1250)), "1.25 s");
    }

    #[test]
    fn an_off_line_draws_nothing() {
        let mut line = StatusLine::new(None);
        assert!(!line.is_on());
        line.draw("x");
        line.draw_tail("y");
        line.clear();
        assert!(!line.shown);
    }
}
