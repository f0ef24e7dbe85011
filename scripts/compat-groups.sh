#!/usr/bin/env bash
# Consumer-group compatibility steps. scripts/compat.sh runs them last, against its own broker
# (BOOTSTRAP set); this script also runs alone.
#
#   BOOTSTRAP=host:port bash scripts/compat-groups.sh   test an already running broker
#   bash scripts/compat-groups.sh                        start target/debug/sluice and test it
#   bash scripts/compat-groups.sh --reference            run against Apache Kafka (validates
#                                                        this script's expectations)
#
# Clients: the Java consumer in a group (Kafka's ConsoleConsumer with --group), the Kafka CLI
# `kafka-consumer-groups` (ConsumerGroupCommand: --list, --describe with offsets and lag,
# --reset-offsets, --delete), and kcat in balanced-consumer mode (-G, librdkafka). Kafka jars
# come from scripts/lib/kafka-dist.sh (Maven); kcat from Debian.
#
# Each step prints `ok NAME` or `FAIL NAME: reason`; the last line is `N passed, M failed`.
#
# Environment: BOOTSTRAP, SLUICE_DATA (data directory of the Sluice broker at BOOTSTRAP: enables
# the step where Kafka's own decoder reads __consumer_offsets), SLUICE_BIN (default
# target/debug/sluice), KAFKA_VERSION,
# COMPAT_TIMEOUT (seconds per client command, default 60), COMPAT_KEEP=1 (keep the work dir).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/kafka-dist.sh
source "$ROOT/scripts/lib/kafka-dist.sh"

SLUICE_BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/sluice}"
SLUICE_DATA="${SLUICE_DATA:-}"
T="${COMPAT_TIMEOUT:-60}"

MODE=sluice
if [[ "${1:-}" == --reference ]]; then
  MODE=reference
elif [[ -n "${1:-}" ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 2
fi
if [[ -n "${BOOTSTRAP:-}" ]]; then
  [[ "$MODE" == sluice ]] || { echo "BOOTSTRAP is set and --reference given: choose one" >&2; exit 2; }
  MODE=external
fi

log() { printf '[compat-groups] %s\n' "$*" >&2; }

# shellcheck source=scripts/lib/steps.sh
source "$ROOT/scripts/lib/steps.sh"
make_work compat-groups
RUN_ID="$(date +%H%M%S)-$$"
BROKER_PID=""

cleanup() {
  local rc=$?
  [[ -z "$BROKER_PID" ]] || stop_process "$BROKER_PID"
  settle_work "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

case "$MODE" in
  external) log "testing the broker at $BOOTSTRAP" ;;
  sluice)
    [[ -x "$SLUICE_BIN" ]] || { echo "Sluice binary not found at $SLUICE_BIN (build it, set SLUICE_BIN or BOOTSTRAP)" >&2; exit 2; }
    port="$(free_port)"
    # A short initial rebalance delay keeps the run quick (Kafka's default is 3 s).
    SLUICE_DATA="$WORK/sluice-data"
    "$SLUICE_BIN" dev --data-dir "$SLUICE_DATA" --listen "127.0.0.1:$port" \
      --admin-listen 127.0.0.1:0 --set group.initial.rebalance.delay.ms=100 \
      >"$WORK/sluice.log" 2>&1 </dev/null &
    BROKER_PID=$!
    wait_port 127.0.0.1 "$port" 60 "$BROKER_PID" || { tail -n 30 "$WORK/sluice.log" >&2; exit 1; }
    BOOTSTRAP="127.0.0.1:$port"
    log "Sluice up at $BOOTSTRAP (log $WORK/sluice.log)"
    ;;
  reference)
    kafka_start_reference_broker "$WORK/kafka"
    BROKER_PID="$KAFKA_REF_PID"
    BOOTSTRAP="$KAFKA_REF_BOOTSTRAP"
    ;;
esac

SETUP_CLI=ok SETUP_KCAT=ok
kafka_dist_fetch || SETUP_CLI="setup failed (Kafka jars), see $KAFKA_DIST_DIR/mvn.log"
command -v kcat >/dev/null || SETUP_KCAT="kcat not installed (apt-get install kcat)"

# ---------------------------------------------------------------------------------------------

cli() {
  need "$SETUP_CLI"
  KAFKA_RUN_TIMEOUT="$T" kafka_run_class "$@"
}

