#!/usr/bin/env bash
# Side-by-side benchmark: Sluice against Apache Kafka 4.x on this machine, same clients, same
# parameters, in alternation (issue 6). Not part of CI.
#
#   bash scripts/bench.sh            full mode: 3 repetitions, medians (about 9 minutes on
#                                    2 cores)
#   bash scripts/bench.sh --quick    1 repetition, fewer records (about 2 minutes); the table
#                                    says so
#   ... --no-doc                     print the table only; leave docs/performance.md alone
#   bash scripts/bench.sh --cluster  3 brokers each (Kafka: 3 KRaft broker+controller JVMs;
#                                    Sluice: `sluice dev --nodes 3`), topics of replication
#                                    factor 3 and min.insync.replicas 2, acks=all only: its own
#                                    section of docs/performance.md (about 8 minutes)
#
# Steps: build the release binaries once (sluice, sluice-bench); fetch the Kafka jars
# (scripts/lib/kafka-dist.sh, cached under target/kafka-dist); then for each repetition, Kafka
# first, then Sluice, each with a fresh broker and a fresh data directory under target/tmp (the
# real disk, not tmpfs):
#
#   start-up   launch the broker, then produce one record (topic creation included) with
#              sluice-bench until it succeeds; the time from launch to that success
#   warm-up    sluice-bench produces BENCH_RECORDS/2 records, not measured
#   produce    Kafka's ProducerPerformance, then sluice-bench produce (librdkafka), each with
#              all 8 combinations of acks {1, all} x {1, 8} partitions x batch.size {16 KiB,
#              1 MiB}; 1 KiB records, linger.ms 5
#   consume    Kafka's ConsumerPerformance reads back the ProducerPerformance topics of acks=1,
#              batch.size 16 KiB (1 and 8 partitions), sluice-bench consume the sluice-bench ones
#   e2e        sluice-bench e2e: produce at a fixed rate while consuming, acks=all
#
# and records, per system: throughput (MB/s, records/s), latency percentiles, broker CPU
# seconds per run (utime + stime from /proc/PID/stat), broker RSS after start-up and at its peak
# (VmHWM from /proc/PID/status) and the start-up time. The medians go into docs/performance.md
# (between the markers of the section "Side by side with Apache Kafka"; the rest of the file
# is untouched), with the ratio Sluice/Kafka per row, the machine and this command.
#
# With --cluster, each repetition starts a fresh 3-broker cluster per system and runs, on topics
# of replication factor 3 with min.insync.replicas 2: the warm-up, ProducerPerformance and
# sluice-bench produce with acks=all on {1, 8} partitions (batch.size 16 KiB), and the e2e run
# (acks=all). Broker CPU and memory are summed over the three brokers.
#
# The clients run on the same cores as the broker under test: on a small machine the figures
# are those of client and broker together.
#
# Environment:
#   BENCH_REPS          repetitions (default 3; --quick: 1)
#   BENCH_RECORDS       records per ProducerPerformance run (default 400000; --quick: 60000);
#                       sluice-bench, a lighter client, produces and consumes twice as many
#   BENCH_RECORD_SIZE   bytes per record (default 1024)
#   BENCH_E2E_RATE      MB/s of the end-to-end run (default 20)
#   BENCH_E2E_SECONDS   seconds of the end-to-end run after its 1 s warm-up (default 15;
#                       --quick: 5)
#   BENCH_E2E_PARTITIONS  partitions of the end-to-end run (default 1)
#   BENCH_NO_BUILD=1    use target/release as it is
#   BENCH_KEEP=1        keep the work directory (broker logs, client output); the per-run
#                       figures are always kept in target/bench/results.jsonl
#   BENCH_DOC           file to write the section into (default docs/performance.md)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/kafka-dist.sh
source "$ROOT/scripts/lib/kafka-dist.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

QUICK=0
CLUSTER=0
WRITE_DOC=1
COMMAND_LINE="bash scripts/bench.sh"
while (($#)); do
  case "$1" in
    --quick) QUICK=1 ;;
    --cluster) CLUSTER=1 ;;
    --no-doc) WRITE_DOC=0; shift; continue ;; # changes no figure: not part of the command
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  COMMAND_LINE+=" $1"
  shift
