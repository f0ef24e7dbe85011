#!/usr/bin/env bash
# Starts the test bed: a Kubernetes control plane on loopback (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler; built by testbed/build.sh, which this runs first)
# with certificates generated for this run, a kubeconfig for an administrator, and the process
# kubelet with its Nodes (testbed/kubelet; pods run as local processes in network namespaces
# of their own). End-to-end clients run in the test bed's host namespace, named in
# target/testbed/run/host-netns: `ip netns exec "$(cat target/testbed/run/host-netns)" CMD`.
# There, and in every pod, the API server answers at the kubernetes Service's address
# (https://kubernetes.default.svc, 10.96.0.1:443), as in a cluster; a process in the host
# namespace uses target/testbed/run/host-admin.kubeconfig (the administrator, by that address),
# a pod its service account's token.
#
#   bash testbed/up.sh          build (cached), start, wait until /readyz answers ok
#   bash testbed/down.sh        stop everything it started (by pid)
#
# Then: export KUBECONFIG=target/testbed/run/admin.kubeconfig; target/testbed/bin/kubectl get ns
#
# Everything lives in target/testbed/run (TESTBED_RUN): certificates, kubeconfigs, etcd's data,
# each component's log and pid file. Ports are free loopback ports picked at start. A component
# that fails to start stops the script with the tail of its log.
#
# Environment: TESTBED_RUN, TESTBED_BIN, TESTBED_NO_BUILD=1 (use the binaries as they are),
# TESTBED_START_TIMEOUT (seconds, default 60), TESTBED_NODES (default "n1=zone-a n2=zone-b
# n3=zone-c": Node names and their topology.kubernetes.io/zone), TESTBED_IMAGES (NAME=DIR
# pairs: containers of image NAME find DIR's binaries first on their PATH).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=testbed/lib.sh
source "$ROOT/testbed/lib.sh"

[[ "${TESTBED_NO_BUILD:-}" == 1 ]] || bash "$ROOT/testbed/build.sh"
if [[ -f "$RUN/apiserver.pid" ]] && kill -0 "$(cat "$RUN/apiserver.pid")" 2>/dev/null; then
  die "a control plane already runs from $RUN (stop it with testbed/down.sh)"
fi
rm -rf "$RUN"
mkdir -p "$RUN/pki"
trap 'rc=$?; ((rc == 0)) || bash "$ROOT/testbed/down.sh" >&2' EXIT

# --- Certificates: one CA; the API server's serving certificate; client certificates -------
cd "$RUN/pki"
openssl_quiet() { openssl "$@" 2>/dev/null; }
openssl_quiet req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
  -subj "/CN=sluice-testbed-ca"
# client NAME CN [O]: a client certificate signed by the CA.
client() {
  local subj="/CN=$2"
  [[ -z "${3:-}" ]] || subj="/O=$3$subj"
  openssl_quiet req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$subj"
  openssl_quiet x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" \
    -days 30 -extfile <(printf 'extendedKeyUsage=clientAuth\n')
}
openssl_quiet req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
  -subj "/CN=kube-apiserver"
openssl_quiet x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
  -out apiserver.crt -days 30 -extfile <(printf '%s\n' 'extendedKeyUsage=serverAuth' \
  "subjectAltName=IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local")
client admin admin system:masters
# With --use-service-account-credentials=false the controller-manager acts for every controller
# under its own identity, which therefore needs system:masters.
client controller-manager system:kube-controller-manager system:masters
client scheduler system:kube-scheduler
openssl_quiet genrsa -out sa.key 2048
openssl_quiet rsa -in sa.key -pubout -out sa.pub
cd "$RUN"

ETCD_PORT="$(free_port)"
ETCD_PEER_PORT="$(free_port)"
API_PORT="$(free_port)"
SCHEDULER_PORT="$(free_port)"
echo "https://127.0.0.1:$API_PORT" >"$RUN/apiserver.url"
for who in admin controller-manager scheduler; do write_kubeconfig "$who"; done
# For clients in the host namespace, where the machine's loopback is out of reach.
write_kubeconfig admin host-admin "https://kubernetes.default.svc"

# --- etcd ------------------------------------------------------------------------------------
start etcd "$BIN/etcd" --name testbed --data-dir "$RUN/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "testbed=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --log-level warn
wait_for etcd "curl -fsS http://127.0.0.1:$ETCD_PORT/health"

# --- kube-apiserver --------------------------------------------------------------------------
# On loopback the endpoint reconciler would publish 127.0.0.1 as the kubernetes Service's
# endpoint, which Endpoints validation refuses: it is turned off.
start apiserver "$BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
  --tls-cert-file "$RUN/pki/apiserver.crt" --tls-private-key-file "$RUN/pki/apiserver.key" \
  --client-ca-file "$RUN/pki/ca.crt" \
  --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$RUN/pki/sa.pub" \
  --service-account-signing-key-file "$RUN/pki/sa.key" \
  --service-cluster-ip-range "$SERVICE_RANGE" \
  --endpoint-reconciler-type none \
  --authorization-mode RBAC \
  --allow-privileged=true \
  --profiling=false
wait_for apiserver "kubectl get --raw /readyz"

# --- kube-controller-manager and kube-scheduler ----------------------------------------------
start controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig "$RUN/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$RUN/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$RUN/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$(free_port)" \
  --use-service-account-credentials=false \
  --service-account-private-key-file "$RUN/pki/sa.key" \
  --root-ca-file "$RUN/pki/ca.crt" \
  --cluster-signing-cert-file "$RUN/pki/ca.crt" --cluster-signing-key-file "$RUN/pki/ca.key" \
  --leader-elect=false
start scheduler "$BIN/kube-scheduler" \
  --kubeconfig "$RUN/scheduler.kubeconfig" \
  --authentication-kubeconfig "$RUN/scheduler.kubeconfig" \
  --authorization-kubeconfig "$RUN/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" \
  --leader-elect=false
# Both are up once the API server sees their work: the service-account controller gives the
# default namespace its ServiceAccount; the scheduler answers its health endpoint.
wait_for controller-manager "kubectl -n default get serviceaccount default"
wait_for scheduler "curl -fsSk https://127.0.0.1:$SCHEDULER_PORT/healthz"
# --- The process kubelet ---------------------------------------------------------------------
kubelet_args=(--kubeconfig "$RUN/admin.kubeconfig" --state-dir "$RUN/kubelet"
  --service-ip "$SERVICE_IP" --service-range "$SERVICE_RANGE")
for node in ${TESTBED_NODES:-n1=zone-a n2=zone-b n3=zone-c}; do kubelet_args+=(--node "$node"); done
for image in ${TESTBED_IMAGES:-}; do kubelet_args+=(--image "$image"); done
mkdir -p "$RUN/kubelet"
start kubelet "$BIN/testbed-kubelet" "${kubelet_args[@]}"
wait_for kubelet "grep -q '^kubelet ready' '$RUN/kubelet.log'"
sed -n 's/^kubelet ready .*host-netns=//p' "$RUN/kubelet.log" >"$RUN/host-netns"
log "test bed up in $SECONDS s: export KUBECONFIG=$RUN/admin.kubeconfig"
