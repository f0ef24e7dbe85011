//! Test harness: runs the real `sluice` binary on ephemeral loopback ports in a temp directory,
//! with bounded waits, and stops it (SIGTERM, or SIGKILL to simulate a crash) on request or drop.
//!
//! Reference mode: with `SLUICE_TEST_AGAINST=kafka`, [`BrokerProcess::start`] starts Apache
//! Kafka 4.4 instead (`scripts/lib/kafka-dist.sh`, `--set key=value` flags becoming its
//! properties), so the raw-protocol tests check their expected values against Kafka itself;
//! what only Sluice has (its metrics, logs, process) is skipped there through [`against_kafka`].
//!
//! The broker's stderr passes through a reader thread that echoes it and watches for panics: a
//! panic anywhere in the broker (even one a client would just reconnect after) fails the test
//! when the broker stops, and so does a non-zero exit on a clean stop, which is what dropping a
//! `BrokerProcess` does when the test itself did not fail.

#![allow(dead_code)]

pub mod cluster;
pub mod netns;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// An idempotent batch of `n` records as a client library encodes it.
pub fn idempotent_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> bytes::Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            sequence: seq + i as i32,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Now: producer expiry is measured from the batch timestamps, as in Kafka.
            timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64,
            key: None,
            value: Some(bytes::Bytes::from(format!("seq-{}", seq + i as i32))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions { version: 2, compression: Compression::None },
    )
    .unwrap();
    buf.freeze()
}

/// Polls `f` every 100 ms until it gives `Some`; panics naming `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True when the tests run against Apache Kafka (`SLUICE_TEST_AGAINST=kafka`).
pub fn against_kafka() -> bool {
    std::env::var("SLUICE_TEST_AGAINST").is_ok_and(|v| v == "kafka")
}

/// A reference Kafka broker started by `scripts/lib/kafka-dist.sh` (not our child process).
#[derive(Clone, Copy)]
struct ReferenceKafka {
    pid: u32,
}

/// A running broker process.
pub struct BrokerProcess {
    reference: Option<ReferenceKafka>,
    pub child: Option<Child>,
    pub kafka: SocketAddr,
    pub admin: SocketAddr,
    pub data_dir: PathBuf,
    extra: Vec<String>,
    /// The first line of broker output that reports a panic.
    panic_line: Arc<Mutex<Option<String>>>,
    /// Every line the broker wrote to stderr so far.
    log: Arc<Mutex<Vec<String>>>,
    /// `RUST_LOG` of the broker (the test's `SLUICE_TEST_LOG`, default `warn`).
    log_level: String,
    /// The controller listener, when the node serves one.
    pub controller: Option<SocketAddr>,
    /// The full command of a cluster node (program, `start`, `--config`, FILE), which
    /// `restart` reruns.
    relaunch: Option<Vec<String>>,
}

/// A broker process started but not yet ready: cluster nodes are all launched before any of
/// them can become ready (each needs a quorum of the others).
pub struct Launch {
    child: Child,
    ready: mpsc::Receiver<String>,
    data_dir: PathBuf,
    extra: Vec<String>,
    panic_line: Arc<Mutex<Option<String>>>,
    log: Arc<Mutex<Vec<String>>>,
    log_level: String,
}

/// True for a line in which the broker reports a panic (Rust's panic message, or the ERROR
/// line of a task whose panic was caught).
fn is_panic_line(line: &str) -> bool {
    line.contains("panicked at") || line.contains("panicked (a bug)")
}

