#!/usr/bin/env bash
# Single-node load test with sluice-bench (librdkafka): produce throughput and send → ack latency
# for {acks=1, acks=all} × {1, 8 partitions}, several repetitions, then a Markdown table of the
# medians. Read-back (consume) throughput is measured after each acks=1 run, and produce →
# consume latency at a fixed rate at the end. About 6 minutes on 2 cores.
#
#   bash scripts/perf.sh               build (release), then for each run start a fresh
#                                      `sluice dev` on ephemeral ports with its data under
#                                      target/tmp (the real disk), measure, stop it
#   BOOTSTRAP=host:port bash scripts/perf.sh
#                                      measure an already running broker (any Kafka-compatible
#                                      one); each run writes a new topic, nothing is deleted
#
# The client and the broker share the machine, and so does anything else running on it. Each
# run therefore waits (within a budget) for the machine to be quiet before it starts, runs are
# interleaved (repetition 1 of every configuration, then repetition 2, ...) so a burst of load
# from elsewhere spreads over the configurations, and every run reports the CPU the rest of the
# machine used meanwhile ("other CPU"): figures from runs where it is well above 0 are noisy.
#
# Environment:
#   PERF_RECORDS       records per produce run (default 5000000: 10-20 s on 2 cores)
#   PERF_RECORD_SIZE   bytes of value per record (default 1024)
#   PERF_REPS          repetitions of each configuration (default 3)
#   PERF_PARTITIONS    partition counts (default "1 8")
#   PERF_ACKS          acks values (default "1 all")
#   PERF_CONSUME       1: read the records back after each acks=1 run (default 1)
#   PERF_E2E           1: end with one produce → consume latency test per partition count, at
#                      PERF_E2E_RATE MB/s for PERF_E2E_SECONDS, acks=all (default 1; 20 MB/s, 20 s)
#   PERF_QUIET_WAIT    seconds, over the whole script, that runs may wait for the rest of the
#                      machine to fall quiet before they start (default 120; 0: never wait)
#   PERF_NO_BUILD      1: use the binaries in target/release as they are
#   PERF_KEEP          1: keep the work directory (broker logs, per-run output)
#   SLUICE_BIN, BENCH_BIN  binaries (default target/release/sluice, target/release/sluice-bench)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/proc.sh
source "$ROOT/scripts/lib/proc.sh"
RECORDS="${PERF_RECORDS:-5000000}"
RECORD_SIZE="${PERF_RECORD_SIZE:-1024}"
REPS="${PERF_REPS:-3}"
PARTITION_COUNTS="${PERF_PARTITIONS:-1 8}"
ACKS_VALUES="${PERF_ACKS:-1 all}"
CONSUME="${PERF_CONSUME:-1}"
E2E="${PERF_E2E:-1}"
E2E_RATE="${PERF_E2E_RATE:-20}"
E2E_SECONDS="${PERF_E2E_SECONDS:-20}"
SLUICE_BIN="${SLUICE_BIN:-$ROOT/target/release/sluice}"
BENCH_BIN="${BENCH_BIN:-$ROOT/target/release/sluice-bench}"
# Hard limit on one client command: a stalled broker fails the run instead of hanging it.
RUN_TIMEOUT=300
QUIET_BUDGET="${PERF_QUIET_WAIT:-120}"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac

log() { printf '[perf] %s\n' "$*" >&2; }

if [[ "${PERF_NO_BUILD:-}" != 1 ]]; then
  log "building (release): sluice-broker, sluice-bench"
  (cd "$ROOT" && cargo build --release -q -p sluice-broker -p sluice-bench)
fi
[[ -x "$BENCH_BIN" ]] || { echo "sluice-bench not found at $BENCH_BIN" >&2; exit 2; }

mkdir -p "$ROOT/target/tmp"
WORK="$(mktemp -d "$ROOT/target/tmp/perf.XXXXXX")"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
BROKER_PID=""
FAILED=0

