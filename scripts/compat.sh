#!/usr/bin/env bash
# Cross-client Kafka compatibility harness.
#
#   bash scripts/compat.sh                 start target/debug/sluice on an ephemeral port, test it
#   BOOTSTRAP=host:port bash scripts/compat.sh
#                                          test an already running broker
#   bash scripts/compat.sh --reference     start Apache Kafka (scripts/lib/kafka-dist.sh) and
#                                          test it: validates this script itself
#   ... --only REGEX                       run only the steps whose name matches REGEX
#
# Clients exercised: kcat (librdkafka), confluent-kafka for Python (librdkafka), the Apache
# Kafka Java client (scripts/compat/java) and the Kafka CLI tools (TopicCommand,
# ConsoleProducer, ConsoleConsumer). The steps here assign partitions and start at explicit
# offsets; the consumer-group steps (the Java consumer in a group, kafka-consumer-groups
# --describe with offsets and lag, kcat -G) are scripts/compat-groups.sh, which this script
# runs last against the same broker (skipped when --only does not match "groups"); then
# scripts/compat-cluster.sh runs Kafka's tools against a 3-node Sluice cluster of its own
# (only when testing Sluice; skipped when --only does not match "cluster").
#
# Each step prints `ok NAME` or `FAIL NAME: reason`; the last line is `N passed, M failed`,
# and the exit status is non-zero if M > 0.
#
# Dependencies are installed on first use, idempotently: kcat (Debian package), a Python venv
# with confluent-kafka (target/compat-venv), the Java client program (target/compat-java), the
# Kafka jars (target/kafka-dist, Maven local repository target/m2).
#
# Environment:
#   BOOTSTRAP            broker under test (host:port); if unset, one is started
#   SLUICE_BIN           Sluice binary (default target/debug/sluice)
#   KAFKA_VERSION        Kafka jars / Java client version (default 4.4.0)
#   CONFLUENT_KAFKA_VERSION  confluent-kafka version for the venv (default 2.16.1)
#   COMPAT_TIMEOUT       hard limit in seconds on each client command (default 60)
#   COMPAT_CLIENT_TIMEOUT  seconds a client waits for the broker in one operation before it
#                        reports failure (default 20; request timeouts are half of it)
#   COMPAT_KEEP=1        keep the work directory (logs, data) even when everything passed
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/kafka-dist.sh
source "$ROOT/scripts/lib/kafka-dist.sh"

SLUICE_BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/sluice}"
CONFLUENT_KAFKA_VERSION="${CONFLUENT_KAFKA_VERSION:-2.16.1}"
T="${COMPAT_TIMEOUT:-60}"
export COMPAT_CLIENT_TIMEOUT="${COMPAT_CLIENT_TIMEOUT:-20}"
CT="$COMPAT_CLIENT_TIMEOUT"
CT_MS=$((CT * 1000))
REQ_MS=$((CT * 500))
VENV="$ROOT/target/compat-venv"
JAVA_DIR="$ROOT/scripts/compat/java"
JAVA_BUILD="$ROOT/target/compat-java"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

MODE=sluice
ONLY=""
while (($#)); do
  case "$1" in
    --reference) MODE=reference ;;
    --only)
      [[ $# -ge 2 ]] || { echo "--only needs a REGEX" >&2; exit 2; }
      ONLY="$2"
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ -n "${BOOTSTRAP:-}" ]]; then
  if [[ "$MODE" == reference ]]; then
    echo "BOOTSTRAP is set and --reference given: choose one" >&2
    exit 2
  fi
  MODE=external
fi

log() { printf '[compat] %s\n' "$*" >&2; }

# shellcheck source=scripts/lib/steps.sh
source "$ROOT/scripts/lib/steps.sh"
make_work compat
RUN_ID="$(date +%H%M%S)-$$"
BROKER_PID=""

