//! Log output: the process's subscriber ([`init`], shared by the broker and the operator), its
//! field format, and a rate limit for lines a client can trigger.
//!
//! Lines go to stderr as text (colour codes only when stderr is a terminal, never in files and
//! log collectors) or, with `--log-format json` (`SLUICE_LOG_FORMAT=json`), as one JSON object
//! per line with the event's fields at the top level and its spans (the connection, the
//! partition) under `spans`, for log aggregators. `RUST_LOG` sets the levels, per module too
//! (`info,sluice_broker::replica=debug`).
//!
//! The levels change at run time as in Kafka, through the BROKER_LOGGER config resource
//! (IncrementalAlterConfigs, `kafka-configs --entity-type broker-loggers`): each logger is a
//! module path written with dots as Java's loggers are (`sluice_broker.replica` for
//! `sluice_broker::replica`; Kafka's tools refuse `:` in a config name) or `root`, with
//! Kafka's level names ([`Loggers`]).
//!
//! Values that come from clients (group, member and client ids, topic names, decode errors
//! quoting request bytes) reach log lines through fields; [`escaped_fields`] writes every field
//! with its control characters escaped, so a client cannot forge lines, colour a terminal or
//! add blank lines, and messages end without a stray newline. [`RateLimit`] bounds how many
//! lines a stream of bad requests can produce, counting those it suppresses.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
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
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| default_filter.to_string());
    let loggers = Loggers::parse(&directives);
    let filter = tracing_subscriber::EnvFilter::try_new(loggers.filter())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    macro_rules! install {
        ($builder:expr) => {{
            let builder = $builder.with_filter_reloading();
            let handle = builder.reload_handle();
            let _ = RELOAD.set(Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())));
            builder.init();
        }};
    }
    match format {
        LogFormat::Json => install!(logs.json().flatten_event(true).with_span_list(true)),
        LogFormat::Text => install!(logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .fmt_fields(escaped_fields())),
    }
    *lock_loggers() = loggers;
}

type Reload = Box<dyn Fn(tracing_subscriber::EnvFilter) -> Result<(), String> + Send + Sync>;

/// Swaps the installed subscriber's filter (set by [`init`]).
static RELOAD: OnceLock<Reload> = OnceLock::new();
/// The process's loggers and their levels (one per process, as Kafka's log4j).
static LOGGERS: Mutex<Loggers> = Mutex::new(Loggers(BTreeMap::new()));

fn lock_loggers() -> std::sync::MutexGuard<'static, Loggers> {
    LOGGERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kafka's log level names, and the `tracing` level each stands for (FATAL is ERROR).
const LEVELS: &[(&str, &str)] = &[
    ("TRACE", "trace"),
    ("DEBUG", "debug"),
    ("INFO", "info"),
    ("WARN", "warn"),
    ("ERROR", "error"),
    ("FATAL", "error"),
    ("OFF", "off"),
];

/// The crates whose loggers exist (with every module under them).
const KNOWN_LOGGERS: &[&str] = &[
    "sluice",
    "sluice_broker",
    "sluice_client",
    "sluice_operator",
    "openraft",
    "kube",
    "tokio",
    "kafka_protocol",
];

/// The broker's modules (`broker/src`, kept equal to it by a test), listed as loggers.
const BROKER_MODULES: &[&str] = &[
    "api",
    "api.admin",
    "api.admin.cluster",
    "api.admin.configs",
    "api.admin.log_dirs",
    "api.admin.quorum",
    "api.admin.reassignments",
    "api.admin.topics",
    "api.admin.transactions",
    "api.api_versions",
    "api.errors",
    "api.fetch",
    "api.fetch_encode",
    "api.fetch_session",
    "api.group",
    "api.init_producer_id",
    "api.metadata",
    "api.offsets",
    "api.produce",
    "config",
    "config.catalog",
    "config.kafka",
    "config.listeners",
    "config.providers",
    "console",
    "console.actions",
    "console.assets",
    "console.messages",
    "console.peers",
    "console.read",
    "dev_cluster",
    "fsutil",
    "group",
    "group.codec",
    "group.coordinator",
    "group.offsets",
    "http",
    "log",
    "log.batch",
    "log.checkpoint",
    "log.cleaner",
    "log.clock",
    "log.compression",
    "log.config",
    "log.epoch_cache",
    "log.manager",
    "log.offset_index",
    "log.partition_log",
    "log.producer_state",
    "log.record",
    "log.segment",
    "log.time_index",
    "log.validator",
    "logging",
    "metadata",
    "metadata.calls",
    "metadata.controller",
    "metadata.elections",
    "metadata.follower",
    "metadata.image",
    "metadata.log_store",
    "metadata.meta_properties",
    "metadata.network",
    "metadata.network.client",
    "metadata.network.server",
    "metadata.reassignment",
    "metadata.state_machine",
    "metadata.types",
    "metrics",
    "ports",
    "replica",
    "replica.fetcher",
    "replica.quota",
    "replica.session",
    "server",
    "server.connection",
    "server.isr",
    "server.lag",
    "server.listener",
    "server.publisher",
    "zero_copy",
];

