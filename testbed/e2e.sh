#!/usr/bin/env bash
# End-to-end tests on the Kubernetes test bed: builds what they need (the sluice binary, the
# test bed, Kafka's client jars), starts the test bed (testbed/up.sh), runs every scenario,
# stops everything, and exits non-zero on a failure, with the log tail of the component that
# broke.
#
#   bash testbed/e2e.sh
#
# Scenario "plain": no operator. testbed/manifests/sluice-plain.yaml (ConfigMap, headless and
# bootstrap Services, a StatefulSet of three `sluice` brokers with claims) applied with kubectl;
# the brokers find each other by pod DNS and form one cluster; kcat and Kafka's Java
# VerifiableProducer/VerifiableConsumer produce and consume through the bootstrap Service (from
# the test bed's host network namespace, as a client in the cluster would); a broker's process
# killed with SIGKILL is restarted by the kubelet and rejoins every ISR; a deleted broker pod is
# made again by the StatefulSet controller with the same claim and its data.
#
# Scenario "operator": the CRDs from crds/ applied; sluice-operator runs as a process in the
# host namespace (the API server at kubernetes.default.svc, the brokers by pod DNS, as from a
# pod); manifests/examples/kafkacluster.yaml becomes a Ready cluster of three brokers whose
# status shows the quorum; kcat produces and consumes through its bootstrap Service; its web
# console answers on every broker; a real
# Prometheus (scripts/prometheus.sh) scrapes that cluster and the operator, and every query of
# the dashboards and alert rules in manifests/monitoring answers from it (docs/metrics.md); an
# unknown config key is refused in the status with nothing changed; a Topic resource becomes a
# topic (partitions, replicas, configs), grows, refuses a partition decrease, has its configs
# changed (others' left alone), and is retained or deleted with it by its deletionPolicy, while
# a topic a client made is left alone; a cluster with an external listener is reached from
# outside through the Node's address and each broker's node port, then, once the type is
# LoadBalancer, through each broker's load balancer; deleting the KafkaCluster
# garbage-collects everything it owned but the claims (deleteClaim false).
#
# Scenario "helm" (after the process operator is stopped: never two operators at once): the
# chart charts/sluice-operator installed with `helm install` (target/testbed/bin/helm, from
# testbed/build.sh) into sluice-system, CRDs included; its operator pod (image sluice-operator:
# target/debug's binaries) becomes Ready and, with its service account's token and the chart's
# RBAC only, makes a KafkaCluster in another namespace Ready and runs a Topic there (made, then
# deleted through its finalizer); `helm uninstall` removes the release and leaves the CRDs and
# the cluster.
#
# Last, the test bed stops and leaves no pod process or network namespace behind.
#
# Each step prints `ok NAME (Ns)` or `FAIL NAME: reason`; the last line is `N passed, M failed`.
# Environment: E2E_TIMEOUT (seconds per wait, default 120), COMPAT_KEEP=1 (keep the work
# directory), TESTBED_NO_BUILD=1 (use the test bed's binaries as they are).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=testbed/lib.sh
source "$ROOT/testbed/lib.sh"
# shellcheck source=scripts/lib/kafka-dist.sh
source "$ROOT/scripts/lib/kafka-dist.sh"
T="${E2E_TIMEOUT:-120}"
# shellcheck source=scripts/lib/steps.sh
source "$ROOT/scripts/lib/steps.sh"
make_work testbed-e2e
NS=e2e

log "building sluice and sluice-operator"
(cd "$ROOT" && cargo build -q -p sluice-broker --bin sluice -p sluice-operator --bin sluice-operator)
SLUICE_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
kafka_dist_fetch || die "could not fetch Kafka's jars"
# shellcheck source=scripts/lib/kcat.sh
source "$ROOT/scripts/lib/kcat.sh"
ensure_kcat "$WORK/kcat-install.log" || die "could not install kcat"