impl BrokerProcess {
    /// Starts `sluice dev` with its data in `data_dir` and any extra flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        if against_kafka() {
            return Self::start_kafka(data_dir, extra, 0);
        }
        let level = std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "warn".into());
        Self::start_on(
            data_dir,
            "127.0.0.1:0",
            extra.iter().map(|s| s.to_string()).collect(),
            level,
        )
    }

    /// [`start`](Self::start) with the broker's `RUST_LOG` set to `level`, for tests that read
    /// its log lines.
    pub fn start_logging(data_dir: &Path, extra: &[&str], level: &str) -> Self {
        let extra = extra.iter().map(|s| s.to_string()).collect();
        Self::start_on(data_dir, "127.0.0.1:0", extra, level.to_string())
    }

    /// Apache Kafka on loopback with its data under `data_dir`; `extra` may only hold
    /// `--set key=value` pairs, which become broker properties.
    fn start_kafka(data_dir: &Path, extra: &[&str], port: u16) -> Self {
        let mut props = String::new();
        let mut args = extra.iter();
        while let Some(flag) = args.next() {
            assert_eq!(*flag, "--set", "reference mode takes only --set KEY=VALUE, not {flag}");
            props.push_str(args.next().expect("--set KEY=VALUE"));
            props.push('\n');
        }
        let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lib/kafka-dist.sh");
        let out = Command::new("bash")
            .arg("-c")
            .arg(r#"source "$1" && kafka_start_reference_broker "$2" "$3" >&2 && echo "$KAFKA_REF_PID $KAFKA_REF_BOOTSTRAP""#)
            .args(["bash", &lib.display().to_string(), &data_dir.display().to_string()])
            .arg(port.to_string())
            .env("KAFKA_REF_EXTRA_PROPERTIES", props)
            .stderr(Stdio::inherit())
            .output()
            .expect("running scripts/lib/kafka-dist.sh");
        assert!(out.status.success(), "the reference Kafka broker did not start");
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let (pid, bootstrap) = line.split_once(' ').expect("pid and bootstrap");
        BrokerProcess {
            reference: Some(ReferenceKafka { pid: pid.parse().expect("pid") }),
            child: None,
            kafka: bootstrap.parse().expect("bootstrap address"),
            admin: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            panic_line: Arc::new(Mutex::new(None)),
            log: Arc::new(Mutex::new(Vec::new())),
            log_level: String::new(),
            controller: None,
            relaunch: None,
        }
    }

    /// Starts this stopped cluster node again with its command, without waiting for it to be
    /// ready: nodes that all stopped must all start before any of them can be (each needs a
    /// quorum of the others). [`BrokerProcess::await_ready`] waits.
    pub fn relaunch(&self) -> Launch {
        assert!(self.child.is_none(), "stop or kill the node first");
        let command = self.relaunch.as_ref().expect("a cluster node");
        let (program, args) = command.split_first().expect("a command");
        let (extra, level) = (self.extra.clone(), self.log_level.clone());
        Self::launch(program, &self.data_dir, args.to_vec(), extra, level)
    }

    /// Waits for `launch` (from [`BrokerProcess::relaunch`]) to be ready, and becomes it.
    pub fn await_ready(&mut self, launch: Launch) {
        let command = self.relaunch.take();
        *self = launch.ready();
        self.relaunch = command;
    }

    /// Marks a cluster node: `restart` reruns `command` (program and arguments).
    pub fn relaunch_with(mut self, command: Vec<String>) -> Self {
        self.relaunch = Some(command);
        self
    }

    /// Signals the reference Kafka broker and waits (bounded) until it is gone.
    fn stop_kafka(&mut self, signal: &str) {
        if let Some(r) = self.reference.take() {
            let _ = Command::new("kill").arg(signal).arg(r.pid.to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while Path::new(&format!("/proc/{}", r.pid)).exists() {
                assert!(Instant::now() < deadline, "Kafka did not exit within 60 s");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `sluice start --config FILE --admin-listen 127.0.0.1:0`: a broker configured by a
    /// properties file alone (its `log.dirs` should be `data_dir`).
    pub fn start_with_config(data_dir: &Path, config: &Path) -> Self {
        let level = std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let args = vec![
            "start".to_string(),
            "--config".to_string(),
            config.display().to_string(),
            "--admin-listen".to_string(),
            "127.0.0.1:0".to_string(),
        ];
        Self::spawn(data_dir, args, Vec::new(), level)
    }

    /// `sluice dev` with its data directory on a tmpfs of `size_mib` MiB mounted in a mount
    /// namespace of its own (`unshare -m`, root only): the machine's mounts are untouched, and
    /// the test reaches the tmpfs through `/proc/PID/root` (see [`Self::in_broker_ns`]).
    pub fn start_on_tmpfs(data_dir: &Path, size_mib: u32) -> Self {
        let level = std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let script = r#"mount -t tmpfs -o size="$1"m sluice-test "$2" && exec "$3" dev --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$2""#;
        let args = vec![
            "-m".to_string(),
            "--propagation".to_string(),
            "private".to_string(),
            "sh".to_string(),
            "-c".to_string(),
            script.to_string(),
            "sh".to_string(),
            size_mib.to_string(),
            data_dir.display().to_string(),
            env!("CARGO_BIN_EXE_sluice").to_string(),
        ];
        Self::spawn_program("unshare", data_dir, args, Vec::new(), level)
    }

    /// `path` (absolute) as the broker process sees it, through its mount namespace.
    pub fn in_broker_ns(&self, path: &Path) -> PathBuf {
        let pid = self.child.as_ref().expect("a running broker").id();
        Path::new(&format!("/proc/{pid}/root")).join(path.strip_prefix("/").unwrap_or(path))
    }

    fn start_on(data_dir: &Path, listen: &str, extra: Vec<String>, log_level: String) -> Self {
        let mut args: Vec<String> = ["dev", "--listen", listen, "--admin-listen", "127.0.0.1:0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--data-dir".to_string(), data_dir.display().to_string()]);
        args.extend(extra.iter().cloned());
        Self::spawn(data_dir, args, extra, log_level)
    }

    fn spawn(data_dir: &Path, args: Vec<String>, extra: Vec<String>, log_level: String) -> Self {
        Self::spawn_program(env!("CARGO_BIN_EXE_sluice"), data_dir, args, extra, log_level)
    }

    fn spawn_program(
        program: &str,
        data_dir: &Path,
        args: Vec<String>,
        extra: Vec<String>,
        log_level: String,
    ) -> Self {
        Self::launch(program, data_dir, args, extra, log_level).ready()
    }

    /// Starts the binary with `args`; [`Launch::ready`] waits for its ready line.
    pub fn launch(
        program: &str,
        data_dir: &Path,
        args: Vec<String>,
        extra: Vec<String>,
        log_level: String,
    ) -> Launch {
        let mut child = Command::new(program)
            .args(&args)
            .env("RUST_LOG", &log_level)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the sluice binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let panic_line = Arc::new(Mutex::new(None));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (seen, lines) = (panic_line.clone(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // eprintln goes through the test harness's capture, unlike inherited stderr.
                eprintln!("{line}");
                if is_panic_line(&line) {
                    seen.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(line.clone());
                }
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("sluice ready ") {
                    let _ = tx.send(rest.to_string());
                }
            }
        });
        Launch {
            child,
            ready: rx,
            data_dir: data_dir.to_path_buf(),
            extra,
            panic_line,
            log,
            log_level,
        }
    }

    /// The broker's stderr lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A field of the broker's `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(&self, field: &str) -> u64 {
        let pid = self.child.as_ref().expect("a running broker").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
    }

    /// Fails the test if the broker reported a panic so far.
    pub fn assert_no_panic(&self) {
        if let Some(line) = self.panic_line.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            panic!("the broker panicked: {line}");
        }
    }

    /// The broker's log directory (Kafka's reference broker keeps its logs in `data/`).
    pub fn log_dir(&self) -> PathBuf {
        if self.reference.is_some() {
            self.data_dir.join("data")
        } else {
            self.data_dir.clone()
        }
    }

    pub fn bootstrap(&self) -> String {
        self.kafka.to_string()
    }

    /// SIGTERM and wait (bounded) for a clean exit; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        if self.reference.is_some() {
            self.stop_kafka("-TERM");
            return Some(0);
        }
        let mut child = self.child.take()?;
        let pid = child.id() as i32;
        // SIGTERM through kill(1): no libc dependency for one signal.
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                // Let the reader thread drain the last lines before judging them.
                std::thread::sleep(Duration::from_millis(50));
                self.assert_no_panic();
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("broker did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash.
    pub fn kill9(&mut self) {
        self.stop_kafka("-KILL");
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            self.assert_no_panic();
        }
    }

    /// Starts again on the same data directory and the same Kafka port (clients reconnect).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the broker first");
        if against_kafka() {
            let extra: Vec<String> = self.extra.clone();
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            *self = Self::start_kafka(&self.data_dir, &extra, self.kafka.port());
            return;
        }
        let listen = self.kafka.to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        let relaunch = self.relaunch.clone();
        // The old socket may linger briefly; retry binding within a bounded time.
        loop {
            let result = std::panic::catch_unwind(|| match &relaunch {
                Some(command) => {
                    let (program, args) = command.split_first().expect("a command");
                    let mut p = Self::spawn_program(
                        program,
                        &self.data_dir,
                        args.to_vec(),
                        self.extra.clone(),
                        self.log_level.clone(),
                    );
                    p.relaunch = relaunch.clone();
                    p
                }
                None => Self::start_on(
                    &self.data_dir,
                    &listen,
                    self.extra.clone(),
                    self.log_level.clone(),
                ),
            });
            match result {
                Ok(p) => {
                    *self = p;
                    return;
                }
                Err(e) if Instant::now() > deadline => std::panic::resume_unwind(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// GET a path on the admin HTTP endpoint; returns (status line, body).
    pub fn http_get(&self, path: &str) -> (String, String) {
        self.http_request("GET", path, &[], "")
    }

    /// A request to the admin HTTP endpoint with extra header lines and a body; returns
    /// (status line, body).
    pub fn http_request(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: &str,
    ) -> (String, String) {
        use std::io::{Read, Write};
        assert!(
            self.reference.is_none(),
            "Kafka has no admin HTTP endpoint: guard with against_kafka()"
        );
        let mut s = std::net::TcpStream::connect(self.admin).expect("connect admin");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers.iter().any(|h| h.to_ascii_lowercase().starts_with("host:")) {
            head.push_str(&format!("Host: {}\r\n", self.admin));
        }
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        write!(s, "{head}Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        (head.lines().next().unwrap_or("").to_string(), body.to_string())
    }
}

impl Launch {
    /// Waits (at most 60 s) for the ready line.
    pub fn ready(self) -> BrokerProcess {
        self.try_ready().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits (at most 60 s) for the ready line; an early exit or the timeout is an error
    /// (with the process gone and its last log lines).
    pub fn try_ready(self) -> Result<BrokerProcess, String> {
        self.try_ready_within(Duration::from_secs(60))
    }

    /// [`Launch::try_ready`] with another bound.
    pub fn try_ready_within(mut self, timeout: Duration) -> Result<BrokerProcess, String> {
        let deadline = Instant::now() + timeout;
        let line = loop {
            match self.ready.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => break l,
                Err(_) => {
                    let exited = matches!(self.child.try_wait(), Ok(Some(_)));
                    if exited || Instant::now() > deadline {
                        let _ = self.child.kill();
                        let _ = self.child.wait();
                        std::thread::sleep(Duration::from_millis(50));
                        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
                        let tail = log[log.len().saturating_sub(5)..].join("\n");
                        let why = if exited { "exited" } else { "did not become ready in time" };
                        return Err(format!("broker {why}; last log lines:\n{tail}"));
                    }
                }
            }
        };
        let addr = |key: &str| -> Option<SocketAddr> {
            line.split_whitespace().find_map(|p| p.strip_prefix(key)?.parse().ok())
        };
        Ok(BrokerProcess {
            reference: None,
            child: Some(self.child),
            // A controller-only node has no Kafka listener: its admin address stands in.
            kafka: addr("kafka=").or(addr("admin=")).expect("kafka address in the ready line"),
            admin: addr("admin=").expect("admin address in the ready line"),
            controller: addr("controller="),
            data_dir: self.data_dir,
            extra: self.extra,
            panic_line: self.panic_line,
            log: self.log,
            log_level: self.log_level,
            relaunch: None,
        })
    }
}

impl Drop for BrokerProcess {
    /// A test that passed ends with a clean stop: exit status 0 and no panic in the output.
    /// One that is failing already just kills the broker.
    fn drop(&mut self) {
        if self.reference.is_some() {
            self.stop_kafka("-TERM");
            return;
        }
        if std::thread::panicking() || self.child.is_none() {
            self.kill9();
            return;
        }
        let code = self.stop();
        assert_eq!(code, Some(0), "the broker's exit status on SIGTERM");
    }
}

/// A raw Kafka protocol connection: encodes requests with the `kafka-protocol` crate and
/// decodes the responses, checking correlation ids.
pub struct RawConn {
    pub stream: std::net::TcpStream,
    next_id: i32,
}

impl RawConn {
    pub fn connect(b: &BrokerProcess) -> Self {
        Self::connect_to(b.kafka)
    }

    /// A connection to one listener of a broker.
    pub fn connect_to(addr: SocketAddr) -> Self {
        let stream = std::net::TcpStream::connect(addr).expect("connect to the broker");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        RawConn { stream, next_id: 0 }
    }

    /// Sends one request and returns the response body, undecoded.
    pub fn call_raw<Req: kafka_protocol::protocol::Encodable>(
        &mut self,
        key: kafka_protocol::messages::ApiKey,
        version: i16,
        req: &Req,
    ) -> bytes::Bytes {
        self.call_with(key, version, |buf| {
            req.encode(buf, version).unwrap_or_else(|e| panic!("encoding {key:?} v{version}: {e}"))
        })
    }

    /// Sends one request whose body `encode_body` writes; returns the response body.
    pub fn call_with(
        &mut self,
        key: kafka_protocol::messages::ApiKey,
        version: i16,
        encode_body: impl FnOnce(&mut bytes::BytesMut),
    ) -> bytes::Bytes {
        let id = self.send_with(key, version, encode_body);
        self.receive(key, version, id)
    }

    /// Sends one request without waiting for its answer (pipelining); returns its
    /// correlation id for [`RawConn::receive`].
    pub fn send<Req: kafka_protocol::protocol::Encodable>(
        &mut self,
        key: kafka_protocol::messages::ApiKey,
        version: i16,
        req: &Req,
    ) -> i32 {
        self.send_with(key, version, |buf| req.encode(buf, version).expect("encoding"))
    }

    /// Sends one request whose body `encode_body` writes, without waiting for its answer.
    pub fn send_with(
        &mut self,
        key: kafka_protocol::messages::ApiKey,
        version: i16,
        encode_body: impl FnOnce(&mut bytes::BytesMut),
    ) -> i32 {
        use kafka_protocol::messages::RequestHeader;
        use kafka_protocol::protocol::{Encodable, StrBytes};
        use std::io::Write;
        self.next_id += 1;
        let mut buf = bytes::BytesMut::new();
        buf.extend_from_slice(&[0; 4]);
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.next_id)
            .with_client_id(Some(StrBytes::from_static_str("raw-test")))
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        encode_body(&mut buf);
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&buf).unwrap();
        self.next_id
    }

    /// Reads the next response, which must answer request `id`; returns its body.
    pub fn receive(
        &mut self,
        key: kafka_protocol::messages::ApiKey,
        version: i16,
        id: i32,
    ) -> bytes::Bytes {
        use kafka_protocol::messages::ResponseHeader;
        use kafka_protocol::protocol::Decodable;
        use std::io::Read;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).unwrap_or_else(|e| {
            panic!("{key:?} v{version}: no response ({e}): connection closed?")
        });
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).unwrap();
        let mut body = bytes::Bytes::from(body);
        let h = ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
        assert_eq!(h.correlation_id, id, "{key:?} v{version}: answers in request order");
        body
    }

    pub fn call<Req, Resp>(
        &mut self,
        key: kafka_protocol::messages::ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp
    where
        Req: kafka_protocol::protocol::Encodable,
        Resp: kafka_protocol::protocol::Decodable,
    {
        use bytes::Buf;
        let mut body = self.call_raw(key, version, req);
        let resp = Resp::decode(&mut body, version)
            .unwrap_or_else(|e| panic!("decoding the {key:?} v{version} response: {e}"));
        assert!(!body.has_remaining(), "{key:?} v{version}: trailing bytes in the response");
        resp
    }
}

