#!/usr/bin/env bash
# Cluster compatibility steps: Kafka's own tools against a 3-node Sluice cluster started with
# `sluice dev --nodes 3`. scripts/compat.sh runs this script last; it also runs alone.
#
#   bash scripts/compat-cluster.sh
#
# Tools (Kafka 4.4 jars from Maven, scripts/lib/kafka-dist.sh): kafka-metadata-quorum
# (describe --status and --replication), kafka-topics (--create through one node, --describe
# through another), kafka-leader-election (preferred), VerifiableProducer (acks=all) and
# VerifiableConsumer (classic group). Then the active controller is killed with SIGKILL: the
# quorum tool sees another leader and the producer carries on; the killed node is started
# again and rejoins the quorum. Finally the cluster stops on SIGINT and must exit 0.
#
# Each step prints `ok NAME` or `FAIL NAME: reason`; the last line is `N passed, M failed`.
#
# Environment: SLUICE_BIN (default target/debug/sluice), KAFKA_VERSION, COMPAT_TIMEOUT
# (seconds per client command, default 60), COMPAT_KEEP=1 (keep the work directory).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/kafka-dist.sh
source "$ROOT/scripts/lib/kafka-dist.sh"

SLUICE_BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/sluice}"
T="${COMPAT_TIMEOUT:-60}"
[[ -z "${1:-}" ]] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }

log() { printf '[compat-cluster] %s\n' "$*" >&2; }

# shellcheck source=scripts/lib/steps.sh
source "$ROOT/scripts/lib/steps.sh"
make_work compat-cluster
CLUSTER_PID=""
RESTARTED_PID=""