done
# Settings given in the environment are part of the command that reproduces the figures.
for var in BENCH_REPS BENCH_RECORDS BENCH_RECORD_SIZE BENCH_E2E_RATE BENCH_E2E_SECONDS \
  BENCH_E2E_PARTITIONS; do
  if [[ -n "${!var:-}" ]]; then COMMAND_LINE="$var=${!var} $COMMAND_LINE"; fi
done

if ((QUICK)); then
  REPS="${BENCH_REPS:-1}"
  RECORDS="${BENCH_RECORDS:-60000}"
  E2E_SECONDS="${BENCH_E2E_SECONDS:-5}"
else
  REPS="${BENCH_REPS:-3}"
  RECORDS="${BENCH_RECORDS:-400000}"
  E2E_SECONDS="${BENCH_E2E_SECONDS:-15}"
fi
RECORD_SIZE="${BENCH_RECORD_SIZE:-1024}"
E2E_RATE="${BENCH_E2E_RATE:-20}"
E2E_PARTITIONS="${BENCH_E2E_PARTITIONS:-1}"
SB_RECORDS=$((2 * RECORDS))
WARMUP_RECORDS=$((RECORDS / 2))
DOC="${BENCH_DOC:-$ROOT/docs/performance.md}"
SLUICE_BIN="$ROOT/target/release/sluice"
BENCH_BIN="$ROOT/target/release/sluice-bench"
PP_ACKS=(1 all)
PP_PARTITIONS=(1 8)
BATCHES=(16384 1048576)
# The batch size of the topics read back, and of the end-to-end run.
SMALL_BATCH=16384
# The rows at scale: many producers, many partitions, small records (4x as many).
MANY_PRODUCERS=100
MANY_PARTITIONS=1000
SMALL_RECORD_SIZE=100
LINGER_MS=5
# Hard limits, in seconds: one client run, the start-up (a broker's stop: 20 s, stop_process).
CLIENT_TIMEOUT=180
STARTUP_TIMEOUT=90
CLK_TCK="$(getconf CLK_TCK)"
# The JVM options kafka-producer-perf-test.sh and kafka-consumer-perf-test.sh run the tools with
# (512 MiB heap, kafka-run-class.sh's G1 settings), not the fast-start ones of the compat tests.
export KAFKA_TOOL_JVM_OPTS="-Xmx512M -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true"
export KAFKA_RUN_TIMEOUT="$CLIENT_TIMEOUT"
# Broker settings both systems get on top of their defaults: the consumer group of
# ConsumerPerformance joins at once, and its offsets go to a one-partition __consumer_offsets.
# (kafka-dist.sh's bench profile already writes some of them for Kafka; listing them here keeps
# the two systems' settings in one place.)
COMMON_PROPERTIES=(group.initial.rebalance.delay.ms=0 offsets.topic.num.partitions=1
  num.partitions=1 log.segment.bytes=1073741824)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }

for tool in jq python3 java timeout; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

if [[ "${BENCH_NO_BUILD:-}" != 1 ]]; then
  log "building release binaries: sluice-broker, sluice-bench"
  (cd "$ROOT" && cargo build --release -q -p sluice-broker -p sluice-bench)
fi
[[ -x "$SLUICE_BIN" && -x "$BENCH_BIN" ]] || die "release binaries missing in target/release"
log "fetching Apache Kafka $KAFKA_VERSION (cached)"
kafka_dist_fetch || die "could not fetch the Kafka jars"

mkdir -p "$ROOT/target/tmp"
WORK="$(mktemp -d "$ROOT/target/tmp/bench.XXXXXX")"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
# The process to stop (a single broker, or `sluice dev` for a Sluice cluster) and every broker
# process whose CPU and memory count.
BROKER_PID=""
NODE_PIDS=()
CLIENT_PID=""
FAILED=0

# Stop the broker under test: TERM, then KILL after 20 seconds.
stop_broker() {
  local pid
  local -a pids=("${NODE_PIDS[@]}")
  [[ -z "$BROKER_PID" ]] || pids=("$BROKER_PID")
  BROKER_PID=""
  NODE_PIDS=()
  # All at once: a cluster stopped one by one leaves the last node without a quorum to shut
  # down cleanly with.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    stop_process "$pid"
    ((STOP_KILLED == 0)) || log "broker $pid still running 20 s after SIGTERM: killed it"
  done
}