OPNS=op
stop_operator() {
  [[ -f "$RUN/operator.pid" ]] || return 0
  stop_process "$(cat "$RUN/operator.pid")"
  rm -f "$RUN/operator.pid"
}
# The test bed's own processes. Once one has exited, every later step fails at once naming it
# (rather than each waiting out its timeout), and its log tail is printed at the end.
CONTROL_PLANE=(etcd apiserver controller-manager scheduler kubelet)
testbed_exited() {
  local c
  for c in "${CONTROL_PLANE[@]}"; do
    if [[ -f "$RUN/$c.pid" ]] && ! kill -0 "$(cat "$RUN/$c.pid")" 2>/dev/null; then
      echo "$c"
    fi
  done
}
testbed_gone() {
  local gone
  gone="$(testbed_exited | paste -sd, -)"
  [[ -z "$gone" ]] || echo "the test bed's $gone exited"
}
STEP_GUARD=testbed_gone
cleanup() {
  local rc=$?
  if ((rc != 0 || FAILED > 0)); then
    local c
    for c in $(testbed_exited); do
      log "$c exited during the run; last lines of $RUN/$c.log:"
      tail -n 30 "$RUN/$c.log" >&2 || true
    done
    log "last lines of the kubelet's log:"
    tail -n 20 "$RUN/kubelet.log" >&2 || true
    if [[ -f "$RUN/operator.log" ]]; then
      log "last lines of the operator's log:"
      tail -n 20 "$RUN/operator.log" >&2
    fi
    for f in "$RUN"/kubelet/pods/sluice-system_sluice-operator-*/operator.log; do
      [[ -f "$f" ]] || continue
      log "last lines of the operator pod's log $f:"
      tail -n 20 "$f" >&2
    done
    for f in "$RUN"/kubelet/pods/"$NS"_sluice-*/broker.log "$RUN"/kubelet/pods/"$OPNS"_demo-*/broker.log; do
      [[ -f "$f" ]] || continue
      log "last lines of $f:"
      tail -n 10 "$f" >&2
    done
  fi
  stop_operator
  [[ ! -f "$RUN/producer.pid" ]] || stop_process "$(cat "$RUN/producer.pid")" 5
  rm -f "$RUN/producer.pid"
  bash "$ROOT/testbed/down.sh" || true
  settle_work "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
TESTBED_IMAGES="sluice=$SLUICE_DIR sluice-operator=$SLUICE_DIR" bash "$ROOT/testbed/up.sh"
HOSTNS="$(cat "$RUN/host-netns")"
BOOTSTRAP="sluice.$NS.svc.cluster.local:9092"

# Clients run in the test bed's host namespace, where pod and Service names resolve.
client() { ip netns exec "$HOSTNS" "$@"; }
java_tool() { client bash -c 'source "$1/scripts/lib/kafka-dist.sh"; shift; KAFKA_RUN_TIMEOUT='"$T"' kafka_run_class "$@"' _ "$ROOT" "$@"; }

# until_true WHAT CMD...: CMD succeeds within T seconds, else the step fails with WHAT and,
# when the caller set NOW to a command (NOW=cmd until_true ...), what it says at that moment.
until_true() {
  local what="$1" deadline=$((SECONDS + T))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "$what (not within ${T}s)${NOW:+; now: $($NOW 2>&1)}"
    sleep 1
  done
}
all_ready() {
  [[ "$(kubectl -n "$NS" get pods -l app=sluice -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{end}')" == TrueTrueTrue ]]
}
three_brokers() { client kcat -b "$BOOTSTRAP" -L -m 5 | has '^ 3 brokers:'; }
isr_whole() {
  client kcat -b "$BOOTSTRAP" -L -t "$1" -m 5 >"$WORK/metadata.txt" &&
    ! grep 'partition ' "$WORK/metadata.txt" | has -v 'isrs: [0-2],[0-2],[0-2]$'
}
# until_is WHAT WANT CMD...: CMD prints WANT within T seconds (CMD runs again each time).
until_is() {
  local what="$1" want="$2"
  shift 2
  until_true "$what" _prints "$want" "$@"
}
_prints() {
  local want="$1"
  shift
  [[ "$("$@")" == "$want" ]]
}
restarts() { kubectl -n "$NS" get pod "$1" -o jsonpath='{.status.containerStatuses[0].restartCount}'; }

cluster_forms() {
  kubectl create namespace "$NS" >/dev/null
  kubectl -n "$NS" apply -f "$ROOT/testbed/manifests/sluice-plain.yaml"
  until_true "three brokers Ready" all_ready
  until_true "three brokers in the metadata" three_brokers
  client kcat -b "$BOOTSTRAP" -L
}

kcat_through_bootstrap_service() {
  after cluster-forms
  seq 1 100 | client kcat -b "$BOOTSTRAP" -t kcat -P -X acks=all -X topic.metadata.refresh.interval.ms=1000 ||
    fail "kcat could not produce"
  local got
  got="$(client kcat -b "$BOOTSTRAP" -t kcat -C -o beginning -e -q | wc -l)"
  [[ "$got" == 100 ]] || fail "consumed $got records, want 100"
  until_true "kcat's partition replicated three times" isr_whole kcat
}

java_clients_through_bootstrap_service() {
  after cluster-forms
  java_tool org.apache.kafka.tools.VerifiableProducer --bootstrap-server "$BOOTSTRAP" \
    --topic java --max-messages 500 --acks -1 >"$WORK/produce.jsonl" || fail "VerifiableProducer: $(why $?)"
  grep -q '"name":"tool_data","sent":500,"acked":500,' "$WORK/produce.jsonl" || fail "not all 500 acknowledged"
  java_tool org.apache.kafka.tools.VerifiableConsumer --bootstrap-server "$BOOTSTRAP" \
    --topic java --group-id e2e --group-protocol classic --reset-policy earliest \
    --max-messages 500 >"$WORK/consume.jsonl" || fail "VerifiableConsumer: $(why $?)"
  local got
  got="$(grep -o '"name":"records_consumed","count":[0-9]*' "$WORK/consume.jsonl" | grep -o '[0-9]*$' | awk '{s += $1} END {print s + 0}')"
  [[ "$got" == 500 ]] || fail "consumed $got records, want 500"
}

_restarted_since() { (($(restarts "$1") > $2)); }
sigkill_broker_restarts() {
  after kcat-through-bootstrap-service
  local before pid
  before="$(restarts sluice-1)"
  pid="$(kubectl -n "$NS" get pod sluice-1 -o jsonpath='{.status.containerStatuses[0].containerID}' | sed 's|testbed://||')"
  [[ "$pid" =~ ^[0-9]+$ ]] || fail "no process for sluice-1"
  kill -KILL "$pid"
  until_true "sluice-1 restarted" _restarted_since sluice-1 "$before"
  until_true "three brokers Ready again" all_ready
  until_true "every ISR whole again" isr_whole kcat
  seq 101 150 | client kcat -b "$BOOTSTRAP" -t kcat -P -X acks=all || fail "kcat could not produce after the restart"
}

deleted_pod_comes_back_with_its_data() {
  after kcat-through-bootstrap-service
  local uid claim dir
  uid="$(kubectl -n "$NS" get pod sluice-2 -o jsonpath='{.metadata.uid}')"
  claim="$(kubectl -n "$NS" get pvc data-sluice-2 -o jsonpath='{.spec.volumeName}')"
  dir="$(kubectl get pv "$claim" -o jsonpath='{.spec.hostPath.path}')"
  [[ -d "$dir/data/kcat-0" ]] || fail "sluice-2's claim holds no kcat-0 partition ($dir)"
  kubectl -n "$NS" delete pod sluice-2 --wait=true --timeout="${T}s" || fail "deleting sluice-2"
  until_true "sluice-2 made again" bash -c "[[ \"\$(kubectl -n $NS get pod sluice-2 -o jsonpath='{.metadata.uid}' 2>/dev/null)\" != '' && \"\$(kubectl -n $NS get pod sluice-2 -o jsonpath='{.metadata.uid}')\" != $uid ]]"
  [[ "$(kubectl -n "$NS" get pvc data-sluice-2 -o jsonpath='{.spec.volumeName}')" == "$claim" ]] || fail "another claim"
  until_true "three brokers Ready again" all_ready
  until_true "every ISR whole again" isr_whole kcat
  local got
  got="$(client kcat -b "$BOOTSTRAP" -t kcat -C -o beginning -e -q | wc -l)"
  [[ "$got" == 150 ]] || fail "consumed $got records after the pod came back, want 150"
  # Its own copy: the partition directory on the same claim, at the end of the log.
  [[ -d "$dir/data/kcat-0" ]] || fail "the claim lost the kcat-0 partition"
  local metrics="http://sluice-2.sluice-headless.$NS.svc.cluster.local:9644/metrics"
  until_true "sluice-2's copy of kcat-0 at offset 150" \
    bash -c "ip netns exec $HOSTNS curl -fsS $metrics | grep -q '^sluice_log_end_offset{topic=\"kcat\",partition=\"0\"} 150\$'"
}

# --- Scenario "operator": sluice-operator runs as a process in the host namespace (as it would
# in a pod: it reaches the API server at kubernetes.default.svc and the brokers by pod DNS).
OP_BOOTSTRAP="demo-bootstrap.$OPNS.svc.cluster.local:9092"
kc_condition() { kubectl -n "$OPNS" get kafkacluster demo -o jsonpath="{.status.conditions[?(@.type==\"$1\")].$2}"; }
kc_ready() { [[ "$(kc_condition Ready status)" == True ]]; }
kc_ready_reason() { kc_condition Ready reason; }
kc_operation() { kubectl -n "$OPNS" get kafkacluster demo -o jsonpath='{.status.operation}'; }

operator_makes_a_ready_cluster() {
  kubectl apply -f "$ROOT/crds/" -f "$ROOT/testbed/manifests/servicemonitor-crd.yaml" >/dev/null
  kubectl wait --for condition=established --timeout="${T}s" crd/kafkaclusters.sluice.io crd/topics.sluice.io \
    crd/servicemonitors.monitoring.coreos.com >/dev/null
  ip netns exec "$HOSTNS" env KUBECONFIG="$RUN/host-admin.kubeconfig" RUST_LOG=info,sluice_operator=debug \
    "$SLUICE_DIR/sluice-operator" --http 127.0.0.1:8080 >"$RUN/operator.log" 2>&1 </dev/null &
  echo $! >"$RUN/operator.pid"
  kubectl create namespace "$OPNS" >/dev/null
  kubectl -n "$OPNS" apply -f "$ROOT/manifests/examples/kafkacluster.yaml"
  NOW=kc_ready_reason until_true "KafkaCluster demo Ready" kc_ready
  kubectl -n "$OPNS" get kafkacluster demo -o wide
  [[ "$(kubectl -n "$OPNS" get kafkacluster demo -o jsonpath='{.status.quorum.caughtUpVoters}')" == "[0,1,2]" ]] ||
    fail "the status does not show three caught-up voters"
  client curl -fsS http://127.0.0.1:8080/metrics | has '^sluice_operator_reconciles_total{kind="KafkaCluster"} [1-9]' ||
    fail "the operator's /metrics counts no reconcile"
  # Prometheus Operator's API is served here: a ServiceMonitor scrapes the brokers' admin port
  # through the headless Service, which answers there.
  until_is "the brokers' ServiceMonitor" admin \
    kubectl -n "$OPNS" get servicemonitor demo -o jsonpath='{.spec.endpoints[0].port}'
  client curl -fsS "http://demo-brokers.$OPNS.svc.cluster.local:9644/metrics" | has '^sluice_' ||
    fail "no broker metrics through the headless Service"
  # rack.topologyKey: each broker registered with its Node's zone, one broker per zone.
  local racks
  racks="$(client curl -fsS "http://demo-0.demo-brokers.$OPNS.svc.cluster.local:9644/debug/metadata" |
    grep -o '"rack": *"[^"]*"' | sort -u | tr -d ' \n')"
  [[ "$racks" == '"rack":"zone-a""rack":"zone-b""rack":"zone-c"' ]] || fail "broker racks: $racks"
}

