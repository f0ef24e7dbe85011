//! The cost of a `/metrics` scrape (`Broker::render_metrics`) on a broker hosting many
//! partitions: 1,000 and 10,000 partitions in 100 topics, all hosted and led here, so every
//! per-partition family is filled; and 10,000 past a `metrics.partition.series.max` of 1,000,
//! where only the per-topic series are. Besides the time (criterion), it prints each render's size and how far
//! the process's resident set grows during one render (its peak, VmHWM, reset before), the
//! figures docs/metrics.md quotes.
//!
//! Run with `cargo bench -p sluice-broker --bench metrics`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sluice_broker::config::BrokerConfig;
use sluice_broker::metadata::NewTopic;
use sluice_broker::server::{self, RunningBroker};

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// How far the resident set grows above its size before while `f` runs: the peak (VmHWM)
/// is reset first (Linux's clear_refs 5).
fn peak_growth_kib(f: impl FnOnce()) -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_kib("VmRSS");
    f();
    status_kib("VmHWM").saturating_sub(before)
}

/// A broker on loopback hosting `partitions` partitions in 100 topics.
/// `series_max` is `metrics.partition.series.max`.
fn broker(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    partitions: i32,
    series_max: usize,
) -> RunningBroker {
    let mut config = BrokerConfig::default();
    for (k, v) in [
        ("log.dirs", dir.to_str().unwrap()),
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("admin.listener", "127.0.0.1:0"),
        ("log.segment.bytes", "1048576"),
        ("metrics.partition.series.max", &series_max.to_string()),
    ] {
        config.set(k, v).unwrap();
    }
    rt.block_on(async {
        let running = server::start(config).await.expect("broker starts");
        let topics = (0..100)
            .map(|t| NewTopic {
                name: format!("topic-{t:03}"),
                num_partitions: partitions / 100,
                replication_factor: 1,
                assignments: BTreeMap::new(),
                configs: BTreeMap::new(),
            })
            .collect();
        for r in running.broker.metadata.create_topics(topics, false).await {
            r.expect("topic created");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        while running.broker.replicas.all().len() < partitions as usize {
            assert!(std::time::Instant::now() < deadline, "partitions not hosted in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        running
    })
}

fn render(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("metrics_render");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    // The last: past the limit, per-topic series only.
    for (partitions, series_max) in [(1_000, 10_000), (10_000, 10_000), (10_000, 1_000)] {
        let dir = tempfile::tempdir().unwrap();
        let running = broker(&rt, dir.path(), partitions, series_max);
        let b = running.broker.clone();
        let body = b.render_metrics();
        let grew = peak_growth_kib(|| drop(black_box(b.render_metrics())));
        println!(
            "{partitions} partitions, limit {series_max}: {} lines, {:.1} MiB of text, resident set {:.1} MiB above \
             its size before during one render",
            body.lines().count(),
            body.len() as f64 / 1048576.0,
            grew as f64 / 1024.0
        );
        let id = BenchmarkId::new(format!("limit_{series_max}"), partitions);
        group.bench_with_input(id, &b, |bench, b| bench.iter(|| black_box(b.render_metrics())));
        rt.block_on(running.shutdown()).expect("clean shutdown");
    }
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
