#!/usr/bin/env bash
# Builds Prometheus and promtool from their Go module (testbed/prometheus/go.mod pins
# github.com/prometheus/prometheus v0.316.0, which is Prometheus 3.16.0) into
# target/testbed/bin. Go's build cache makes a rebuild take seconds; a cold build takes a few
# minutes on 2 cores. The web UI's assets are not compiled in (Prometheus' `builtinassets` tag
# needs a Node build of the UI): the HTTP API, which is what the tests use, is complete.
#
#   bash scripts/prometheus.sh        # prints the bin directory
#
# Environment: TESTBED_BIN (default target/testbed/bin).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${TESTBED_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/testbed/bin}"
VERSION=3.16.0
mkdir -p "$BIN"
started=$SECONDS
cd "$ROOT/testbed/prometheus"
v=github.com/prometheus/common/version
go build -trimpath -ldflags "-s -w -X $v.Version=$VERSION -X $v.Branch=release -X $v.Revision=v0.316.0" \
  -o "$BIN/" github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool
printf '[prometheus build %s] prometheus and promtool %s in %s s\n' "$(date +%H:%M:%S)" "$VERSION" "$((SECONDS - started))" >&2
echo "$BIN"