operator_cluster_serves_clients() {
  after operator-makes-a-ready-cluster
  seq 1 200 | client kcat -b "$OP_BOOTSTRAP" -t orders -P -X acks=all -X topic.metadata.refresh.interval.ms=1000 ||
    fail "kcat could not produce"
  local got
  got="$(client kcat -b "$OP_BOOTSTRAP" -t orders -C -o beginning -e -q | wc -l)"
  [[ "$got" == 200 ]] || fail "consumed $got records, want 200"
  client kcat -b "$OP_BOOTSTRAP" -L -t orders | has 'isrs: [0-2],[0-2],[0-2]' ||
    fail "the example's default.replication.factor=3 did not reach the brokers"
}

# The web console of the operator's cluster: the status names its Service, which exists on the
# admin port, and every broker, asked by its pod DNS name, shows the three brokers (each
# registered its admin port) and the partitions' offsets, which it asks of their leaders.
operator_cluster_console_answers() {
  after operator-cluster-serves-clients
  local url="http://demo-console.$OPNS.svc:9644/" i pod answer
  [[ "$(kc_field consoleUrl)" == "$url" ]] ||
    fail "status.consoleUrl is not $url"
  [[ "$(kubectl -n "$OPNS" get service demo-console -o jsonpath='{.spec.ports[0].port}')" == 9644 ]] ||
    fail "no Service demo-console on port 9644"
  for i in 0 1 2; do
    pod="http://demo-$i.demo-brokers.$OPNS.svc.cluster.local:9644"
    answer="$(client curl -sf --max-time 10 "$pod/api/v1/cluster")" ||
      fail "broker $i's console did not answer"
    python3 -c 'import json, sys
v = json.loads(sys.argv[1])
assert len(v["brokers"]) == 3 and v["unavailable"] == [], v
assert all(b["console_url"] and b["disk"] for b in v["brokers"]), v["brokers"]' "$answer" ||
      fail "broker $i's console does not show three reachable brokers: $answer"
    answer="$(client curl -sf --max-time 10 "$pod/api/v1/topics/orders/partitions")" ||
      fail "broker $i's console did not list the partitions of orders"
    python3 -c 'import json, sys
v = json.loads(sys.argv[1])
assert v["items"] and all(p["hw"] is not None for p in v["items"]), v
assert sum(p["hw"] for p in v["items"]) >= 200, v' "$answer" ||
      fail "broker $i's console lacks the leaders' offsets: $answer"
  done
}

# The monitoring manifests against the live cluster: a real Prometheus (scripts/prometheus.sh)
# in the host namespace scrapes the brokers by pod DNS and the operator, with rules.yaml
# loaded, while the cluster has traffic, a consumer group with lag and a replication throttle
# (whose metrics exist only while one is set); every dashboard query and alert expression is
# then evaluated through its HTTP API (scripts/lib/check_monitoring.py).
monitoring_queries_answer_from_the_live_cluster() {
  after operator-cluster-serves-clients
  local prom="$WORK/prometheus" pid
  mkdir -p "$prom/data"
  cp "$ROOT/manifests/monitoring/rules.yaml" "$prom/"
  cat >"$prom/prometheus.yml" <<YAML
global: {scrape_interval: 2s, evaluation_interval: 2s}
rule_files: [rules.yaml]
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: [$(printf 'demo-%s.demo-brokers.%s.svc.cluster.local:9644,' 0 "$OPNS" 1 "$OPNS" 2 "$OPNS" | sed 's/,$//')]
  - job_name: sluice-operator
    static_configs: [{targets: ["127.0.0.1:8080"]}]
YAML
  ip netns exec "$HOSTNS" "$BIN/prometheus" --config.file="$prom/prometheus.yml" \
    --storage.tsdb.path="$prom/data" --web.listen-address=127.0.0.1:9090 >"$prom/prometheus.log" 2>&1 </dev/null &
  pid=$!
  # shellcheck disable=SC2064 # the pid now
  trap "kill $pid 2>/dev/null || true; kubectl -n $OPNS patch kafkacluster demo --type merge -p '$UNTHROTTLE' >/dev/null || true" EXIT
  kubectl -n "$OPNS" patch kafkacluster demo --type merge \
    -p '{"spec":{"config":{"leader.replication.throttled.rate":"104857600"}}}' >/dev/null
  # A consumer group that read everything and committed, then 50 records more: lag 50.
  client timeout "$T" kcat -b "$OP_BOOTSTRAP" -G monitoring orders -o beginning -e -q \
    -X auto.commit.interval.ms=200 >/dev/null || fail "the group's consumer did not reach the end"
  seq 1 50 | client kcat -b "$OP_BOOTSTRAP" -t orders -P -X acks=all || fail "kcat could not produce"
  # An error answered: a fetch past the end (OFFSET_OUT_OF_RANGE in sluice_error_responses).
  client timeout 20 kcat -b "$OP_BOOTSTRAP" -t orders -p 0 -o 1000000 -C -e -q >/dev/null 2>&1 || true
  until_true "Prometheus ready" client curl -fsS http://127.0.0.1:9090/-/ready
  local metrics=()
  for i in 0 1 2; do metrics+=(--metrics-url "http://demo-$i.demo-brokers.$OPNS.svc.cluster.local:9644/metrics"); done
  client python3 "$ROOT/scripts/lib/check_monitoring.py" --prometheus http://127.0.0.1:9090 \
    --metrics-url http://127.0.0.1:8080/metrics "${metrics[@]}" --wait "$T" | tee "$WORK/monitoring-check.txt"
  [[ "${PIPESTATUS[0]}" == 0 ]] || fail "$(grep -c '^FAIL' "$WORK/monitoring-check.txt") monitoring checks failed (monitoring-check.txt)"
}

operator_refuses_an_unknown_config_key() {
  after operator-makes-a-ready-cluster
  local before
  before="$(kubectl -n "$OPNS" get statefulset demo -o jsonpath='{.spec.template.metadata.annotations.sluice\.io/config-hash}')"
  kubectl -n "$OPNS" patch kafkacluster demo --type merge -p '{"spec":{"config":{"log.retention.hourz":"24"}}}' >/dev/null
  until_is "Ready=False with reason InvalidSpec" InvalidSpec kc_condition Ready reason
  kc_condition Ready message | has "did you mean 'log.retention.hours'" || fail "message: $(kc_condition Ready message)"
  [[ "$(kubectl -n "$OPNS" get statefulset demo -o jsonpath='{.spec.template.metadata.annotations.sluice\.io/config-hash}')" == "$before" ]] ||
    fail "the StatefulSet changed for a refused spec"
  kubectl -n "$OPNS" patch kafkacluster demo --type json -p '[{"op":"remove","path":"/spec/config/log.retention.hourz"}]' >/dev/null
  until_true "Ready again once the key is gone" kc_ready
}