stop_broker() {
  [[ -n "$BROKER_PID" ]] || return 0
  stop_process "$BROKER_PID"
  if ((STOP_KILLED)); then
    log "broker $BROKER_PID did not stop within 20 s of SIGTERM: killed it"
    FAILED=$((FAILED + 1))
  fi
  BROKER_PID=""
}

cleanup() {
  local rc=$?
  stop_broker
  if ((FAILED > 0 || rc != 0)) || [[ "${PERF_KEEP:-}" == 1 ]]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start a fresh broker with its data in $1 (a directory on the real disk); set BROKER_PID and
# BOOT. Each run gets its own broker and data directory, so runs do not inherit each other's
# segments, page cache or background work, and the disk does not fill up.
start_broker() {
  local dir="$1"
  mkdir -p "$dir"
  "$SLUICE_BIN" dev --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$dir/data" \
    >"$dir/broker.out" 2>"$dir/broker.err" </dev/null &
  BROKER_PID=$!
  local i line
  for ((i = 0; i < 300; i++)); do
    line="$(grep -m1 '^sluice ready ' "$dir/broker.out" 2>/dev/null || true)"
    if [[ -n "$line" ]]; then
      BOOT="${line#*kafka=}"
      BOOT="${BOOT%% *}"
      return 0
    fi
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "the broker did not become ready; last lines of $dir/broker.err:"
  tail -n 20 "$dir/broker.err" >&2 || true
  exit 1
}

# Waits until the machine's processes use less than 0.15 cores over a second, spending at most
# what is left of the PERF_QUIET_WAIT budget.
wait_quiet() {
  local a b
  while ((QUIET_BUDGET > 0)); do
    a="$(machine_busy_seconds)"
    sleep 1
    b="$(machine_busy_seconds)"
    awk -v a="$a" -v b="$b" 'BEGIN { exit !(b - a < 0.15) }' && return 0
    QUIET_BUDGET=$((QUIET_BUDGET - 1))
    ((QUIET_BUDGET > 0)) || log "the machine stayed busy: the quiet-wait budget is spent, running anyway"
  done
}

# run_bench NAME ARGS...: run sluice-bench, keep its output in $WORK/NAME.{out,err}, and append
# its RESULT (with the broker's and the client's CPU use) to $RESULTS.
run_bench() {
  local name="$1"
  shift
  local out="$WORK/$name.out" err="$WORK/$name.err" rc=0 broker_before=0 broker_after=0
  wait_quiet
  [[ -n "$BROKER_PID" ]] && broker_before="$(cpu_seconds "$BROKER_PID")"
  local started ended busy_before busy_after
  busy_before="$(machine_busy_seconds)"
  started="$(date +%s.%N)"
  # `time` reports the client's own CPU (it is the only child of this subshell).
  (
    TIMEFORMAT='%U %S'
    time timeout "$RUN_TIMEOUT" "$BENCH_BIN" "$@" --bootstrap "$BOOT" >"$out" 2>"$err"
  ) 2>"$WORK/$name.time" || rc=$?
  ended="$(date +%s.%N)"
  busy_after="$(machine_busy_seconds)"
  if [[ -n "$BROKER_PID" ]]; then
    if kill -0 "$BROKER_PID" 2>/dev/null; then
      broker_after="$(cpu_seconds "$BROKER_PID")"
    else
      log "$name: THE BROKER EXITED during the run; see $WORK"
      FAILED=$((FAILED + 1))
    fi
  fi
  local summary
  summary="$(grep -v '^RESULT ' "$out" || true)"
  if ((rc != 0)); then
    FAILED=$((FAILED + 1))
    log "$name: FAILED (exit $rc): ${summary:-no result}"
    tail -n 5 "$err" >&2 || true
  else
    log "$name: $summary"
  fi
  local result
  result="$(sed -n 's/^RESULT //p' "$out")"
  [[ -n "$result" ]] || return 0
  local client_cpu wall broker_cpu other_cpu
  client_cpu="$(tail -n 1 "$WORK/$name.time" | awk '{ printf "%.2f", $1 + $2 }')"
  wall="$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.2f", b - a }')"
  broker_cpu="$(awk -v a="$broker_before" -v b="$broker_after" 'BEGIN { printf "%.2f", b - a }')"
  # Everything else the machine did meanwhile (other builds and tests): the noise indicator.
  other_cpu="$(awk -v a="$busy_before" -v b="$busy_after" -v x="$broker_cpu" -v y="$client_cpu" \
    'BEGIN { o = b - a - x - y; printf "%.2f", o < 0 ? 0 : o }')"
  log "$name: CPU over ${wall}s: broker ${broker_cpu}s, client ${client_cpu}s, everything else ${other_cpu}s"
  # Peak resident memory of the broker so far (a fresh broker per configuration run).
  local rss=null
  if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    rss="$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$BROKER_PID/status")"
  fi
  jq -c --arg name "$name" --argjson rc "$rc" --argjson wall "$wall" --argjson rss "$rss" \
    --argjson bcpu "$broker_cpu" --argjson ccpu "$client_cpu" --argjson ocpu "$other_cpu" \
    '. + {name: $name, exit: $rc, wall_seconds: $wall, broker_cpu_seconds: $bcpu,
          client_cpu_seconds: $ccpu, other_cpu_seconds: $ocpu, broker_peak_rss_mib: $rss}' \
    <<<"$result" >>"$RESULTS"
}

