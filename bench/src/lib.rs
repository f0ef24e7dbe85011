//! `sluice-bench`: a load generator for any Kafka-compatible broker, built on librdkafka (the
//! `rdkafka` crate), so the figures are what a real client sees.
//!
//! Three workloads, each bounded by a record count or a duration:
//!
//! - [`produce`]: as fast as the client allows (or at a set rate), send → acknowledgement
//!   latency of every record;
//! - [`consume`]: read a number of records from the beginning of a topic;
//! - [`e2e`]: produce at a fixed rate and consume concurrently, produce → consume latency.
//!
//! Each run ends with a [`report::Report`]: a human summary line and a `RESULT {json}` line that
//! scripts parse. Nothing here knows which broker it talks to: every workload takes a bootstrap
//! address, so the same commands measure Sluice and Apache Kafka alike.

pub mod client;
pub mod consume;
pub mod e2e;
pub mod payload;
pub mod produce;
pub mod report;
