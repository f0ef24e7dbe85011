#!/usr/bin/env bash
# Builds the test bed from Go modules: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kubectl (Kubernetes v1.37.2), the test bed's process kubelet
# (testbed/kubelet), Helm v4.3.2 (testbed/helm) and Prometheus 3.16.0 with promtool
# (testbed/prometheus, scripts/prometheus.sh), into target/testbed/bin. Go's build cache makes
# a rebuild take seconds; a cold build takes about fifteen minutes on 2 cores (Prometheus about
# five of them) and 5 GiB of cache.
#
#   bash testbed/build.sh
#
# Environment: TESTBED_BIN (default target/testbed/bin).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${TESTBED_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/testbed/bin}"
K8S_VERSION=v1.37.2
HELM_VERSION=v4.3.2
mkdir -p "$BIN"
log() { printf '[testbed build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cd "$ROOT/testbed/controlplane"
# The version the binaries report (`/version`, `kubectl version`); without it they say v0.0.0.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=37"
  ldflags+=" -X $pkg.gitTreeState=clean"
done
started=$SECONDS
log "building Kubernetes $K8S_VERSION and etcd into $BIN (cached after the first time)"
go build -trimpath -ldflags "$ldflags" -o "$BIN/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl
go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
# The test bed's own process kubelet (testbed/kubelet).
(cd "$ROOT/testbed/kubelet" && go build -trimpath -ldflags "-s -w" -o "$BIN/testbed-kubelet" .)
# Helm, in a module of its own (testbed/helm/go.mod says why), stamped as its Makefile does for
# a release: without it `helm version` says v4.3.
(cd "$ROOT/testbed/helm" && go build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
  -o "$BIN/helm" helm.sh/helm/v4/cmd/helm)
# Prometheus and promtool (the monitoring step of testbed/e2e.sh scrapes the cluster with it).
bash "$ROOT/scripts/prometheus.sh" >/dev/null
log "built in $((SECONDS - started)) s: $(cd "$BIN" && echo *)"
