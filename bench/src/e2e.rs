//! The end-to-end workload: produce at a fixed rate with the send time in each record, consume
//! the same partitions concurrently, and time each record from `send` to the consumer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset};

use crate::client::{prepare_topic, ClientArgs, TopicArgs};
use crate::consume::assign_consumer;
use crate::payload::Payload;
use crate::produce::{Pacer, ProducerArgs, TimedProducer};
use crate::report::{Latency, Report, MB};

/// `sluice-bench e2e`.
#[derive(Debug, Clone, clap::Args)]
pub struct E2eArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub topic: TopicArgs,
    #[command(flatten)]
    pub producer: ProducerArgs,
    /// Rate to produce at, MB (2^20 bytes of value) per second.
    #[arg(long, default_value_t = 20.0)]
    pub rate_mb_per_sec: f64,
    /// How long to produce, after the warm-up.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Seconds at the start whose records are sent and consumed but not timed.
    #[arg(long, default_value_t = 1)]
    pub warmup_secs: u64,
    /// After producing, give up when the consumer gets nothing for this many seconds.
    #[arg(long, default_value_t = 30)]
    pub idle_timeout_secs: u64,
}

/// What the consumer thread saw.
#[derive(Debug)]
struct Consumed {
    latency: Latency,
    records: u64,
    errors: u64,
}

/// Produces for `warmup_secs + seconds` at the target rate and consumes concurrently; reports
/// produce → consume latency (and send → ack latency) of the records sent after the warm-up.
pub fn run(args: &E2eArgs) -> anyhow::Result<Report> {
    let record_size = args.producer.record_size as usize;
    if record_size < 8 {
        bail!("--record-size must be at least 8: each record carries its send time");
    }
    if !args.rate_mb_per_sec.is_finite() || args.rate_mb_per_sec <= 0.0 {
        bail!("--rate-mb-per-sec must be positive");
    }
    prepare_topic(&args.client, &args.topic)?;
    let warmup = Duration::from_secs(args.warmup_secs);
    let producer = TimedProducer::new(&args.client, &args.producer)?;
    let epoch = producer.epoch();

    // Start the consumer at the current end of every partition, before the first send, so it
    // sees exactly the records of this run.
    let probe = assign_consumer(&args.client, "sluice-bench-e2e", &[])?;
    let mut positions = Vec::new();
    for p in 0..args.topic.partitions {
        let (_, high) = probe
            .fetch_watermarks(&args.client.topic, p, Duration::from_secs(10))
            .with_context(|| format!("reading the end offset of partition {p}"))?;
        positions.push((p, Offset::Offset(high)));
    }
    drop(probe);
    let consumer = assign_consumer(&args.client, "sluice-bench-e2e", &positions)?;

    // Records the consumer must see; u64::MAX until the producer knows how many were acked.
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let idle_timeout = Duration::from_secs(args.idle_timeout_secs);
    let run_for = warmup + Duration::from_secs(args.seconds);
    // The run starts now, after the set-up above: records sent in its first `warmup` are sent
    // and consumed but not timed, by the producer nor by the consumer.
    let start = epoch.elapsed();
    let timed_from = start + warmup;
    producer.time_records_sent_from(timed_from);
    let reader = {
        let expected = Arc::clone(&expected);
        std::thread::Builder::new().name("e2e-consumer".into()).spawn(move || {
            let mut seen = Consumed { latency: Latency::new(), records: 0, errors: 0 };
            let mut last_progress = Instant::now();
            // The deadline bounds the loop even if the producer never finishes.
            let deadline = Instant::now() + run_for + idle_timeout + Duration::from_secs(120);
            while seen.records < expected.load(Ordering::Acquire) && Instant::now() < deadline {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        let now = epoch.elapsed();
                        seen.records += 1;
                        last_progress = Instant::now();
                        let stamp = m.payload().and_then(|v| v.get(..8));
                        let Some(stamp) = stamp else {
                            seen.errors += 1;
                            continue;
                        };
                        let sent = Duration::from_nanos(u64::from_le_bytes(
                            stamp.try_into().expect("8 bytes"),
                        ));
                        if sent >= timed_from {
                            seen.latency.record(now.saturating_sub(sent));
                        }
                    }
                    Some(Err(e)) => {
                        seen.errors += 1;
                        consumer.context().say(&format!("consume error: {e}"));
                    }
                    None => {
                        let done = expected.load(Ordering::Acquire) != u64::MAX;
                        if done && last_progress.elapsed() > idle_timeout {
                            consumer.context().say(&format!(
                                "consumer gave up: nothing for {idle_timeout:?} after the producer finished"
                            ));
                            break;
                        }
                    }
                }
            }
            seen
        })?
    };

    let payload = Payload::new(record_size);
    let mut scratch = vec![0u8; record_size];
    let partitions = args.topic.partitions as u64;
    let records_per_sec = args.rate_mb_per_sec * MB / record_size as f64;
    let pacer = Pacer::new(records_per_sec);
    let mut seq = 0u64;
    let send_result = loop {
        if epoch.elapsed() - start >= run_for {
            break Ok(());
        }
        pacer.wait(seq);
        scratch.copy_from_slice(payload.value(seq));
        if let Err(e) = producer.send_stamped((seq % partitions) as i32, &mut scratch) {
            break Err(e);
        }
        seq += 1;
    };
    let produced_for = epoch.elapsed() - start;
    let delivered = producer.finish();
    let acked = delivered.as_ref().map(|d| d.acked).unwrap_or(0);
    expected.store(acked, Ordering::Release);
    let consumed = reader.join().map_err(|_| anyhow::anyhow!("the consumer thread panicked"))?;
    send_result?;
    let delivered = delivered?;

    let mut report =
        Report::new("e2e", &args.client.bootstrap, &args.client.topic, args.topic.partitions)
            .with_throughput(consumed.records, consumed.records * record_size as u64, produced_for)
            .with_latency(&consumed.latency);
    report.record_size = record_size;
    report.acks = Some(args.producer.acks.clone());
    report.ack_p50_ms = delivered.latency.quantile_ms(0.5);
    report.ack_p99_ms = delivered.latency.quantile_ms(0.99);
    report.ack_p999_ms = delivered.latency.quantile_ms(0.999);
    report.target_mb_per_sec = Some(args.rate_mb_per_sec);
    report.errors = delivered.errors + consumed.errors;
    if consumed.records < delivered.acked {
        consumer_shortfall(consumed.records, delivered.acked);
        report.errors += delivered.acked - consumed.records;
    }
    if seq > 0 && (seq as f64) < 0.95 * records_per_sec * produced_for.as_secs_f64() {
        eprintln!(
            "note: sent {seq} records, below the target rate: the client or broker could not keep up"
        );
    }
    Ok(report)
}

fn consumer_shortfall(consumed: u64, acked: u64) {
    eprintln!("the consumer read {consumed} records of {acked} acknowledged");
}