impl RawConn {
    /// Produce (v9, acks=1) of one batch to partition 0 of `topic`, retried while the
    /// partition is not led yet ([`RawConn::produce_with`]).
    pub fn produce(
        &mut self,
        topic: &str,
        records: bytes::Bytes,
    ) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
        self.produce_with(9, topic, 0, 1, records)
    }

    /// Produce of one batch to one partition at `version`; returns the partition's answer.
    /// Kafka answers NOT_LEADER_OR_FOLLOWER / UNKNOWN_TOPIC_OR_PARTITION for a moment after
    /// CreateTopics, until the topic reaches its broker: those are retried (bounded), as
    /// clients do.
    pub fn produce_with(
        &mut self,
        version: i16,
        topic: &str,
        partition: i32,
        acks: i16,
        records: bytes::Bytes,
    ) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let p = self.produce_once(version, topic, partition, acks, records.clone());
            if !matches!(p.error_code, 3 | 6) || Instant::now() > deadline {
                return p;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// [`RawConn::produce_with`] without the retries: the first answer, whatever it is.
    pub fn produce_once(
        &mut self,
        version: i16,
        topic: &str,
        partition: i32,
        acks: i16,
        records: bytes::Bytes,
    ) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
        use kafka_protocol::protocol::StrBytes;
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records))])]);
        let mut r: ProduceResponse = self.call(ApiKey::Produce, version, &req);
        assert_eq!(r.responses.len(), 1);
        r.responses.remove(0).partition_responses.remove(0)
    }

    /// InitProducerId (v4) for an idempotent producer: (producer id, epoch). Retries while the
    /// broker is not ready to hand out ids (Kafka answers COORDINATOR_LOAD_IN_PROGRESS at first).
    pub fn init_producer_id(&mut self) -> (i64, i16) {
        use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse};
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r: InitProducerIdResponse = self.call(
                ApiKey::InitProducerId,
                4,
                &InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60_000)
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1),
            );
            if r.error_code == 0 {
                return (r.producer_id.0, r.producer_epoch);
            }
            assert!(Instant::now() < deadline, "InitProducerId: error {}", r.error_code);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Delivery results of an rdkafka `ThreadedProducer`, as (record index, acknowledged).