# Warnings and errors the broker logged, with the run they belong to.
check_broker_log() {
  local name="$1" dir="$2" n
  local plain="$dir/broker.err.txt"
  sed 's/\x1b\[[0-9;]*m//g' "$dir/broker.err" >"$plain" 2>/dev/null || return 0
  n="$(grep -cE ' (WARN|ERROR) ' "$plain" || true)"
  if [[ "${n:-0}" != 0 ]]; then
    log "$name: the broker logged $n warnings/errors, first ones:"
    grep -m 5 -E ' (WARN|ERROR) ' "$plain" >&2
  fi
}

EXTERNAL="${BOOTSTRAP:-}"
RUN_ID="$(date +%H%M%S)"
log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), \
$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), data on \
$(df --output=fstype,source "$WORK" | tail -n 1 | tr -s ' ')"
log "$RECORDS records of $RECORD_SIZE bytes per run, $REPS repetitions, work directory $WORK"

for ((rep = 1; rep <= REPS; rep++)); do
  for partitions in $PARTITION_COUNTS; do
    for acks in $ACKS_VALUES; do
      name="acks${acks}-p${partitions}-r${rep}"
      topic="perf-$RUN_ID-$name"
      dir="$WORK/$name"
      if [[ -n "$EXTERNAL" ]]; then
        BOOT="$EXTERNAL"
      else
        start_broker "$dir"
      fi
      run_bench "$name" produce --topic "$topic" --partitions "$partitions" --create-topic \
        --records "$RECORDS" --record-size "$RECORD_SIZE" --acks "$acks" \
        --linger-ms 5 --batch-size 16384
      if [[ "$CONSUME" == 1 && "$acks" == 1 ]]; then
        run_bench "consume-p${partitions}-r${rep}" consume --topic "$topic" \
          --partitions "$partitions" --records "$RECORDS"
      fi
      if [[ -z "$EXTERNAL" ]]; then
        stop_broker
        check_broker_log "$name" "$dir"
        # Drop this run's data and let the disk settle before the next one.
        rm -rf "$dir/data"
        sync
      fi
    done
  done
done

