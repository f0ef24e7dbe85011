//! The web console: pages compiled into the binary, and the JSON API under `/api/v1/` that the
//! pages use and scripts can use too (docs/console.md; the design is docs/console-design.md).
//!
//! Every broker serves the whole console. What its own metadata image holds it answers
//! itself; what only another broker knows (a partition leader's offsets, a coordinator's
//! groups) it asks that broker's `/api/v1/local/*` ([`peers`]). A background task
//! ([`run`]) keeps per-topic sizes and rates and each coordinated group's lag history, so a
//! request never walks every partition.

mod actions;
mod assets;
pub mod messages;
pub mod peers;
pub mod read;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::http::{Request, Response};
use crate::metadata::image::PartitionCounts;
use crate::metrics::TopicLabels;
use crate::server::Broker;

/// How often sizes, rates and lag are sampled.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Lag samples kept per group: 10 minutes at [`INTERVAL`].
pub const LAG_SAMPLES: usize = 60;
/// Most items of one page.
const MAX_PAGE: usize = 500;

/// An API error: HTTP status, Kafka-style error name, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleError {
    pub status: u16,
    pub name: String,
    pub message: String,
}

pub fn error(status: u16, name: &str, message: impl Into<String>) -> ConsoleError {
    ConsoleError { status, name: name.to_string(), message: message.into() }
}

impl ConsoleError {
    fn response(&self) -> Response {
        Response::json(self.status, &json!({ "error": self.name, "message": self.message }))
    }
}

/// `?limit=`, at most [`MAX_PAGE`].
pub fn page_limit(req: &Request, default: usize) -> Result<usize, ConsoleError> {
    match req.query("limit") {
        None => Ok(default),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(error(400, "INVALID_REQUEST", format!("limit must be 1 to {MAX_PAGE}"))),
        },
    }
}

/// Percent-encodes `s` for a path segment or query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Names for a comma-separated query value (topic names hold no commas).
pub fn encode_list(names: &[&str]) -> String {
    names.iter().map(|n| encode(n)).collect::<Vec<_>>().join(",")
}

/// A member's assignment as `[{topic, partitions}]` when the group uses the consumer
/// protocol (Kafka's `ConsumerProtocolAssignment`), `null` otherwise or when it does not parse.
pub fn assignment(protocol_type: &str, bytes: &[u8]) -> Value {
    if protocol_type != "consumer" || bytes.is_empty() {
        return Value::Null;
    }
    crate::group::coordinator::assigned_partitions(bytes).map_or(Value::Null, |topics| {
        Value::Array(
            topics.into_iter().map(|(t, ps)| json!({ "topic": t, "partitions": ps })).collect(),
        )
    })
}

/// Per-topic figures of this broker, refreshed every [`INTERVAL`].
#[derive(Debug, Default)]
pub struct Stats {
    pub refreshed_at_ms: i64,
    /// Bytes of every log hosted here.
    pub log_bytes: u64,
    pub topics: HashMap<String, TopicStats>,
}

#[derive(Debug, Default, Clone)]
pub struct TopicStats {
    /// Bytes of the partitions this broker leads.
    pub led_bytes: u64,
    pub bytes_in_per_s: f64,
    pub bytes_out_per_s: f64,
    pub messages_in_per_s: f64,
}

/// Counter readings by topic: `(bytes in, bytes out, messages in)`.
type Counters = HashMap<String, (u64, u64, u64)>;

/// What the console keeps between requests.
#[derive(Debug, Default)]
pub struct ConsoleState {
    stats: Mutex<Arc<Stats>>,
    /// The counters at the last refresh: `(bytes in, bytes out, messages in)` by topic.
    counters: Mutex<(i64, Counters)>,
    /// `(time ms, total lag)` of each group coordinated here, oldest first.
    lag: Mutex<HashMap<String, VecDeque<(i64, i64)>>>,
    /// The partition counts of the image with this applied index.
    counts: Mutex<Option<(u64, PartitionCounts)>>,
}

