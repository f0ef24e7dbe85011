//! Multi-broker clusters of real `sluice` processes: N combined nodes (broker and controller)
//! on loopback, each with its own properties file, data directory and ports, all voters of one
//! metadata quorum. Node ids are 1..=N.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::BrokerProcess;

/// A port free right now on 127.0.0.1. Voters must know each other's controller ports before
/// any of them starts, so the ports are chosen up front, outside the ephemeral range that
/// clients' connections take theirs from (`sluice_broker::ports`); should another process take
/// one in between, [`Cluster::start`] starts again on new ports.
pub fn free_port() -> u16 {
    sluice_broker::ports::free_loopback_port().expect("a free loopback port")
}

/// Where one node listens, its `process.roles`, and what its command runs under
/// (`ip netns exec NS`, or nothing).
struct NodeSpec {
    kafka: String,
    controller: String,
    admin: String,
    wrap: Vec<String>,
    role: Role,
}

/// A node's `process.roles`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Combined,
    Broker,
    Controller,
}

impl Role {
    fn roles(self) -> &'static str {
        match self {
            Role::Combined => "broker,controller",
            Role::Broker => "broker",
            Role::Controller => "controller",
        }
    }

    fn is_broker(self) -> bool {
        self != Role::Controller
    }

    fn is_voter(self) -> bool {
        self != Role::Broker
    }
}

/// A running cluster.
pub struct Cluster {
    /// Nodes by index; node id = index + 1. A stopped node stays, without a process.
    pub nodes: Vec<BrokerProcess>,
    pub dir: PathBuf,
    pub cluster_id: String,
    roles: Vec<Role>,
}

impl Cluster {
    /// Starts `n` nodes in `dir` with extra properties (`key=value` lines) on every node, and
    /// waits until every one is ready (registered and unfenced). The ports are chosen before
    /// the nodes bind them, so another process may take one in between: a node that cannot
    /// start makes the whole cluster start again on new ports (three attempts).
    pub fn start(dir: &Path, n: usize, extra: &[&str]) -> Cluster {
        let mut failures = Vec::new();
        for attempt in 0..3 {
            match Self::try_start(&dir.join(format!("attempt-{attempt}")), n, extra) {
                Ok(c) => return c,
                Err(e) => failures.push(e),
            }
        }
        panic!("the cluster did not start: {failures:#?}");
    }

    fn try_start(dir: &Path, n: usize, extra: &[&str]) -> Result<Cluster, String> {
        Self::try_start_roles(dir, &vec![Role::Combined; n], extra)
    }

    /// Starts one node per entry of `roles` on loopback (node ids 1..), the voters among them
    /// (combined and controller-only nodes) forming the quorum; retries like [`Cluster::start`].
    pub fn start_roles(dir: &Path, roles: &[Role], extra: &[&str]) -> Cluster {
        let mut failures = Vec::new();
        for attempt in 0..3 {
            match Self::try_start_roles(&dir.join(format!("attempt-{attempt}")), roles, extra) {
                Ok(c) => return c,
                Err(e) => failures.push(e),
            }
        }
        panic!("the cluster did not start: {failures:#?}");
    }

    fn try_start_roles(dir: &Path, roles: &[Role], extra: &[&str]) -> Result<Cluster, String> {
        let specs = roles
            .iter()
            .map(|&role| NodeSpec {
                kafka: format!("127.0.0.1:{}", free_port()),
                controller: format!("127.0.0.1:{}", free_port()),
                admin: "127.0.0.1:0".into(),
                wrap: Vec::new(),
                role,
            })
            .collect();
        Self::launch(dir, specs, extra)
    }

    /// Starts `n` nodes, node `id` in network namespace `net.node_ns(id)` at
    /// `10.213.0.<id>` (fixed ports: each namespace has its own). Clients must run in
    /// `net.client(...)`.
    pub fn start_in(net: &super::netns::Net, dir: &Path, n: usize, extra: &[&str]) -> Cluster {
        let specs = (1..=n)
            .map(|id| {
                let ip = super::netns::node_ip(id);
                NodeSpec {
                    kafka: format!("{ip}:9092"),
                    controller: format!("{ip}:9093"),
                    admin: format!("{ip}:9644"),
                    wrap: ["ip", "netns", "exec", &net.node_ns(id)].map(String::from).to_vec(),
                    role: Role::Combined,
                }
            })
            .collect();
        Self::launch(dir, specs, extra).unwrap_or_else(|e| panic!("the cluster did not start: {e}"))
    }

