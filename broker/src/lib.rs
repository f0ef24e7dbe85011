//! Sluice broker: a Kafka-compatible streaming platform.
//!
//! Layers, top down (see `docs/`): [`server`] (listener, connections, start-up and shutdown),
//! [`api`] (one module per Kafka API family; the only place that knows wire versions and error
//! codes), [`replica`] (partitions hosted here), [`metadata`] (the openraft quorum and the
//! cluster image), [`group`] (the consumer group coordinator), [`log`] (the Kafka-layout storage
//! engine), with [`config`], [`metrics`], [`http`] (admin endpoint), [`fsutil`] and [`zero_copy`]
//! (log file ranges sent to sockets) beside them;
//! the Kafka-protocol client brokers use to reach each other (follower fetch) is the
//! `sluice-client` crate, which the operator uses too.

pub mod api;
pub mod config;
pub mod console;
pub mod fsutil;
pub mod group;
pub mod http;
pub mod log;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod ports;
pub mod replica;
pub mod server;
pub mod zero_copy;
