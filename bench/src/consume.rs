//! The consume workload: read a number of records from the beginning of a topic's partitions,
//! in assign mode (no group membership, no commits).

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::client::{ClientArgs, LoudContext};
use crate::report::Report;

/// Consumer errors printed one by one; the rest are only counted.
const ERRORS_SHOWN: u64 = 5;

/// `sluice-bench consume`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Partitions to read: 0..N.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub partitions: i32,
    /// Records to read (over all partitions together).
    #[arg(long)]
    pub records: u64,
    /// Give up when no record arrives for this many seconds.
    #[arg(long, default_value_t = 30)]
    pub idle_timeout_secs: u64,
}

/// A consumer in assign mode. librdkafka wants a `group.id` even then; this never subscribes
/// and never commits.
pub fn assign_consumer(
    client: &ClientArgs,
    group: &str,
    positions: &[(i32, Offset)],
) -> anyhow::Result<BaseConsumer<LoudContext>> {
    let consumer: BaseConsumer<LoudContext> = client
        .config(&[
            ("group.id", group.to_owned()),
            ("enable.auto.commit", "false".into()),
            ("enable.auto.offset.store", "false".into()),
            ("auto.offset.reset", "earliest".into()),
        ])
        .create_with_context(LoudContext::default())
        .context("creating the consumer")?;
    let mut tpl = TopicPartitionList::new();
    for (partition, offset) in positions {
        tpl.add_partition_offset(&client.topic, *partition, *offset)?;
    }
    consumer.assign(&tpl).context("assigning partitions")?;
    Ok(consumer)
}

/// Reads `args.records` records from the beginning and reports throughput over the time from
/// the first record to the last (connecting and finding the partitions' start offsets is left
/// out: it is the same for any amount of data).
pub fn run(args: &ConsumeArgs) -> anyhow::Result<Report> {
    let positions: Vec<_> = (0..args.partitions).map(|p| (p, Offset::Beginning)).collect();
    let idle_timeout = Duration::from_secs(args.idle_timeout_secs);
    let consumer = assign_consumer(&args.client, "sluice-bench-consume", &positions)?;
    let (mut records, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let mut last_progress = Instant::now();
    let mut first: Option<Instant> = None;
    while records < args.records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                records += 1;
                bytes += m.payload_len() as u64;
                last_progress = Instant::now();
            }
            Some(Err(e)) => {
                errors += 1;
                if errors <= ERRORS_SHOWN {
                    consumer.context().say(&format!("consume error: {e}"));
                }
            }
            None if last_progress.elapsed() > idle_timeout => bail!(
                "read {records} of {} records, then nothing for {idle_timeout:?}",
                args.records
            ),
            None => {}
        }
    }
    let elapsed = first.map_or(Duration::ZERO, |t| t.elapsed());
    let mut report =
        Report::new("consume", &args.client.bootstrap, &args.client.topic, args.partitions)
            .with_throughput(records, bytes, elapsed);
    report.errors = errors;
    Ok(report)
}
