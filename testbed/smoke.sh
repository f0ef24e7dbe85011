#!/usr/bin/env bash
# The test bed checked end to end: testbed/up.sh, then
#   - the API server reports v1.37.2 and stores objects; the controller-manager turns a
#     Deployment into a ReplicaSet and its Pod; the scheduler judges that Pod;
#   - the process kubelet's Nodes are Ready with their zones; a StatefulSet's pods run, become
#     Ready through their readiness probe and get addresses in their own namespaces (none in the
#     machine's own); pod and Service names resolve in the test bed's host namespace and HTTP
#     reaches a pod by name; their claims are bound to volumes the kubelet provisions (of the
#     default StorageClass, testbed) and mounted for them alone; a claim grown from 1Gi to 2Gi
#     gets a 2Gi volume while its pod runs on, and shrinking it back is refused; a SIGKILLed
#     process is restarted; a deleted pod runs its preStop with its container's environment, is
#     killed after its grace period when it ignores SIGTERM, and the StatefulSet's pod comes
#     back with its claim and data;
#   - the API server answers at https://kubernetes.default.svc in the host namespace, and to a
#     pod that calls it with its mounted service-account token, by name and by the
#     KUBERNETES_SERVICE_* variables (the Service IP is nowhere in the machine's namespace);
#   - Services of type NodePort and LoadBalancer: pods' hostIP (downward API too) and the Nodes'
#     InternalIP are the bridge's address in the host namespace; a NodePort Service to the
#     StatefulSet's pods (by a named target port) answers at hostIP:nodePort in the host
#     namespace and to a pod; a LoadBalancer Service gets an ingress IP (ipMode VIP) from the
#     Service range that answers in the host namespace (and nowhere in the machine's), as does
#     its node port; once it is deleted, its address is gone from the host namespace;
# then testbed/down.sh, after which no namespace or mount target of the kubelet's is left.
# Each check prints `ok NAME` or `FAIL NAME: reason`; a failure shows the responsible
# component's log tail.
#
#   bash testbed/smoke.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=testbed/lib.sh
source "$ROOT/testbed/lib.sh"

# The mount targets the smoke pods use, as they are on the machine before the test bed.
TARGETS=(/var/run/secrets /srv/testbed-smoke)
targets_before="$(ls -d "${TARGETS[@]}" 2>/dev/null || true)"
bash "$ROOT/testbed/up.sh"
trap 'bash "$ROOT/testbed/down.sh"' EXIT
CHECKS=0 FAILED=0

# check NAME COMPONENT CMD...: CMD must succeed within 30 s, else COMPONENT's log tail.
check() {
  local name="$1" component="$2" deadline=$((SECONDS + 30))
  shift 2
  CHECKS=$((CHECKS + 1))
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
  kubectl -n smoke get deployment web >/dev/null 2>&1 || kubectl apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: smoke}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {no-such-node: "true"}
      containers: [{name: none, image: example.invalid/none}]
EOF
  kubectl -n smoke get pods -l app=web -o name | grep -q pod/
}
scheduler_judged_it() {
  kubectl -n smoke get pods -l app=web \
    -o jsonpath='{.items[0].status.conditions[?(@.type=="PodScheduled")].reason}' |
    grep -q Unschedulable
}

