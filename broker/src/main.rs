//! The `sluice` binary: thin command-line front end over the `sluice_broker` library.
//!
//! `sluice dev` runs a single node with embedded defaults (Kafka on 127.0.0.1:9092, admin HTTP
//! on 127.0.0.1:9644, data in `./data`); `sluice dev --nodes 3` runs a local cluster of three
//! processes (`dev_cluster`); `sluice start --config FILE` runs with a Kafka-style properties
//! file. Flags and `SLUICE_*` environment variables override both.

mod dev_cluster;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use sluice_broker::config::BrokerConfig;
use sluice_broker::log::batch::{BatchIter, BatchView};

/// The allocator keeps memory it has used: fetch and produce buffers of up to a few MiB come and
/// go with every request, and glibc's malloc hands such sizes back to the kernel on free, so
/// each new one page-faults in afresh (a fifth of the broker's CPU on 8-partition fetches).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "sluice", version, about = "Sluice: a Kafka-compatible streaming platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text or JSON (`RUST_LOG` sets the levels, per module too).
    #[arg(long, global = true, env = "SLUICE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: sluice_broker::logging::LogFormat,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a single-node broker with development defaults, or with `--nodes N` a local cluster
    /// of N broker processes.
    Dev(DevArgs),
    /// Runs a broker from a config file, environment and flags.
    Start(BrokerArgs),
    /// Prints the record batches of `.log` segment files (like Kafka's kafka-dump-log), checking
    /// each batch's CRC. Exits non-zero at the first invalid batch.
    DumpLog {
        /// Segment files (`00000000000000000000.log`) or partition directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct DevArgs {
    /// Number of nodes (1, 3 or 5): each a separate process, all voters of one quorum, data
    /// under `<data-dir>/node-<id>`, ports counting up from `--listen` and `--admin-listen`.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    #[command(flatten)]
    broker: BrokerArgs,
}

#[derive(Args, Debug)]
struct BrokerArgs {
    /// Kafka-style properties file (`node.id=1`, `listeners=...`, `log.dirs=...`, ...).
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// `node.id`.
    #[arg(long, env = "SLUICE_NODE_ID")]
    node_id: Option<i32>,
    /// Kafka listener address (`listeners`); port 0 picks a free port.
    #[arg(long, env = "SLUICE_LISTEN")]
    listen: Option<String>,
    /// Address given to clients (`advertised.listeners`), host:port.
    #[arg(long, env = "SLUICE_ADVERTISED")]
    advertised: Option<String>,
    /// Admin HTTP address for /metrics and /health.
    #[arg(long, env = "SLUICE_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Data directory (`log.dirs`).
    #[arg(long, env = "SLUICE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// `controller.quorum.voters` (id@host:port,...).
    #[arg(long, env = "SLUICE_QUORUM_VOTERS")]
    quorum_voters: Option<String>,
    /// Any Kafka broker property, repeatable: `--set log.retention.hours=24`.
    #[arg(long = "set", value_name = "KEY=VALUE", env = "SLUICE_SET", value_delimiter = ',')]
    set: Vec<String>,
}

impl BrokerArgs {
    fn into_config(self) -> Result<BrokerConfig> {
        let mut c = BrokerConfig::default();
        if let Some(path) = &self.config {
            c.apply_file(path)?;
        }
        // Flags first, then `--set` (which wins); `apply_all` takes `config.providers*` before
        // both, so a flag may refer to a provider declared by `--set`.
        let flags = [
            ("node.id", self.node_id.map(|n| n.to_string())),
            ("listeners", self.listen),
            ("advertised.listeners", self.advertised),
            ("admin.listener", self.admin_listen),
            ("log.dirs", self.data_dir.map(|d| d.display().to_string())),
            ("controller.quorum.voters", self.quorum_voters),
        ];
        let mut settings: Vec<(String, String)> =
            flags.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))).collect();
        for kv in rejoin_set_values(&self.set) {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--set expects KEY=VALUE, got '{kv}'"))?;
            settings.push((k.trim().to_string(), v.to_string()));
        }
        c.apply_all(settings)?;
        Ok(c)
    }
}