demo_pods() {
  kubectl -n "$OPNS" get pods -l app.kubernetes.io/instance=demo \
    -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.uid}/{.status.conditions[?(@.type=="Ready")].status} {end}'
}
# demo_incarnations: each broker pod as name=uid:restarts. It changes when a broker process
# restarts (a new pod, or the kubelet restarting its container), not when readiness flaps.
demo_incarnations() {
  kubectl -n "$OPNS" get pods -l app.kubernetes.io/instance=demo \
    -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.uid}:{.status.containerStatuses[0].restartCount} {end}'
}
# no_broker_restarted BEFORE WHILE: fails, naming what changed and the operator's last
# restarts, unless demo_incarnations is still BEFORE.
no_broker_restarted() {
  local now
  now="$(demo_incarnations)"
  [[ "$now" == "$1" ]] ||
    fail "a broker restarted $2: before [$1], now [$now]; $(grep -h 'rolling restart: deleting pod' "$RUN"/operator*.log | tail -n 2)"
}
# The roll is over: every broker pod on the StatefulSet's update revision, the cluster Ready,
# no operation in the status.
roll_done() {
  local sts want
  sts="$(kubectl -n "$OPNS" get statefulset demo -o jsonpath='{.metadata.generation}/{.status.observedGeneration}/{.status.updateRevision}')"
  want="${sts##*/}"
  [[ "${sts%%/*}" == "$(cut -d/ -f2 <<<"$sts")" && -n "$want" ]] || return 1
  [[ "$(kubectl -n "$OPNS" get pods -l app.kubernetes.io/instance=demo -o jsonpath='{range .items[*]}{.metadata.labels.controller-revision-hash}{"\n"}{end}' | sort | uniq -c | awk '{print $1"/"$2}')" == "3/$want" ]] &&
    kc_ready && [[ -z "$(kubectl -n "$OPNS" get kafkacluster demo -o jsonpath='{.status.operation}')" ]]
}
# produce_in_background TOPIC: Kafka's VerifiableProducer (acks=all, idempotent) at 200
# records/s through the bootstrap Service until stop_producer; PRODUCER_PID is the JVM.
produce_in_background() {
  printf 'enable.idempotence=true\nacks=all\nretries=2147483647\ndelivery.timeout.ms=120000\nrequest.timeout.ms=10000\n' \
    >"$WORK/producer.properties"
  # Not through the client function: $! must be the JVM (ip netns exec becomes it), which
  # SIGTERM makes flush, report and stop.
  ip netns exec "$HOSTNS" java -cp "$(kafka_classpath)" org.apache.kafka.tools.VerifiableProducer --bootstrap-server "$OP_BOOTSTRAP" \
    --topic "$1" --max-messages -1 --throughput 200 --acks -1 \
    --command-config "$WORK/producer.properties" >"$WORK/produced-$1.jsonl" 2>"$WORK/producer-$1.err" &
  PRODUCER_PID=$!
  # Steps run in subshells: a failing one leaves the JVM to the cleanup, by this pid.
  echo "$PRODUCER_PID" >"$RUN/producer.pid"
}
# stop_producer TOPIC: stops it, reads TOPIC back with VerifiableConsumer and checks that
# every acknowledged record is there (scripts/lib/verify_acked.py).
stop_producer() {
  kill -TERM "$PRODUCER_PID"
  wait "$PRODUCER_PID" 2>/dev/null || true
  rm -f "$RUN/producer.pid"
  local acked
  acked="$(grep -c '"name":"producer_send_success"' "$WORK/produced-$1.jsonl" || true)"
  ((acked > 0)) || fail "VerifiableProducer had nothing acknowledged: $(tail -n 3 "$WORK/producer-$1.err")"
  java_tool org.apache.kafka.tools.VerifiableConsumer --bootstrap-server "$OP_BOOTSTRAP" --topic "$1" \
    --group-id "check-$1" --group-protocol classic --reset-policy earliest --verbose \
    --max-messages "$acked" >"$WORK/consumed-$1.jsonl" 2>/dev/null || true
  python3 "$ROOT/scripts/lib/verify_acked.py" "$WORK/produced-$1.jsonl" "$WORK/consumed-$1.jsonl" ||
    fail "acknowledged records lost during the roll"
}

operator_config_change_rolls_one_broker_at_a_time() {
  after operator-makes-a-ready-cluster
  local before watcher
  before="$(demo_pods)"
  produce_in_background rolled
  sleep 5
  # A key the brokers read at start-up only: every broker must restart.
  kubectl -n "$OPNS" patch kafkacluster demo --type merge -p '{"spec":{"config":{"replica.lag.time.max.ms":"5000"}}}' >/dev/null
  (while :; do demo_pods; echo; sleep 0.5; done) >"$WORK/roll-watch.txt" 2>/dev/null &
  watcher=$!
  NOW=kc_operation until_true "the roll to finish" roll_done
  kill "$watcher"
  sleep 3
  stop_producer rolled
  local p
  for p in $before; do
    [[ " $(demo_pods) " != *" ${p%/*}/"* ]] || fail "${p%%=*} was not restarted"
  done
  # One broker at a time: never more than one of the three pods missing or not ready.
  local worst
  worst="$(awk '{ready = gsub(/\/True/, ""); if (3 - ready > max) max = 3 - ready} END {print max + 0}' "$WORK/roll-watch.txt")"
  ((worst <= 1)) || fail "$worst brokers were down at once (see roll-watch.txt)"
  kubectl -n "$OPNS" get events --field-selector involvedObject.name=demo | has Rolling ||
    fail "no Rolling event on the KafkaCluster"
}

operator_run_time_config_restarts_nothing() {
  after operator-config-change-rolls-one-broker-at-a-time
  local before
  before="$(demo_incarnations)"
  kubectl -n "$OPNS" patch kafkacluster demo --type merge -p '{"spec":{"config":{"log.retention.ms":"7200000"}}}' >/dev/null
  until_is "log.retention.ms applied at run time" 7200000 \
    kubectl -n "$OPNS" get kafkacluster demo -o jsonpath='{.status.appliedConfig.log\.retention\.ms}'
  java_tool org.apache.kafka.tools.ConfigCommand --bootstrap-server "$OP_BOOTSTRAP" --describe \
    --entity-type brokers --entity-default >"$WORK/broker-defaults.txt" || fail "kafka-configs --describe"
  grep -q 'log.retention.ms=7200000' "$WORK/broker-defaults.txt" || fail "the brokers do not have it: $(cat "$WORK/broker-defaults.txt")"
  sleep 5
  no_broker_restarted "$before" "for a run-time config"
}

# A roll that would take a partition below min.insync.replicas waits, says which partition in
# the status and an Event, and goes on by itself once the partition is whole again. Broker 0
# is made to lag: its process is stopped long enough to leave the ISR of topic fragile, and
# replication towards out-of-sync replicas is throttled to 1 byte/s so it cannot catch up.
UNTHROTTLE='{"spec":{"config":{"leader.replication.throttled.rate":null,"follower.replication.throttled.rate":null}}}'
operator_blocked_roll_says_why() {
  after operator-run-time-config-restarts-nothing
  seq 1 10 | client kcat -b "$OP_BOOTSTRAP" -t fragile -P -X acks=all || fail "creating topic fragile"
  java_tool org.apache.kafka.tools.ConfigCommand --bootstrap-server "$OP_BOOTSTRAP" --alter --entity-type topics \
    --entity-name fragile --add-config 'leader.replication.throttled.replicas=*,follower.replication.throttled.replicas=*' ||
    fail "setting the throttled replicas"
  kubectl -n "$OPNS" patch kafkacluster demo --type merge \
    -p '{"spec":{"config":{"leader.replication.throttled.rate":"1","follower.replication.throttled.rate":"1"}}}' >/dev/null
  until_is "the throttles applied" 1 \
    kubectl -n "$OPNS" get kafkacluster demo -o jsonpath='{.status.appliedConfig.follower\.replication\.throttled\.rate}'
  local pid
  pid="$(kubectl -n "$OPNS" get pod demo-0 -o jsonpath='{.status.containerStatuses[0].containerID}' | sed 's|testbed://||')"
  [[ "$pid" =~ ^[0-9]+$ ]] || fail "no process for demo-0"
  # However the step ends, broker 0 runs and the throttles go: the steps after it need a
  # cluster that can settle.
  # shellcheck disable=SC2064 # pid is local: expanded now.
  trap "kill -CONT $pid 2>/dev/null || true; kubectl -n $OPNS patch kafkacluster demo --type merge -p '$UNTHROTTLE' >/dev/null || true" EXIT
  kill -STOP "$pid"
  # acks=all waits until the leader drops broker 0 from the ISR (replica.lag.time.max.ms=5000).
  # 12 MB: one fetch takes up to 1 MiB of it (a throttle only refuses the fetches after the
  # rate is exceeded), and at 1 byte/s the next comes once that has aged out of Kafka's 11 s
  # rate window, so broker 0 needs minutes to catch up.
  # Bootstrapped from brokers 1 and 2: the bootstrap Service may still name the stopped one.
  local others="demo-1.demo-brokers.$OPNS.svc.cluster.local:9092,demo-2.demo-brokers.$OPNS.svc.cluster.local:9092"
  head -c 9000000 /dev/urandom | base64 -w 1000 | client kcat -b "$others" -t fragile -P -X acks=all ||
    { kill -CONT "$pid"; fail "producing while broker 0 was stopped"; }
  kill -CONT "$pid"
  until_true "demo-0 ready again" bash -c "[[ \"\$(kubectl -n $OPNS get pod demo-0 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}')\" == True ]]"
  # Asked of brokers 1 and 2 again: broker 0's own view may lag for a moment after it resumes.
  until_true "broker 0 out of fragile's ISR" bash -c "ip netns exec $HOSTNS kcat -b $others -L -t fragile | grep -q 'isrs: [12],[12]\$'"
  local before
  before="$(demo_incarnations)"
  kubectl -n "$OPNS" patch kafkacluster demo --type merge -p '{"spec":{"config":{"num.io.threads":"4"}}}' >/dev/null
  until_true "the status to say the roll is blocked" \
    bash -c "kubectl -n $OPNS get kafkacluster demo -o jsonpath='{.status.operation}' | grep -q 'blocked: broker [12] cannot restart safely: fragile-0 would fall below min.insync.replicas=2'"
  [[ "$(kc_condition Progressing reason)" == RollBlocked ]] || fail "Progressing reason $(kc_condition Progressing reason)"
  kubectl -n "$OPNS" get events --field-selector involvedObject.name=demo,reason=RollBlocked | has fragile-0 ||
    fail "no RollBlocked event naming fragile-0"
  sleep 10
  no_broker_restarted "$before" "while the roll was blocked"
  # The throttle lifted, broker 0 catches up and the roll finishes by itself.
  kubectl -n "$OPNS" patch kafkacluster demo --type merge -p "$UNTHROTTLE" >/dev/null
  until_true "the roll to finish once fragile-0 is whole" roll_done
}