# Broker CPU seconds, memory (MiB of a /proc status field) and liveness, over NODE_PIDS.
brokers_cpu() {
  local pid total=0
  for pid in "${NODE_PIDS[@]}"; do
    total="$(awk -v a="$total" -v b="$(cpu_seconds "$pid")" 'BEGIN { printf "%.3f", a + b }')"
  done
  echo "$total"
}
brokers_mib() {
  local pid total=0
  for pid in "${NODE_PIDS[@]}"; do
    total="$(awk -v a="$total" -v b="$(status_mib "$pid" "$1")" 'BEGIN { printf "%.1f", a + b }')"
  done
  echo "$total"
}
brokers_alive() {
  local pid
  for pid in "${NODE_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || return 1; done
}

# Stop the running client, if any: its children first (the JVM under timeout(1)), then it.
stop_client() {
  [[ -n "$CLIENT_PID" ]] || return 0
  pkill -TERM -P "$CLIENT_PID" 2>/dev/null || true
  kill -TERM "$CLIENT_PID" 2>/dev/null || true
  wait "$CLIENT_PID" 2>/dev/null || true
  CLIENT_PID=""
}

cleanup() {
  local rc=$?
  stop_client
  stop_broker
  if ((rc != 0 || FAILED > 0)) || [[ "${BENCH_KEEP:-}" == 1 ]]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

elapsed_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

# record SYSTEM REP ID JSON: append one measurement to the results.
record() {
  jq -c --arg system "$1" --argjson rep "$2" --arg id "$3" \
    '{system: $system, rep: $rep, id: $id} + .' <<<"$4" >>"$RESULTS"
}

# run_client NAME CMD...: run a client against the broker under test, in the background so a
# signal stops it at once, with its output in $RUN_DIR/NAME.{out,err}. Sets RUN_RC, RUN_WALL and
# RUN_CPU (the broker's CPU seconds during the run).
run_client() {
  local name="$1"
  shift
  local before started
  before="$(brokers_cpu)"
  started="$EPOCHREALTIME"
  RUN_RC=0
  "$@" >"$RUN_DIR/$name.out" 2>"$RUN_DIR/$name.err" </dev/null &
  CLIENT_PID=$!
  wait "$CLIENT_PID" || RUN_RC=$?
  CLIENT_PID=""
  RUN_WALL="$(elapsed_since "$started")"
  brokers_alive || die "$SYSTEM broker exited during $name; see $RUN_DIR"
  RUN_CPU="$(awk -v a="$before" -v b="$(brokers_cpu)" 'BEGIN { printf "%.3f", b - a }')"
  if ((RUN_RC != 0)); then
    FAILED=$((FAILED + 1))
    log "$SYSTEM r$REP $name: FAILED (exit $RUN_RC); last lines of its output:"
    tail -n 5 "$RUN_DIR/$name.err" "$RUN_DIR/$name.out" >&2 || true
  fi
}

sb() { timeout "$CLIENT_TIMEOUT" "$BENCH_BIN" "$@"; }

# create_topic NAME PARTITIONS: with sluice-bench (no records), so that ProducerPerformance
# finds the topic with the partitions asked for.
create_topic() {
  sb produce --bootstrap "$BOOT" --topic "$1" --partitions "$2" --create-topic --records 0 \
    --report-interval-secs 0 >>"$RUN_DIR/create-topics.out" 2>&1 ||
    die "$SYSTEM: could not create topic $1"
}

# Start-up: from LAUNCHED_AT, produce one record (creating its topic) with sluice-bench until it
# succeeds; both brokers are probed by the same client the same way.
probe_first_produce() {
  local port="$1" deadline=$((SECONDS + STARTUP_TIMEOUT)) attempt=0
  while ((SECONDS < deadline)); do
    brokers_alive || die "$SYSTEM broker exited during start-up; see $RUN_DIR"
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      attempt=$((attempt + 1))
      if timeout 20 "$BENCH_BIN" produce --bootstrap "127.0.0.1:$port" --topic bench-startup \
        --create-topic --records 1 --acks all --report-interval-secs 0 \
        -X reconnect.backoff.ms=10 -X reconnect.backoff.max.ms=100 \
        >"$RUN_DIR/startup-probe.out" 2>&1; then
        STARTUP_S="$(elapsed_since "$LAUNCHED_AT")"
        return 0
      fi
    fi
    sleep 0.05
  done
  die "$SYSTEM: no successful produce within ${STARTUP_TIMEOUT}s of launch ($attempt attempts)"
}

start_kafka() {
  local port="$1" before="$EPOCHREALTIME" extra
  extra="$(printf '%s\n' "${COMMON_PROPERTIES[@]}")"
  KAFKA_REF_PROFILE=bench KAFKA_START_NO_WAIT=1 KAFKA_REF_EXTRA_PROPERTIES="$extra" \
    kafka_start_reference_broker "$RUN_DIR" "$port" || die "Kafka did not start"
  BROKER_PID="$KAFKA_REF_PID"
  NODE_PIDS=("$KAFKA_REF_PID")
  LAUNCHED_AT="$KAFKA_REF_LAUNCHED_AT"
  FORMAT_S="$(awk -v a="$before" -v b="$LAUNCHED_AT" 'BEGIN { printf "%.3f", b - a }')"
}

start_sluice() {
  local port="$1" prop
  local -a sets=()
  for prop in "${COMMON_PROPERTIES[@]}"; do sets+=(--set "$prop"); done
  LAUNCHED_AT="$EPOCHREALTIME"
  "$SLUICE_BIN" dev --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 \
    --data-dir "$RUN_DIR/data" "${sets[@]}" \
    >"$RUN_DIR/broker.out" 2>"$RUN_DIR/broker.err" </dev/null &
  BROKER_PID=$!
  NODE_PIDS=("$BROKER_PID")
  FORMAT_S=0
}

start_kafka_cluster() {
  local extra
  extra="$(printf '%s\n' "${COMMON_PROPERTIES[@]}")"
  KAFKA_REF_PROFILE=bench KAFKA_REF_EXTRA_PROPERTIES="$extra" \
    kafka_start_reference_cluster "$RUN_DIR" 3 || die "the Kafka cluster did not start"
  NODE_PIDS=("${KAFKA_CLUSTER_PIDS[@]}")
  BOOT="$KAFKA_CLUSTER_BOOTSTRAP"
}

start_sluice_cluster() {
  local prop ok=0
  local -a sets=()
  for prop in "${COMMON_PROPERTIES[@]}"; do sets+=(--set "$prop"); done
  start_dev_cluster "$SLUICE_BIN" "$RUN_DIR/broker.out" --nodes 3 --listen 127.0.0.1:0 \
    --admin-listen 127.0.0.1:0 --data-dir "$RUN_DIR/data" "${sets[@]}" && ok=1
  BROKER_PID="$DEV_PID"
  ((ok)) || die "the Sluice cluster did not start; see $RUN_DIR"
  BOOT="$DEV_BOOTSTRAP"
  local i pid
  NODE_PIDS=()
  for i in 1 2 3; do
    pid="$(dev_node "$RUN_DIR/broker.out" "$i" pid)"
    [[ -n "$pid" ]] || die "no pid for Sluice node $i in $RUN_DIR/broker.out"
    NODE_PIDS+=("$pid")
  done
}

# ProducerPerformance's last line: "N records sent, R records/sec (M MB/sec), A ms avg latency,
# X ms max latency, P50 ms 50th, P95 ms 95th, P99 ms 99th, P999 ms 99.9th."
parse_pp() {
  grep -E 'records sent.*99\.9th' "$1" | tail -n 1 | sed -E \
    's/^([0-9]+) records sent, ([0-9.]+) records\/sec \(([0-9.]+) MB\/sec\), ([0-9.]+) ms avg latency, ([0-9.]+) ms max latency, ([0-9.]+) ms 50th, ([0-9.]+) ms 95th, ([0-9.]+) ms 99th, ([0-9.]+) ms 99\.9th\.?$/{"records":\1,"records_per_sec":\2,"mb_per_sec":\3,"p50_ms":\6,"p99_ms":\8,"p999_ms":\9,"max_ms":\5}/' |
    grep '^{' || true
}

# ConsumerPerformance's CSV line; fetch.* exclude the time the consumer spent joining its group.
parse_cp() {
  awk -F', *' 'NF >= 10 && $5 ~ /^[0-9]+$/ {
    printf "{\"records\":%s,\"records_per_sec\":%s,\"mb_per_sec\":%s,\"rebalance_ms\":%s,\"incl_join_mb_per_sec\":%s}\n", $5, $10, $9, $7, $4
  }' "$1" | tail -n 1
}

