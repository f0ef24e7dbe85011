//! The produce workload, and the producer that the end-to-end workload shares: a librdkafka
//! producer whose delivery callback times every record from `send` to its acknowledgement.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::client::{prepare_topic, ClientArgs, LoudContext, TopicArgs};
use crate::payload::Payload;
use crate::report::{Latency, Report};

/// How long librdkafka keeps retrying a record before it reports a delivery failure.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `send` waits for room in a full client queue before giving up: longer than
/// [`MESSAGE_TIMEOUT`], after which queued records fail and free their room anyway.
const QUEUE_FULL_LIMIT: Duration = Duration::from_secs(90);

/// Delivery failures printed one by one; the rest are only counted.
const ERRORS_SHOWN: u64 = 5;

/// Producer settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ProducerArgs {
    /// `acks`: 1 (the leader has the record) or all (every in-sync replica has it); with 0 the
    /// client counts a record delivered once it is sent, so latency means little.
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    pub acks: String,
    /// `linger.ms`.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u32,
    /// `batch.size` in bytes.
    #[arg(long, default_value_t = 16_384)]
    pub batch_size: u32,
    /// Bytes of value per record.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub record_size: u32,
    /// `queue.buffering.max.kbytes`: records accepted by the client and not yet acknowledged.
    /// At full speed, send → ack latency is mostly the time a record waits in this buffer.
    #[arg(long, default_value_t = 32_768)]
    pub buffer_kbytes: u32,
    /// Print acknowledged records/s and send → ack latency to stderr every this many seconds
    /// (0: never), to show stalls and drift within a run.
    #[arg(long, default_value_t = 5)]
    pub report_interval_secs: u64,
}

impl ProducerArgs {
    fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("acks", self.acks.clone()),
            ("linger.ms", self.linger_ms.to_string()),
            ("batch.size", self.batch_size.to_string()),
            ("queue.buffering.max.kbytes", self.buffer_kbytes.to_string()),
            // Let the byte limit, not the record count, bound the buffer.
            ("queue.buffering.max.messages", "10000000".into()),
            ("message.timeout.ms", MESSAGE_TIMEOUT.as_millis().to_string()),
            ("compression.type", "none".into()),
            ("enable.idempotence", "false".into()),
        ]
    }
}

/// What the delivery callback has seen so far.
#[derive(Debug)]
struct Acks {
    latency: Latency,
    acked: u64,
    acked_bytes: u64,
    errors: u64,
    last_ack: Duration,
    /// Latency since the last interval report.
    window: Latency,
}

/// Producer context: times each record from the `send` call (its opaque is the send time in
/// nanoseconds since `epoch`) to the delivery callback.
#[derive(Debug)]
pub struct AckContext {
    loud: LoudContext,
    epoch: Instant,
    /// Records sent before this point (nanoseconds since `epoch`) are counted but not timed.
    timed_from: AtomicU64,
    acks: Mutex<Acks>,
}

impl ClientContext for AckContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.loud.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.loud.error(error, reason);
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_nanos: usize) {
        let now = self.epoch.elapsed();
        let sent = Duration::from_nanos(sent_nanos as u64);
        let mut acks = self.acks.lock().expect("delivery callback panicked earlier");
        acks.last_ack = now;
        match result {
            Ok(message) => {
                acks.acked += 1;
                acks.acked_bytes += message.payload_len() as u64;
                if sent.as_nanos() as u64 >= self.timed_from.load(Ordering::Relaxed) {
                    acks.latency.record(now.saturating_sub(sent));
                }
                acks.window.record(now.saturating_sub(sent));
            }
            Err((e, _)) => {
                acks.errors += 1;
                if acks.errors <= ERRORS_SHOWN {
                    self.loud.say(&format!("delivery failed: {e}"));
                }
            }
        }
    }
}

/// The outcome of a producer's life.
#[derive(Debug)]
pub struct Delivered {
    /// send → ack latency of the records sent after the warm-up.
    pub latency: Latency,
    /// Records acknowledged.
    pub acked: u64,
    /// Value bytes acknowledged.
    pub acked_bytes: u64,
    /// Delivery failures.
    pub errors: u64,
    /// Time of the last delivery report, since the producer's epoch.
    pub last_ack: Duration,
}