groups_cli() {
  cli org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$BOOTSTRAP" "$@"
}

# ---------------------------------------------------------------------------------------------
# Steps. One topic of 3 partitions with 100 records each; every check uses sums over the
# partitions, since which records a consumer reads first is up to it.

TOPIC="compat-groups-$RUN_ID"
JAVA_GROUP="compat-java-$RUN_ID"
KCAT_GROUP="compat-kcat-$RUN_ID"
PER_PARTITION=100
TOTAL=$((3 * PER_PARTITION))

produce() {
  need "$SETUP_CLI"
  need "$SETUP_KCAT"
  cli org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --create --topic "$TOPIC" \
    --partitions 3 --replication-factor 1 || fail "kafka-topics --create: exit $?"
  local p
  for p in 0 1 2; do
    seq 1 "$PER_PARTITION" | sed "s/^/p$p-/" |
      tmo kcat -b "$BOOTSTRAP" -P -t "$TOPIC" -p "$p" -X message.timeout.ms=20000 ||
      fail "kcat -P -p $p: exit $?"
  done
}

# java_consume N: the Java consumer (ConsoleConsumer) in JAVA_GROUP reads N records and
# commits on close; one record per poll so that the commit covers exactly what it printed.
java_consume() {
  local n="$1" out="$WORK/java-$1.txt"
  cli org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BOOTSTRAP" \
    --topic "$TOPIC" --group "$JAVA_GROUP" --from-beginning --max-messages "$n" \
    --timeout-ms 30000 --command-property max.poll.records=1 \
    --command-property auto.commit.interval.ms=100 >"$out" || fail "console consumer --group: exit $?"
  local got
  got="$(wc -l <"$out")"
  [[ "$got" == "$n" ]] || fail "console consumer --group read $got records, want $n"
  sort -u "$out" | wc -l | grep -qx "$n" || fail "console consumer --group read duplicates"
}

# describe_sums GROUP: prints "current end lag" summed over the topic's partitions from
# `kafka-consumer-groups --describe` (columns GROUP TOPIC PARTITION CURRENT-OFFSET
# LOG-END-OFFSET LAG ...).
describe_sums() {
  local group="$1" out="$WORK/describe-$1.txt"
  groups_cli --describe --group "$group" >"$out" 2>&1 || { cat "$out"; fail "kafka-consumer-groups --describe: exit $?"; }
  cat "$out" >&2
  awk -v t="$TOPIC" '$2 == t { c += $4; e += $5; l += $6; n++ } END { printf "%d %d %d %d\n", c, e, l, n }' "$out"
}

expect_describe() {
  local group="$1" want_current="$2" want_lag="$3" sums
  sums="$(describe_sums "$group")"
  read -r current end lag rows <<<"$sums"
  echo "describe $group: current=$current end=$end lag=$lag rows=$rows"
  [[ "$rows" == 3 ]] || fail "--describe shows $rows partitions of $TOPIC, want 3"
  [[ "$end" == "$TOTAL" ]] || fail "--describe: LOG-END-OFFSET sums to $end, want $TOTAL"
  [[ "$current" == "$want_current" ]] || fail "--describe: CURRENT-OFFSET sums to $current, want $want_current"
  [[ "$lag" == "$want_lag" ]] || fail "--describe: LAG sums to $lag, want $want_lag"
}

java_group_first() {
  after produce
  java_consume 200
  expect_describe "$JAVA_GROUP" 200 $((TOTAL - 200))
}

java_group_resume() {
  after java-group-consume
  java_consume $((TOTAL - 200))
  # Together the two runs read every record exactly once.
  sort "$WORK/java-200.txt" "$WORK/java-$((TOTAL - 200)).txt" | uniq -d | has . && fail "records read twice"
  expect_describe "$JAVA_GROUP" "$TOTAL" 0
}

groups_list() {
  after java-group-consume
  groups_cli --list >"$WORK/list.txt" || fail "kafka-consumer-groups --list: exit $?"
  cat "$WORK/list.txt"
  grep -Fxq "$JAVA_GROUP" "$WORK/list.txt" || fail "--list does not show $JAVA_GROUP"
}

