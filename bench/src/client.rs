//! What every workload shares: where the broker is, extra librdkafka settings, a client context
//! that reports librdkafka's warnings and errors on stderr, and topic creation.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// Connection options common to every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Bootstrap address of the broker under test (host:port[,host:port...]).
    #[arg(long)]
    pub bootstrap: String,
    /// Topic to write or read.
    #[arg(long)]
    pub topic: String,
    /// Extra librdkafka property for every client, `key=value`; repeatable.
    #[arg(short = 'X', long = "client-config", value_name = "KEY=VALUE", value_parser = parse_kv)]
    pub client_config: Vec<(String, String)>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

impl ClientArgs {
    /// A librdkafka configuration with the bootstrap address and the `-X` properties; the
    /// `-X` properties are applied last, so they override what a workload sets.
    pub fn config(&self, settings: &[(&str, String)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in settings {
            c.set(*k, v);
        }
        for (k, v) in &self.client_config {
            c.set(k, v);
        }
        c
    }
}

/// A client context that prints librdkafka's warnings and errors to stderr with the time since
/// the client started, so a broker that drops connections or stalls shows up next to the figures.
#[derive(Debug)]
pub struct LoudContext {
    started: Instant,
}

impl Default for LoudContext {
    fn default() -> Self {
        Self { started: Instant::now() }
    }
}

impl LoudContext {
    /// Prints one diagnostic line.
    pub fn say(&self, what: &str) {
        eprintln!("[{:8.3}s] {what}", self.started.elapsed().as_secs_f64());
    }
}

impl ClientContext for LoudContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        use RDKafkaLogLevel::{Alert, Critical, Emerg, Error, Warning};
        if matches!(level, Emerg | Alert | Critical | Error | Warning) {
            self.say(&format!("librdkafka {level:?} {fac}: {message}"));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.say(&format!("librdkafka error: {error}: {reason}"));
    }
}

impl ConsumerContext for LoudContext {}

/// Topic creation options.
#[derive(Debug, Clone, clap::Args)]
pub struct TopicArgs {
    /// Partitions to use (and to create the topic with); records go round-robin over 0..N.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub partitions: i32,
    /// Create the topic first (an existing topic is used as it is).
    #[arg(long)]
    pub create_topic: bool,
    /// Replication factor when creating the topic.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i32,
    /// A topic config (`key=value`) when creating the topic; repeatable.
    #[arg(long = "topic-config", value_parser = key_value)]
    pub topic_configs: Vec<(String, String)>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected key=value, got '{s}'"))?;
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

/// How long topic creation and metadata propagation may take.
const TOPIC_WAIT: Duration = Duration::from_secs(30);

/// Creates the topic if `args.create_topic` (an existing topic is fine), then waits until the
/// topic's metadata shows at least `args.partitions` partitions, each with a leader.
pub fn prepare_topic(client: &ClientArgs, args: &TopicArgs) -> anyhow::Result<()> {
    // An admin client, not a consumer: a consumer's group.id would make the broker set up its
    // group coordinator in the middle of the measurement.
    let admin: AdminClient<LoudContext> = client
        .config(&[])
        .create_with_context(LoudContext::default())
        .context("creating the admin client")?;
    if args.create_topic {
        let mut topic = NewTopic::new(
            &client.topic,
            args.partitions,
            TopicReplication::Fixed(args.replication_factor),
        );
        for (key, value) in &args.topic_configs {
            topic = topic.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(TOPIC_WAIT));
        let results = block_on(admin.create_topics([&topic], &options))
            .with_context(|| format!("creating topic {} at {}", client.topic, client.bootstrap))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => bail!("creating topic {name}: {code}"),
            }
        }
    }
    let deadline = Instant::now() + TOPIC_WAIT;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match admin.inner().fetch_metadata(Some(&client.topic), Duration::from_secs(5)) {
            Ok(md) => {
                if let Some(t) = md.topics().iter().find(|t| t.name() == client.topic) {
                    let ready = t.partitions().iter().filter(|p| p.leader() >= 0).count();
                    if t.error().is_none() && ready >= args.partitions as usize {
                        return Ok(());
                    }
                    last = format!("{ready} partitions with a leader, error {:?}", t.error());
                }
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "topic {} did not show {} partitions with a leader within {TOPIC_WAIT:?} ({last}); \
         pass --create-topic to create it",
        client.topic,
        args.partitions,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_config_flags_need_a_key_and_an_equals_sign() {
        assert_eq!(parse_kv("a.b=c=d").unwrap(), ("a.b".into(), "c=d".into()));
        assert_eq!(parse_kv("k=").unwrap(), ("k".into(), String::new()));
        assert!(parse_kv("novalue").is_err());
        assert!(parse_kv("=v").is_err());
    }
}
