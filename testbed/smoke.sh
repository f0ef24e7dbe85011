#!/usr/bin/env bash
# The test bed's control plane, checked end to end: testbed/up.sh, then the API server reports
# v1.37.2 and stores objects, the controller-manager turns a Deployment into a ReplicaSet and
# its Pod, the scheduler judges that Pod (unschedulable: no Node yet), then testbed/down.sh.
# Each check prints `ok NAME` or `FAIL NAME: reason`; a failure shows the component's log tail.
#
#   bash testbed/smoke.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=testbed/lib.sh
source "$ROOT/testbed/lib.sh"

bash "$ROOT/testbed/up.sh"
trap 'bash "$ROOT/testbed/down.sh"' EXIT
FAILED=0

# check NAME COMPONENT CMD...: CMD must succeed within 30 s, else COMPONENT's log tail.
check() {
  local name="$1" component="$2" deadline=$((SECONDS + 30))
  shift 2
  until "$@" >"$RUN/check-$name.out" 2>&1; do
    if ((SECONDS >= deadline)); then
      FAILED=$((FAILED + 1))
      echo "FAIL $name: $(tail -n 3 "$RUN/check-$name.out" | tr '\n' ' ')"
      log "last lines of $RUN/$component.log:"
      tail -n 20 "$RUN/$component.log" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "ok $name"
}

server_version() { kubectl version -o json | grep -q '"gitVersion": "v1.37.2"'; }
store_objects() {
  kubectl create namespace smoke --dry-run=client -o yaml | kubectl apply -f - &&
    kubectl -n smoke create configmap hello --from-literal=k=v --dry-run=client -o yaml |
    kubectl apply -f - &&
    [[ "$(kubectl -n smoke get configmap hello -o jsonpath='{.data.k}')" == v ]]
}
deployment_made_a_pod() {
  kubectl -n smoke get deployment web >/dev/null 2>&1 ||
    kubectl -n smoke create deployment web --image=example.invalid/none >/dev/null
  kubectl -n smoke get pods -l app=web -o name | grep -q pod/
}
scheduler_judged_it() {
  kubectl -n smoke get pods -l app=web \
    -o jsonpath='{.items[0].status.conditions[?(@.type=="PodScheduled")].reason}' |
    grep -q Unschedulable
}

check api-server-version apiserver server_version
check api-server-stores-objects apiserver store_objects
check controller-manager-reconciles controller-manager deployment_made_a_pod
check scheduler-schedules scheduler scheduler_judged_it
echo "$((4 - FAILED)) passed, $FAILED failed"
((FAILED == 0))
