//! `sluice dev --nodes N`: an N-node cluster on loopback from one command, for trying failover
//! on a laptop. Each node is a separate `sluice start --config FILE` process (so one can be
//! killed and restarted by hand), with its properties file and data under one directory:
//! `<data>/node-<id>.properties` and `<data>/node-<id>/`. Node `i` listens for clients on
//! `base + i - 1` (9092, 9093, ... by default), for the quorum on `base + 100 + i - 1`, and for
//! admin HTTP on `admin base + i - 1`; base port 0 picks free ports (`ports`), and should a
//! node find a picked port taken before the cluster is ready, the cluster starts again on new
//! ones (the voters find each other through their configuration, whatever ports the metadata
//! log remembers). Their log lines are prefixed with `[node i]`. Ctrl-C (or SIGTERM) stops
//! every node cleanly; a node that dies is reported with the command that restarts it.
//!
//! What the command was given beyond the nodes' own settings ([`Passed`]) reaches every node:
//! the `--config` file's lines head each node's properties file, copied as written (so config
//! provider references resolve in the node, and no secret is written out), and the `--set`
//! values are each node's `--set` arguments. Keys that make each node itself
//! (`config::NODE_KEYS`: `node.id`, listeners, `log.dirs`, ...) are the command's to choose.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sluice_broker::config::{self, BrokerConfig};

/// How long a stopping cluster waits for its nodes before killing them.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// The settings a node takes from the command: the `--config` file's text and the `--set`
/// values (`key=value`).
#[derive(Debug, Default)]
pub struct Passed {
    pub file: Option<String>,
    pub sets: Vec<String>,
}

struct Node {
    id: usize,
    config_file: PathBuf,
    child: Option<Child>,
}

fn port_or_free(base: u16, offset: u16) -> Result<u16> {
    if base == 0 {
        Ok(sluice_broker::ports::free_loopback_port()?)
    } else {
        base.checked_add(offset).context("port out of range")
    }
}

/// The cluster id kept in `<data>/cluster.id`, generated on the first run.
fn cluster_id(dir: &Path) -> Result<String> {
    let path = dir.join("cluster.id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        return Ok(id.trim().to_string());
    }
    let id = sluice_broker::metadata::image::uuid_to_string(uuid::Uuid::new_v4().as_bytes());
    std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

/// How many times a cluster on picked ports (base port 0) starts again on new ones when a
/// node finds a port taken before the cluster is ready.
const ATTEMPTS: usize = 3;

/// Runs the cluster until `stop` (SIGINT or SIGTERM, installed on `runtime`) resolves.
pub fn run(
    config: &BrokerConfig,
    passed: &Passed,
    nodes: usize,
    runtime: &tokio::runtime::Runtime,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    if !(1..=9).contains(&nodes) || nodes % 2 == 0 {
        bail!("--nodes must be 1, 3, 5, 7 or 9 (an odd number of voters), not {nodes}");
    }
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let listener = config.net.client_listeners().next().context("no client listener")?;
    let host = if listener.host.is_empty() { "127.0.0.1" } else { listener.host.as_str() };
    let (base, admin_base) = (listener.port, config.admin_listen.port());
    let cluster_id = cluster_id(dir)?;
    let exe = std::env::current_exe().context("locating the sluice binary")?;
    let (own, sets): (Vec<&String>, Vec<&String>) = passed.sets.iter().partition(|kv| {
        kv.split_once('=').is_some_and(|(k, _)| config::NODE_KEYS.contains(&k.trim()))
    });
    for kv in own {
        eprintln!("--set {kv}: not passed to the nodes, each has its own (see node-N.properties)");
    }
    let head = passed.file.as_deref().map_or(String::new(), |text| {
        format!("# From the --config file of `sluice dev`:\n{text}\n# The node's own:\n")
    });
    let admin_host = config.admin_listen.ip();
    let layout = Layout { nodes, dir, host, admin_host, cluster_id, exe, head, sets };
    let mut stop = std::pin::pin!(stop);
    for number in 1..=ATTEMPTS {
        let mut ports = Vec::new();
        for i in 0..nodes as u16 {
            ports.push((
                port_or_free(base, i)?,
                port_or_free(if base == 0 { 0 } else { base + 100 }, i)?,
                port_or_free(admin_base, i)?,
            ));
        }
        let picked = base == 0 || admin_base == 0;
        let may_retry = picked && number < ATTEMPTS;
        let mut attempt = layout.launch(&ports)?;
        let outcome = supervise(&layout, &mut attempt, may_retry, runtime, &mut stop);
        stop_all(&mut attempt.running);
        match outcome {
            Outcome::Stopped => return Ok(()),
            Outcome::AllExited => bail!("every node has exited"),
            Outcome::PortTaken(id) => eprintln!(
                "node {id} found its port taken before the cluster was ready; starting \
                 again on newly picked ports (attempt {} of {ATTEMPTS})",
                number + 1
            ),
        }
    }
    unreachable!("the last attempt does not start again")
}

/// What every attempt's nodes share.
struct Layout<'a> {
    nodes: usize,
    dir: &'a Path,
    host: &'a str,
    admin_host: std::net::IpAddr,
    cluster_id: String,
    exe: PathBuf,
    /// The `--config` file's lines, heading each node's properties.
    head: String,
    /// The `--set` values passed to each node.
    sets: Vec<&'a String>,
}