# --- The process kubelet -------------------------------------------------------------------
HOSTNS="$(cat "$RUN/host-netns")"
in_host_ns() { ip netns exec "$HOSTNS" "$@"; }
nodes_ready() {
  [[ "$(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.labels.topology\.kubernetes\.io/zone}:{.status.conditions[?(@.type=="Ready")].status} {end}')" == \
    "n1=zone-a:True n2=zone-b:True n3=zone-c:True " ]]
}
statefulset_runs() {
  kubectl get statefulset -n smoke echo >/dev/null 2>&1 || kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: smoke}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: echo}
  ports: [{port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: echo, namespace: smoke}
spec:
  serviceName: echo
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: http
        image: python
        command: [bash, -c, 'echo "$POD_NAME" >> /srv/testbed-smoke/owners; exec python3 -m http.server 8080']
        env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
        volumeMounts: [{name: data, mountPath: /srv/testbed-smoke}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
EOF
  [[ "$(kubectl -n smoke get pods -l app=echo -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{end}')" == TrueTrue ]] &&
    kubectl -n smoke get pods -l app=echo -o jsonpath='{.items[*].status.podIP}' | grep -Eq '^10\.244\.[0-9.]+ 10\.244\.'
}
names_resolve() {
  local ip
  ip="$(kubectl -n smoke get pod echo-1 -o jsonpath='{.status.podIP}')"
  in_host_ns getent hosts echo-1.echo.smoke.svc.cluster.local | grep -q "^$ip " &&
    [[ "$(in_host_ns getent ahostsv4 echo.smoke.svc.cluster.local | awk '{print $1}' | sort -u | wc -l)" == 2 ]] &&
    [[ "$(in_host_ns curl -s -o /dev/null -w '%{http_code}' http://echo-0.echo.smoke.svc.cluster.local:8080/)" == 200 ]]
}
# No pod address, Service IP or load balancer address (10.96.0.0/16) in the machine's namespace.
machine_namespace_untouched() {
  ! ip -4 addr show | grep -Eq " 10\.244\.| 10\.96\." && ! ip route show | grep -Eq '10\.244\.|10\.96\.'
}
restarted_after_kill() {
  if [[ "$(kubectl -n smoke get pod echo-0 -o jsonpath='{.status.containerStatuses[0].restartCount}')" == 0 ]]; then
    kill -KILL "$(kubectl -n smoke get pod echo-0 -o jsonpath='{.status.containerStatuses[0].containerID}' | sed 's|testbed://||')"
  fi
  [[ "$(kubectl -n smoke get pod echo-0 -o jsonpath='{.status.containerStatuses[0].restartCount}:{.status.conditions[?(@.type=="Ready")].status}')" == 1:True ]]
}
stubborn_pod() {
  kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: stubborn, namespace: smoke}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: shell
    command: [bash, -c, 'trap "" TERM; while :; do sleep 0.2; done']
    env: [{name: MARK, value: from-the-container-env}]
    lifecycle:
      preStop: {exec: {command: [bash, -c, 'echo "$MARK" > prestop-ran']}}
EOF
  kubectl -n smoke wait --for=condition=Ready pod/stubborn --timeout=20s >/dev/null
  local uid pid
  uid="$(kubectl -n smoke get pod stubborn -o jsonpath='{.metadata.uid}')"
  pid="$(kubectl -n smoke get pod stubborn -o jsonpath='{.status.containerStatuses[0].containerID}' | sed 's|testbed://||')"
  kubectl -n smoke delete pod stubborn --wait=true --timeout=30s >/dev/null &&
    ! kill -0 "$pid" 2>/dev/null &&
    [[ "$(cat "$RUN"/kubelet/pods/smoke_stubborn_"$uid"/prestop-ran)" == from-the-container-env ]]
}
# The claim's volume holds what the pod wrote, the directory of a PersistentVolume the kubelet
# provisioned; the mount is the pod's alone (nothing at that path on the machine).
volume_bound() {
  local pv
  pv="$(kubectl -n smoke get pvc data-echo-1 -o jsonpath='{.spec.volumeName}')" &&
    [[ -n "$pv" ]] &&
    [[ "$(kubectl get pv "$pv" -o jsonpath='{.spec.storageClassName}')" == testbed ]] &&
    [[ "$(cat "$(kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}')/owners")" == echo-1 ]] &&
    [[ ! -e /srv/testbed-smoke/owners ]]
}
# A claim of class testbed (allowVolumeExpansion) grown from 1Gi to 2Gi while its pod runs: the
# kubelet resizes the volume and the claim online (same pod, no restart). Idempotent, as
# check retries it.
volume_expands() {
  kubectl -n smoke get pod grow >/dev/null 2>&1 || kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: grow, namespace: smoke}
spec:
  storageClassName: testbed
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: grow, namespace: smoke}
spec:
  containers:
  - name: main
    image: shell
    command: [bash, -c, 'echo grow > /srv/testbed-smoke/grown; exec sleep infinity']
    volumeMounts: [{name: data, mountPath: /srv/testbed-smoke}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: grow}}]