# Topic resources on the cluster demo. Topics are looked at through kcat -L over every topic
# (asking Metadata for one topic could create it).
topic_condition() { kubectl -n "$OPNS" get topic "$1" -o jsonpath="{.status.conditions[?(@.type==\"Ready\")].$2}"; }
# topic_shape TOPIC: "PARTITIONSxREPLICAS" as the brokers report it ("0x" when absent).
topic_shape() {
  client kcat -b "$OP_BOOTSTRAP" -L -m 5 | awk -v t="\"$1\"" '
    $1 == "topic" { on = ($2 == t); next }
    on && $1 == "partition" { n++; s = $0; sub(/.*replicas: /, "", s); sub(/, isrs.*/, "", s); r[split(s, x, ",")] = 1 }
    END { out = ""; for (k in r) out = out (out == "" ? "" : "|") k; print n + 0 "x" out }'
}
topic_configs() {
  java_tool org.apache.kafka.tools.ConfigCommand --bootstrap-server "$OP_BOOTSTRAP" --describe \
    --entity-type topics --entity-name "$1"
}
# topic_config_is TOPIC KEY=VALUE: the topic's own config has it.
topic_config_is() { topic_configs "$1" | has "^ *$2 "; }
topic_yaml() {
  cat <<YAML
apiVersion: sluice.io/v1alpha1
kind: Topic
metadata: {name: $1, namespace: $OPNS}
spec: {cluster: demo, partitions: $2, replicationFactor: $3, deletionPolicy: $4, config: {$5}}
YAML
}

operator_topic_is_created() {
  after operator-makes-a-ready-cluster
  until_true "KafkaCluster demo Ready" kc_ready
  # A topic a client makes (auto-created): no Topic resource names it, the operator leaves it be.
  seq 1 20 | client kcat -b "$OP_BOOTSTRAP" -t by-client -P -X acks=all || fail "kcat could not produce to by-client"
  topic_yaml events 3 3 Retain '"retention.ms": "3600000"' | kubectl apply -f - >/dev/null
  NOW='topic_condition events message' until_is "Topic events Ready" True topic_condition events status
  until_is "events with 3 partitions of 3 replicas" 3x3 topic_shape events
  topic_configs events >"$WORK/events-configs.txt" || fail "kafka-configs --describe"
  grep -q 'retention.ms=3600000' "$WORK/events-configs.txt" || fail "retention.ms not set: $(cat "$WORK/events-configs.txt")"
  [[ -n "$(kubectl -n "$OPNS" get topic events -o jsonpath='{.status.topicId}')" ]] || fail "no topicId in the status"
  [[ "$(kubectl -n "$OPNS" get topic events -o jsonpath='{.metadata.finalizers}')" == *sluice.io/topic* ]] ||
    fail "no finalizer sluice.io/topic"
}

operator_topic_partitions_grow() {
  after operator-topic-is-created
  kubectl -n "$OPNS" patch topic events --type merge -p '{"spec":{"partitions":5}}' >/dev/null
  until_is "events with 5 partitions" 5x3 topic_shape events
  until_is "Topic events Ready" True topic_condition events status
}

operator_topic_partition_decrease_refused() {
  after operator-topic-partitions-grow
  kubectl -n "$OPNS" patch topic events --type merge -p '{"spec":{"partitions":2}}' >/dev/null
  until_is "Ready=False with reason PartitionDecreaseRefused" PartitionDecreaseRefused topic_condition events reason
  [[ "$(topic_condition events message)" == "Kafka cannot remove partitions: 5 exist, spec asks 2" ]] ||
    fail "message: $(topic_condition events message)"
  [[ "$(topic_shape events)" == 5x3 ]] || fail "events changed: $(topic_shape events)"
  kubectl -n "$OPNS" patch topic events --type merge -p '{"spec":{"partitions":5}}' >/dev/null
  until_is "Topic events Ready again" True topic_condition events status
}

operator_topic_config_change_applied() {
  after operator-topic-is-created
  # A key another tool sets is left alone; an unknown key is refused by name.
  java_tool org.apache.kafka.tools.ConfigCommand --bootstrap-server "$OP_BOOTSTRAP" --alter --entity-type topics \
    --entity-name events --add-config segment.ms=600000 >/dev/null || fail "kafka-configs --alter"
  kubectl -n "$OPNS" patch topic events --type merge -p '{"spec":{"config":{"retention.msx":"1"}}}' >/dev/null
  until_is "Ready=False with reason InvalidSpec" InvalidSpec topic_condition events reason
  topic_condition events message | has "retention.msx" || fail "message: $(topic_condition events message)"
  kubectl -n "$OPNS" patch topic events --type merge -p '{"spec":{"config":{"retention.msx":null,"retention.ms":"7200000"}}}' >/dev/null
  until_true "retention.ms=7200000 on events" topic_config_is events retention.ms=7200000
  until_is "Topic events Ready" True topic_condition events status
  topic_config_is events segment.ms=600000 || fail "the operator removed segment.ms, which another tool set"
}

operator_topic_deletion_policy() {
  after operator-topic-is-created
  kubectl -n "$OPNS" delete topic events --wait=true --timeout="${T}s" >/dev/null || fail "deleting Topic events"
  [[ "$(topic_shape events)" == 5x3 || "$(topic_shape events)" == 3x3 ]] ||
    fail "deletionPolicy Retain, yet the topic went: $(topic_shape events)"
  topic_yaml scratch 1 1 Delete '' | kubectl apply -f - >/dev/null
  NOW='topic_condition scratch message' until_is "Topic scratch Ready" True topic_condition scratch status
  until_is "scratch in Kafka" 1x1 topic_shape scratch
  kubectl -n "$OPNS" delete topic scratch --wait=true --timeout="${T}s" >/dev/null || fail "deleting Topic scratch"
  until_is "scratch deleted from Kafka" 0x topic_shape scratch
}

operator_topic_leaves_client_topics_alone() {
  after operator-topic-is-created
  [[ "$(topic_shape by-client)" != 0x ]] || fail "the topic a client made is gone"
  local got
  got="$(client kcat -b "$OP_BOOTSTRAP" -t by-client -C -o beginning -e -q | wc -l)"
  [[ "$got" == 20 ]] || fail "by-client holds $got records, want 20"
}

