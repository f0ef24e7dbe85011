#!/usr/bin/env bash
# Replication under failure: Kafka's own VerifiableProducer (acks=all, idempotent) writes to a
# 3-broker Sluice cluster (RF 3, min.insync.replicas 2) while a broker is killed and restarted
# again and again; then VerifiableConsumer reads everything back. Passes when every
# acknowledged message is read, none twice, and offsets only grow within each partition.
#
#   bash scripts/chaos.sh                 20 rounds, SIGKILL of the leader of a partition
#   bash scripts/chaos.sh --rounds 100    a longer run
#   ... --signal TERM                     clean bounces (controlled shutdown) instead
#   ... --victim controller               the active controller instead of a partition leader
#   bash scripts/chaos.sh --reassign      moves instead of kills (rounds default to 2)
#
# Each round: pick the victim (the leader of partition ROUND % 3, or the controller, from
# Kafka's own kafka-topics / kafka-metadata-quorum output), signal it, wait 2 s, start it
# again, and wait until the cluster has three live brokers again. The producer runs throughout
# at 300 messages/s. The figures go to stdout (and the work directory is kept on failure).
#
# With --reassign a fourth, broker-only node runs, and each round moves every partition's
# replica from broker 1 to broker 4 (odd rounds) or back (even rounds) with Kafka's
# kafka-reassign-partitions --execute --throttle, then --verify until it reports every move
# completed (which also lifts the throttles); the source broker must have deleted its copies
# and no throttle config may be left.
#
# Environment: SLUICE_BIN (default target/debug/sluice), KAFKA_VERSION, CHAOS_KEEP=1 (keep the
# work directory).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/kafka-dist.sh
source "$ROOT/scripts/lib/kafka-dist.sh"

SLUICE_BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/sluice}"
ROUNDS=20
SIGNAL=KILL
VICTIM=leader
REASSIGN=0
while (($#)); do
  case "$1" in
    --rounds) ROUNDS="$2"; ROUNDS_SET=1; shift ;;
    --reassign) REASSIGN=1; [[ "${ROUNDS_SET:-}" ]] || ROUNDS=2 ;;
    --signal) SIGNAL="$2"; shift ;;
    --victim) VICTIM="$2"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[chaos %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
mkdir -p "$ROOT/target/tmp"
WORK="$(mktemp -d "$ROOT/target/tmp/chaos.XXXXXX")"
declare -A PID=()
PRODUCER_PID=""
OK=0

cleanup() {
  local n
  [[ -z "$PRODUCER_PID" ]] || stop_process "$PRODUCER_PID" 5
  for n in "${!PID[@]}"; do stop_process "${PID[$n]}" 30; done
  if ((OK)) && [[ "${CHAOS_KEEP:-}" != 1 ]]; then rm -rf "$WORK"; else log "work directory kept: $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kafka_dist_fetch
[[ -x "$SLUICE_BIN" ]] || { echo "Sluice binary not found at $SLUICE_BIN" >&2; exit 2; }

# Three nodes on free loopback ports; short sessions so that a killed broker is fenced quickly.
# With --reassign, node 4 is a broker only.
NODES=(1 2 3)
((REASSIGN)) && NODES+=(4)
KAFKA_PORTS=() CONTROLLER_PORTS=()
for n in "${NODES[@]}"; do KAFKA_PORTS+=("$(free_port)"); CONTROLLER_PORTS+=("$(free_port)"); done
VOTERS="1@127.0.0.1:${CONTROLLER_PORTS[0]},2@127.0.0.1:${CONTROLLER_PORTS[1]},3@127.0.0.1:${CONTROLLER_PORTS[2]}"
BOOTSTRAP="127.0.0.1:${KAFKA_PORTS[0]},127.0.0.1:${KAFKA_PORTS[1]},127.0.0.1:${KAFKA_PORTS[2]}"
for n in "${NODES[@]}"; do
  if ((n <= 3)); then
    roles="process.roles=broker,controller
listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORTS[$((n - 1))]},CONTROLLER://127.0.0.1:${CONTROLLER_PORTS[$((n - 1))]}"
  else
    roles="process.roles=broker
listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORTS[$((n - 1))]}"
  fi
  cat >"$WORK/node-$n.properties" <<EOF