cleanup() {
  local rc=$?
  [[ -z "$BROKER_PID" ]] || stop_process "$BROKER_PID"
  settle_work "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# The broker under test.

# Start Sluice in the background on 127.0.0.1:PORT with its data in DATA_DIR; set BROKER_PID.
# This script's one place that knows how `sluice dev` is invoked (compat-groups.sh, perf.sh and
# bench.sh start it their own way, with the settings their runs need).
start_sluice() {
  local data_dir="$1" port="$2" log_file="$3"
  # A short initial rebalance delay keeps the group steps quick (Kafka's default is 3 s).
  # Producers idle for 2 s are forgotten, so the idle-producer step sees an expiry quickly.
  "$SLUICE_BIN" dev --data-dir "$data_dir" --listen "127.0.0.1:$port" \
    --set group.initial.rebalance.delay.ms=100 --set producer.id.expiration.ms=2000 \
    --set producer.id.expiration.check.interval.ms=200 >"$log_file" 2>&1 </dev/null &
  BROKER_PID=$!
}

case "$MODE" in
  external)
    log "testing the broker at $BOOTSTRAP"
    ;;
  sluice)
    if [[ ! -x "$SLUICE_BIN" ]]; then
      echo "Sluice binary not found at $SLUICE_BIN (build it, set SLUICE_BIN, set BOOTSTRAP, or use --reference)" >&2
      exit 2
    fi
    port="$(free_port)"
    start_sluice "$WORK/sluice-data" "$port" "$WORK/sluice.log"
    if ! wait_port 127.0.0.1 "$port" 60 "$BROKER_PID"; then
      log "Sluice did not start; last lines of $WORK/sluice.log:"
      tail -n 30 "$WORK/sluice.log" >&2 || true
      exit 1
    fi
    BOOTSTRAP="127.0.0.1:$port"
    log "Sluice up at $BOOTSTRAP (pid $BROKER_PID, log $WORK/sluice.log)"
    ;;
  reference)
    # As for Sluice: producers idle for 2 s are forgotten (the idle-producer step).
    KAFKA_REF_EXTRA_PROPERTIES=$'producer.id.expiration.ms=2000\nproducer.id.expiration.check.interval.ms=200' \
      kafka_start_reference_broker "$WORK/kafka"
    BROKER_PID="$KAFKA_REF_PID"
    BOOTSTRAP="$KAFKA_REF_BOOTSTRAP"
    ;;
esac

# ---------------------------------------------------------------------------------------------
# Client dependencies, installed idempotently. A failed setup fails the steps that need it.

SETUP_KCAT=ok SETUP_PYTHON=ok SETUP_JAVA=ok SETUP_CLI=ok

# shellcheck source=scripts/lib/kcat.sh
source "$ROOT/scripts/lib/kcat.sh"
setup_kcat() { ensure_kcat "$WORK/setup-kcat.log"; }

# shellcheck source=scripts/lib/venv.sh
source "$ROOT/scripts/lib/venv.sh"
setup_python() { ensure_venv "$VENV" "$WORK/setup-python.log" "confluent-kafka==$CONFLUENT_KAFKA_VERSION"; }

setup_java() {
  local class="$JAVA_BUILD/classes/Compat.class"
  if [[ -f "$class" && -f "$JAVA_BUILD/libs/kafka-clients-$KAFKA_VERSION.jar" &&
    "$class" -nt "$JAVA_DIR/src/main/java/Compat.java" && "$class" -nt "$JAVA_DIR/pom.xml" ]]; then
    return 0
  fi
  log "building the Java client check (kafka-clients $KAFKA_VERSION)"
  rm -rf "$JAVA_BUILD"
  timeout 900 mvn -B -q -f "$JAVA_DIR/pom.xml" -Dmaven.repo.local="$SLUICE_MVN_REPO" \
    -Dkafka.version="$KAFKA_VERSION" compile >"$WORK/setup-java.log" 2>&1
}

setup_kcat || SETUP_KCAT="setup failed (kcat), see $WORK/setup-kcat.log"
setup_python || SETUP_PYTHON="setup failed (confluent-kafka venv), see $WORK/setup-python.log"
setup_java || SETUP_JAVA="setup failed (Java client build), see $WORK/setup-java.log"
kafka_dist_fetch || SETUP_CLI="setup failed (Kafka jars), see $KAFKA_DIST_DIR/mvn.log"

# ---------------------------------------------------------------------------------------------

# Compare two files exactly; on mismatch show where they first differ.
same_or_fail() {
  local want="$1" got="$2" what="$3"
  if ! cmp -s "$want" "$got"; then
    echo "--- diff (want vs got) ---"
    diff "$want" "$got" | head -n 20 || true
    fail "$what: got $(wc -l <"$got") lines, want $(wc -l <"$want"); first difference: $(cmp "$want" "$got" 2>&1 | head -n 1)"
  fi
}