parse_sb() { sed -n 's/^RESULT //p' "$1" | tail -n 1; }

# measure ID PARSER NAME CMD...: run a client, parse its output, record it with the broker CPU.
measure() {
  local id="$1" parser="$2" name="$3"
  shift 3
  run_client "$name" "$@"
  ((RUN_RC == 0)) || return 0
  local json
  json="$("$parser" "$RUN_DIR/$name.out")"
  if [[ -z "$json" ]]; then
    FAILED=$((FAILED + 1))
    log "$SYSTEM r$REP $name: no result in its output"
    return 0
  fi
  json="$(jq -c --argjson cpu "$RUN_CPU" --argjson wall "$RUN_WALL" \
    '. + {broker_cpu_s: $cpu, wall_s: $wall}' <<<"$json")"
  record "$SYSTEM" "$REP" "$id" "$json"
  log "$SYSTEM r$REP $id: $(jq -r '"\(.mb_per_sec * 10 | round / 10) MB/s" +
    (if .p99_ms then ", p99 \(.p99_ms) ms" else "" end) + ", broker CPU \(.broker_cpu_s) s"' <<<"$json")"
}

# One repetition of one system: fresh broker, fresh data directory, every workload.
run_system() {
  SYSTEM="$1"
  REP="$2"
  RUN_DIR="$WORK/$SYSTEM-r$REP"
  mkdir -p "$RUN_DIR"
  local port
  port="$(free_port)"
  BOOT="127.0.0.1:$port"
  log "$SYSTEM r$REP: starting"
  "start_$SYSTEM" "$port"
  probe_first_produce "$port"
  record "$SYSTEM" "$REP" startup "$(jq -nc --argjson s "$STARTUP_S" --argjson f "$FORMAT_S" \
    --argjson rss "$(brokers_mib VmRSS)" \
    '{startup_s: $s, format_s: $f, with_format_s: ($s + $f), rss_idle_mib: $rss}')"
  log "$SYSTEM r$REP: first produce ${STARTUP_S}s after launch"

  run_client warmup sb produce --bootstrap "$BOOT" --topic warmup --partitions 8 \
    --create-topic --records "$WARMUP_RECORDS" --record-size "$RECORD_SIZE" --acks 1 \
    --report-interval-secs 0

  local acks partitions batch id
  for acks in "${PP_ACKS[@]}"; do
    for partitions in "${PP_PARTITIONS[@]}"; do
      for batch in "${BATCHES[@]}"; do
        id="pp-acks$acks-p$partitions-b$batch"
        create_topic "$id" "$partitions"
        measure "$id" parse_pp "$id" kafka_run_class org.apache.kafka.tools.ProducerPerformance \
          --topic "$id" --num-records "$RECORDS" --record-size "$RECORD_SIZE" --throughput -1 \
          --command-property "bootstrap.servers=$BOOT" "acks=$acks" "linger.ms=$LINGER_MS" \
          "batch.size=$batch"
      done
    done
  done
  for acks in "${PP_ACKS[@]}"; do
    for partitions in "${PP_PARTITIONS[@]}"; do
      for batch in "${BATCHES[@]}"; do
        id="sb-acks$acks-p$partitions-b$batch"
        measure "$id" parse_sb "$id" sb produce --bootstrap "$BOOT" --topic "$id" \
          --partitions "$partitions" --create-topic --records "$SB_RECORDS" \
          --record-size "$RECORD_SIZE" --acks "$acks" --linger-ms "$LINGER_MS" \
          --batch-size "$batch" --report-interval-secs 0
      done
    done
  done
  for partitions in "${PP_PARTITIONS[@]}"; do
    measure "cp-p$partitions" parse_cp "cp-p$partitions" \
      kafka_run_class org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$BOOT" \
      --topic "pp-acks1-p$partitions-b$SMALL_BATCH" --num-records "$RECORDS" --timeout 30000
    measure "sbc-p$partitions" parse_sb "sbc-p$partitions" sb consume --bootstrap "$BOOT" \
      --topic "sb-acks1-p$partitions-b$SMALL_BATCH" --partitions "$partitions" \
      --records "$SB_RECORDS"
  done
  # At scale, acks=1, batch.size 16 KiB: 100 producers of their own (one client each) on 8
  # partitions; one producer on 1,000 partitions, read back by both consumers (the Java one
  # with fetch sessions); records of 100 bytes.
  measure sb-producers parse_sb sb-producers sb produce --bootstrap "$BOOT" \
    --topic sb-producers --partitions 8 --create-topic --records "$SB_RECORDS" \
    --record-size "$RECORD_SIZE" --acks 1 --linger-ms "$LINGER_MS" --batch-size "$SMALL_BATCH" \
    --producers "$MANY_PRODUCERS" --report-interval-secs 0
  measure sb-many parse_sb sb-many sb produce --bootstrap "$BOOT" --topic sb-many \
    --partitions "$MANY_PARTITIONS" --create-topic --records "$SB_RECORDS" \
    --record-size "$RECORD_SIZE" --acks 1 --linger-ms "$LINGER_MS" --batch-size "$SMALL_BATCH" \
    --report-interval-secs 0
  measure cp-many parse_cp cp-many kafka_run_class org.apache.kafka.tools.ConsumerPerformance \
    --bootstrap-server "$BOOT" --topic sb-many --num-records "$SB_RECORDS" --timeout 30000
  measure sbc-many parse_sb sbc-many sb consume --bootstrap "$BOOT" --topic sb-many \
    --partitions "$MANY_PARTITIONS" --records "$SB_RECORDS"
  create_topic pp-small 8
  measure pp-small parse_pp pp-small kafka_run_class org.apache.kafka.tools.ProducerPerformance \
    --topic pp-small --num-records $((4 * RECORDS)) --record-size "$SMALL_RECORD_SIZE" \
    --throughput -1 --command-property "bootstrap.servers=$BOOT" acks=1 \
    "linger.ms=$LINGER_MS" "batch.size=$SMALL_BATCH"
  measure sb-small parse_sb sb-small sb produce --bootstrap "$BOOT" --topic sb-small \
    --partitions 8 --create-topic --records $((4 * SB_RECORDS)) \
    --record-size "$SMALL_RECORD_SIZE" --acks 1 --linger-ms "$LINGER_MS" \
    --batch-size "$SMALL_BATCH" --report-interval-secs 0
  measure e2e parse_sb e2e timeout $((E2E_SECONDS + 120)) "$BENCH_BIN" e2e \
    --bootstrap "$BOOT" --topic e2e --partitions "$E2E_PARTITIONS" --create-topic \
    --rate-mb-per-sec "$E2E_RATE" --seconds "$E2E_SECONDS" --record-size "$RECORD_SIZE" \
    --acks all --linger-ms "$LINGER_MS" --batch-size "$SMALL_BATCH" --report-interval-secs 0

  record_totals_and_stop
}