impl ConsoleState {
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The partition counts of `image`, computed once per image.
    pub fn counts(&self, image: &crate::metadata::ClusterImage) -> PartitionCounts {
        let mut cached = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        match *cached {
            Some((index, counts)) if index == image.applied_index => counts,
            _ => {
                let counts = image.partition_counts();
                *cached = Some((image.applied_index, counts));
                counts
            }
        }
    }

    pub fn lag_history(&self, group: &str) -> Value {
        let lag = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        let samples: Vec<Value> =
            lag.get(group).into_iter().flatten().map(|(t, l)| json!([t, l])).collect();
        json!({ "interval_ms": INTERVAL.as_millis() as u64, "samples": samples })
    }
}

/// Samples sizes, rates and group lag every [`INTERVAL`] until shutdown.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    loop {
        refresh(&broker);
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

fn refresh(broker: &Broker) {
    let now = crate::replica::now_ms();
    let node = broker.node_id();
    let mut topics: HashMap<String, TopicStats> = HashMap::new();
    let mut log_bytes = 0;
    for p in broker.replicas.all() {
        let size = p.log.lock().unwrap_or_else(|e| e.into_inner()).size_bytes();
        log_bytes += size;
        let entry = topics.entry(p.tp.topic.clone()).or_default();
        if p.state().leader == node {
            entry.led_bytes += size;
        }
    }
    let image = broker.metadata.image();
    let mut counters = HashMap::new();
    let read = |family: &prometheus_client::metrics::family::Family<TopicLabels, _>,
                topic: &str| {
        family.get(&TopicLabels { topic: topic.to_string() }).map_or(0, |c| {
            let c: &prometheus_client::metrics::counter::Counter = &c;
            c.get()
        })
    };
    for name in image.topics.keys() {
        let now_counts = (
            read(&broker.metrics.bytes_in, name),
            read(&broker.metrics.bytes_out, name),
            read(&broker.metrics.messages_in, name),
        );
        counters.insert(name.clone(), now_counts);
    }
    {
        let mut last = broker.console.counters.lock().unwrap_or_else(|e| e.into_inner());
        let seconds = (now - last.0) as f64 / 1000.0;
        if last.0 > 0 && seconds > 0.0 {
            for (name, (bi, bo, mi)) in &counters {
                let (pbi, pbo, pmi) = last.1.get(name).copied().unwrap_or_default();
                let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / seconds;
                let entry = topics.entry(name.clone()).or_default();
                entry.bytes_in_per_s = rate(*bi, pbi);
                entry.bytes_out_per_s = rate(*bo, pbo);
                entry.messages_in_per_s = rate(*mi, pmi);
            }
        }
        *last = (now, counters);
    }
    *broker.console.stats.lock().unwrap_or_else(|e| e.into_inner()) =
        Arc::new(Stats { refreshed_at_ms: now, log_bytes, topics });

    let remote = broker.remote_hw.snapshot();
    let snapshots = broker.groups.snapshots();
    let mut lag = broker.console.lag.lock().unwrap_or_else(|e| e.into_inner());
    let coordinated: std::collections::HashSet<&str> =
        snapshots.iter().map(|s| s.group_id.as_str()).collect();
    lag.retain(|id, _| coordinated.contains(id.as_str()));
    for s in snapshots {
        // Only complete totals: a partition whose HW is not known yet would make a dip.
        let lags = crate::server::lag::group_lag(&broker.replicas, &remote, &s.offsets);
        let Some(total) =
            crate::server::lag::total_lag(&lags).filter(|_| lags.iter().all(|l| l.hw.is_some()))
        else {
            continue;
        };
        let samples = lag.entry(s.group_id).or_default();
        if samples.len() == LAG_SAMPLES {
            samples.pop_front();
        }
        samples.push_back((now, total));
    }
}