cleanup() {
  local rc=$?
  [[ -z "$RESTARTED_PID" ]] || stop_process "$RESTARTED_PID"
  [[ -z "$CLUSTER_PID" ]] || stop_process "$CLUSTER_PID" 60
  settle_work "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SETUP_CLI=ok
kafka_dist_fetch || SETUP_CLI="setup failed (Kafka jars), see $KAFKA_DIST_DIR/mvn.log"

[[ -x "$SLUICE_BIN" ]] || { echo "Sluice binary not found at $SLUICE_BIN (build it or set SLUICE_BIN)" >&2; exit 2; }
CLUSTER_LOG="$WORK/cluster.log"
started=0
start_dev_cluster "$SLUICE_BIN" "$CLUSTER_LOG" --nodes 3 --data-dir "$WORK/data" \
  --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 && started=1
CLUSTER_PID="$DEV_PID"
((started)) || exit 1
BOOTSTRAP="$DEV_BOOTSTRAP"
IFS=, read -r -a NODE_ADDR <<<"$BOOTSTRAP"
node_pid() { dev_node "$CLUSTER_LOG" "$1" pid; }
log "cluster up: $BOOTSTRAP (log $CLUSTER_LOG)"

cli() {
  need "$SETUP_CLI"
  KAFKA_RUN_TIMEOUT="$T" kafka_run_class "$@"
}
quorum() { cli org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$1" describe "$2"; }
topics() { cli org.apache.kafka.tools.TopicCommand --bootstrap-server "$@"; }

TOPIC="compat-cluster-$$"
N=600

quorum_status() {
  local out="$WORK/quorum-status.txt"
  quorum "$BOOTSTRAP" --status >"$out" || fail "describe --status: $(why $?)"
  cat "$out"
  grep -Eq '^LeaderId:[[:space:]]+[123]$' "$out" || fail "no LeaderId among nodes 1-3"
  grep -Eq '^MaxFollowerLag:[[:space:]]+[0-9]+$' "$out" || fail "no MaxFollowerLag"
  local id
  for id in 1 2 3; do
    grep -q "\"id\": $id, \"endpoints\": \[\"CONTROLLER://" "$out" || fail "voter $id not listed with its endpoint"
  done
}

quorum_replication() {
  local out="$WORK/quorum-replication.txt"
  quorum "$BOOTSTRAP" --replication >"$out" || fail "describe --replication: $(why $?)"
  cat "$out"
  [[ "$(grep -cE '^[123][[:space:]]' "$out")" == 3 ]] || fail "not three voters in the table"
  [[ "$(grep -c 'Leader' "$out")" == 1 ]] || fail "not exactly one leader row"
  grep -q Follower "$out" || fail "no follower rows"
}

# describe_until BOOTSTRAP OUT PATTERN COUNT: kafka-topics --describe of TOPIC into OUT, again
# (for up to 20 s) until PATTERN is on COUNT lines; prints OUT.
describe_until() {
  local i
  for ((i = 0; i < 40; i++)); do
    topics "$1" --describe --topic "$TOPIC" >"$2" 2>&1 || true
    [[ "$(grep -c "$3" "$2")" == "$4" ]] && break
    sleep 0.5
  done
  cat "$2"
}

create_on_one_describe_on_another() {
  topics "${NODE_ADDR[1]}" --create --topic "$TOPIC" --partitions 6 --replication-factor 1 ||
    fail "kafka-topics --create through node 2: $(why $?)"
  local out="$WORK/describe.txt"
  describe_until "${NODE_ADDR[2]}" "$out" 'Leader: [123]' 6
  grep -q 'PartitionCount: 6' "$out" || fail "describe through node 3: PartitionCount is not 6"
  local leaders
  leaders="$(grep -o 'Leader: [0-9]*' "$out" | sort -u | tr '\n' ' ')"
  [[ "$leaders" == "Leader: 1 Leader: 2 Leader: 3 " ]] || fail "leaders not spread over 1, 2, 3: $leaders"
}

preferred_election() {
  cli org.apache.kafka.tools.LeaderElectionCommand --bootstrap-server "$BOOTSTRAP" \
    --election-type preferred --all-topic-partitions || fail "kafka-leader-election: $(why $?)"
}

# verifiable_produce BOOTSTRAP TOPIC N: VerifiableProducer with acks=all; every record
# acknowledged.
verifiable_produce() {
  local out="$WORK/produce-$2.txt" rc=0
  cli org.apache.kafka.tools.VerifiableProducer --bootstrap-server "$1" --topic "$2" \
    --max-messages "$3" --acks -1 >"$out" 2>&1 || rc=$?
  tail -n 1 "$out"
  ((rc == 0)) || fail "VerifiableProducer: $(why $rc)"
  grep -q "\"name\":\"tool_data\",\"sent\":$3,\"acked\":$3," "$out" || fail "not all $3 records acknowledged"
}

verifiable_consume() {
  local out="$WORK/consume.txt" rc=0 got
  cli org.apache.kafka.tools.VerifiableConsumer --bootstrap-server "$BOOTSTRAP" --topic "$TOPIC" \
    --group-id "compat-cluster-$$" --group-protocol classic --reset-policy earliest \
    --max-messages "$N" >"$out" 2>&1 || rc=$?
  ((rc == 0)) || fail "VerifiableConsumer: $(why $rc)"
  got="$(grep -o '"name":"records_consumed","count":[0-9]*' "$out" | grep -o '[0-9]*$' | awk '{s += $1} END {print s + 0}')"
  [[ "$got" == "$N" ]] || fail "consumed $got records, want $N"
}

leader_id() { sed -n 's/^LeaderId:[[:space:]]*//p' "$1"; }

controller_failover() {
  after quorum-status
  local before="$WORK/quorum-status.txt" old pid out="$WORK/status-after-kill.txt" i
  old="$(leader_id "$before")"
  pid="$(node_pid "$old")"
  [[ -n "$pid" ]] || fail "no pid for node $old"
  kill -KILL "$pid"
  echo "killed node $old (pid $pid), the active controller"
  local others=()
  for i in 1 2 3; do [[ "$i" == "$old" ]] || others+=("${NODE_ADDR[$((i - 1))]}"); done
  local survivors
  survivors="$(IFS=,; echo "${others[*]}")"
  for ((i = 0; i < 30; i++)); do
    if quorum "$survivors" --status >"$out" 2>/dev/null; then
      local now
      now="$(leader_id "$out")"
      if [[ -n "$now" && "$now" != "$old" ]]; then
        echo "new controller: node $now"
        break
      fi
    fi
    sleep 1
  done
  [[ "$(leader_id "$out")" != "$old" ]] || fail "no new controller within 30 s"
  # Once its session expires the dead node is fenced and its two partitions are leaderless
  # (one replica each); the other partitions keep their leaders.
  local described="$WORK/describe-after-kill.txt"
  describe_until "$survivors" "$described" 'Leader: none' 2
  [[ "$(grep -c 'Leader: none' "$described")" == 2 ]] || fail "the dead node's partitions did not lose their leader"
  [[ "$(grep -c 'Leader: [123]' "$described")" == 4 ]] || fail "the live nodes' partitions lost their leaders"
  # The client carries on through the survivors: a new topic lands on the live nodes.
  topics "$survivors" --create --topic "$TOPIC-after" --partitions 2 --replication-factor 1 ||
    fail "kafka-topics --create after the kill: $(why $?)"
  verifiable_produce "$survivors" "$TOPIC-after" 200
  echo "$old" >"$WORK/killed-node"
}

# Starts the killed node again, in this shell (so that its exit status can be checked).
restart_killed_node() {
  [[ -f "$WORK/killed-node" ]] || return 0
  local id
  id="$(cat "$WORK/killed-node")"
  RESTARTED_LOG="$WORK/node-$id-restarted.log"
  "$SLUICE_BIN" start --config "$WORK/data/node-$id.properties" >"$RESTARTED_LOG" 2>&1 </dev/null &
  RESTARTED_PID=$!
}

node_rejoins() {
  after controller-failover
  local id
  id="$(cat "$WORK/killed-node")"
  local out="$WORK/replication-after.txt" i
  for ((i = 0; i < 60; i++)); do
    if quorum "$BOOTSTRAP" --replication >"$out" 2>/dev/null &&
      grep -Eq "^$id[[:space:]].*Follower" "$out" &&
      awk -v id="$id" '$1 == id && $4 == 0 { found = 1 } END { exit !found }' "$out"; then
      cat "$out"
      return 0
    fi
    sleep 1
  done
  cat "$out"
  fail "node $id did not rejoin the quorum caught up within 60 s"
}

step quorum-status quorum_status
step quorum-replication quorum_replication
step topics-create-describe create_on_one_describe_on_another
step leader-election-preferred preferred_election
step verifiable-producer verifiable_produce "$BOOTSTRAP" "$TOPIC" "$N"
step verifiable-consumer verifiable_consume
step controller-failover controller_failover
restart_killed_node
step node-rejoins node_rejoins

# The restarted node is this script's child; the other two are the dev cluster's.
if [[ -n "$RESTARTED_PID" ]]; then
  clean_exit_step "$RESTARTED_PID" "$RESTARTED_LOG"
  RESTARTED_PID=""
fi
# SIGINT, as Ctrl-C: every node stops, and the dev command exits 0.
kill -INT "$CLUSTER_PID"
rc=0
for ((i = 0; i < 600; i++)); do
  kill -0 "$CLUSTER_PID" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$CLUSTER_PID" 2>/dev/null; then
  FAILED=$((FAILED + 1))
  echo "FAIL cluster-clean-exit: sluice dev --nodes 3 did not exit within 60 s of SIGINT"
else
  wait "$CLUSTER_PID" || rc=$?
  CLUSTER_PID=""
  if ((rc != 0)); then
    FAILED=$((FAILED + 1))
    echo "FAIL cluster-clean-exit: exit status $rc"
  elif grep -qE 'panicked at|panicked \(a bug\)' "$CLUSTER_LOG"; then
    FAILED=$((FAILED + 1))
    echo "FAIL cluster-clean-exit: a panic in $CLUSTER_LOG"
  else
    PASSED=$((PASSED + 1))
    echo "ok cluster-clean-exit"
  fi
fi

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
