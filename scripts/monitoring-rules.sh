#!/usr/bin/env bash
# Checks the monitoring manifests offline with Prometheus's own promtool (built from its Go
# module by scripts/prometheus.sh, cached after the first time): the alert rules load
# (`promtool check rules`), each alert fires and resolves on the series its unit tests give
# (`promtool test rules manifests/monitoring/rules-test.yaml`), every alert has a test, and
# every PromQL expression of the dashboards parses (each checked as a recording rule). The
# live check, against a running cluster, is a step of testbed/e2e.sh.
#
#   bash scripts/monitoring-rules.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(bash "$ROOT/scripts/prometheus.sh")"
MON="$ROOT/manifests/monitoring"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

"$BIN/promtool" check rules "$MON/rules.yaml"
(cd "$MON" && "$BIN/promtool" test rules rules-test.yaml)
# Every alert is tested.
untested=()
for alert in $(sed -n 's/^ *- alert: *//p' "$MON/rules.yaml"); do
  grep -q "alertname: *$alert\$" "$MON/rules-test.yaml" || untested+=("$alert")
done
((${#untested[@]} == 0)) || { echo "alerts without a unit test: ${untested[*]}" >&2; exit 1; }
# Every dashboard query parses: one recording rule each.
python3 "$ROOT/scripts/lib/promql_exprs.py" | python3 -c '
import json, sys
print("groups:\n  - name: dashboards\n    rules:")
for i, line in enumerate(sys.stdin):
    expr = json.loads(line)["expr"]
    print(f"      - record: query_{i}\n        expr: {json.dumps(expr)}")
' >"$WORK/queries.yaml"
"$BIN/promtool" check rules "$WORK/queries.yaml" >/dev/null ||
  { "$BIN/promtool" check rules "$WORK/queries.yaml"; echo "a dashboard query does not parse" >&2; exit 1; }
echo "monitoring: rules checked and unit-tested, $(grep -c 'record: query_' "$WORK/queries.yaml") queries parse"