# The repetition's totals (peak RSS and CPU over the brokers), then the brokers stop; their
# warnings are counted, and the data is dropped so the next broker starts on a clean disk.
record_totals_and_stop() {
  record "$SYSTEM" "$REP" totals "$(jq -nc --argjson hwm "$(brokers_mib VmHWM)" \
    --argjson cpu "$(brokers_cpu)" '{rss_peak_mib: $hwm, cpu_total_s: $cpu}')"
  stop_broker
  local warnings
  if [[ "$SYSTEM" == kafka ]]; then
    warnings="$(cat "$RUN_DIR"/broker.log "$RUN_DIR"/node-*/broker.log 2>/dev/null | grep -cE '\] (WARN|ERROR) ' || true)"
  else
    warnings="$(cat "$RUN_DIR"/broker.err "$RUN_DIR"/broker.out 2>/dev/null |
      sed 's/\x1b\[[0-9;]*m//g' | grep -cE ' (WARN|ERROR) ' || true)"
  fi
  log "$SYSTEM r$REP: done; brokers logged ${warnings:-0} warnings/errors (see $RUN_DIR when kept)"
  rm -rf "$RUN_DIR/data" "$RUN_DIR"/node-*/data
  timeout 120 sync || log "sync did not finish within 120 s"
}

