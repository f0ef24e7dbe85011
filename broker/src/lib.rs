//! Sluice broker: a Kafka-compatible streaming platform.
//!
//! Layers (see `../shared/design.md` and `docs/`): `log` is the storage engine (Kafka-layout
//! segmented partition logs). The protocol server, replication, metadata quorum and consumer
//! groups build on it.

pub mod log;
