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
# status shows the quorum; kcat produces and consumes through its bootstrap Service; an
# unknown config key is refused in the status with nothing changed; deleting the KafkaCluster
# garbage-collects everything it owned but the claims (deleteClaim false).
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

OPNS=op
stop_operator() {
  [[ -f "$RUN/operator.pid" ]] || return 0
  stop_process "$(cat "$RUN/operator.pid")"
  rm -f "$RUN/operator.pid"
}
cleanup() {
  local rc=$?
  if ((rc != 0 || FAILED > 0)); then
    log "last lines of the kubelet's log:"
    tail -n 20 "$RUN/kubelet.log" >&2 || true
    if [[ -f "$RUN/operator.log" ]]; then
      log "last lines of the operator's log:"
      tail -n 20 "$RUN/operator.log" >&2
    fi
    for f in "$RUN"/kubelet/pods/"$NS"_sluice-*/broker.log "$RUN"/kubelet/pods/"$OPNS"_demo-*/broker.log; do
      [[ -f "$f" ]] || continue
      log "last lines of $f:"
      tail -n 10 "$f" >&2
    done
  fi
  stop_operator
  bash "$ROOT/testbed/down.sh" || true
  settle_work "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
TESTBED_IMAGES="sluice=$SLUICE_DIR" bash "$ROOT/testbed/up.sh"
HOSTNS="$(cat "$RUN/host-netns")"
BOOTSTRAP="sluice.$NS.svc.cluster.local:9092"

# Clients run in the test bed's host namespace, where pod and Service names resolve.
client() { ip netns exec "$HOSTNS" "$@"; }
java_tool() { client bash -c 'source "$1/scripts/lib/kafka-dist.sh"; shift; KAFKA_RUN_TIMEOUT='"$T"' kafka_run_class "$@"' _ "$ROOT" "$@"; }

# until_true WHAT CMD...: CMD succeeds within T seconds, else the step fails with WHAT.
until_true() {
  local what="$1" deadline=$((SECONDS + T))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "$what (not within ${T}s)"
    sleep 1
  done
}
all_ready() {
  [[ "$(kubectl -n "$NS" get pods -l app=sluice -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{end}')" == TrueTrueTrue ]]
}
three_brokers() { client kcat -b "$BOOTSTRAP" -L -m 5 | grep -q '^ 3 brokers:'; }
isr_whole() {
  client kcat -b "$BOOTSTRAP" -L -t "$1" -m 5 >"$WORK/metadata.txt" &&
    ! grep 'partition ' "$WORK/metadata.txt" | grep -vq 'isrs: [0-2],[0-2],[0-2]$'
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

sigkill_broker_restarts() {
  after kcat-through-bootstrap-service
  local before pid
  before="$(restarts sluice-1)"
  pid="$(kubectl -n "$NS" get pod sluice-1 -o jsonpath='{.status.containerStatuses[0].containerID}' | sed 's|testbed://||')"
  [[ "$pid" =~ ^[0-9]+$ ]] || fail "no process for sluice-1"
  kill -KILL "$pid"
  until_true "sluice-1 restarted" test "$(restarts sluice-1)" -gt "$before"
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

operator_makes_a_ready_cluster() {
  kubectl apply -f "$ROOT/crds/" >/dev/null
  kubectl wait --for condition=established --timeout="${T}s" crd/kafkaclusters.sluice.io crd/topics.sluice.io >/dev/null
  ip netns exec "$HOSTNS" env KUBECONFIG="$RUN/host-admin.kubeconfig" RUST_LOG=info,sluice_operator=debug \
    "$SLUICE_DIR/sluice-operator" --http 127.0.0.1:8080 >"$RUN/operator.log" 2>&1 </dev/null &
  echo $! >"$RUN/operator.pid"
  kubectl create namespace "$OPNS" >/dev/null
  kubectl -n "$OPNS" apply -f "$ROOT/manifests/examples/kafkacluster.yaml"
  until_true "KafkaCluster demo Ready (last: $(kc_condition Ready reason 2>/dev/null))" kc_ready
  kubectl -n "$OPNS" get kafkacluster demo -o wide
  [[ "$(kubectl -n "$OPNS" get kafkacluster demo -o jsonpath='{.status.quorum.caughtUpVoters}')" == "[0,1,2]" ]] ||
    fail "the status does not show three caught-up voters"
  client curl -fsS http://127.0.0.1:8080/metrics | grep -q '^sluice_operator_reconciles_total{kind="KafkaCluster"} [1-9]' ||
    fail "the operator's /metrics counts no reconcile"
}

operator_cluster_serves_clients() {
  after operator-makes-a-ready-cluster
  seq 1 200 | client kcat -b "$OP_BOOTSTRAP" -t orders -P -X acks=all -X topic.metadata.refresh.interval.ms=1000 ||
    fail "kcat could not produce"
  local got
  got="$(client kcat -b "$OP_BOOTSTRAP" -t orders -C -o beginning -e -q | wc -l)"
  [[ "$got" == 200 ]] || fail "consumed $got records, want 200"
  client kcat -b "$OP_BOOTSTRAP" -L -t orders | grep -q 'isrs: [0-2],[0-2],[0-2]' ||
    fail "the example's default.replication.factor=3 did not reach the brokers"
}

operator_refuses_an_unknown_config_key() {
  after operator-makes-a-ready-cluster
  local before
  before="$(kubectl -n "$OPNS" get statefulset demo -o jsonpath='{.spec.template.metadata.annotations.sluice\.io/config-hash}')"
  kubectl -n "$OPNS" patch kafkacluster demo --type merge -p '{"spec":{"config":{"log.retention.hourz":"24"}}}' >/dev/null
  until_true "Ready=False with reason InvalidSpec" test "$(kc_condition Ready reason)" = InvalidSpec
  kc_condition Ready message | grep -q "did you mean 'log.retention.hours'" || fail "message: $(kc_condition Ready message)"
  [[ "$(kubectl -n "$OPNS" get statefulset demo -o jsonpath='{.spec.template.metadata.annotations.sluice\.io/config-hash}')" == "$before" ]] ||
    fail "the StatefulSet changed for a refused spec"
  kubectl -n "$OPNS" patch kafkacluster demo --type json -p '[{"op":"remove","path":"/spec/config/log.retention.hourz"}]' >/dev/null
  until_true "Ready again once the key is gone" kc_ready
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
step operator-refuses-an-unknown-config-key operator_refuses_an_unknown_config_key
step operator-deleted-cluster-is-garbage-collected operator_deleted_cluster_is_garbage_collected
stop_operator
step test-bed-stops-cleanly stops_cleanly
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