/// Why a logger change is refused: Kafka's INVALID_CONFIG or INVALID_REQUEST.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoggerError {
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
}

/// Loggers and their levels: `root` and module paths (dotted), each with a Kafka level name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loggers(BTreeMap<String, String>);

impl Loggers {
    /// From `RUST_LOG`-style directives: `info,sluice_broker::replica=debug`.
    pub fn parse(directives: &str) -> Loggers {
        let mut loggers = BTreeMap::from([("root".to_string(), "INFO".to_string())]);
        for d in directives.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let (name, level) = d.split_once('=').unwrap_or(("root", d));
            let kafka = LEVELS.iter().find(|(_, t)| t.eq_ignore_ascii_case(level.trim()));
            if let Some((kafka, _)) = kafka {
                loggers.insert(dotted(name.trim()), kafka.to_string());
            }
        }
        Loggers(loggers)
    }

    /// The `EnvFilter` directives these levels make.
    pub fn filter(&self) -> String {
        let tracing =
            |kafka: &str| LEVELS.iter().find(|(k, _)| *k == kafka).map_or("info", |l| l.1);
        let mut out = tracing(self.0.get("root").map_or("INFO", String::as_str)).to_string();
        for (name, level) in self.0.iter().filter(|(n, _)| *n != "root") {
            let _ = write!(out, ",{}={}", name.replace('.', "::"), tracing(level));
        }
        out
    }

    /// Every logger that exists, with its effective level (DescribeConfigs of BROKER_LOGGER,
    /// which lists them all as Kafka lists log4j's): `root`, the crates, the broker's modules
    /// and any set below them. Kafka's tools check a name against this list before a change.
    pub fn levels(&self) -> Vec<(String, String)> {
        let crates = KNOWN_LOGGERS.iter().map(|c| c.to_string());
        let modules = BROKER_MODULES.iter().map(|m| format!("sluice_broker.{m}"));
        let names: std::collections::BTreeSet<String> = std::iter::once("root".to_string())
            .chain(crates)
            .chain(modules)
            .chain(self.0.keys().cloned())
            .collect();
        names.into_iter().map(|n| (n.clone(), self.effective(&n).to_string())).collect()
    }

    /// The level of `name`: its own, else its closest parent's, else the root's.
    fn effective(&self, name: &str) -> &str {
        let mut at = name;
        loop {
            if let Some(level) = self.0.get(at) {
                return level;
            }
            match at.rfind('.') {
                Some(i) => at = &at[..i],
                None => return self.0.get("root").map_or("INFO", String::as_str),
            }
        }
    }

    /// Sets (`Some(level)`) or removes (`None`, back to its parent's level) a logger's level,
    /// as Kafka validates them.
    pub fn change(&mut self, name: &str, level: Option<&str>) -> Result<(), LoggerError> {
        let given = name;
        let name = &dotted(name);
        let module_path = name.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        let crate_name = name.split('.').next().unwrap_or_default();
        let exists = name == "root" || (module_path && KNOWN_LOGGERS.contains(&crate_name));
        if !exists {
            return Err(LoggerError::InvalidConfig(format!("Logger {given} does not exist!")));
        }
        match level {
            Some(level) => {
                let Some((kafka, _)) = LEVELS.iter().find(|(k, _)| k.eq_ignore_ascii_case(level))
                else {
                    let valid: Vec<&str> = LEVELS.iter().map(|l| l.0).collect();
                    return Err(LoggerError::InvalidConfig(format!(
                        "Cannot set the log level of {name} to {level} as it is not a supported \
                         log level. Valid log levels are {}",
                        valid.join(", ")
                    )));
                };
                self.0.insert(name.to_string(), kafka.to_string());
            }
            None if name == "root" => {
                return Err(LoggerError::InvalidRequest(
                    "Removing the log level of the root logger is not allowed".into(),
                ))
            }
            None => _ = self.0.remove(name),
        }
        Ok(())
    }
}