# One repetition of one system with --cluster: a fresh 3-broker cluster, replication factor 3,
# min.insync.replicas 2, acks=all.
run_cluster_system() {
  SYSTEM="$1"
  REP="$2"
  RUN_DIR="$WORK/$SYSTEM-cluster-r$REP"
  mkdir -p "$RUN_DIR"
  log "$SYSTEM r$REP: starting 3 brokers"
  "start_${SYSTEM}_cluster"
  record "$SYSTEM" "$REP" startup "$(jq -nc --argjson rss "$(brokers_mib VmRSS)" '{rss_idle_mib: $rss}')"
  local -a rf3=(--replication-factor 3 --topic-config min.insync.replicas=2)
  run_client warmup sb produce --bootstrap "$BOOT" --topic warmup --partitions 8 \
    --create-topic "${rf3[@]}" --records "$WARMUP_RECORDS" --record-size "$RECORD_SIZE" \
    --acks 1 --report-interval-secs 0
  local partitions id
  for partitions in "${PP_PARTITIONS[@]}"; do
    id="cpp-p$partitions"
    run_client "create-$id" sb produce --bootstrap "$BOOT" --topic "$id" \
      --partitions "$partitions" --create-topic "${rf3[@]}" --records 0 --report-interval-secs 0
    measure "$id" parse_pp "$id" kafka_run_class org.apache.kafka.tools.ProducerPerformance \
      --topic "$id" --num-records "$RECORDS" --record-size "$RECORD_SIZE" --throughput -1 \
      --command-property "bootstrap.servers=$BOOT" acks=all "linger.ms=$LINGER_MS" \
      "batch.size=$SMALL_BATCH"
    id="csb-p$partitions"
    measure "$id" parse_sb "$id" sb produce --bootstrap "$BOOT" --topic "$id" \
      --partitions "$partitions" --create-topic "${rf3[@]}" --records "$SB_RECORDS" \
      --record-size "$RECORD_SIZE" --acks all --linger-ms "$LINGER_MS" \
      --batch-size "$SMALL_BATCH" --report-interval-secs 0
  done
  measure ce2e parse_sb ce2e timeout $((E2E_SECONDS + 120)) "$BENCH_BIN" e2e \
    --bootstrap "$BOOT" --topic ce2e --partitions "$E2E_PARTITIONS" --create-topic "${rf3[@]}" \
    --rate-mb-per-sec "$E2E_RATE" --seconds "$E2E_SECONDS" --record-size "$RECORD_SIZE" \
    --acks all --linger-ms "$LINGER_MS" --batch-size "$SMALL_BATCH" --report-interval-secs 0
  record_totals_and_stop
}