pub struct AckLog(pub std::sync::Arc<std::sync::Mutex<Vec<(usize, bool)>>>);

impl rdkafka::client::ClientContext for AckLog {}

impl rdkafka::producer::ProducerContext for AckLog {
    type DeliveryOpaque = Box<usize>;
    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, index: Box<usize>) {
        self.0.lock().unwrap().push((*index, result.is_ok()));
    }
}

/// Creates a topic through librdkafka's admin client (replication factor 1) and panics on any
/// error, so a test's set-up fails loudly.
pub fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    create_topic_rf(bootstrap, name, partitions, 1, configs)
}

/// [`create_topic`] with `rf` replicas per partition.
pub fn create_topic_rf(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    rf: i32,
    configs: &[(&str, &str)],
) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(rf));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results =
        futures::executor::block_on(admin.create_topics(&[topic], &AdminOptions::new())).unwrap();
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

/// A record's key and value, either possibly null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// One record batch as a client library encodes it (the `kafka-protocol` crate's encoder: magic
/// v2, no compression, no producer id): `records` are (key, value) pairs at offsets 0, 1, ...
pub fn client_batch(records: &[KeyValue<'_>]) -> bytes::BytesMut {
    client_batch_compressed(kafka_protocol::records::Compression::None, records)
}

/// [`client_batch`] with its records compressed by `compression`.
pub fn client_batch_compressed(
    compression: kafka_protocol::records::Compression,
    records: &[KeyValue<'_>],
) -> bytes::BytesMut {
    let stamped: Vec<(KeyValue<'_>, i64)> =
        records.iter().map(|r| (*r, 1_700_000_000_000)).collect();
    client_batch_stamped(compression, &stamped)
}

/// [`client_batch_compressed`] with a timestamp per record.
pub fn client_batch_stamped(
    compression: kafka_protocol::records::Compression,
    records: &[(KeyValue<'_>, i64)],
) -> bytes::BytesMut {
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, ((k, v), timestamp))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            // The encoder starts a new batch wherever sequences do not follow one another.
            sequence: -1 + i as i32,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            timestamp: *timestamp,
            key: k.map(bytes::Bytes::copy_from_slice),
            value: v.map(bytes::Bytes::copy_from_slice),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encoding a record batch");
    buf
}

/// One request frame (size prefix, header v1/v2 as the version needs, body), for tests that
/// write raw bytes themselves (pipelining, truncation, closed connections).
pub fn frame<T: kafka_protocol::protocol::Encodable>(
    key: kafka_protocol::messages::ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Vec<u8> {
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let mut buf = bytes::BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("raw-test")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.to_vec()
}

/// Reads one response frame (without its size prefix); `Err` on a timeout or a closed
/// connection.
pub fn read_frame(s: &mut std::net::TcpStream) -> std::io::Result<bytes::Bytes> {
    use std::io::Read;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body)?;
    Ok(bytes::Bytes::from(body))
}