topic() { echo "compat-$RUN_ID-$1"; }

# ---------------------------------------------------------------------------------------------
# kcat (librdkafka). Topics are auto-created on first produce (broker default num.partitions).

kcat_metadata() {
  need "$SETUP_KCAT"
  tmo kcat -b "$BOOTSTRAP" -L -m "$CT" >"$WORK/kcat-L.txt" 2>&1 || {
    local rc=$?
    cat "$WORK/kcat-L.txt"
    fail "kcat -L: $(why $rc)"
  }
  cat "$WORK/kcat-L.txt"
  grep -Eq '^ *[1-9][0-9]* brokers:' "$WORK/kcat-L.txt" || fail "kcat -L lists no brokers"
  grep -Eq '^ *broker [0-9]+ at [^ ]+:[0-9]+' "$WORK/kcat-L.txt" || fail "kcat -L shows no broker address"
}

# kcat_roundtrip TOPIC N [CODEC]: produce N keyed lines to partition 0, consume them back.
kcat_roundtrip() {
  local t="$1" n="$2" codec="${3:-}"
  need "$SETUP_KCAT"
  local in="$WORK/$t.in" want="$WORK/$t.want" got="$WORK/$t.got"
  # Keys repeat, values vary in length and content (compressible and not).
  awk -v n="$n" -v seed="$t" 'BEGIN {
      srand(length(seed));
      for (i = 0; i < n; i++) {
        v = sprintf("line %06d of %s: the quick brown fox %d", i, seed, int(rand() * 1e9));
        for (j = 0; j < i % 13; j++) v = v " pad" j;
        printf "key-%03d|%s\n", i % 100, v
      }
    }' >"$in"
  awk '{ printf "%d %s\n", NR - 1, $0 }' "$in" >"$want"
  local -a z=()
  [[ -z "$codec" ]] || z=(-z "$codec")
  local -a x=(-X "socket.timeout.ms=$REQ_MS")
  tmo kcat -b "$BOOTSTRAP" -P -t "$t" -p 0 -K '|' "${z[@]}" "${x[@]}" -X "message.timeout.ms=$CT_MS" <"$in" ||
    fail "kcat -P${codec:+ -z $codec}: $(why $?)"
  tmo kcat -b "$BOOTSTRAP" -C -t "$t" -p 0 -o beginning -e -q "${x[@]}" -f '%o %k|%s\n' >"$got" ||
    fail "kcat -C: $(why $?) (got $(wc -l <"$got") of $n records)"
  same_or_fail "$want" "$got" "consumed records (offset key|value)"
  echo "$n records round-tripped${codec:+ with $codec}"
}

# ---------------------------------------------------------------------------------------------
# confluent-kafka (Python) and the Java client: programs under scripts/compat/.

python_check() {
  need "$SETUP_PYTHON"
  tmo "$VENV/bin/python" "$ROOT/scripts/compat/python/compat.py" "$@" || timed_out $?
}

