//! Log output: the process's subscriber ([`init`], shared by the broker and the operator), its
//! field format, and a rate limit for lines a client can trigger.
//!
//! Lines go to stderr as text (colour codes only when stderr is a terminal, never in files and
//! log collectors) or, with `--log-format json` (`SLUICE_LOG_FORMAT=json`), as one JSON object
//! per line with the event's fields at the top level and its spans (the connection, the
//! partition) under `spans`, for log aggregators. `RUST_LOG` sets the levels, per module too
//! (`info,sluice_broker::replica=debug`).
//!
//! Values that come from clients (group, member and client ids, topic names, decode errors
//! quoting request bytes) reach log lines through fields; [`escaped_fields`] writes every field
//! with its control characters escaped, so a client cannot forge lines, colour a terminal or
//! add blank lines, and messages end without a stray newline. [`RateLimit`] bounds how many
//! lines a stream of bad requests can produce, counting those it suppresses.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{debug_fn, Writer};
use tracing_subscriber::fmt::FormatFields;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable; colours only on a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log aggregators.
    Json,
}

/// Installs the process's log subscriber: levels from `RUST_LOG`, else `default_filter`;
/// lines to stderr in `format`. Text lines escape every field ([`escaped_fields`]); JSON
/// escapes by itself.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().flatten_event(true).with_span_list(true).init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .fmt_fields(escaped_fields())
            .init(),
    }
}

/// `text` with control characters (newlines, ESC, ...) written as Rust escapes, trailing
/// whitespace dropped.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let text = text.trim_end();
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The field formatter of the broker's log: `message key=value ...`, values escaped.
pub fn escaped_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    debug_fn(|w: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
        let text = format!("{value:?}");
        let text = escape_controls(&text);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{}={text}", field.name())
        }
    })
    .delimited(" ")
}

/// Lets through at most `per_window` events per window and counts the rest.
#[derive(Debug)]
pub struct RateLimit {
    per_window: u32,
    window: Duration,
    state: Mutex<WindowState>,
}

#[derive(Debug)]
struct WindowState {
    started: Option<Instant>,
    admitted: u32,
    suppressed: u64,
}

impl RateLimit {
    pub const fn new(per_window: u32, window: Duration) -> Self {
        RateLimit {
            per_window,
            window,
            state: Mutex::new(WindowState { started: None, admitted: 0, suppressed: 0 }),
        }
    }

    /// `Some(n)`: log this event, saying that `n` were suppressed since the last one logged;
    /// `None`: suppress it.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.started.is_none_or(|t| now.saturating_duration_since(t) >= self.window) {
            s.started = Some(now);
            s.admitted = 0;
        }
        if s.admitted >= self.per_window {
            s.suppressed += 1;
            return None;
        }
        s.admitted += 1;
        Some(std::mem::take(&mut s.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_counts_what_it_suppresses() {
        let limit = RateLimit::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limit.admit(t0), Some(0));
        assert_eq!(limit.admit(t0), Some(0));
        for _ in 0..5 {
            assert_eq!(limit.admit(t0 + Duration::from_secs(1)), None);
        }
        assert_eq!(limit.admit(t0 + Duration::from_secs(10)), Some(5), "reported once");
        assert_eq!(limit.admit(t0 + Duration::from_secs(10)), Some(0));
        assert_eq!(limit.admit(t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn control_characters_are_escaped_and_trailing_newlines_dropped() {
        assert_eq!(escape_controls("plain group"), "plain group");
        assert_eq!(escape_controls("bad\\n"), "bad\\n");
        assert_eq!(escape_controls("a\nb\x1b[31mred\r\n"), "a\\nb\\u{1b}[31mred");
        assert_eq!(escape_controls("decode error\n"), "decode error");
    }
}
