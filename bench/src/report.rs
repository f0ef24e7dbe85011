//! Latency histograms and the result of one run: a human line and a machine-readable
//! `RESULT {json}` line.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// MB in every figure here is 2^20 bytes of record value (keys, headers and protocol overhead
/// are not counted).
pub const MB: f64 = 1_048_576.0;

/// A latency histogram in microseconds, 1 µs to 10 min, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Self {
        let hist = Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds");
        Self { hist }
    }

    /// Adds one observation; values past the top are clamped to it.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        self.hist.saturating_record(micros);
    }

    /// Adds every observation of `other`.
    pub fn merge(&mut self, other: &Latency) {
        self.hist.add(&other.hist).expect("histograms of the same bounds");
    }

    /// Number of observations.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The value at quantile `q` (0..=1) in milliseconds, or `None` if nothing was recorded.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        (!self.is_empty()).then(|| self.hist.value_at_quantile(q) as f64 / 1000.0)
    }

    /// The largest value in milliseconds, or `None` if nothing was recorded.
    pub fn max_ms(&self) -> Option<f64> {
        (!self.is_empty()).then(|| self.hist.max() as f64 / 1000.0)
    }
}

/// What one run measured. Field names are the `RESULT` line's JSON keys.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `produce`, `consume` or `e2e`.
    pub mode: &'static str,
    /// Bootstrap address the run talked to.
    pub bootstrap: String,
    /// Topic.
    pub topic: String,
    /// Partitions written or read.
    pub partitions: i32,
    /// Bytes of value per record (the average, for a consumer).
    pub record_size: usize,
    /// `acks` of the producer, if the run produced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acks: Option<String>,
    /// Records acknowledged (produce) or read (consume, e2e).
    pub records: u64,
    /// Wall-clock seconds the rate is computed over.
    pub seconds: f64,
    /// `records / seconds`.
    pub records_per_sec: f64,
    /// Value bytes per second, in [`MB`].
    pub mb_per_sec: f64,
    /// Median latency (produce: send → ack; e2e: send → consume), ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile latency, ms.
    pub p999_ms: Option<f64>,
    /// Largest latency, ms.
    pub max_ms: Option<f64>,
    /// e2e only: send → ack latency of the same records, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_p50_ms: Option<f64>,
    /// e2e only: 99th percentile send → ack, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_p99_ms: Option<f64>,
    /// e2e only: 99.9th percentile send → ack, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_p999_ms: Option<f64>,
    /// e2e only: the rate asked for, in [`MB`]/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_mb_per_sec: Option<f64>,
    /// Delivery failures (produce) plus consumer errors.
    pub errors: u64,
}

impl Report {
    /// A report for a run of `mode` against `bootstrap`, with nothing measured yet.
    pub fn new(mode: &'static str, bootstrap: &str, topic: &str, partitions: i32) -> Self {
        Self {
            mode,
            bootstrap: bootstrap.to_owned(),
            topic: topic.to_owned(),
            partitions,
            record_size: 0,
            acks: None,
            records: 0,
            seconds: 0.0,
            records_per_sec: 0.0,
            mb_per_sec: 0.0,
            p50_ms: None,
            p99_ms: None,
            p999_ms: None,
            max_ms: None,
            ack_p50_ms: None,
            ack_p99_ms: None,
            ack_p999_ms: None,
            target_mb_per_sec: None,
            errors: 0,
        }
    }

    /// Sets the throughput figures: `records` carrying `bytes` of value in `elapsed`. The
    /// record size is the average value size.
    pub fn with_throughput(mut self, records: u64, bytes: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64();
        let per_sec = |x: f64| if seconds > 0.0 { x / seconds } else { 0.0 };
        self.records = records;
        self.seconds = seconds;
        self.records_per_sec = per_sec(records as f64);
        self.mb_per_sec = per_sec(bytes as f64 / MB);
        self.record_size = bytes.checked_div(records).unwrap_or(0) as usize;
        self
    }

    /// Sets the main latency figures from `latency`.
    pub fn with_latency(mut self, latency: &Latency) -> Self {
        self.p50_ms = latency.quantile_ms(0.5);
        self.p99_ms = latency.quantile_ms(0.99);
        self.p999_ms = latency.quantile_ms(0.999);
        self.max_ms = latency.max_ms();
        self
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} records in {:.2} s: {:.0} records/s, {:.2} MB/s",
            self.mode, self.records, self.seconds, self.records_per_sec, self.mb_per_sec
        );
        let what = if self.mode == "e2e" { "produce→consume" } else { "send→ack" };
        if let (Some(p50), Some(p99), Some(p999), Some(max)) =
            (self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms)
        {
            let _ = write!(s, "; {what} ms p50 {p50:.2} p99 {p99:.2} p99.9 {p999:.2} max {max:.2}");
        }
        if let (Some(p50), Some(p99), Some(p999)) =
            (self.ack_p50_ms, self.ack_p99_ms, self.ack_p999_ms)
        {
            let _ = write!(s, "; send→ack ms p50 {p50:.2} p99 {p99:.2} p99.9 {p999:.2}");
        }
        let _ = write!(s, "; {} errors", self.errors);
        s
    }

    /// `RESULT {json}`: one line, for scripts.
    pub fn result_line(&self) -> String {
        format!("RESULT {}", serde_json::to_string(self).expect("a report serializes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_recorded_values() {
        let mut l = Latency::new();
        for ms in 1..=1000u64 {
            l.record(Duration::from_millis(ms));
        }
        let p50 = l.quantile_ms(0.5).unwrap();
        let p999 = l.quantile_ms(0.999).unwrap();
        assert!((499.0..=501.0).contains(&p50), "{p50}");
        assert!((998.0..=1000.5).contains(&p999), "{p999}");
        assert!((999.0..=1000.5).contains(&l.max_ms().unwrap()));
    }

    #[test]
    fn an_empty_histogram_reports_no_latency() {
        let r = Report::new("consume", "b:9092", "t", 1)
            .with_throughput(0, 0, Duration::ZERO)
            .with_latency(&Latency::new());
        assert_eq!(r.p50_ms, None);
        assert_eq!(r.records_per_sec, 0.0);
        let json: serde_json::Value =
            serde_json::from_str(r.result_line().strip_prefix("RESULT ").unwrap()).unwrap();
        assert!(json["p50_ms"].is_null());
        assert!(json.get("ack_p50_ms").is_none());
    }

    #[test]
    fn throughput_is_records_and_value_bytes_over_seconds() {
        let r = Report::new("produce", "b:9092", "t", 8).with_throughput(
            2048,
            2048 * 1024,
            Duration::from_secs(2),
        );
        assert_eq!(r.record_size, 1024);
        assert_eq!(r.records_per_sec, 1024.0);
        assert_eq!(r.mb_per_sec, 1.0);
        for key in ["records", "seconds", "records_per_sec", "mb_per_sec", "p99_ms", "errors"] {
            assert!(r.result_line().contains(&format!("\"{key}\":")), "{key}");
        }
    }
}