java_check() {
  need "$SETUP_JAVA"
  tmo java -Xmx256m -XX:+UseSerialGC -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$JAVA_BUILD/classes:$JAVA_BUILD/libs/*" Compat "$@" || timed_out $?
}

# ---------------------------------------------------------------------------------------------
# Kafka CLI tools from the distribution (no group: console consumer uses --partition/--offset).

CLI_TOPIC="$(topic cli)"
CLI_N=500

cli() {
  need "$SETUP_CLI"
  KAFKA_RUN_TIMEOUT="$T" kafka_run_class "$@"
}

# Admin client settings for TopicCommand: give up after COMPAT_CLIENT_TIMEOUT, not 60 s.
CLI_ADMIN_CONF="$WORK/cli-admin.properties"
printf 'request.timeout.ms=%s\ndefault.api.timeout.ms=%s\n' "$REQ_MS" "$CT_MS" >"$CLI_ADMIN_CONF"

cli_topics() {
  cli org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --command-config "$CLI_ADMIN_CONF" "$@"
}

# wait_listed yes|no: poll `--list` (bounded) until CLI_TOPIC is / is not listed.
wait_listed() {
  local want="$1" i
  for ((i = 0; i < 15; i++)); do
    cli_topics --list >"$WORK/cli-list.txt" || fail "kafka-topics --list: $(why $?)"
    if grep -Fxq "$CLI_TOPIC" "$WORK/cli-list.txt"; then
      [[ "$want" == yes ]] && return 0
    else
      [[ "$want" == no ]] && return 0
    fi
    sleep 1
  done
  cat "$WORK/cli-list.txt"
  fail "kafka-topics --list: $CLI_TOPIC listed=$( [[ $want == yes ]] && echo no || echo yes ) after 15 tries"
}

cli_create() {
  cli_topics --create --topic "$CLI_TOPIC" --partitions 1 --replication-factor 1 \
    --config retention.ms=3600000 --config cleanup.policy=delete ||
    fail "kafka-topics --create: $(why $?)"
}

cli_list() {
  after cli-topics-create
  wait_listed yes
}

# cli_describe PARTITIONS: the topic shows that many partitions, each with a leader, and its config.
cli_describe() {
  local parts="$1" out="$WORK/cli-describe.txt"
  after cli-topics-create
  cli_topics --describe --topic "$CLI_TOPIC" >"$out" || {
    local rc=$?
    cat "$out"
    fail "kafka-topics --describe: $(why $rc)"
  }
  cat "$out"
  grep -Eq "PartitionCount:[[:space:]]*$parts([[:space:]]|$)" "$out" ||
    fail "kafka-topics --describe: PartitionCount is not $parts"
  grep -q 'retention.ms=3600000' "$out" || fail "kafka-topics --describe: retention.ms=3600000 not shown in Configs"
  local led
  led="$(grep -cE 'Partition: [0-9]+[[:space:]]+Leader: [0-9]+' "$out")" || true
  [[ "$led" == "$parts" ]] || fail "kafka-topics --describe: $led partitions with a leader, want $parts"
}

cli_console_roundtrip() {
  local in="$WORK/cli.in" got="$WORK/cli.got"
  after cli-topics-create
  awk -v n="$CLI_N" 'BEGIN { for (i = 0; i < n; i++) printf "k%03d|console message %d %s\n", i % 50, i, substr("abcdefghijklmnopqrstuvwxyz", 1, i % 27) }' >"$in"
  cli org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$BOOTSTRAP" --topic "$CLI_TOPIC" \
    --command-property acks=all --command-property "max.block.ms=$CT_MS" \
    --command-property "delivery.timeout.ms=$CT_MS" --command-property "request.timeout.ms=$REQ_MS" \
    --reader-property parse.key=true --reader-property 'key.separator=|' <"$in" ||
    fail "console producer: $(why $?)"
  cli org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BOOTSTRAP" --topic "$CLI_TOPIC" \
    --partition 0 --offset earliest --max-messages "$CLI_N" --timeout-ms "$CT_MS" \
    --command-property "request.timeout.ms=$REQ_MS" --command-property "default.api.timeout.ms=$CT_MS" \
    --formatter-property print.key=true --formatter-property 'key.separator=|' >"$got" ||
    fail "console consumer: $(why $?) (got $(wc -l <"$got") of $CLI_N messages)"
  same_or_fail "$in" "$got" "console consumer output (key|value)"
}

cli_alter() {
  after cli-topics-create
  cli_topics --alter --topic "$CLI_TOPIC" --partitions 2 || fail "kafka-topics --alter --partitions 2: $(why $?)"
  local i
  for ((i = 0; i < 15; i++)); do
    if (cli_describe 2) >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  cli_describe 2
}

cli_delete() {
  after cli-topics-create
  cli_topics --delete --topic "$CLI_TOPIC" || fail "kafka-topics --delete: $(why $?)"
  wait_listed no
}

# kafka-log-dirs --describe: the log directory with the partitions of a topic written above.
cli_log_dirs() {
  after cli-console-produce-consume
  local out
  out="$(cli org.apache.kafka.tools.LogDirsCommand --bootstrap-server "$BOOTSTRAP" \
    --command-config "$CLI_ADMIN_CONF" --describe --topic-list "$CLI_TOPIC")" ||
    fail "kafka-log-dirs --describe: $(why $?)"
  grep -q "\"partition\":\"$CLI_TOPIC-0\"" <<<"$out" || fail "no $CLI_TOPIC-0 in: $out"
  grep -Eq '"size":[1-9]' <<<"$out" || fail "no partition size in: $out"
}

# kafka-configs on brokers: a cluster-wide dynamic default is set and described back, and a
# setting Kafka does not change at run time is refused.
cli_broker_configs() {
  local cc=(org.apache.kafka.tools.ConfigCommand --bootstrap-server "$BOOTSTRAP"
    --command-config "$CLI_ADMIN_CONF" --entity-type brokers)
  cli "${cc[@]}" --entity-default --alter --add-config log.cleaner.delete.retention.ms=4321000 ||
    fail "kafka-configs --alter --entity-default: $(why $?)"
  local out
  out="$(cli "${cc[@]}" --entity-default --describe)" || fail "kafka-configs --describe: $(why $?)"
  grep -q 'log.cleaner.delete.retention.ms=4321000' <<<"$out" || fail "not described: $out"
  if cli "${cc[@]}" --entity-default --alter --add-config node.id=7 2>/dev/null; then
    fail "a static broker setting was accepted as dynamic"
  fi
  cli "${cc[@]}" --entity-default --alter --delete-config log.cleaner.delete.retention.ms ||
    fail "kafka-configs --delete-config: $(why $?)"
}

# kafka-configs on broker loggers: a logger's level set at run time, described back, taking
# effect (on Sluice: debug lines of the connection module, with the connection's span, in the
# broker's log), an unknown level refused, and the logger removed again.
cli_broker_loggers() {
  local node logger out cc deadline
  node="$(kcat -b "$BOOTSTRAP" -L -m 5 | sed -n 's/^  broker \([0-9]*\) at .*/\1/p' | head -n 1)"
  [[ -n "$node" ]] || fail "no broker id in kcat's metadata"
  logger="$([[ "$MODE" == reference ]] && echo kafka.server.ReplicaManager || echo sluice_broker.server)"
  cc=(org.apache.kafka.tools.ConfigCommand --bootstrap-server "$BOOTSTRAP"
    --command-config "$CLI_ADMIN_CONF" --entity-type broker-loggers --entity-name "$node")
  cli "${cc[@]}" --alter --add-config "$logger=DEBUG" || fail "kafka-configs --alter: $(why $?)"
  out="$(cli "${cc[@]}" --describe)" || fail "kafka-configs --describe: $(why $?)"
  grep -q "$logger=DEBUG" <<<"$out" || fail "not described: $out"
  if [[ "$MODE" == sluice ]]; then
    kcat -b "$BOOTSTRAP" -L -m 5 >/dev/null
    deadline=$((SECONDS + 10))
    until grep -q 'conn{.*client="rdkafka".*client closed' "$WORK/sluice.log"; do
      ((SECONDS < deadline)) || fail "no debug line of the connection in the broker's log"
      sleep 0.2
    done
  fi
  if cli "${cc[@]}" --alter --add-config "$logger=LOUD" 2>/dev/null; then
    fail "an unknown log level was accepted"
  fi
  cli "${cc[@]}" --alter --delete-config "$logger" || fail "kafka-configs --delete-config: $(why $?)"
  out="$(cli "${cc[@]}" --describe)" || fail "kafka-configs --describe: $(why $?)"
  ! grep -q "$logger=DEBUG" <<<"$out" || fail "still DEBUG after --delete-config: $out"
}

