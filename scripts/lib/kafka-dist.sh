# shellcheck shell=bash
# Apache Kafka 4.x distribution assembled from Maven, for the compatibility harness.
#
# Source this file; it defines functions only (plus defaults for the variables below).
#
#   kafka_dist_fetch                     download server + tools + clients jars (cached)
#   kafka_classpath                      print the classpath (jars joined by ':')
#   kafka_run_class MAIN [ARGS...]       run a main class on that classpath (bounded by
#                                        `timeout $KAFKA_RUN_TIMEOUT` when that is set)
#   kafka_start_reference_broker DIR [PORT]
#                                        format and start a single-node KRaft broker+controller
#                                        in DIR, listening on 127.0.0.1:PORT (ephemeral if
#                                        omitted or 0); waits until it serves. Sets
#                                        KAFKA_REF_PID, KAFKA_REF_BOOTSTRAP, KAFKA_REF_LOG and
#                                        KAFKA_REF_LAUNCHED_AT (epoch seconds, microsecond
#                                        precision, taken just before the JVM is launched).
#   kafka_start_reference_cluster DIR N  N broker+controller nodes forming one KRaft cluster;
#                                        sets KAFKA_CLUSTER_PIDS and KAFKA_CLUSTER_BOOTSTRAP
#
# It sources scripts/lib/proc.sh (stop_process, free_port, wait_port, ...).
#
# Variables (all optional):
#   KAFKA_VERSION     Kafka version from Maven (default 4.4.0)
#   KAFKA_DIST_DIR    cache directory (default <repo>/target/kafka-dist); reused when present
#   SLUICE_MVN_REPO   Maven local repository (default <repo>/target/m2)
#   KAFKA_REF_PROFILE      test (default): small heap and few threads, for compatibility tests;
#                          bench: Kafka's own defaults, for comparisons (KAFKA_BENCH_JVM_OPTS,
#                          default thread counts, log.segment.bytes 1 GiB, no per-message fsync)
#   KAFKA_REF_EXTRA_PROPERTIES  extra server.properties lines (key=value, one per line),
#                          appended last, so they override the above
#   KAFKA_START_NO_WAIT    1: return as soon as the JVM is launched and leave the waiting to the
#                          caller (e.g. to time the start-up by producing until it succeeds)
#   KAFKA_BROKER_JVM_OPTS  JVM options of the reference broker, test profile (default small heap)
#   KAFKA_BENCH_JVM_OPTS   JVM options of the reference broker, bench profile (default those of
#                          kafka-server-start.sh and kafka-run-class.sh: 1 GiB heap, G1)
#   KAFKA_TOOL_JVM_OPTS    JVM options of kafka_run_class (default small heap, fast start)
#   KAFKA_TOOL_LOG_LEVEL   log level of kafka_run_class (default WARN, to stderr)
#   KAFKA_RUN_TIMEOUT      seconds: bound each kafka_run_class with timeout(1)
#   KAFKA_START_TIMEOUT    seconds to wait for the reference broker (default 60)
#
# Main classes in Kafka 4.x (checked with `unzip -l` on the 4.4.0 jars):
#   kafka.Kafka                                       broker / controller (kafka_2.13)
#   kafka.tools.StorageTool                           kafka-storage.sh   (kafka_2.13)
#   org.apache.kafka.tools.TopicCommand               kafka-topics.sh    (kafka-tools)
#   org.apache.kafka.tools.ConsoleProducer            kafka-console-producer.sh
#   org.apache.kafka.tools.consumer.ConsoleConsumer   kafka-console-consumer.sh
#   org.apache.kafka.tools.DumpLogSegments            kafka-dump-log.sh

