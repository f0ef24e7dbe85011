//! The `sluice` binary: thin command-line front end over the `sluice_broker` library.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sluice_broker::log::batch::{BatchIter, BatchView};

#[derive(Parser, Debug)]
#[command(name = "sluice", version, about = "Sluice: a Kafka-compatible streaming platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Prints the record batches of `.log` segment files (like Kafka's kafka-dump-log), checking
    /// each batch's CRC. Exits non-zero at the first invalid batch.
    DumpLog {
        /// Segment files (`00000000000000000000.log`) or partition directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::DumpLog { paths } => dump_log(&paths),
    }
}

fn dump_log(paths: &[PathBuf]) -> Result<()> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut logs: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect();
            logs.sort();
            files.extend(logs);
        } else {
            files.push(p.clone());
        }
    }
    for file in files {
        println!("Dumping {}", file.display());
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        for item in BatchIter::new(&bytes, true) {
            let (position, view): (usize, BatchView<'_>) =
                item.with_context(|| format!("invalid batch in {}", file.display()))?;
            println!(
                "baseOffset: {} lastOffset: {} count: {} baseSequence: {} producerId: {} \
                 producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} isControl: {} \
                 position: {} CreateTime: {} size: {} magic: 2 compresscodec: {:?} crc: {} \
                 isvalid: true",
                view.base_offset(),
                view.last_offset(),
                view.records_count(),
                view.base_sequence(),
                view.producer_id(),
                view.producer_epoch(),
                view.partition_leader_epoch(),
                view.is_transactional(),
                view.is_control(),
                position,
                view.max_timestamp(),
                view.size(),
                view.compression()?,
                view.crc(),
            );
        }
    }
    Ok(())
}