kc_field() { kubectl -n "$OPNS" get kafkacluster demo -o jsonpath="{.status.$1}"; }
# replicas_on BROKERS: how many partition replicas the brokers (a kcat -L regex such as [34])
# host, asked of broker 0.
replicas_on() {
  client kcat -b "demo-0.demo-brokers.$OPNS.svc.cluster.local:9092" -L |
    grep -o 'replicas: [0-9,]*' | grep -o "[0-9]*" | grep -c "^$1\$" || true
}
_hosts_some() { (($(replicas_on "$1") > 0)); }
scaled_to() {
  [[ "$(kubectl -n "$OPNS" get statefulset demo -o jsonpath='{.spec.replicas}/{.status.readyReplicas}')" == "$1/$1" ]] &&
    kc_ready && [[ -z "$(kc_field operation)" ]]
}

operator_scales_up_and_spreads_partitions() {
  after operator-makes-a-ready-cluster
  # The moves throttled (as kafka-reassign-partitions --throttle); what the status says is
  # throttled is watched while they run.
  (while :; do kc_field throttled; echo; sleep 0.3; done) >"$WORK/throttle-watch.txt" 2>/dev/null &
  local watcher=$!
  kubectl -n "$OPNS" patch kafkacluster demo --type merge -p '{"spec":{"replicas":5,"reassignmentThrottle":50000000}}' >/dev/null
  NOW=kc_operation until_true "five brokers ready and settled" scaled_to 5
  kill "$watcher"
  has '"brokers":\[0,1,2,3,4\]' "$WORK/throttle-watch.txt" || fail "the moves were not throttled: $(sort -u "$WORK/throttle-watch.txt")"
  [[ -z "$(kc_field throttled)" ]] || fail "throttles left in the status: $(kc_field throttled)"
  local b
  for b in 0 1 2 3 4; do
    java_tool org.apache.kafka.tools.ConfigCommand --bootstrap-server "$OP_BOOTSTRAP" --describe \
      --entity-type brokers --entity-name "$b" >"$WORK/broker-$b-configs.txt" || fail "kafka-configs --describe broker $b"
    ! has 'throttled.rate' "$WORK/broker-$b-configs.txt" || fail "broker $b keeps a throttle: $(cat "$WORK/broker-$b-configs.txt")"
  done
  until_true "brokers 3 and 4 hosting partitions" _hosts_some '[34]'
  # Each new broker has its share (how even it can be depends on the zones the scheduler put
  # them in: a partition's replicas stay in different zones; ops/scale.rs tests the spread).
  local n3 n4
  n3="$(replicas_on 3)" n4="$(replicas_on 4)"
  ((n3 > 0 && n4 > 0)) || fail "not spread: broker 3 hosts $n3 replicas, broker 4 hosts $n4"
  # The new brokers are brokers only: the voters stay 0, 1 and 2.
  java_tool org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$OP_BOOTSTRAP" describe --status >"$WORK/quorum.txt" ||
    fail "kafka-metadata-quorum: $(why $?)"
  grep -q 'CurrentVoters:.*\[0,1,2\]\|CurrentVoters:.*"id": 2' "$WORK/quorum.txt" || fail "voters: $(cat "$WORK/quorum.txt")"
  grep -q 'CurrentObservers:.*3' "$WORK/quorum.txt" || fail "broker 3 is not an observer: $(cat "$WORK/quorum.txt")"
}

operator_scale_down_drains_first() {
  after operator-scales-up-and-spreads-partitions
  java_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$OP_BOOTSTRAP" --create --topic wide \
    --partitions 2 --replication-factor 4 >/dev/null || fail "creating topic wide"
  produce_in_background scaled
  sleep 3
  kubectl -n "$OPNS" patch kafkacluster demo --type merge -p '{"spec":{"replicas":3}}' >/dev/null
  # RF 4 cannot live on three brokers: refused before anything changes.
  until_is "the scale-down refused" ScaleDownRefused kc_condition Progressing reason
  kc_condition Progressing message | has 'wide (replication factor 4) has more replicas than the 3 brokers' ||
    fail "message: $(kc_condition Progressing message)"
  kubectl -n "$OPNS" get events --field-selector involvedObject.name=demo,reason=ScaleDownRefused | has wide ||
    fail "no ScaleDownRefused event"
  sleep 5
  [[ "$(kubectl -n "$OPNS" get statefulset demo -o jsonpath='{.spec.replicas}')" == 5 ]] || fail "the StatefulSet shrank anyway"
  (($(replicas_on '[34]') > 0)) || fail "brokers 3 and 4 were drained anyway"
  # Without that topic the drain can complete: it does, then the StatefulSet shrinks.
  java_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$OP_BOOTSTRAP" --delete --topic wide ||
    fail "deleting topic wide"
  until_true "three brokers, drained" scaled_to 3
  [[ "$(replicas_on '[34]')" == 0 ]] || fail "brokers 3 and 4 still host replicas"
  # Refused once, for topic wide; never while the drain moved replicas.
  local refusals
  refusals="$(kubectl -n "$OPNS" get events --field-selector involvedObject.name=demo,reason=ScaleDownRefused \
    -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' | grep -v 'wide (replication factor 4)' || true)"
  [[ -z "$refusals" ]] || fail "refused during the drain: $refusals"
  stop_producer scaled
  # deleteClaim is false: the removed brokers' claims stay.
  kubectl -n "$OPNS" get pvc data-demo-3 data-demo-4 >/dev/null || fail "the removed brokers' claims were deleted"
}

operator_refuses_to_remove_a_voter() {
  after operator-scale-down-drains-first
  kubectl -n "$OPNS" patch kafkacluster demo --type merge -p '{"spec":{"replicas":2}}' >/dev/null
  until_is "the scale-down refused" ScaleDownRefused kc_condition Progressing reason
  kc_condition Progressing message | has 'brokers 2 are metadata quorum voters' ||
    fail "message: $(kc_condition Progressing message)"
  [[ "$(kubectl -n "$OPNS" get statefulset demo -o jsonpath='{.spec.replicas}')" == 3 ]] || fail "the StatefulSet shrank"
  kubectl -n "$OPNS" patch kafkacluster demo --type merge -p '{"spec":{"replicas":3}}' >/dev/null
  until_true "settled again at three" scaled_to 3
}

claim_sizes() {
  local i
  for i in 0 1 2; do kubectl -n "$OPNS" get pvc "data-demo-$i" -o jsonpath='{.status.capacity.storage} '; done
}

# Larger storage.size: the claims grow in place (the test bed's StorageClass allows expansion)
# and no broker restarts; a smaller one is refused.
operator_grows_claims_without_restarts() {
  after operator-makes-a-ready-cluster
  local before
  before="$(demo_incarnations)"
  kubectl -n "$OPNS" patch kafkacluster demo --type merge -p '{"spec":{"storage":{"size":"20Gi"}}}' >/dev/null
  until_is "the three claims grown to 20Gi" "20Gi 20Gi 20Gi " claim_sizes
  until_true "settled after the resize" scaled_to 3
  no_broker_restarted "$before" "for the resize"
  [[ "$(kubectl -n "$OPNS" get statefulset demo -o jsonpath='{.spec.volumeClaimTemplates[0].spec.resources.requests.storage}')" == 10Gi ]] ||
    fail "the StatefulSet's claim template changed"
  kubectl -n "$OPNS" patch kafkacluster demo --type merge -p '{"spec":{"storage":{"size":"5Gi"}}}' >/dev/null
  until_is "the shrink refused" StorageShrinkRefused kc_condition Progressing reason
  kc_condition Progressing message | has 'claims cannot shrink' || fail "message: $(kc_condition Progressing message)"
  [[ "$(claim_sizes)" == "20Gi 20Gi 20Gi " ]] || fail "claims changed: $(claim_sizes)"
  kubectl -n "$OPNS" patch kafkacluster demo --type merge -p '{"spec":{"storage":{"size":"20Gi"}}}' >/dev/null
  until_true "settled again" scaled_to 3
}