# kafka-transactions describe-producers and list answer (their content is checked by the raw
# tests in broker_promises.rs: producers here expire after 2 s, before a JVM tool starts).
cli_transactions() {
  after cli-topics-create
  local out
  out="$(cli org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$BOOTSTRAP" \
    --command-config "$CLI_ADMIN_CONF" describe-producers --topic "$CLI_TOPIC" --partition 0)" ||
    fail "kafka-transactions describe-producers: $(why $?)"
  grep -q '^ProducerId' <<<"$out" || fail "unexpected describe-producers output: $out"
  cli org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$BOOTSTRAP" \
    --command-config "$CLI_ADMIN_CONF" list >/dev/null || fail "kafka-transactions list: $(why $?)"
}

# ---------------------------------------------------------------------------------------------
# The run.

log "broker under test: $BOOTSTRAP ($MODE); logs in $WORK/steps"

step kcat-metadata kcat_metadata
step kcat-produce-consume kcat_roundtrip "$(topic kcat)" 1000
for codec in gzip snappy lz4 zstd; do
  step "kcat-compression-$codec" kcat_roundtrip "$(topic "kcat-$codec")" 1000 "$codec"
done

step python-admin python_check admin "$BOOTSTRAP" "$(topic py-admin)"
step python-roundtrip python_check roundtrip "$BOOTSTRAP" "$(topic py-data)" 10000