/// What a node's output tells the command.
enum Event {
    /// It printed `sluice ready ...`.
    Ready,
    /// It could not bind a port (another process took it).
    PortTaken,
    /// Its error output ended (it exited).
    Closed,
}

/// The events of one attempt so far.
#[derive(Default)]
struct Seen {
    ready: usize,
    taken: Vec<usize>,
    closed: Vec<usize>,
}

impl Seen {
    fn note(&mut self, (id, event): (usize, Event)) {
        match event {
            Event::Ready => self.ready += 1,
            Event::PortTaken => self.taken.push(id),
            Event::Closed => self.closed.push(id),
        }
    }
}

/// One start of the nodes on one set of ports.
struct Attempt {
    running: Vec<Node>,
    events: mpsc::Receiver<(usize, Event)>,
    /// The nodes' client addresses, comma-separated.
    bootstrap: String,
}

/// How an attempt ended.
enum Outcome {
    /// Ctrl-C or SIGTERM.
    Stopped,
    AllExited,
    /// Node `id` exited before the cluster was ready because a port was taken.
    PortTaken(usize),
}

impl Layout<'_> {
    /// Writes each node's properties file and starts the nodes on `ports` (client, controller,
    /// admin per node).
    fn launch(&self, ports: &[(u16, u16, u16)]) -> Result<Attempt> {
        let (nodes, dir, host, admin_host, head) =
            (self.nodes, self.dir, self.host, self.admin_host, &self.head);
        let voters: Vec<String> =
            ports.iter().enumerate().map(|(i, p)| format!("{}@{host}:{}", i + 1, p.1)).collect();
        let (events_tx, events) = mpsc::channel();
        let mut running = Vec::new();
        for (i, (kafka, controller, admin)) in ports.iter().enumerate() {
            let id = i + 1;
            let data = dir.join(format!("node-{id}"));
            let config_file = dir.join(format!("node-{id}.properties"));
            let props = format!(
                "# Written by `sluice dev --nodes {nodes}`.\n{head}node.id={id}\n\
                 process.roles=broker,controller\n\
                 listeners=PLAINTEXT://{host}:{kafka},CONTROLLER://{host}:{controller}\n\
                 controller.listener.names=CONTROLLER\ncontroller.quorum.voters={}\n\
                 cluster.id={}\nlog.dirs={}\nadmin.listener={}\n",
                voters.join(","),
                self.cluster_id,
                data.display(),
                SocketAddr::new(admin_host, *admin)
            );
            std::fs::write(&config_file, props)
                .with_context(|| format!("writing {}", config_file.display()))?;
            let child = spawn(&self.exe, id, &config_file, &self.sets, events_tx.clone())?;
            running.push(Node { id, config_file, child: Some(child) });
        }
        for (i, (kafka, controller, admin)) in ports.iter().enumerate() {
            let pid = running[i].child.as_ref().map_or(0, Child::id);
            println!(
                "node {}: kafka {host}:{kafka}  controller {host}:{controller}  admin {}  pid {pid}",
                i + 1,
                SocketAddr::new(admin_host, *admin)
            );
        }
        println!("data under {}, cluster.id {}", dir.display(), self.cluster_id);
        let bootstrap = ports.iter().map(|p| format!("{host}:{}", p.0)).collect::<Vec<_>>();
        Ok(Attempt { running, events, bootstrap: bootstrap.join(",") })
    }
}

