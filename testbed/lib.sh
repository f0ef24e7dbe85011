# shellcheck shell=bash
# Shared by the test bed's scripts: where things live, and how components start, are waited
# for and stop. Source it; it defines variables and functions only.
#
#   start NAME CMD...    run CMD in the background, output to $RUN/NAME.log, pid to
#                        $RUN/NAME.pid (stopped by testbed/down.sh, by that pid)
#   wait_for NAME CHECK  run the shell command CHECK until it succeeds (TESTBED_START_TIMEOUT
#                        seconds); fails with the tail of NAME's log if it does not, or if
#                        NAME's process exits first
#   write_kubeconfig WHO [NAME SERVER]
#                        a kubeconfig $RUN/WHO.kubeconfig (or NAME.kubeconfig) with the client
#                        certificate WHO, for the API server's URL (or SERVER)
#   kubectl ARGS...      kubectl as the administrator of this test bed

_TESTBED_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/proc.sh
source "$_TESTBED_DIR/../scripts/lib/proc.sh"
_TESTBED_TARGET="${CARGO_TARGET_DIR:-$(cd "$_TESTBED_DIR/.." && pwd)/target}"
RUN="${TESTBED_RUN:-$_TESTBED_TARGET/testbed/run}"
BIN="${TESTBED_BIN:-$_TESTBED_TARGET/testbed/bin}"
# Service IPs are virtual: nothing routes them on this machine. The kubelet answers for the
# kubernetes Service's (SERVICE_IP:443) in the test bed's namespaces, relaying to the API server.
SERVICE_RANGE=10.96.0.0/16
SERVICE_IP=10.96.0.1
# The components, in the order they start (down.sh stops them in reverse).
COMPONENTS=(etcd apiserver controller-manager scheduler kubelet)

log() { printf '[testbed %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "$*"
  exit 1
}

start() {
  local name="$1"
  shift
  "$@" >"$RUN/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

wait_for() {
  local name="$1" check="$2" pid deadline=$((SECONDS + ${TESTBED_START_TIMEOUT:-60}))
  pid="$(cat "$RUN/$name.pid")"
  until eval "$check" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
      log "$name did not come up ($(kill -0 "$pid" 2>/dev/null && echo "still running after ${TESTBED_START_TIMEOUT:-60} s" || echo exited)); last lines of $RUN/$name.log:"
      tail -n 30 "$RUN/$name.log" >&2
      exit 1
    fi
    sleep 0.2
  done
}

write_kubeconfig() {
  local who="$1" name="${2:-$1}" url="${3:-}"
  [[ -n "$url" ]] || url="$(cat "$RUN/apiserver.url")"
  # Certificate paths are relative to the kubeconfig file.
  cat >"$RUN/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: $url
    certificate-authority: pki/ca.crt
users:
- name: $who
  user:
    client-certificate: pki/$who.crt
    client-key: pki/$who.key
contexts:
- name: testbed
  context:
    cluster: testbed
    user: $who
current-context: testbed
EOF
}

kubectl() { "$BIN/kubectl" --kubeconfig "$RUN/admin.kubeconfig" "$@"; }
