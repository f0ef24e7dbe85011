//! `sluice-bench`: command-line entry point; the workloads live in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_bench::{consume, e2e, produce};

/// Load generator for Kafka-compatible brokers (librdkafka client).
///
/// Each run prints a one-line summary and a `RESULT {json}` line; it exits 1 if any record
/// failed, 2 if the run could not be carried out.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce records as fast as the client allows (or at --rate) and time each send → ack.
    Produce(produce::ProduceArgs),
    /// Read records from the beginning of a topic's partitions (assign mode, no commits).
    Consume(consume::ConsumeArgs),
    /// Produce at a fixed rate while consuming, and time each record from send to consumer.
    E2e(e2e::E2eArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::E2e(args) => e2e::run(args),
    };
    match result {
        Ok(report) => {
            println!("{}", report.summary());
            println!("{}", report.result_line());
            if report.errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("sluice-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}