/// Reports the cluster ready once every node is, and each node that exits with the command
/// that restarts it, until `stop` resolves or every node has exited. With `may_retry`, a node
/// that exits for a taken port before the cluster is ready ends the attempt instead.
fn supervise(
    layout: &Layout,
    attempt: &mut Attempt,
    may_retry: bool,
    runtime: &tokio::runtime::Runtime,
    stop: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Outcome {
    let mut seen = Seen::default();
    let mut announced = false;
    loop {
        while let Ok(event) = attempt.events.try_recv() {
            seen.note(event);
        }
        if seen.ready == layout.nodes && !announced {
            announced = true;
            println!("sluice cluster ready bootstrap={}", attempt.bootstrap);
        }
        for node in &mut attempt.running {
            let Some(child) = node.child.as_mut() else { continue };
            let Ok(Some(status)) = child.try_wait() else { continue };
            node.child = None;
            if may_retry && !announced {
                // Its last lines may still be on their way.
                let deadline = Instant::now() + Duration::from_secs(2);
                while !seen.closed.contains(&node.id) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let Ok(event) = attempt.events.recv_timeout(left) else { break };
                    seen.note(event);
                }
                if seen.taken.contains(&node.id) {
                    return Outcome::PortTaken(node.id);
                }
            }
            let sets: String = layout.sets.iter().map(|kv| format!(" --set '{kv}'")).collect();
            eprintln!(
                "node {} exited ({status}); restart it with: {} start --config {}{sets}",
                node.id,
                layout.exe.display(),
                node.config_file.display()
            );
        }
        if attempt.running.iter().all(|n| n.child.is_none()) {
            return Outcome::AllExited;
        }
        let stopped = runtime.block_on(async {
            tokio::select! {
                _ = stop.as_mut() => true,
                _ = tokio::time::sleep(Duration::from_millis(200)) => false,
            }
        });
        if stopped {
            return Outcome::Stopped;
        }
    }
}

fn spawn(
    exe: &Path,
    id: usize,
    config: &Path,
    sets: &[&String],
    events: mpsc::Sender<(usize, Event)>,
) -> Result<Child> {
    let mut child = Command::new(exe)
        .args(["start", "--config"])
        .arg(config)
        .args(sets.iter().flat_map(|kv| ["--set", kv.as_str()]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting node {id}"))?;
    let stdout = child.stdout.take().context("piped stdout")?;
    let stderr = child.stderr.take().context("piped stderr")?;
    let ready = events.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("sluice ready ") {
                let _ = ready.send((id, Event::Ready));
            } else {
                println!("[node {id}] {line}");
            }
        }
    });
    // How the node reports a port another process holds (its error chain ends in the OS text).
    let in_use = std::io::Error::from_raw_os_error(rustix::io::Errno::ADDRINUSE.raw_os_error());
    let in_use = in_use.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&in_use) {
                let _ = events.send((id, Event::PortTaken));
            }
            eprintln!("[node {id}] {line}");
        }
        let _ = events.send((id, Event::Closed));
    });
    Ok(child)
}

/// SIGTERM to every node (each does a controlled shutdown), then waits; SIGKILL after
/// [`STOP_TIMEOUT`].
fn stop_all(nodes: &mut [Node]) {
    for node in nodes.iter() {
        if let Some(child) = &node.child {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for node in nodes.iter_mut() {
        let Some(mut child) = node.child.take() else { continue };
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    eprintln!("node {} did not stop in {STOP_TIMEOUT:?}; killing it", node.id);
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    println!("cluster stopped");
}