EOF
  kubectl -n smoke wait --for=condition=Ready pod/grow --timeout=20s >/dev/null || return 1
  # The pod as it ran before the claim grew.
  [[ -s "$RUN/grow-pod-uid" ]] || kubectl -n smoke get pod grow -o jsonpath='{.metadata.uid}' >"$RUN/grow-pod-uid"
  if [[ "$(kubectl -n smoke get pvc grow -o jsonpath='{.spec.resources.requests.storage}')" == 1Gi ]]; then
    kubectl -n smoke patch pvc grow --type merge -p '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}' >/dev/null || return 1
  fi
  local pv
  pv="$(kubectl -n smoke get pvc grow -o jsonpath='{.spec.volumeName}')" &&
    [[ "$(kubectl -n smoke get pvc grow -o jsonpath='{.status.capacity.storage} {.status.allocatedResources.storage} {.status.allocatedResourceStatuses}{.status.conditions[?(@.type=="Resizing")].type}{.status.conditions[?(@.type=="FileSystemResizePending")].type}')" == "2Gi 2Gi " ]] &&
    [[ "$(kubectl get pv "$pv" -o jsonpath='{.spec.capacity.storage}')" == 2Gi ]] &&
    [[ "$(kubectl -n smoke get pod grow -o jsonpath='{.metadata.uid} {.status.phase} {.status.containerStatuses[0].restartCount}')" == "$(cat "$RUN/grow-pod-uid") Running 0" ]] &&
    [[ "$(cat "$(kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}')/grown")" == grow ]]
}
# Then back to 1Gi: validation refuses a request below status.capacity.
shrink_refused() {
  ! kubectl -n smoke patch pvc grow --type merge -p '{"spec":{"resources":{"requests":{"storage":"1Gi"}}}}' &&
    [[ "$(kubectl -n smoke get pvc grow -o jsonpath='{.spec.resources.requests.storage} {.status.capacity.storage}')" == "2Gi 2Gi" ]]
}
# As an operator run by hand would: in the host namespace, by the Service's name.
api_from_host_namespace() {
  in_host_ns curl -fsS --cacert "$RUN/pki/ca.crt" https://kubernetes.default.svc/version |
    grep -Eq '"gitVersion": ?"v1\.37\.2"' &&
    in_host_ns "$BIN/kubectl" --kubeconfig "$RUN/host-admin.kubeconfig" get namespace smoke
}
# As an operator's pod would: with the token the ServiceAccount admission plugin's projected
# volume gives it, once by name and once by the variables in-cluster clients read; the pod
# logs both status codes. The token is the pod's alone (the target on the machine is empty).
api_from_pod() {
  kubectl -n smoke get pod api-client >/dev/null 2>&1 || kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: ServiceAccount
metadata: {name: api-client, namespace: smoke}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: smoke}
rules: [{apiGroups: [""], resources: [pods], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: api-client-reads-pods, namespace: smoke}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects: [{kind: ServiceAccount, name: api-client, namespace: smoke}]
---
apiVersion: v1
kind: Pod
metadata: {name: api-client, namespace: smoke}
spec:
  serviceAccountName: api-client
  containers:
  - name: main
    image: shell
    command:
    - bash
    - -c
    - |
      sa=/var/run/secrets/kubernetes.io/serviceaccount
      get() {
        curl -s -o /dev/null -w '%{http_code}' --cacert "$sa/ca.crt" \
          -H "Authorization: Bearer $(cat "$sa/token")" "https://$1/api/v1/namespaces/$(cat "$sa/namespace")/pods"
      }
      while :; do
        codes="$(get kubernetes.default.svc) $(get "$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT")"
        echo "api $codes"
        [[ $codes == "200 200" ]] && break
        sleep 1
      done
      exec sleep infinity
EOF
  local uid
  uid="$(kubectl -n smoke get pod api-client -o jsonpath='{.metadata.uid}')" &&
    grep -q '^api 200 200$' "$RUN/kubelet/pods/smoke_api-client_$uid/main.log" &&
    [[ -d /var/run/secrets/kubernetes.io/serviceaccount && -z "$(ls -A /var/run/secrets/kubernetes.io/serviceaccount)" ]]
}
# --- Services of type NodePort and LoadBalancer ----------------------------------------------
# The Nodes' address: the bridge's in the host namespace.
node_ip() { in_host_ns ip -4 -o addr show dev br0 | awk '{sub("/.*", "", $4); print $4}'; }
http_code() { in_host_ns curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$1"; }
# A NodePort Service to the echo pods, its target port by name; a fixed node port for the pod
# below. The Nodes and the pods say the bridge's address is theirs.
nodeport_from_host_namespace() {
  kubectl -n smoke get service echo-nodeport >/dev/null 2>&1 || kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: echo-nodeport, namespace: smoke}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{name: web, port: 80, targetPort: http, nodePort: 30080}]
EOF
  local ip
  ip="$(node_ip)" && [[ -n "$ip" ]] &&
    [[ "$(kubectl get nodes -o jsonpath='{range .items[*]}{.status.addresses[?(@.type=="InternalIP")].address} {end}')" == "$ip $ip $ip " ]] &&
    [[ "$(kubectl -n smoke get pod echo-0 -o jsonpath='{.status.hostIP} {.status.hostIPs[0].ip}')" == "$ip $ip" ]] &&
    [[ "$(http_code "http://$ip:30080/")" == 200 ]]
}
# From a pod, at the address its downward API gives as status.hostIP; the pod logs the result.
nodeport_from_pod() {
  kubectl -n smoke get pod nodeport-client >/dev/null 2>&1 || kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: nodeport-client, namespace: smoke}
spec:
  containers:
  - name: main
    image: shell
    env: [{name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}]
    command:
    - bash
    - -c
    - |
      while :; do
        code="$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://$HOST_IP:30080/")"
        echo "nodeport $HOST_IP $code"
        [[ $code == 200 ]] && break
        sleep 1
      done
      exec sleep infinity
EOF
  local uid
  uid="$(kubectl -n smoke get pod nodeport-client -o jsonpath='{.metadata.uid}')" &&
    grep -qx "nodeport $(node_ip) 200" "$RUN/kubelet/pods/smoke_nodeport-client_$uid/main.log"
}
# A LoadBalancer Service: its ingress IP, from the Service range, answers in the host namespace
# (and is no address of the machine's), and so does its node port. The address is kept for
# load_balancer_released.
load_balancer() {
  kubectl -n smoke get service echo-lb >/dev/null 2>&1 || kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: echo-lb, namespace: smoke}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{name: web, port: 80, targetPort: http}]