    fn launch(dir: &Path, specs: Vec<NodeSpec>, extra: &[&str]) -> Result<Cluster, String> {
        let voters: Vec<String> = specs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.role.is_voter())
            .map(|(i, s)| format!("{}@{}", i + 1, s.controller))
            .collect();
        let cluster_id = "c2x1aWNlLXRlc3QtY2x1cw".to_string();
        let level = std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let mut launches = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let id = i + 1;
            let data = dir.join(format!("node-{id}"));
            std::fs::create_dir_all(&data).unwrap();
            let listeners = match spec.role {
                Role::Combined => {
                    format!("PLAINTEXT://{},CONTROLLER://{}", spec.kafka, spec.controller)
                }
                Role::Broker => format!("PLAINTEXT://{}", spec.kafka),
                Role::Controller => format!("CONTROLLER://{}", spec.controller),
            };
            let mut props = format!(
                "node.id={id}\nprocess.roles={}\nlisteners={listeners}\n\
                 controller.listener.names=CONTROLLER\ncontroller.quorum.voters={}\n\
                 cluster.id={cluster_id}\nlog.dirs={}\nadmin.listener={}\n",
                spec.role.roles(),
                voters.join(","),
                data.display(),
                spec.admin,
            );
            for line in extra {
                props.push_str(line);
                props.push('\n');
            }
            let file = dir.join(format!("node-{id}.properties"));
            std::fs::write(&file, props).unwrap();
            let sluice = env!("CARGO_BIN_EXE_sluice").to_string();
            let mut command = spec.wrap.clone();
            command.extend([sluice, "start".into(), "--config".into(), file.display().to_string()]);
            let (program, args) = command.split_first().expect("a command");
            let launch =
                BrokerProcess::launch(program, &data, args.to_vec(), Vec::new(), level.clone());
            launches.push((launch, command.clone()));
        }
        let mut nodes = Vec::new();
        let mut failed = None;
        for (launch, command) in launches {
            match launch.try_ready() {
                Ok(p) => nodes.push(p.relaunch_with(command)),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        match failed {
            None => Ok(Cluster {
                nodes,
                dir: dir.to_path_buf(),
                cluster_id,
                roles: specs.iter().map(|s| s.role).collect(),
            }),
            Some(e) => {
                for mut node in nodes {
                    node.kill9();
                }
                Err(e)
            }
        }
    }

    /// Node `id` (1-based).
    pub fn node(&self, id: i32) -> &BrokerProcess {
        &self.nodes[id as usize - 1]
    }

    pub fn node_mut(&mut self, id: i32) -> &mut BrokerProcess {
        &mut self.nodes[id as usize - 1]
    }

    /// Ids of the nodes with a running process.
    pub fn running(&self) -> Vec<i32> {
        (1..=self.nodes.len() as i32).filter(|&id| self.node(id).child.is_some()).collect()
    }

    /// Bootstrap servers: every running node.
    pub fn bootstrap(&self) -> String {
        let addrs: Vec<String> =
            self.running().iter().map(|&id| self.node(id).bootstrap()).collect();
        addrs.join(",")
    }

    /// Node `id`'s applied metadata image (`/debug/metadata`).
    pub fn image(&self, id: i32) -> serde_json::Value {
        let (status, body) = self.node(id).http_get("/debug/metadata");
        assert!(status.contains("200"), "{status}");
        serde_json::from_str(&body).expect("metadata image JSON")
    }

    /// Waits (at most `timeout`) until `check` holds for the images of every running node;
    /// panics with `what` and the last images otherwise.
    pub fn wait_for_images(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&BTreeMap<i32, serde_json::Value>) -> bool,
    ) -> BTreeMap<i32, serde_json::Value> {
        self.wait_for_images_on(&self.running(), what, timeout, check)
    }

    /// [`Cluster::wait_for_images`] on the nodes `ids` only.
    pub fn wait_for_images_on(
        &self,
        ids: &[i32],
        what: &str,
        timeout: Duration,
        check: impl Fn(&BTreeMap<i32, serde_json::Value>) -> bool,
    ) -> BTreeMap<i32, serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let images: BTreeMap<i32, serde_json::Value> =
                ids.iter().map(|&id| (id, self.image(id))).collect();
            if check(&images) {
                return images;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; images: {images:#?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every running node applied the same metadata (the same index and image).
    pub fn wait_converged(&self, timeout: Duration) -> serde_json::Value {
        let images = self.wait_for_images("the nodes' metadata to converge", timeout, |images| {
            let mut values = images.values();
            let first = values.next().expect("a running node");
            values.all(|v| v == first)
        });
        images.into_values().next().unwrap()
    }
}

/// `image["brokers"][id]`.
pub fn broker(image: &serde_json::Value, id: i32) -> &serde_json::Value {
    &image["brokers"][id.to_string()]
}

/// `image["topics"][topic]["partitions"][p]`.
pub fn partition<'a>(image: &'a serde_json::Value, topic: &str, p: i32) -> &'a serde_json::Value {
    &image["topics"][topic]["partitions"][p.to_string()]
}

/// Each partition's leader of `topic` in an image.
pub fn leaders(image: &serde_json::Value, topic: &str) -> BTreeMap<i32, i64> {
    image["topics"][topic]["partitions"]
        .as_object()
        .expect("partitions")
        .iter()
        .map(|(p, v)| (p.parse().unwrap(), v["leader"].as_i64().unwrap()))
        .collect()
}

/// The active controller in an image.
pub fn controller(image: &serde_json::Value) -> i32 {
    image["controller_id"].as_i64().unwrap() as i32
}

/// Sends `value` to `partition` of `topic` and waits for the answer: the offset, or why not.
pub fn send_to(
    p: &rdkafka::producer::FutureProducer,
    topic: &str,
    partition: i32,
    value: &str,
) -> Result<i64, String> {
    let record =
        rdkafka::producer::FutureRecord::<(), str>::to(topic).partition(partition).payload(value);
    futures::executor::block_on(p.send(record, Duration::from_secs(30)))
        .map(|d| d.offset)
        .map_err(|(e, _)| e.to_string())
}

/// Reads `partition` of `topic` from its start through `bootstrap` until `n` records came
/// (at most 30 s), by assignment; answers their values.
pub fn read_partition(bootstrap: &str, topic: &str, partition: i32, n: usize) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, rdkafka::Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(Instant::now() < deadline, "read {} of {n} records", out.len());
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    out
}