/// A producer that sends to one topic and times every record.
#[allow(missing_debug_implementations)] // ThreadedProducer is not Debug
pub struct TimedProducer {
    producer: ThreadedProducer<AckContext>,
    topic: String,
    /// Dropped to stop the interval reporter.
    reporter: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl TimedProducer {
    /// Connects a producer to `client.topic`. Every record is timed unless
    /// [`Self::time_records_sent_from`] says otherwise.
    pub fn new(client: &ClientArgs, args: &ProducerArgs) -> anyhow::Result<Self> {
        let context = AckContext {
            loud: LoudContext::default(),
            epoch: Instant::now(),
            timed_from: AtomicU64::new(0),
            acks: Mutex::new(Acks {
                latency: Latency::new(),
                acked: 0,
                acked_bytes: 0,
                errors: 0,
                last_ack: Duration::ZERO,
                window: Latency::new(),
            }),
        };
        let producer: ThreadedProducer<AckContext> = client
            .config(&args.settings())
            .create_with_context(context)
            .context("creating the producer")?;
        // Connect and learn the leaders now, so the first records do not pay for it.
        producer
            .client()
            .fetch_metadata(Some(&client.topic), Duration::from_secs(10))
            .with_context(|| format!("fetching metadata from {}", client.bootstrap))?;
        let reporter = (args.report_interval_secs > 0)
            .then(|| {
                let context = Arc::clone(producer.context());
                let interval = Duration::from_secs(args.report_interval_secs);
                let (stop, stopped) = mpsc::channel();
                std::thread::Builder::new()
                    .name("interval-report".into())
                    .spawn(move || report_intervals(&context, interval, &stopped))
                    .map(|handle| (stop, handle))
            })
            .transpose()?;
        Ok(Self { producer, topic: client.topic.clone(), reporter })
    }

    /// The instant that send times and [`Delivered::last_ack`] count from.
    pub fn epoch(&self) -> Instant {
        self.producer.context().epoch
    }

    /// Times only the records sent at or after `from` (since [`Self::epoch`]): the warm-up of
    /// an end-to-end run ends at its own start plus the warm-up, not at the producer's creation.
    pub fn time_records_sent_from(&self, from: Duration) {
        self.producer.context().timed_from.store(from.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Nanoseconds since [`Self::epoch`], as send times are kept.
    fn now_nanos(&self) -> usize {
        self.epoch().elapsed().as_nanos() as usize
    }

    /// Sends `value` to `partition`, waiting while the client's buffer is full.
    pub fn send(&self, partition: i32, value: &[u8]) -> anyhow::Result<()> {
        self.send_at(partition, value, self.now_nanos())
    }

    /// Sends `value` to `partition` with its first 8 bytes overwritten by the send time
    /// (nanoseconds since [`Self::epoch`], little-endian), for an end-to-end measurement.
    pub fn send_stamped(&self, partition: i32, value: &mut [u8]) -> anyhow::Result<()> {
        let sent = self.now_nanos();
        value[..8].copy_from_slice(&(sent as u64).to_le_bytes());
        self.send_at(partition, value, sent)
    }

    /// Sends a record first offered at `sent`: time spent waiting for room in a full client
    /// buffer counts in its latency, as it does in Kafka's ProducerPerformance.
    fn send_at(&self, partition: i32, value: &[u8], sent: usize) -> anyhow::Result<()> {
        let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(&self.topic, sent)
            .partition(partition)
            .payload(value);
        let mut full_since: Option<Instant> = None;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    let since = *full_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > QUEUE_FULL_LIMIT {
                        bail!(
                            "the client's buffer stayed full for {QUEUE_FULL_LIMIT:?}: \
                             the broker stopped acknowledging"
                        );
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
                Err((e, _)) => bail!("send to {}/{partition}: {e}", self.topic),
            }
        }
    }

    /// Waits for every record to be acknowledged or to fail, and returns what was delivered.
    pub fn finish(mut self) -> anyhow::Result<Delivered> {
        self.producer
            .flush(MESSAGE_TIMEOUT + Duration::from_secs(10))
            .context("waiting for the last acknowledgements")?;
        if let Some((stop, handle)) = self.reporter.take() {
            drop(stop);
            let _ = handle.join();
        }
        let acks = self.producer.context().acks.lock().expect("delivery callback panicked");
        Ok(Delivered {
            latency: acks.latency.clone(),
            acked: acks.acked,
            acked_bytes: acks.acked_bytes,
            errors: acks.errors,
            last_ack: acks.last_ack,
        })
    }
}

/// Prints, every `interval` until `stop` disconnects, the records acknowledged in the interval
/// and their send → ack latency.
fn report_intervals(context: &AckContext, interval: Duration, stop: &mpsc::Receiver<()>) {
    let mut acked_before = 0;
    let mut at = Instant::now();
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(interval) {
        let (acked, errors, window) = {
            let mut acks = context.acks.lock().expect("delivery callback panicked");
            (acks.acked, acks.errors, std::mem::take(&mut acks.window))
        };
        let secs = at.elapsed().as_secs_f64();
        at = Instant::now();
        let rate = (acked - acked_before) as f64 / secs;
        acked_before = acked;
        let ms = |q| window.quantile_ms(q).map_or("-".into(), |v| format!("{v:.1}"));
        context.loud.say(&format!(
            "{rate:.0} records/s acked; send→ack ms p50 {} p99 {} max {}; {errors} errors so far",
            ms(0.5),
            ms(0.99),
            window.max_ms().map_or("-".into(), |v| format!("{v:.1}")),
        ));
    }
}

/// Spaces sends out to a target rate; a rate of 0 never waits.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    per_record: Option<Duration>,
}

impl Pacer {
    /// A pacer for `records_per_sec`, starting now.
    pub fn new(records_per_sec: f64) -> Self {
        let per_record =
            (records_per_sec > 0.0).then(|| Duration::from_secs_f64(1.0 / records_per_sec));
        Self { start: Instant::now(), per_record }
    }