/// Whether `host` (a `Host` header) names this cluster: an IP address, `localhost`, a
/// registered broker's host, a Kubernetes Service or pod name (`*.svc`, `*.svc.cluster.local`)
/// or one of `allowed` (`console.allowed.hosts`). A page served from any other name reached
/// this port through DNS rebinding, and gets no data.
fn host_allowed(image: &crate::metadata::ClusterImage, allowed: &[String], host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => {
            return v6.split(']').next().is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => host.rsplit_once(':').map_or(host, |(h, _)| h).to_ascii_lowercase(),
    };
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || name.ends_with(".svc")
        || name.ends_with(".svc.cluster.local")
        || allowed.contains(&name)
        || image.brokers.values().any(|b| b.host.eq_ignore_ascii_case(&name))
}

/// Answers `/` and everything under `/assets/` and `/api/v1/`.
pub async fn route(broker: &Arc<Broker>, req: &Request) -> Response {
    let path = req.path();
    if let Some(r) = assets::serve(req, &path) {
        return r;
    }
    let host = req.header("host").unwrap_or("");
    let image = broker.metadata.image();
    if path.first() == Some(&"api")
        && !host_allowed(&image, &broker.config.console_allowed_hosts, host)
    {
        let message =
            format!("the console does not answer for host {host}: add it to console.allowed.hosts");
        return error(403, "FORBIDDEN", message).response();
    }
    let answer = match (req.method.as_str(), path.as_slice()) {
        ("GET", ["api", "v1", rest @ ..]) => get(broker, req, rest).await.map(|v| (200, v)),
        (method, ["api", "v1", rest @ ..]) => act(broker, req, method, rest).await,
        ("GET", _) => return Response::not_found(),
        _ => return Response::text(405, "method not allowed\n"),
    };
    match answer {
        Ok((status, v)) => Response::json(status, &v),
        Err(e) => e.response(),
    }
}

async fn act(
    broker: &Broker,
    req: &Request,
    method: &str,
    path: &[&str],
) -> Result<(u16, Value), ConsoleError> {
    let known = matches!(
        (method, path),
        ("POST", ["topics"])
            | ("POST", ["topics", _, "partitions" | "configs"])
            | ("DELETE", ["topics", _])
            | ("POST", ["groups", _, "reset-offsets"])
    );
    if !known {
        let path = path.join("/");
        return Err(error(405, "METHOD_NOT_ALLOWED", format!("no {method} on /api/v1/{path}")));
    }
    actions::check(broker, req)?;
    let answer = match (method, path) {
        ("POST", ["topics"]) => actions::create_topic(broker, req).await,
        ("POST", ["topics", name, "partitions"]) => {
            actions::add_partitions(broker, name, req).await
        }
        ("POST", ["topics", name, "configs"]) => actions::alter_configs(broker, name, req).await,
        ("DELETE", ["topics", name]) => actions::delete_topic(broker, name).await,
        ("POST", ["groups", id, "reset-offsets"]) => actions::reset_offsets(broker, id, req).await,
        _ => unreachable!("checked above"),
    };
    let outcome = match &answer {
        Ok((status, v)) => format!("{status} {}", v["results"]),
        Err(e) => format!("{} {}", e.status, e.name),
    };
    tracing::info!(%method, path = %path.join("/"), %outcome, "console action");
    answer
}