EOF
  local ip nodeport
  ip="$(kubectl -n smoke get service echo-lb -o jsonpath='{.status.loadBalancer.ingress[0].ip}')" &&
    [[ "$ip" == 10.96.* ]] && echo "$ip" >"$RUN/lb-ip" &&
    [[ "$(kubectl -n smoke get service echo-lb -o jsonpath='{.status.loadBalancer.ingress[0].ipMode}')" == VIP ]] &&
    nodeport="$(kubectl -n smoke get service echo-lb -o jsonpath='{.spec.ports[0].nodePort}')" &&
    [[ "$(http_code "http://$ip/")" == 200 ]] &&
    [[ "$(http_code "http://$(node_ip):$nodeport/")" == 200 ]] &&
    ! ip -4 addr show | grep -q " $ip/"
}
# Deleted, it leaves the host namespace's lo, and nothing answers there.
load_balancer_released() {
  local ip
  ip="$(cat "$RUN/lb-ip")" && [[ -n "$ip" ]] &&
    kubectl -n smoke delete service echo-lb --ignore-not-found --wait=true >/dev/null &&
    ! in_host_ns ip -4 addr show dev lo | grep -q " $ip/" &&
    [[ "$(http_code "http://$ip/")" == 000 ]]
}
# After testbed/down.sh: no namespace of the kubelet's, and the mount targets it made are gone.
nothing_left_behind() {
  ! ip netns list | grep -q "^${HOSTNS%-host}-" &&
    [[ "$(ls -d "${TARGETS[@]}" 2>/dev/null || true)" == "$targets_before" ]]
}
statefulset_recreates() {
  local before
  before="$(kubectl -n smoke get pod echo-1 -o jsonpath='{.metadata.uid}')"
  kubectl -n smoke delete pod echo-1 --wait=true --timeout=30s >/dev/null
  local deadline=$((SECONDS + 30))
  until [[ "$(kubectl -n smoke get pod echo-1 -o jsonpath='{.metadata.uid}:{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == *:True ]] &&
    [[ "$(kubectl -n smoke get pod echo-1 -o jsonpath='{.metadata.uid}')" != "$before" ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
  # The same claim, with what the first pod wrote.
  local pv
  pv="$(kubectl -n smoke get pvc data-echo-1 -o jsonpath='{.spec.volumeName}')"
  [[ "$(cat "$(kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}')/owners")" == $'echo-1\necho-1' ]]
}

check api-server-version apiserver server_version
check api-server-stores-objects apiserver store_objects
check controller-manager-reconciles controller-manager deployment_made_a_pod
check scheduler-schedules scheduler scheduler_judged_it
check kubelet-nodes-ready kubelet nodes_ready
check kubelet-runs-statefulset kubelet statefulset_runs
check kubelet-pod-and-service-names kubelet names_resolve
check kubelet-api-server-from-host-namespace kubelet api_from_host_namespace
check kubelet-api-server-from-pod-with-token kubelet api_from_pod
check kubelet-node-port-from-host-namespace kubelet nodeport_from_host_namespace
check kubelet-node-port-from-pod kubelet nodeport_from_pod
check kubelet-load-balancer-service kubelet load_balancer
check kubelet-leaves-machine-namespace-alone kubelet machine_namespace_untouched
check kubelet-load-balancer-released kubelet load_balancer_released
check kubelet-mounts-provisioned-volume kubelet volume_bound
check kubelet-expands-volume-online kubelet volume_expands
check api-server-refuses-volume-shrink apiserver shrink_refused
check kubelet-restarts-killed-container kubelet restarted_after_kill
check kubelet-prestop-and-grace kubelet stubborn_pod
check statefulset-recreates-deleted-pod controller-manager statefulset_recreates
trap - EXIT
bash "$ROOT/testbed/down.sh"
check kubelet-leaves-nothing-behind kubelet nothing_left_behind
echo "$((CHECKS - FAILED)) passed, $FAILED failed"
((FAILED == 0))