# CPU seconds of this script's finished children (brokers and clients), from /proc/$$/stat.
own_children_seconds() {
  awk -v t="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($14 + $15) / t }' "/proc/$$/stat"
}

LOAD_BEFORE="$(cut -d ' ' -f 1-3 /proc/loadavg)"
awk -v l="${LOAD_BEFORE%% *}" 'BEGIN { exit !(l < 0.5) }' ||
  log "note: load average before the run is $LOAD_BEFORE; other work on the machine skews the figures"
log "$REPS repetition(s), $RECORDS (ProducerPerformance) and $SB_RECORDS (sluice-bench) records of $RECORD_SIZE bytes per run; work in $WORK"
busy_before="$(machine_busy_seconds)"
own_before="$(own_children_seconds)"
MEASURE_STARTED=$SECONDS
for ((rep = 1; rep <= REPS; rep++)); do
  if ((CLUSTER)); then
    run_cluster_system kafka "$rep"
    run_cluster_system sluice "$rep"
  else
    run_system kafka "$rep"
    run_system sluice "$rep"
  fi
done
RUN_SECONDS=$((SECONDS - MEASURE_STARTED))
# What the machine did besides this benchmark: busy CPU time not accounted for by the brokers
# and clients (other builds or benchmarks on the same cores skew the figures; the doc says so).
BUSY_CPU="$(awk -v a="$busy_before" -v b="$(machine_busy_seconds)" 'BEGIN { printf "%.0f", b - a }')"
OTHER_CPU="$(awk -v busy="$BUSY_CPU" -v a="$own_before" -v b="$(own_children_seconds)" \
  'BEGIN { x = busy - (b - a); printf "%.0f", x < 0 ? 0 : x }')"