async fn get(broker: &Broker, req: &Request, path: &[&str]) -> Result<Value, ConsoleError> {
    match path {
        ["cluster"] => Ok(read::cluster(broker).await),
        ["topics"] => read::topics(broker, req).await,
        ["topics", name] => read::topic(broker, name),
        ["topics", name, "partitions"] => read::partitions(broker, name, req).await,
        ["topics", name, "messages"] => messages::messages(broker, name, req).await,
        ["groups"] => read::groups(broker, req).await,
        ["groups", id] => read::group(broker, id).await,
        ["local", "broker"] => Ok(read::local_broker(broker)),
        ["local", "topics"] => {
            let names: Vec<&str> =
                req.query("names").unwrap_or("").split(',').filter(|n| !n.is_empty()).collect();
            Ok(read::local_topics(broker, &names))
        }
        ["local", "partitions"] => {
            let topic = req
                .query("topic")
                .ok_or_else(|| error(400, "INVALID_REQUEST", "topic is required"))?;
            let ids = req
                .query("ids")
                .unwrap_or("")
                .split(',')
                .filter(|i| !i.is_empty())
                .map(|i| i.parse::<i32>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| error(400, "INVALID_REQUEST", "ids are partition numbers"))?;
            Ok(json!({ "items": read::local_partition_list(broker, topic, &ids) }))
        }
        ["local", "messages", topic] => messages::local_messages(broker, topic, req),
        ["local", "groups"] => Ok(json!({ "items": read::local_groups(broker)? })),
        ["local", "groups", id] => read::local_group(broker, id),
        _ => Err(error(404, "NOT_FOUND", format!("no such API: /api/v1/{}", path.join("/")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_consumer_assignments() {
        // version 1, one topic "ab" with partitions 0 and 2, empty user data
        let bytes = [
            0, 1, 0, 0, 0, 1, 0, 2, b'a', b'b', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xff,
            0xff, 0xff,
        ];
        assert_eq!(assignment("consumer", &bytes), json!([{"topic": "ab", "partitions": [0, 2]}]));
        assert_eq!(assignment("connect", &bytes), Value::Null);
        assert_eq!(assignment("consumer", &bytes[..9]), Value::Null, "cut short");
        assert_eq!(assignment("consumer", &[0, 9, 0, 0, 0, 0]), Value::Null, "unknown version");
    }

    #[test]
    fn partition_counts_are_computed_once_per_image() {
        use crate::metadata::image::{PartitionImage, TopicImage};
        let partition = |isr: Vec<i32>, leader| PartitionImage {
            replicas: vec![1, 2, 3],
            isr,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        };
        let mut image = crate::metadata::ClusterImage { applied_index: 7, ..Default::default() };
        let topic = TopicImage {
            name: "t".into(),
            id: [1; 16],
            partitions: [
                (0, partition(vec![1, 2, 3], 1)),
                (1, partition(vec![2], 2)),
                (2, partition(vec![], -1)),
            ]
            .into(),
            configs: Default::default(),
        };
        image.topics.insert("t".into(), topic);
        let state = ConsoleState::default();
        let c = state.counts(&image);
        assert_eq!((c.partitions, c.under_replicated, c.offline), (3, 2, 1));
        // The same image (by its index) is not counted again ...
        image.topics.clear();
        assert_eq!(state.counts(&image).partitions, 3);
        // ... a newer one is.
        image.applied_index = 8;
        assert_eq!(state.counts(&image).partitions, 0);
    }

    #[test]
    fn hosts_of_the_cluster_only() {
        let mut image = crate::metadata::ClusterImage::default();
        image.brokers.insert(
            1,
            crate::metadata::image::BrokerImage {
                id: 1,
                epoch: 0,
                host: "broker-0.brokers.ns".into(),
                port: 9092,
                rack: None,
                fenced: false,
                incarnation: [0; 16],
                listeners: Vec::new(),
                registered_at: 0,
                admin_port: Some(9644),
            },
        );
        let allowed = vec!["console.example.com".to_string()];
        for ok in [
            "127.0.0.1:9644",
            "10.0.0.7",
            "[::1]:9644",
            "localhost:80",
            "Broker-0.brokers.ns:9644",
            "c-console.ns.svc:9644",
            "c-console.ns.svc.cluster.local",
            "console.example.com:443",
        ] {
            assert!(host_allowed(&image, &allowed, ok), "{ok}");
        }
        for bad in
            ["", "evil.example:9644", "localhost.evil.example", "[evil]:1", "svc.evil.example"]
        {
            assert!(!host_allowed(&image, &allowed, bad), "{bad}");
        }
    }

    #[test]
    fn encodes_for_urls() {
        assert_eq!(encode("a b/c%é"), "a%20b%2Fc%25%C3%A9");
        assert_eq!(encode_list(&["t-1", "t.2"]), "t-1,t.2");
    }
}
