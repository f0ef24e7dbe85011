#!/usr/bin/env bash
# Stops the test bed testbed/up.sh started: the kubelet first (it stops its pods and removes
# their namespaces), then the control plane, newest first; each by the pid it recorded (TERM,
# then KILL after 20 s). Leaves target/testbed/run (logs, certificates) in place.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=testbed/lib.sh
source "$ROOT/testbed/lib.sh"

for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
  name="${COMPONENTS[$i]}"
  [[ -f "$RUN/$name.pid" ]] || continue
  stop_process "$(cat "$RUN/$name.pid")"
  rm -f "$RUN/$name.pid"
done
log "test bed stopped"
