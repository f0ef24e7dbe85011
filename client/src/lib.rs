//! Sluice's Kafka-protocol client, shared by the broker and the operator: the follower
//! fetcher's Fetch requests to partition leaders, and the operator's admin calls (Metadata,
//! DescribeQuorum, topics, reassignments). It uses the same `kafka-protocol` codecs as the
//! broker's server side; there is no second codec.
//!
//! - [`KafkaConnection`]: one connection, one request at a time, every step bounded.
//! - [`Admin`]: calls to whichever broker of a bootstrap list answers, reconnecting after a
//!   failure (what Kafka's AdminClient does with `bootstrap.servers`, without its metadata
//!   cache: each call names its API version).

mod admin;
mod connection;

pub use admin::Admin;
pub use connection::{ClientError, KafkaConnection};