log "machine busy ${BUSY_CPU} CPU s during the measurements, about ${OTHER_CPU} s of it outside the brokers and clients"
log "measurements done in ${RUN_SECONDS}s"


# --- Report -----------------------------------------------------------------------------------
disk_source="$(findmnt -n -T "$WORK" -o SOURCE)"
disk_size="$(lsblk -dn -o SIZE "$disk_source" 2>/dev/null | tr -d ' ' || true)"
cpu_model="$(lscpu | awk -F': *' '
  /^Model name/ { name = $2 } /^CPU family/ { fam = $2 } /^Model:/ { mod = $2 }
  /^Hypervisor vendor/ { hv = " under " $2 }
  END { printf "%s (family %s, model %s)%s", name, fam, mod, hv }')"
java_version="$(java -version 2>&1 | head -n 1)"
commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null || true)" ]]; then
  commit+=" plus uncommitted changes"
fi
jq -n \
  --arg command "$COMMAND_LINE" --argjson cluster "$CLUSTER" --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
  --arg commit "$commit" --argjson quick "$QUICK" --argjson reps "$REPS" \
  --argjson records "$RECORDS" --argjson sb_records "$SB_RECORDS" \
  --argjson record_size "$RECORD_SIZE" \
  --argjson warmup_records "$WARMUP_RECORDS" --argjson linger_ms "$LINGER_MS" \
  --argjson small_batch "$SMALL_BATCH" --arg e2e_rate "$E2E_RATE" \
  --argjson many_producers "$MANY_PRODUCERS" --argjson many_partitions "$MANY_PARTITIONS" \
  --argjson small_record_size "$SMALL_RECORD_SIZE" \
  --argjson e2e_seconds "$E2E_SECONDS" --argjson e2e_partitions "$E2E_PARTITIONS" \
  --argjson run_seconds "$RUN_SECONDS" --arg kafka_version "$KAFKA_VERSION" \
  --arg kafka_jvm "$KAFKA_BENCH_JVM_OPTS" --arg tool_jvm "$KAFKA_TOOL_JVM_OPTS" \
  --arg common "${COMMON_PROPERTIES[*]}" \
  --argjson batches "$(printf '%s\n' "${BATCHES[@]}" | jq -sc .)" \
  --arg nproc "$(nproc)" --arg cpu "$cpu_model" \
  --arg mem "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" \
  --arg disk "$disk_source${disk_size:+ ($disk_size)}" \
  --arg other_cpu "$OTHER_CPU" --arg busy_cpu "$BUSY_CPU" --arg load_before "$LOAD_BEFORE" \
  --arg fs "$(findmnt -n -T "$WORK" -o FSTYPE) ($(findmnt -n -T "$WORK" -o OPTIONS))" \
  --arg os "$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release), Linux $(uname -r)" \
  --arg java "$java_version" --arg rustc "$(rustc --version)" \
  '$ARGS.named' >"$WORK/meta.json"

write=()
((WRITE_DOC)) && write=(--doc "$DOC")
python3 "$ROOT/scripts/lib/bench_report.py" --results "$RESULTS" --meta "$WORK/meta.json" \
  "${write[@]}"
if ((WRITE_DOC)); then
  log "table written to ${DOC#"$ROOT"/}"
fi
# The per-run figures behind the medians stay after the work directory is gone.
mkdir -p "$ROOT/target/bench"
cp "$RESULTS" "$ROOT/target/bench/results.jsonl"
cp "$WORK/meta.json" "$ROOT/target/bench/meta.json"
log "per-run figures: target/bench/results.jsonl (report: python3 scripts/lib/bench_report.py \
--results target/bench/results.jsonl --meta target/bench/meta.json)"
log "total ${SECONDS}s"
if ((FAILED > 0)); then
  log "$FAILED run(s) failed; see $WORK"
  exit 1
fi