    /// Sleeps until record `seq` is due. A late sender does not sleep until it has caught up,
    /// so the average rate holds.
    pub fn wait(&self, seq: u64) {
        if let Some(per_record) = self.per_record {
            let due = self.start + per_record.mul_f64(seq as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
    }
}

/// `sluice-bench produce`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub topic: TopicArgs,
    #[command(flatten)]
    pub producer: ProducerArgs,
    /// Records to send.
    #[arg(long)]
    pub records: u64,
    /// Records per second to aim for (all producers together); 0 sends as fast as the
    /// clients allow.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Independent producers (each its own librdkafka client and connections, in its own
    /// thread), sharing the records: producer i sends records i, i + N, i + 2N, ...
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub producers: u32,
}

/// Sends `args.records` records round-robin over the partitions and reports throughput and
/// send → ack latency. Throughput is over the time from the first send to the last ack.
pub fn run(args: &ProduceArgs) -> anyhow::Result<Report> {
    prepare_topic(&args.client, &args.topic)?;
    let payload = Payload::new(args.producer.record_size as usize);
    let n = u64::from(args.producers);
    let mut producers = Vec::with_capacity(n as usize);
    for _ in 0..n {
        producers.push(TimedProducer::new(&args.client, &args.producer)?);
    }
    let partitions = args.topic.partitions as u64;
    let start = Instant::now();
    let pacer = Pacer::new(args.rate);
    let results: Vec<anyhow::Result<(Delivered, Instant)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = producers
            .into_iter()
            .enumerate()
            .map(|(i, producer)| {
                let (payload, pacer) = (&payload, &pacer);
                scope.spawn(move || {
                    for seq in (i as u64..args.records).step_by(n as usize) {
                        pacer.wait(seq);
                        producer.send((seq % partitions) as i32, payload.value(seq))?;
                    }
                    let epoch = producer.epoch();
                    let delivered = producer.finish()?;
                    let last = epoch + delivered.last_ack;
                    Ok((delivered, last))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("producer thread panicked")).collect()
    });
    let mut delivered = Delivered {
        latency: Latency::new(),
        acked: 0,
        acked_bytes: 0,
        errors: 0,
        last_ack: Duration::ZERO,
    };
    for result in results {
        let (d, last) = result?;
        delivered.latency.merge(&d.latency);
        delivered.acked += d.acked;
        delivered.acked_bytes += d.acked_bytes;
        delivered.errors += d.errors;
        delivered.last_ack = delivered.last_ack.max(last.saturating_duration_since(start));
    }
    let mut report =
        Report::new("produce", &args.client.bootstrap, &args.client.topic, args.topic.partitions)
            .with_throughput(delivered.acked, delivered.acked_bytes, delivered.last_ack)
            .with_latency(&delivered.latency);
    report.record_size = payload.record_size();
    report.acks = Some(args.producer.acks.clone());
    report.errors = delivered.errors;
    Ok(report)
}
