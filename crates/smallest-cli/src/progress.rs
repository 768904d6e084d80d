//! Progress drawn with `indicatif`: a spinner while a call is waited for, a bar with an
//! ETA for an upload or a text spoken in several requests, the interim line of a live
//! transcript, and the number formatting the summaries share.
//!
//! Nothing is ever drawn when the stream is not a terminal (or `TERM=dumb`): scripts
//! and logs get only the summaries the commands print at the end. Lines are fitted to
//! the terminal's real width. A display is cleared when it is finished or dropped, so
//! it never stays under an error or a summary.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use indicatif::{
    HumanDuration, ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressState, ProgressStyle,
};

/// How often a spinner turns (and its clock is redrawn).
const TICK: Duration = Duration::from_millis(100);

/// A spinner, the time waited so far, and what is waited for.
const SPINNER: &str = "{spinner} {elapsed:>3} {wide_msg}";

/// An upload: what is sent, a bar, the bytes sent of all, the rate and the time left.
const UPLOAD: &str = "{spinner} {wide_msg} [{bar:12}] {decimal_bytes}/{decimal_total_bytes} \
                      {decimal_bytes_per_sec} {eta}";

/// A text spoken in several requests: which one is under way, a bar, the time left.
const CHUNKS: &str = "{spinner} {msg} [{wide_bar}] {eta}";

/// One line of text, its end kept when it is wider than the terminal (right-aligned,
/// so the newest words of a growing interim transcript stay in view).
const TAIL_LINE: &str = "{wide_msg:>}";

/// The filled, current and empty cells of a bar (plain ASCII, for any terminal font).
const BAR_CHARS: &str = "=> ";

/// A spinner on stderr saying `message`, turning until it is finished.
pub(crate) fn spinner(message: impl Into<Cow<'static, str>>) -> ProgressBar {
    new(ProgressDrawTarget::stderr(), None, SPINNER, true).with_message(message)
}

/// A bar on stderr for an upload of `total` bytes, saying `message`; set its position
/// to the bytes sent.
pub(crate) fn upload(total: u64, message: impl Into<Cow<'static, str>>) -> ProgressBar {
    new(ProgressDrawTarget::stderr(), Some(total), UPLOAD, true).with_message(message)
}

/// A bar on stderr for `count` requests made one after another; its position is the
/// number done, its message [`chunk_message`] of the one under way.
pub(crate) fn chunks(count: u64) -> ProgressBar {
    new(ProgressDrawTarget::stderr(), Some(count), CHUNKS, true)
}

/// A line on `target` showing the end of its message (see [`TAIL_LINE`]).
pub(crate) fn tail_line(target: ProgressDrawTarget) -> ProgressBar {
    new(target, None, TAIL_LINE, false)
}

/// Turns `bar` (an upload bar, say) into a spinner saying `message`, its clock
/// restarted.
pub(crate) fn to_spinner(bar: &ProgressBar, message: impl Into<Cow<'static, str>>) {
    bar.set_style(style(SPINNER));
    bar.set_message(message);
    bar.reset_elapsed();
}

/// Turns `bar` (back) into an upload bar saying `message`, its clock restarted.
pub(crate) fn to_upload(bar: &ProgressBar, message: impl Into<Cow<'static, str>>) {
    bar.set_style(style(UPLOAD));
    bar.set_message(message);
    bar.reset();
}

fn new(target: ProgressDrawTarget, len: Option<u64>, template: &str, tick: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(len, target)
        .with_style(style(template))
        .with_finish(ProgressFinish::AndClear);
    // A hidden bar draws nothing: no thread to turn it.
    if tick && !bar.is_hidden() {
        bar.enable_steady_tick(TICK);
    }
    bar
}

/// The style of `template` (the templates are constants, checked by the tests; a bad
/// one would show as a plain spinner rather than fail the command).
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars(BAR_CHARS)
        .with_key("eta", |state: &ProgressState, out: &mut dyn fmt::Write| {
            let _ = out.write_str(&eta_text(state.pos(), state.eta()));
        })
}

/// `ETA 12s`; `ETA …` before the first step, when nothing is known yet (indicatif's
/// own `{eta}` would say `0s`).
fn eta_text(done: u64, eta: Duration) -> String {
    if done == 0 {
        "ETA …".to_owned()
    } else {
        format!("ETA {:#}", HumanDuration(eta))
    }
}

/// `synthesizing chunk 2/5`: the request under way (`k` counts from 1) of `n`.
pub(crate) fn chunk_message(k: usize, n: usize) -> String {
    format!("synthesizing chunk {k}/{n}")
}

/// ` in 3 requests` after a summary when a text took more than one; nothing for one.
pub(crate) fn requests_note(n: usize) -> String {
    if n > 1 {
        format!(" in {n} requests")
    } else {
        String::new()
    }
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
    fn every_template_is_valid() {
        for template in [SPINNER, UPLOAD, CHUNKS, TAIL_LINE] {
            assert!(
                ProgressStyle::with_template(template).is_ok(),
                "{template:?} does not parse"
            );
        }
        // The placeholders the displays promise.
        assert!(UPLOAD.contains("{eta}") && UPLOAD.contains("{decimal_bytes_per_sec}"));
        assert!(UPLOAD.contains("{decimal_total_bytes}") && UPLOAD.contains("{bar:12}"));
        assert!(CHUNKS.contains("{eta}") && CHUNKS.contains("{wide_bar}"));
        assert!(SPINNER.contains("{spinner}") && SPINNER.contains("{elapsed"));
    }

    #[test]
    fn the_eta_is_unknown_until_a_step_is_done() {
        assert_eq!(eta_text(0, Duration::ZERO), "ETA …");
        assert_eq!(eta_text(1, Duration::from_secs(12)), "ETA 12s");
        assert_eq!(eta_text(3, Duration::from_secs(125)), "ETA 2m");
    }

    #[test]
    fn chunks_and_requests_are_counted_for_people() {
        assert_eq!(chunk_message(1, 4), "synthesizing chunk 1/4");
        assert_eq!(chunk_message(4, 4), "synthesizing chunk 4/4");
        assert_eq!(requests_note(1), "");
        assert_eq!(requests_note(0), "");
        assert_eq!(requests_note(3), " in 3 requests");
    }

    #[test]
    fn a_hidden_target_draws_nothing_and_a_display_can_change_shape() {
        let bar = new(ProgressDrawTarget::hidden(), Some(10), UPLOAD, true);
        assert!(bar.is_hidden());
        bar.set_position(10);
        to_spinner(&bar, "transcribing…");
        assert_eq!(bar.message(), "transcribing…");
        to_upload(&bar, "again");
        assert_eq!((bar.message().as_str(), bar.position()), ("again", 0));
        bar.finish_and_clear();
        assert!(bar.is_finished());
        let line = tail_line(ProgressDrawTarget::hidden());
        line.set_message("an interim");
        assert!(line.is_hidden());
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(12_345), "12.3 KB");
        assert_eq!(bytes(4_560_000), "4.56 MB");
        assert_eq!(bytes(1_230_000_000), "1.23 GB");
        assert_eq!(secs(Duration::from_millis(1250)), "1.25 s");
    }
}