/// A logger's name as Kafka's tools can write it: `a::b` becomes `a.b`.
fn dotted(name: &str) -> String {
    name.replace("::", ".")
}

/// The process's loggers now.
pub fn loggers() -> Loggers {
    lock_loggers().clone()
}

/// Applies `change` to the process's loggers (all or nothing) and installs the new levels;
/// with `validate_only`, only checks it.
pub fn change_loggers(
    change: impl FnOnce(&mut Loggers) -> Result<(), LoggerError>,
    validate_only: bool,
) -> Result<(), LoggerError> {
    let mut current = lock_loggers();
    let mut next = current.clone();
    change(&mut next)?;
    if validate_only {
        return Ok(());
    }
    if let Some(reload) = RELOAD.get() {
        let filter = tracing_subscriber::EnvFilter::try_new(next.filter())
            .map_err(|e| LoggerError::InvalidConfig(e.to_string()))?;
        reload(filter).map_err(LoggerError::InvalidConfig)?;
    }
    tracing::info!(levels = %next.filter(), "log levels changed");
    *current = next;
    Ok(())
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
    fn loggers_parse_change_and_render_as_kafka_validates() {
        let mut l = Loggers::parse("warn,sluice_broker::replica=debug,bogus=loud");
        assert_eq!(l.filter(), "warn,sluice_broker::replica=debug");
        let levels = l.levels();
        let level = |name: &str| levels.iter().find(|(n, _)| n == name).map(|(_, l)| l.as_str());
        assert_eq!(level("root"), Some("WARN"));
        assert_eq!(level("sluice_broker.replica"), Some("DEBUG"));
        assert_eq!(level("sluice_broker.replica.fetcher"), Some("DEBUG"), "inherited");
        assert_eq!(level("sluice_broker.log.segment"), Some("WARN"), "the root's");
        assert_eq!(level("openraft"), Some("WARN"));
        l.change("sluice_broker.server.connection", Some("trace")).unwrap();
        l.change("root", Some("FATAL")).unwrap();
        assert_eq!(
            l.filter(),
            "error,sluice_broker::replica=debug,sluice_broker::server::connection=trace"
        );
        l.change("sluice_broker::replica", None).unwrap(); // either spelling
        assert_eq!(l.filter(), "error,sluice_broker::server::connection=trace");
        let refused = [
            ("root", None, "InvalidRequest"),
            ("nobody.knows", Some("DEBUG"), "InvalidConfig"),
            ("sluice_broker.", Some("DEBUG"), "InvalidConfig"),
            ("sluice_broker..log", Some("DEBUG"), "InvalidConfig"),
            ("sluice_broker", Some("LOUD"), "InvalidConfig"),
        ];
        for (name, level, kind) in refused {
            let e = l.clone().change(name, level).unwrap_err();
            assert!(format!("{e:?}").starts_with(kind), "{name}: {e:?}");
        }
        assert_eq!(Loggers::parse("").filter(), "info");
    }

    /// The broker's loggers are its modules: every file of `broker/src` (tests, `lib` and
    /// the binary's `main` aside), and nothing else.
    #[test]
    fn broker_loggers_are_the_modules_of_broker_src() {
        fn walk(dir: &std::path::Path, prefix: &str, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_stem().unwrap().to_str().unwrap().to_string();
                let module =
                    if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                if path.is_dir() {
                    walk(&path, &module, out);
                } else if name == "mod" {
                    out.push(prefix.to_string());
                } else if !["lib", "main", "tests"].contains(&name.as_str()) {
                    out.push(module);
                }
            }
        }
        let mut found = Vec::new();
        walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), "", &mut found);
        found.sort();
        found.dedup();
        assert_eq!(found, BROKER_MODULES, "update BROKER_MODULES in logging.rs");
    }

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