if [[ "$E2E" == 1 ]]; then
  for partitions in $PARTITION_COUNTS; do
    name="e2e-p${partitions}"
    dir="$WORK/$name"
    if [[ -n "$EXTERNAL" ]]; then BOOT="$EXTERNAL"; else start_broker "$dir"; fi
    run_bench "$name" e2e --topic "perf-$RUN_ID-$name" --partitions "$partitions" \
      --create-topic --rate-mb-per-sec "$E2E_RATE" --seconds "$E2E_SECONDS" \
      --record-size "$RECORD_SIZE" --acks all
    if [[ -z "$EXTERNAL" ]]; then
      stop_broker
      check_broker_log "$name" "$dir"
      rm -rf "$dir/data"
    fi
  done
fi

# Medians per configuration. CPU is the average over the run in cores (1.00 = one core busy);
# "other" is what the rest of the machine used meanwhile: well above 0, the figures are noisy.
jq -rs '
  def median: sort | if length == 0 then null
    elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def f(d): if . == null then "-" else (. * pow(10; d) | round) / pow(10; d) | tostring
    | if d == 0 then . else (split(".") + [""])[:2] | .[0] + "." + (.[1] + "000")[:d] end end;
  def cores: (.broker_cpu_seconds / .wall_seconds);
  def ccores: (.client_cpu_seconds / .wall_seconds);
  def ocores: (.other_cpu_seconds / .wall_seconds);
  def runs: "\(.mb_per_sec | f(0)) (\(ocores | f(2)))";
  (map(select(.mode == "produce")) | group_by([.acks, .partitions]) | sort_by(.[0].acks != "1", .[0].partitions)) as $p
  | (map(select(.mode == "consume")) | group_by(.partitions)) as $c
  | (map(select(.mode == "e2e"))) as $e
  | "| acks | partitions | records/s | MB/s | p50 ms | p99 ms | p99.9 ms | broker CPU | client CPU | other CPU | broker peak RSS MiB | MB/s of each run (other CPU) |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ($p[] | "| \(.[0].acks) | \(.[0].partitions) | \(map(.records_per_sec) | median | f(0)) | \(map(.mb_per_sec) | median | f(1)) | \(map(.p50_ms) | median | f(1)) | \(map(.p99_ms) | median | f(1)) | \(map(.p999_ms) | median | f(1)) | \(map(cores) | median | f(2)) | \(map(ccores) | median | f(2)) | \(map(ocores) | median | f(2)) | \(map(.broker_peak_rss_mib // empty) | median | f(0)) | \(map(runs) | join(" / ")) |"),
    (if ($c | length) > 0 then
      "",
      "| read back | partitions | records/s | MB/s | broker CPU | client CPU | other CPU | MB/s of each run (other CPU) |",
      "|---|---|---|---|---|---|---|---|",
      ($c[] | "| consume | \(.[0].partitions) | \(map(.records_per_sec) | median | f(0)) | \(map(.mb_per_sec) | median | f(1)) | \(map(cores) | median | f(2)) | \(map(ccores) | median | f(2)) | \(map(ocores) | median | f(2)) | \(map(runs) | join(" / ")) |")
    else empty end),
    (if ($e | length) > 0 then
      "",
      "| e2e, acks=all | partitions | MB/s | produce→consume p50 / p99 / p99.9 / max ms | send→ack p50 / p99 / p99.9 ms | other CPU |",
      "|---|---|---|---|---|---|",
      ($e[] | "| \(.target_mb_per_sec) MB/s target | \(.partitions) | \(.mb_per_sec | f(1)) | \(.p50_ms | f(2)) / \(.p99_ms | f(2)) / \(.p999_ms | f(2)) / \(.max_ms | f(2)) | \(.ack_p50_ms | f(2)) / \(.ack_p99_ms | f(2)) / \(.ack_p999_ms | f(2)) | \(ocores | f(2)) |")
    else empty end)
' "$RESULTS"

if ((FAILED > 0)); then
  log "$FAILED run(s) failed; see $WORK"
  exit 1
fi