/// `--set` items split at commas (so that `SLUICE_SET` can hold several) put back together
/// where a comma was part of a value: a piece that does not start with `KEY=` continues the
/// previous one, so `--set controller.quorum.voters=1@a:9093,2@b:9093` stays one setting.
fn rejoin_set_values(pieces: &[String]) -> Vec<String> {
    let starts_setting = |p: &str| {
        p.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
    };
    let mut out: Vec<String> = Vec::new();
    for piece in pieces {
        match out.last_mut() {
            Some(last) if !starts_setting(piece) => {
                last.push(',');
                last.push_str(piece);
            }
            _ => out.push(piece.clone()),
        }
    }
    out
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    sluice_broker::logging::init(cli.log_format, "info,openraft=off");
    match cli.command {
        Command::Dev(DevArgs { nodes, broker }) if nodes != 1 => {
            let file = match &broker.config {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read config file {}", path.display()))?,
                ),
                None => None,
            };
            let passed = dev_cluster::Passed { file, sets: rejoin_set_values(&broker.set) };
            let config = broker.into_config()?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let stop = runtime.block_on(async { stop_signal() })?;
            dev_cluster::run(&config, &passed, nodes, &runtime, stop)
        }
        Command::Dev(DevArgs { broker: args, .. }) | Command::Start(args) => {
            let config = args.into_config()?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(async {
                // Installed before start-up, so a signal that arrives while logs are recovered
                // or the quorum forms is kept and honoured as a clean shutdown once up.
                let stop = stop_signal()?;
                sluice_broker::server::run(config, stop).await
            })
        }
        Command::DumpLog { paths } => dump_log(&paths),
    }
}

/// Installs the SIGTERM and SIGINT handlers now; the future resolves on the first of them.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{rejoin_set_values, Cli, Command};

    #[test]
    fn a_flag_refers_to_a_provider_the_config_file_declares() {
        let dir = tempfile::tempdir().unwrap();
        let external = dir.path().join("external");
        std::fs::create_dir(&external).unwrap();
        std::fs::write(external.join("demo-0"), "30001\n").unwrap();
        let file = dir.path().join("server.properties");
        std::fs::write(
            &file,
            "listeners=PLAINTEXT://:9092,EXTERNAL://:9094\nconfig.providers=dir\n\
             config.providers.dir.class=\
             org.apache.kafka.common.config.provider.DirectoryConfigProvider\n",
        )
        .unwrap();
        // The broker pod's arguments once Kubernetes has put in $(HOST_IP).
        let advertised = format!(
            "PLAINTEXT://h:9092,EXTERNAL://10.1.2.3:${{dir:{}:demo-0}}",
            external.display()
        );
        let cli = Cli::try_parse_from([
            "sluice",
            "start",
            "--config",
            file.to_str().unwrap(),
            "--advertised",
            &advertised,
        ])
        .unwrap();
        let Command::Start(args) = cli.command else { panic!("not start") };
        let c = args.into_config().unwrap();
        let (host, port) = (&c.net.advertised[1].host, c.net.advertised[1].port);
        assert_eq!((host.as_str(), port), ("10.1.2.3", 30001));
    }

    #[test]
    fn set_values_keep_their_commas() {
        let pieces: Vec<String> = [
            "controller.quorum.voters=1@a:9093",
            "2@b:9093",
            "log.retention.hours=24",
            "listeners=PLAINTEXT://0.0.0.0:9092",
            "CONTROLLER://0.0.0.0:9093",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            rejoin_set_values(&pieces),
            [
                "controller.quorum.voters=1@a:9093,2@b:9093",
                "log.retention.hours=24",
                "listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093",
            ]
        );
    }
}