# A second operator waits for the Lease while the first leads, and takes over as soon as the
# first stops (it gives the Lease up on a clean stop).
operator_leader_election_hands_over() {
  after operator-makes-a-ready-cluster
  ip netns exec "$HOSTNS" env KUBECONFIG="$RUN/host-admin.kubeconfig" RUST_LOG=info,sluice_operator=debug \
    "$SLUICE_DIR/sluice-operator" --http 127.0.0.1:8081 --log-format json >"$RUN/operator2.log" 2>&1 </dev/null &
  local second=$!
  until_true "the second operator waiting for the Lease" grep -q 'waiting for the leader election Lease' "$RUN/operator2.log"
  ! grep -q 'leading' "$RUN/operator2.log" || fail "two operators lead at once"
  local first
  first="$(kubectl -n default get lease sluice-operator -o jsonpath='{.spec.holderIdentity}')"
  stop_operator
  echo "$second" >"$RUN/operator.pid"
  until_true "the second operator leading" grep -q 'leading' "$RUN/operator2.log"
  [[ "$(kubectl -n default get lease sluice-operator -o jsonpath='{.spec.holderIdentity}')" != "$first" ]] ||
    fail "the Lease still names the first operator"
  kubectl -n "$OPNS" patch kafkacluster demo --type merge -p '{"spec":{"config":{"log.retention.ms":"3600000"}}}' >/dev/null
  until_is "the second operator reconciling" 3600000 \
    kubectl -n "$OPNS" get kafkacluster demo -o jsonpath='{.status.appliedConfig.log\.retention\.ms}'
  # --log-format json: every line one JSON object, for log aggregators.
  python3 -c 'import json, sys; [json.loads(l)["message"] for l in open(sys.argv[1])]' "$RUN/operator2.log" ||
    fail "operator2.log is not JSON lines: $(head -n 2 "$RUN/operator2.log")"
}

operator_deleted_cluster_is_garbage_collected() {
  after operator-makes-a-ready-cluster
  kubectl -n "$OPNS" delete kafkacluster demo --wait=true --timeout="${T}s" >/dev/null
  until_true "StatefulSet, Services, ConfigMap and PodDisruptionBudget collected" \
    bash -c "[[ -z \"\$(kubectl -n $OPNS get statefulset,service,configmap,poddisruptionbudget -l app.kubernetes.io/instance=demo -o name)\" ]]"
  until_true "broker pods gone" bash -c "[[ -z \"\$(kubectl -n $OPNS get pods -o name)\" ]]"
  # deleteClaim is false: the data outlives the cluster, as with Strimzi.
  kubectl -n "$OPNS" get pvc data-demo-0 >/dev/null || fail "the claims were deleted with deleteClaim false"
}

# External access (spec.listeners.external): a cluster of two brokers in namespace ext, each
# with a Service of its own. Clients bootstrap from the status's externalBootstrap and are
# sent to each broker's own external address: first the Node's address with the broker's node
# port, then, once the type is LoadBalancer (a roll), its load balancer's address (the test
# bed's kubelet plays kube-proxy and the cloud's load balancers).
EXTNS=ext
ext_field() { kubectl -n "$EXTNS" get kafkacluster outside -o jsonpath="{.status.$1}"; }
ext_settled() {
  [[ "$(kubectl -n "$EXTNS" get kafkacluster outside -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True &&
    -z "$(ext_field operation)" ]]
}
# ext_advertised: "id=host:port" of each broker, as Metadata through the external bootstrap
# tells a client outside.
ext_advertised() {
  client kcat -b "$(ext_field externalBootstrap)" -L -m 5 | sed -n 's/^ *broker \([0-9]*\) at \([^ ]*\).*/\1=\2/p' | sort | tr '\n' ' '
}
# ext_round TOTAL: 100 more records through the external bootstrap; TOTAL read back.
ext_round() {
  local boot got
  boot="$(ext_field externalBootstrap)"
  seq 1 100 | client kcat -b "$boot" -t outside -P -X acks=all || fail "producing through $boot"
  got="$(client kcat -b "$boot" -t outside -C -o beginning -e -q | wc -l)"
  [[ "$got" == "$1" ]] || fail "read $got records through $boot, want $1"
}
operator_external_listeners() {
  after operator-makes-a-ready-cluster
  kubectl create namespace "$EXTNS" >/dev/null
  kubectl apply -f - >/dev/null <<YAML
apiVersion: sluice.io/v1alpha1
kind: KafkaCluster
metadata: {name: outside, namespace: $EXTNS}
spec:
  replicas: 2
  storage: {size: 1Gi}
  config: {num.partitions: "2"}
  listeners: {external: {type: NodePort}}
YAML
  NOW='ext_field operation' until_true "KafkaCluster outside Ready" ext_settled
  local host p0 p1 want
  host="$(kubectl -n "$EXTNS" get pod outside-0 -o jsonpath='{.status.hostIP}')"
  p0="$(kubectl -n "$EXTNS" get service outside-external-0 -o jsonpath='{.spec.ports[0].nodePort}')"
  p1="$(kubectl -n "$EXTNS" get service outside-external-1 -o jsonpath='{.spec.ports[0].nodePort}')"
  [[ "$(ext_field externalBootstrap)" == "$host:"* ]] || fail "externalBootstrap $(ext_field externalBootstrap), Node $host"
  want="0=$host:$p0 1=$host:$p1 "
  [[ "$(ext_advertised)" == "$want" ]] || fail "brokers advertise [$(ext_advertised)], want [$want]"
  ext_round 100
  kubectl -n "$EXTNS" patch kafkacluster outside --type merge -p '{"spec":{"listeners":{"external":{"type":"LoadBalancer"}}}}' >/dev/null
  until_true "the load balancer addresses in the status" bash -c "[[ \"\$(kubectl -n $EXTNS get kafkacluster outside -o jsonpath='{.status.externalBootstrap}')\" == *:9094 ]]"
  NOW='ext_field operation' until_true "outside rolled onto its load balancers" ext_settled
  local lb0 lb1
  lb0="$(kubectl -n "$EXTNS" get service outside-external-0 -o jsonpath='{.status.loadBalancer.ingress[0].ip}')"
  lb1="$(kubectl -n "$EXTNS" get service outside-external-1 -o jsonpath='{.status.loadBalancer.ingress[0].ip}')"
  [[ -n "$lb0" && "$lb0" != "$lb1" ]] || fail "load balancer addresses [$lb0] [$lb1]"
  want="0=$lb0:9094 1=$lb1:9094 "
  until_is "brokers advertising their load balancers" "$want" ext_advertised
  ext_round 200
  kubectl delete namespace "$EXTNS" --wait=true --timeout="${T}s" >/dev/null || fail "deleting namespace $EXTNS"
}