_KAFKA_DIST_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/proc.sh
source "$_KAFKA_DIST_LIB_DIR/proc.sh"
SLUICE_ROOT="${SLUICE_ROOT:-$(cd "$_KAFKA_DIST_LIB_DIR/../.." && pwd)}"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_DIST_DIR="${KAFKA_DIST_DIR:-$SLUICE_ROOT/target/kafka-dist}"
SLUICE_MVN_REPO="${SLUICE_MVN_REPO:-$SLUICE_ROOT/target/m2}"
KAFKA_BROKER_JVM_OPTS="${KAFKA_BROKER_JVM_OPTS:--Xms256m -Xmx512m -XX:+UseSerialGC -Djava.awt.headless=true}"
KAFKA_BENCH_JVM_OPTS="${KAFKA_BENCH_JVM_OPTS:--Xmx1G -Xms1G -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"
KAFKA_TOOL_JVM_OPTS="${KAFKA_TOOL_JVM_OPTS:--Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true}"
_KAFKA_LOG4J_CONF="$SLUICE_ROOT/scripts/kafka/log4j2.properties"

_kafka_log() { printf '[kafka-dist] %s\n' "$*" >&2; }

# Download the Kafka jars and their runtime dependencies unless already cached.
kafka_dist_fetch() {
  local marker="$KAFKA_DIST_DIR/.complete-$KAFKA_VERSION"
  if [[ -f "$marker" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || { _kafka_log "mvn not found"; return 1; }
  command -v java >/dev/null || { _kafka_log "java not found"; return 1; }
  _kafka_log "fetching Apache Kafka $KAFKA_VERSION jars into $KAFKA_DIST_DIR (one time)"
  local tmp="$KAFKA_DIST_DIR/libs.tmp"
  rm -rf "$tmp"
  mkdir -p "$KAFKA_DIST_DIR"
  if ! timeout 900 mvn -B -q -f "$SLUICE_ROOT/scripts/kafka/pom.xml" \
      -Dmaven.repo.local="$SLUICE_MVN_REPO" \
      -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
      >"$KAFKA_DIST_DIR/mvn.log" 2>&1; then
    _kafka_log "maven failed; see $KAFKA_DIST_DIR/mvn.log"
    tail -n 20 "$KAFKA_DIST_DIR/mvn.log" >&2
    return 1
  fi
  rm -rf "$KAFKA_DIST_DIR/libs"
  mv "$tmp" "$KAFKA_DIST_DIR/libs"
  rm -f "$KAFKA_DIST_DIR"/.complete-*
  touch "$marker"
}

# Print the classpath of the distribution: every jar, joined by ':'.
kafka_classpath() {
  kafka_dist_fetch || return 1
  local jars=("$KAFKA_DIST_DIR"/libs/*.jar) cp
  cp="$(printf '%s:' "${jars[@]}")"
  printf '%s\n' "${cp%:}"
}

# kafka_run_class MAIN [ARGS...]: run a Kafka main class (CLI tools log at WARN to stderr).
kafka_run_class() {
  local main="$1"
  shift
  local cp
  cp="$(kafka_classpath)" || return 1
  local -a opts
  read -r -a opts <<<"$KAFKA_TOOL_JVM_OPTS"
  local -a pre=()
  if [[ -n "${KAFKA_RUN_TIMEOUT:-}" ]]; then
    pre=(timeout "$KAFKA_RUN_TIMEOUT")
  fi
  "${pre[@]}" java "${opts[@]}" \
    -Dlog4j2.configurationFile="$_KAFKA_LOG4J_CONF" \
    -Dsluice.log.level="${KAFKA_TOOL_LOG_LEVEL:-WARN}" \
    -cp "$cp" "$main" "$@"
}

# kafka_start_reference_broker DIR [PORT]: single-node KRaft (combined broker+controller).
# _kafka_node_config CONF NODE_ID PORT VOTERS DATA_DIR RF: one KRaft broker+controller's
# server.properties (profile and KAFKA_REF_EXTRA_PROPERTIES included) into CONF; VOTERS is
# controller.quorum.voters, the node's own controller port taken from it.
_kafka_node_config() {
  local conf="$1" id="$2" port="$3" voters="$4" data="$5" rf="$6" cport
  cport="$(tr ',' '\n' <<<"$voters" | sed -n "s/^$id@.*:\([0-9]*\)$/\1/p")"
  cat >"$conf" <<EOF
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data
num.partitions=1
default.replication.factor=$rf
auto.create.topics.enable=true
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.check.interval.ms=300000
EOF
  case "${KAFKA_REF_PROFILE:-test}" in
    test)
      cat >>"$conf" <<EOF
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
EOF
      ;;
    bench)
      # Kafka's defaults otherwise (3 network and 8 I/O threads); segment size and flush policy
      # written out because they are what a comparison with Sluice depends on: 1 GiB segments,
      # no fsync by message count or time (acknowledged writes sit in the page cache).
      cat >>"$conf" <<EOF
log.segment.bytes=1073741824
log.flush.interval.messages=9223372036854775807
EOF
      ;;
    *)
      _kafka_log "KAFKA_REF_PROFILE must be test or bench, not '$KAFKA_REF_PROFILE'"
      return 1
      ;;
  esac
  if [[ -n "${KAFKA_REF_EXTRA_PROPERTIES:-}" ]]; then
    printf '%s\n' "$KAFKA_REF_EXTRA_PROPERTIES" >>"$conf"
  fi
}

# _kafka_format CONF DIR CLUSTER_ID: kafka-storage format of one node (a formatted directory is
# kept as it is).
_kafka_format() {
  if ! KAFKA_TOOL_LOG_LEVEL=ERROR KAFKA_RUN_TIMEOUT=60 kafka_run_class kafka.tools.StorageTool \
      format -t "$3" -c "$1" --ignore-formatted >"$2/format.log" 2>&1; then
    _kafka_log "StorageTool format failed:"
    cat "$2/format.log" >&2
    return 1
  fi
}

# _kafka_launch CONF DIR: starts the JVM of one node in the background; sets _KAFKA_PID.
_kafka_launch() {
  local conf="$1" dir="$2" cp jvm_opts
  case "${KAFKA_REF_PROFILE:-test}" in
    bench) jvm_opts="$KAFKA_BENCH_JVM_OPTS" ;;
    *) jvm_opts="$KAFKA_BROKER_JVM_OPTS" ;;
  esac
  cp="$(kafka_classpath)" || return 1
  local -a opts
  read -r -a opts <<<"$jvm_opts"
  java "${opts[@]}" \
    -Dlog4j2.configurationFile="$_KAFKA_LOG4J_CONF" \
    -Dsluice.log.level=INFO \
    -Dkafka.logs.dir="$dir" \
    -cp "$cp" kafka.Kafka "$conf" >"$dir/broker.log" 2>&1 </dev/null &
  _KAFKA_PID=$!
  echo "$_KAFKA_PID" >"$dir/broker.pid"
}

# _kafka_wait_started PID LOG PORT: bounded wait until the node serves and says it started.
_kafka_wait_started() {
  local pid="$1" log="$2" port="$3"
  local deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-60}))
  if ! wait_port 127.0.0.1 "$port" "${KAFKA_START_TIMEOUT:-60}" "$pid"; then
    _kafka_log "reference broker did not start; last lines of $log:"
    tail -n 30 "$log" >&2
    stop_process "$pid"
    return 1
  fi
  until grep -q 'Kafka Server started' "$log"; do
    if ((SECONDS >= deadline)) || ! kill -0 "$pid" 2>/dev/null; then
      _kafka_log "reference broker did not report 'Kafka Server started'; last lines of $log:"
      tail -n 30 "$log" >&2
      stop_process "$pid"
      return 1
    fi
    sleep 0.2
  done
}

_kafka_random_cluster_id() {
  KAFKA_TOOL_LOG_LEVEL=ERROR KAFKA_RUN_TIMEOUT=60 kafka_run_class kafka.tools.StorageTool random-uuid
}

kafka_start_reference_broker() {
  local dir="$1" port="${2:-0}"
  kafka_dist_fetch || return 1
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [[ "$port" == 0 ]]; then
    port="$(free_port)"
  fi
  local cport
  cport="$(free_port)"
  while [[ "$cport" == "$port" ]]; do cport="$(free_port)"; done

  local conf="$dir/server.properties"
  _kafka_node_config "$conf" 1 "$port" "1@127.0.0.1:$cport" "$dir/data" 1 || return 1
  local cluster_id
  # A restart on the same directory keeps the cluster id it was formatted with.
  cluster_id="$(sed -n 's/^cluster.id=//p' "$dir/data/meta.properties" 2>/dev/null || true)"
  if [[ -z "$cluster_id" ]]; then
    cluster_id="$(_kafka_random_cluster_id)" || {
      _kafka_log "StorageTool random-uuid failed"
      return 1
    }
  fi
  _kafka_format "$conf" "$dir" "$cluster_id" || return 1
  # shellcheck disable=SC2034 # for the caller
  KAFKA_REF_LAUNCHED_AT="$EPOCHREALTIME"
  _kafka_launch "$conf" "$dir" || return 1
  KAFKA_REF_PID="$_KAFKA_PID"
  KAFKA_REF_LOG="$dir/broker.log"
  KAFKA_REF_BOOTSTRAP="127.0.0.1:$port"
  if [[ "${KAFKA_START_NO_WAIT:-}" == 1 ]]; then
    return 0
  fi
  _kafka_wait_started "$KAFKA_REF_PID" "$KAFKA_REF_LOG" "$port" || return 1
  _kafka_log "Apache Kafka $KAFKA_VERSION up at $KAFKA_REF_BOOTSTRAP (pid $KAFKA_REF_PID, log $KAFKA_REF_LOG)"
}

# kafka_start_reference_cluster DIR N: N KRaft broker+controller nodes (all voters) in
# DIR/node-I, on free loopback ports, formatted with one cluster id and replication factor
# min(3, N) for the internal topics; waits until every node serves. Sets KAFKA_CLUSTER_PIDS
# (array), KAFKA_CLUSTER_BOOTSTRAP and KAFKA_REF_LAUNCHED_AT (just before the first JVM).
kafka_start_reference_cluster() {
  local dir="$1" n="$2" i cluster_id voters="" rf=$(($2 < 3 ? $2 : 3))
  kafka_dist_fetch || return 1
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local -a ports=()
  for ((i = 1; i <= n; i++)); do
    ports+=("$(free_port)")
    voters+="${voters:+,}$i@127.0.0.1:$(free_port)"
  done
  cluster_id="$(_kafka_random_cluster_id)" || return 1
  for ((i = 1; i <= n; i++)); do
    mkdir -p "$dir/node-$i"
    _kafka_node_config "$dir/node-$i/server.properties" "$i" "${ports[$((i - 1))]}" "$voters" \
      "$dir/node-$i/data" "$rf" || return 1
    _kafka_format "$dir/node-$i/server.properties" "$dir/node-$i" "$cluster_id" || return 1
  done
  KAFKA_CLUSTER_PIDS=()
  KAFKA_CLUSTER_BOOTSTRAP=""
  # shellcheck disable=SC2034 # for the caller
  KAFKA_REF_LAUNCHED_AT="$EPOCHREALTIME"
  for ((i = 1; i <= n; i++)); do
    _kafka_launch "$dir/node-$i/server.properties" "$dir/node-$i" || return 1
    KAFKA_CLUSTER_PIDS+=("$_KAFKA_PID")
    KAFKA_CLUSTER_BOOTSTRAP+="${KAFKA_CLUSTER_BOOTSTRAP:+,}127.0.0.1:${ports[$((i - 1))]}"
  done
  for ((i = 1; i <= n; i++)); do
    _kafka_wait_started "${KAFKA_CLUSTER_PIDS[$((i - 1))]}" "$dir/node-$i/broker.log" \
      "${ports[$((i - 1))]}" || return 1
  done
  _kafka_log "Apache Kafka $KAFKA_VERSION cluster of $n up at $KAFKA_CLUSTER_BOOTSTRAP"
}