node.id=$n
$roles
controller.listener.names=CONTROLLER
controller.quorum.voters=$VOTERS
cluster.id=Y2hhb3MtY2x1c3Rlci1pZA
log.dirs=$WORK/data-$n
admin.listener=127.0.0.1:0
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
replica.lag.time.max.ms=10000
EOF
done

start_node() {
  "$SLUICE_BIN" start --config "$WORK/node-$1.properties" >>"$WORK/node-$1.log" 2>&1 </dev/null &
  PID[$1]=$!
}
for n in "${NODES[@]}"; do start_node "$n"; done
for n in "${NODES[@]}"; do wait_port 127.0.0.1 "${KAFKA_PORTS[$((n - 1))]}" 60 "${PID[$n]}"; done

cli() { KAFKA_RUN_TIMEOUT=60 kafka_run_class "$@"; }
topics() { cli org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" "$@"; }

# Wait (up to 60 s) until every partition of the topic has 3 in-sync replicas.
wait_whole() {
  local i
  for ((i = 0; i < 60; i++)); do
    if topics --describe --topic chaos >"$WORK/describe.txt" 2>/dev/null &&
      [[ "$(grep -cE 'Isr: [1-4],[1-4],[1-4]([[:space:]]|$)' "$WORK/describe.txt")" == 3 ]]; then
      return 0
    fi
    sleep 1
  done
  log "the ISR did not become whole within 60 s:"
  cat "$WORK/describe.txt" >&2
  return 1
}

# A listening port is not a registered broker: wait (up to 60 s) until Metadata lists every
# node, or a manual assignment naming one that has not registered yet is refused.
wait_registered() {
  local i
  for ((i = 0; i < 60; i++)); do
    if cli org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$BOOTSTRAP" >"$WORK/brokers.txt" 2>/dev/null &&
      [[ "$(grep -c '(id: [0-9]* rack' "$WORK/brokers.txt")" == "${#NODES[@]}" ]]; then
      return 0
    fi
    sleep 1
  done
  log "not every broker registered within 60 s:"
  cat "$WORK/brokers.txt" >&2
  return 1
}
wait_registered

# On brokers 1-3 (node 4, when there, gets replicas only by reassignment).
topics --create --topic chaos --replica-assignment 1:2:3,2:3:1,3:1:2 --config min.insync.replicas=2 >/dev/null
wait_whole

printf 'enable.idempotence=true\nacks=all\nretries=2147483647\ndelivery.timeout.ms=120000\nrequest.timeout.ms=10000\n' \
  >"$WORK/producer.properties"
# Java itself in the background (not through kafka_run_class, a shell function), so that
# PRODUCER_PID is the JVM: SIGTERM makes it flush, report and stop.
java -cp "$(kafka_classpath)" org.apache.kafka.tools.VerifiableProducer --bootstrap-server "$BOOTSTRAP" \
  --topic chaos --max-messages -1 --throughput 300 --acks -1 \
  --command-config "$WORK/producer.properties" >"$WORK/produced.jsonl" 2>"$WORK/producer.err" &
PRODUCER_PID=$!
sleep 3

victim_of_round() {
  if [[ "$VICTIM" == controller ]]; then
    cli org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$BOOTSTRAP" describe --status 2>/dev/null |
      sed -n 's/^LeaderId:[[:space:]]*//p'
  else
    topics --describe --topic chaos 2>/dev/null |
      sed -n "s/.*Partition: $(($1 % 3))[[:space:]]*Leader: \([0-9]*\).*/\1/p"
  fi
}

reassign() { cli org.apache.kafka.tools.reassign.ReassignPartitionsCommand --bootstrap-server "$BOOTSTRAP" "$@"; }

# move_round ROUND: every partition's replica on broker FROM moves to broker TO, throttled to
# 10 MB/s; --verify until every move is completed.
move_round() {
  local from=1 to=4 plan="$WORK/move-$1.json" i
  (($1 % 2)) || { from=4; to=1; }
  topics --describe --topic chaos >"$WORK/describe.txt"
  python3 - "$WORK/describe.txt" "$from" "$to" >"$plan" <<'PY'
import json, re, sys
moves = []
for line in open(sys.argv[1]):
    m = re.search(r"Partition: (\d+)\s+Leader: \S+\s+Replicas: ([\d,]+)", line)
    if m:
        replicas = [int(sys.argv[3]) if r == sys.argv[2] else int(r) for r in m.group(2).split(",")]
        moves.append({"topic": "chaos", "partition": int(m.group(1)), "replicas": replicas})
print(json.dumps({"version": 1, "partitions": moves}))
PY
  reassign --execute --throttle 10000000 --reassignment-json-file "$plan" >"$WORK/execute-$1.txt" ||
    { cat "$WORK/execute-$1.txt" >&2; log "round $1: --execute failed"; return 1; }
  log "round $1/$ROUNDS: moving broker $from's replicas to broker $to"
  for ((i = 0; i < 120; i++)); do
    if reassign --verify --reassignment-json-file "$plan" >"$WORK/verify-$1.txt" 2>&1 &&
      [[ "$(grep -c 'is completed' "$WORK/verify-$1.txt")" == 3 ]]; then
      break
    fi
    sleep 1
  done
  cat "$WORK/verify-$1.txt" >&2
  [[ "$(grep -c 'is completed' "$WORK/verify-$1.txt")" == 3 ]] || { log "round $1: not completed within 120 s"; return 1; }
  grep -q 'Clearing topic-level throttles' "$WORK/verify-$1.txt" || { log "round $1: --verify did not lift the throttles"; return 1; }
  if cli org.apache.kafka.tools.ConfigCommand --bootstrap-server "$BOOTSTRAP" --describe \
    --entity-type topics --entity-name chaos | grep -q throttled; then
    log "round $1: a throttled-replicas config is left on the topic"
    return 1
  fi
  for ((i = 0; i < 30; i++)); do
    compgen -G "$WORK/data-$from/chaos-*" >/dev/null || break
    sleep 1
  done
  if compgen -G "$WORK/data-$from/chaos-*" >/dev/null; then
    log "round $1: broker $from still has its copies: $(ls -d "$WORK/data-$from"/chaos-*)"
    return 1
  fi
  wait_whole
}

started=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
  if ((REASSIGN)); then
    move_round "$round"
    continue
  fi
  victim="$(victim_of_round "$round")"
  [[ "$victim" =~ ^[123]$ ]] || { log "round $round: no victim found ($victim)"; exit 1; }
  kill -"$SIGNAL" "${PID[$victim]}"
  wait "${PID[$victim]}" 2>/dev/null || true
  log "round $round/$ROUNDS: SIG$SIGNAL to node $victim"
  sleep 2
  start_node "$victim"
  wait_port 127.0.0.1 "${KAFKA_PORTS[$((victim - 1))]}" 60 "${PID[$victim]}"
  wait_whole
done
elapsed=$((SECONDS - started))

sleep 2
kill -TERM "$PRODUCER_PID"
wait "$PRODUCER_PID" 2>/dev/null || true
PRODUCER_PID=""
acked="$(grep -c '"name":"producer_send_success"' "$WORK/produced.jsonl" || true)"
failed="$(grep -c '"name":"producer_send_error"' "$WORK/produced.jsonl" || true)"
log "producer: $acked acknowledged, $failed failed sends, $ROUNDS rounds in ${elapsed}s"

cli org.apache.kafka.tools.VerifiableConsumer --bootstrap-server "$BOOTSTRAP" --topic chaos \
  --group-id "chaos-check" --group-protocol classic --reset-policy earliest --verbose \
  --max-messages "$((acked + failed))" >"$WORK/consumed.jsonl" 2>"$WORK/consumer.err" || true

python3 "$ROOT/scripts/lib/verify_acked.py" "$WORK/produced.jsonl" "$WORK/consumed.jsonl"
OK=1
log "passed: nothing acknowledged was lost, duplicated or reordered"