step java-admin java_check admin "$BOOTSTRAP" "$(topic java-admin)"
step java-roundtrip java_check roundtrip "$BOOTSTRAP" "$(topic java-data)" 100000
# An idempotent producer idle past the broker's producer.id.expiration.ms carries on (Kafka >= 2.5
# accepts a producer it forgot at its current sequence); on Sluice, Kafka's DumpLogSegments then
# shows one producer epoch and consecutive sequences: no reset after UNKNOWN_PRODUCER_ID.
java_idle_producer() {
  local topic="$1"
  java_check idle-producer "$BOOTSTRAP" "$topic" 3000 || return 1
  [[ "$MODE" == sluice ]] || return 0
  need "$SETUP_CLI"
  local dump
  dump="$(KAFKA_RUN_TIMEOUT="$T" kafka_run_class org.apache.kafka.tools.DumpLogSegments \
    --files "$WORK/sluice-data/$topic-0/00000000000000000000.log")" || fail "DumpLogSegments failed"
  local epochs seqs
  epochs="$(grep -o 'producerEpoch: [0-9-]*' <<<"$dump" | sort -u | wc -l)"
  seqs="$(grep -o 'baseSequence: [0-9-]*' <<<"$dump" | awk '{print $2}' | tr '\n' ' ')"
  [[ "$epochs" == 1 ]] || fail "producer epoch changed across the expiry: $dump"
  [[ "$seqs" == "0 1 2 3 4 5 " ]] || fail "sequences $seqs, expected 0 1 2 3 4 5"
}
step java-idle-producer java_idle_producer "$(topic java-idle)"
# Transactions: Kafka commits one; Sluice (no transactions yet) must refuse at once.
step java-transactions java_check transactions "$BOOTSTRAP" "$(topic java-tx)" \
  "$([[ "$MODE" == reference ]] && echo supported || echo refused)"

step cli-topics-create cli_create
step cli-topics-list cli_list
step cli-topics-describe cli_describe 1
step cli-console-produce-consume cli_console_roundtrip
step cli-topics-alter-partitions cli_alter
step cli-log-dirs cli_log_dirs
step cli-broker-configs cli_broker_configs
step cli-broker-loggers cli_broker_loggers
step cli-transactions cli_transactions
step cli-topics-delete cli_delete

# sub_steps NAME SCRIPT [ENV=VALUE...]: runs another step script with ENV, shows its step
# lines and counts them here; a script that fails without a FAIL line counts as one failure.
sub_steps() {
  local name="$1" script="$2" rc=0
  shift 2
  log "$name steps: scripts/$script"
  env "$@" COMPAT_TIMEOUT="$T" bash "$ROOT/scripts/$script" \
    >"$WORK/steps/$name.out" 2>"$WORK/steps/$name.err" || rc=$?
  tally_steps "$WORK/steps/$name.out" "$rc" "$name: scripts/$script exited $rc; see $WORK/steps/$name.err"
}

# Consumer groups: scripts/compat-groups.sh against this same broker.
if [[ -z "$ONLY" || "groups" =~ $ONLY ]]; then
  groups_data=""
  [[ "$MODE" != sluice ]] || groups_data="$WORK/sluice-data"
  sub_steps groups compat-groups.sh BOOTSTRAP="$BOOTSTRAP" SLUICE_DATA="$groups_data"
fi

# A 3-node cluster: scripts/compat-cluster.sh starts its own (`sluice dev --nodes 3`), so only
# when testing Sluice itself.
if [[ "$MODE" == sluice ]] && [[ -z "$ONLY" || "cluster" =~ $ONLY ]]; then
  sub_steps cluster compat-cluster.sh SLUICE_BIN="$SLUICE_BIN"
fi

if [[ "$MODE" != external ]] && ! kill -0 "$BROKER_PID" 2>/dev/null; then
  FAILED=$((FAILED + 1))
  echo "FAIL broker-alive: the broker process exited during the run"
fi

# The broker must stop cleanly (exit 0 on SIGTERM) and must not have panicked, even where a
# client reconnected and the steps passed.
if [[ "$MODE" == sluice ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
  clean_exit_step "$BROKER_PID" "$WORK/sluice.log"
  BROKER_PID=""
fi

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