# --- Scenario "helm": the chart installed with helm (as the administrator, from the machine's
# namespace) into sluice-system; the operator runs as a pod there, with its service account's
# token and the chart's RBAC, and runs a KafkaCluster in another namespace.
HELM_NS=sluice-system
HMNS=hm
helm() {
  HELM_CACHE_HOME="$WORK/helm/cache" HELM_CONFIG_HOME="$WORK/helm/config" HELM_DATA_HOME="$WORK/helm/data" \
    "$BIN/helm" --kubeconfig "$RUN/admin.kubeconfig" "$@"
}
operator_pod_ready() {
  [[ "$(kubectl -n "$HELM_NS" get pods -l app.kubernetes.io/name=sluice-operator -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{end}')" == True ]]
}
hm_ready_reason() { kubectl -n "$HMNS" get kafkacluster demo -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}'; }
hm_ready() { [[ "$(kubectl -n "$HMNS" get kafkacluster demo -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
as_operator() { kubectl auth can-i --as "system:serviceaccount:$HELM_NS:sluice-operator" "$@"; }

helm_installs_the_operator() {
  # Helm installs a chart's CRDs only when they are absent: the ones the scenario "operator"
  # applied go first, so that it is the chart's copy that is installed. Not when resources are
  # left (after a failure there): with no operator running, a Topic's finalizer would hold the
  # deletion.
  if [[ -z "$(kubectl get kafkaclusters,topics -A -o name 2>/dev/null)" ]]; then
    kubectl delete crd kafkaclusters.sluice.io topics.sluice.io --ignore-not-found --wait=true --timeout="${T}s"
  else
    echo "custom resources left: the CRDs stay, helm install leaves them as they are"
  fi
  helm install sluice-operator "$ROOT/charts/sluice-operator" --namespace "$HELM_NS" --create-namespace \
    --wait --timeout "${T}s" || fail "helm install"
  helm list --namespace "$HELM_NS"
  kubectl wait --for condition=established --timeout="${T}s" crd/kafkaclusters.sluice.io crd/topics.sluice.io ||
    fail "the chart's CRDs were not installed"
  until_true "the operator pod Ready" operator_pod_ready
  kubectl -n "$HELM_NS" get pods -o wide
}

helm_operator_makes_a_ready_cluster() {
  after helm-installs-the-operator
  kubectl create namespace "$HMNS" >/dev/null
  kubectl -n "$HMNS" apply -f "$ROOT/manifests/examples/kafkacluster.yaml"
  NOW=hm_ready_reason until_true "KafkaCluster demo in $HMNS Ready" hm_ready
  kubectl -n "$HMNS" get kafkacluster demo -o wide
  seq 1 50 | client kcat -b "demo-bootstrap.$HMNS.svc.cluster.local:9092" -t helm -P -X acks=all ||
    fail "kcat could not produce"
  # Its metrics through the chart's Service.
  client curl -fsS "http://sluice-operator.$HELM_NS.svc.cluster.local:8080/metrics" |
    grep -q '^sluice_operator_reconciles_total{kind="KafkaCluster"} [1-9]' ||
    fail "the operator's /metrics, through its Service, counts no reconcile"
  # It did this with its service account's token alone, within the chart's RBAC.
  local log
  log="$(echo "$RUN"/kubelet/pods/"$HELM_NS"_sluice-operator-*/operator.log)"
  [[ -f "$log" ]] || fail "no log of the operator's pod ($log)"
  ! grep -i forbidden "$log" || fail "the API server refused the operator something"
  as_operator patch statefulsets -n "$HMNS" >/dev/null || fail "the service account may not patch StatefulSets"
  as_operator delete pods -n "$HMNS" >/dev/null || fail "the service account may not restart brokers"
  as_operator create events.events.k8s.io -n "$HMNS" >/dev/null || fail "the service account may not publish Events"
  ! as_operator get secrets -n "$HMNS" >/dev/null || fail "the service account may read Secrets"
  ! as_operator create pods -n "$HMNS" >/dev/null || fail "the service account may create pods"
}

# A Topic: made in Kafka, then deleted through its finalizer, by the operator in its pod.
hm_topic_ready() { [[ "$(kubectl -n "$HMNS" get topic helm-events -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
# The whole metadata (asking for the topic by name could auto-create it).
hm_topics() { client kcat -b "demo-bootstrap.$HMNS.svc.cluster.local:9092" -L -m 5; }
hm_topic_gone() { hm_topics >"$WORK/hm-topics.txt" && ! grep -q 'topic "helm-events"' "$WORK/hm-topics.txt"; }
helm_operator_runs_a_topic() {
  after helm-operator-makes-a-ready-cluster
  kubectl apply -f - >/dev/null <<YAML || fail "applying Topic helm-events"
apiVersion: sluice.io/v1alpha1
kind: Topic
metadata: {name: helm-events, namespace: $HMNS}
spec: {cluster: demo, partitions: 3, replicationFactor: 3, deletionPolicy: Delete}
YAML
  until_true "Topic helm-events Ready" hm_topic_ready
  hm_topics | has 'topic "helm-events" with 3 partitions' || fail "helm-events does not have 3 partitions in Kafka"
  kubectl -n "$HMNS" delete topic helm-events --wait=true --timeout="${T}s" >/dev/null || fail "deleting Topic helm-events"
  until_true "helm-events deleted from Kafka" hm_topic_gone
}

helm_uninstall_keeps_crds_and_clusters() {
  after helm-installs-the-operator
  helm uninstall sluice-operator --namespace "$HELM_NS" --wait --timeout "${T}s" || fail "helm uninstall"
  until_true "the operator pod gone" bash -c "[[ -z \"\$(kubectl -n $HELM_NS get pods -o name)\" ]]"
  [[ -z "$(kubectl -n "$HELM_NS" get deployment,service,serviceaccount,role,rolebinding -l app.kubernetes.io/instance=sluice-operator -o name)" ]] ||
    fail "objects of the release left in $HELM_NS"
  [[ -z "$(kubectl get clusterrole,clusterrolebinding -l app.kubernetes.io/instance=sluice-operator -o name)" ]] ||
    fail "the ClusterRole or its binding left"
  # Helm never deletes CRDs, so custom resources (and their brokers) outlive the operator.
  kubectl get crd kafkaclusters.sluice.io topics.sluice.io >/dev/null || fail "the CRDs went with the release"
  [[ "${STATUS[helm-operator-makes-a-ready-cluster]:-}" != ok ]] ||
    kubectl -n "$HMNS" get kafkacluster demo >/dev/null || fail "the KafkaCluster went with the release"
}

# The test bed stops without leaving a pod's process behind.
stops_cleanly() {
  local pids
  pids="$(kubectl get pods -A -o jsonpath='{range .items[*]}{.status.containerStatuses[*].containerID}{"\n"}{end}' |
    sed -n 's|^testbed://||p')"
  [[ -n "$pids" ]] || fail "no pod processes to check"
  bash "$ROOT/testbed/down.sh"
  local p left=()
  for p in $pids; do kill -0 "$p" 2>/dev/null && left+=("$p"); done
  ((${#left[@]} == 0)) || fail "processes left running: ${left[*]}"
  [[ -z "$(ip netns list | grep -F "${HOSTNS%-host}-")" ]] || fail "network namespaces left: $(ip netns list)"
}

# kubectl (a function of testbed/lib.sh) inside bash -c: exported for it.
export -f kubectl
export BIN RUN
step cluster-forms cluster_forms
step kcat-through-bootstrap-service kcat_through_bootstrap_service
step java-clients-through-bootstrap-service java_clients_through_bootstrap_service
step sigkill-broker-restarts sigkill_broker_restarts
step deleted-pod-comes-back-with-its-data deleted_pod_comes_back_with_its_data
step operator-makes-a-ready-cluster operator_makes_a_ready_cluster
step operator-cluster-serves-clients operator_cluster_serves_clients
step operator-cluster-console-answers operator_cluster_console_answers
step monitoring-queries-answer-from-the-live-cluster monitoring_queries_answer_from_the_live_cluster
step operator-refuses-an-unknown-config-key operator_refuses_an_unknown_config_key
step operator-config-change-rolls-one-broker-at-a-time operator_config_change_rolls_one_broker_at_a_time
step operator-run-time-config-restarts-nothing operator_run_time_config_restarts_nothing
step operator-blocked-roll-says-why operator_blocked_roll_says_why
step operator-topic-is-created operator_topic_is_created
step operator-topic-partitions-grow operator_topic_partitions_grow
step operator-topic-partition-decrease-refused operator_topic_partition_decrease_refused
step operator-topic-config-change-applied operator_topic_config_change_applied
step operator-topic-deletion-policy operator_topic_deletion_policy
step operator-topic-leaves-client-topics-alone operator_topic_leaves_client_topics_alone
step operator-scales-up-and-spreads-partitions operator_scales_up_and_spreads_partitions
step operator-scale-down-drains-first operator_scale_down_drains_first
step operator-refuses-to-remove-a-voter operator_refuses_to_remove_a_voter
step operator-grows-claims-without-restarts operator_grows_claims_without_restarts
step operator-leader-election-hands-over operator_leader_election_hands_over
step operator-external-listeners operator_external_listeners
step operator-deleted-cluster-is-garbage-collected operator_deleted_cluster_is_garbage_collected
stop_operator
# The process operator is stopped: the chart's operator is then the only one.
step helm-installs-the-operator helm_installs_the_operator
step helm-operator-makes-a-ready-cluster helm_operator_makes_a_ready_cluster
step helm-operator-runs-a-topic helm_operator_runs_a_topic
step helm-uninstall-keeps-crds-and-clusters helm_uninstall_keeps_crds_and_clusters
step test-bed-stops-cleanly stops_cleanly
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