# kcat_group: kcat -G reads to the end of every partition (-e) and commits on exit.
kcat_group() {
  local out="$1"
  need "$SETUP_KCAT"
  tmo kcat -b "$BOOTSTRAP" -G "$KCAT_GROUP" -X auto.offset.reset=earliest -e -q -f '%p %o %s\n' \
    -X session.timeout.ms=6000 -X enable.partition.eof=true "$TOPIC" >"$out" ||
    fail "kcat -G: exit $?"
}

kcat_group_all() {
  after produce
  kcat_group "$WORK/kcat-1.txt"
  local got
  got="$(sort -u "$WORK/kcat-1.txt" | wc -l)"
  [[ "$got" == "$TOTAL" ]] || fail "kcat -G read $got distinct records, want $TOTAL"
  expect_describe "$KCAT_GROUP" "$TOTAL" 0
}

kcat_group_resume() {
  after kcat-group-consume
  kcat_group "$WORK/kcat-2.txt"
  [[ ! -s "$WORK/kcat-2.txt" ]] || fail "kcat -G read $(wc -l <"$WORK/kcat-2.txt") records again instead of resuming at the committed offsets"
}

groups_reset() {
  after kcat-group-resume
  groups_cli --reset-offsets --group "$KCAT_GROUP" --topic "$TOPIC" --to-earliest --execute ||
    fail "kafka-consumer-groups --reset-offsets: exit $?"
  expect_describe "$KCAT_GROUP" 0 "$TOTAL"
  kcat_group "$WORK/kcat-3.txt"
  [[ "$(wc -l <"$WORK/kcat-3.txt")" == "$TOTAL" ]] || fail "after --reset-offsets kcat -G read $(wc -l <"$WORK/kcat-3.txt") records, want $TOTAL"
}

groups_delete() {
  after kcat-group-consume
  groups_cli --delete --group "$KCAT_GROUP" >"$WORK/delete.txt" 2>&1 || { cat "$WORK/delete.txt"; fail "kafka-consumer-groups --delete: exit $?"; }
  cat "$WORK/delete.txt"
  grep -q "successful" "$WORK/delete.txt" || fail "--delete did not report success"
  groups_cli --list >"$WORK/list-after.txt" || fail "kafka-consumer-groups --list: exit $?"
  ! grep -Fxq "$KCAT_GROUP" "$WORK/list-after.txt" || fail "$KCAT_GROUP is still listed after --delete"
}

# Sluice only (needs its data directory): Kafka's own decoder (kafka-dump-log
# --offsets-decoder) reads the group metadata and offset commits Sluice wrote.
offsets_decoded_by_kafka() {
  after java-group-resume
  local files=("$SLUICE_DATA"/__consumer_offsets-*/*.log) out="$WORK/dump.txt"
  cli org.apache.kafka.tools.DumpLogSegments --offsets-decoder --print-data-log \
    --files "$(IFS=,; echo "${files[*]}")" >"$out" 2>&1 || { tail -n 20 "$out"; fail "kafka-dump-log: exit $?"; }
  ! grep -Eq 'isvalid: false|Exception|Could not' "$out" || fail "kafka-dump-log reports invalid records"
  grep -F "\"group\":\"$JAVA_GROUP\",\"topic\":\"$TOPIC\"" "$out" | has '"offset":100' ||
    fail "no offset commit of $JAVA_GROUP decoded by Kafka"
  grep -F "{\"type\":\"2\",\"data\":{\"group\":\"$JAVA_GROUP\"}}" "$out" | has '"protocolType":"consumer"' ||
    fail "no group metadata of $JAVA_GROUP decoded by Kafka"
}

log "broker under test: $BOOTSTRAP ($MODE); logs in $WORK/steps"
step produce produce
step java-group-consume java_group_first
step groups-list groups_list
step java-group-resume java_group_resume
[[ -z "$SLUICE_DATA" ]] || step offsets-kafka-decoder offsets_decoded_by_kafka
step kcat-group-consume kcat_group_all
step kcat-group-resume kcat_group_resume
step groups-reset-offsets groups_reset
step groups-delete groups_delete

# A broker this script started must stop cleanly and must not have panicked.
if [[ -n "$SLUICE_DATA" && -n "$BROKER_PID" ]]; then
  clean_exit_step "$BROKER_PID" "$WORK/sluice.log"
  BROKER_PID=""
fi

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
