#!/usr/bin/env python3
"""Checks the monitoring manifests (manifests/monitoring) against a live Sluice cluster
through a real Prometheus that scrapes it (testbed/e2e.sh, step
monitoring-queries-answer-from-the-live-cluster). Standard library only.

    python3 scripts/lib/check_monitoring.py --prometheus http://127.0.0.1:9090 \\
        --metrics-url http://broker-0:9644/metrics ... --metrics-url http://operator:8080/metrics

1. Every metric name used in a dashboard or a rule is declared on some /metrics (its `# TYPE`
   line, with the sample names a counter or histogram makes).
2. Every dashboard panel's query and every rule's expression is evaluated through
   Prometheus's HTTP API (/api/v1/query) and must succeed; every metric it names must return
   series from the cluster (counters of events exist at zero; the replication throttle's
   metrics exist while a throttle is set, so the caller sets one); a dashboard query must
   return series itself unless it filters (a comparison).
3. Prometheus loaded every rule and evaluates each without error (/api/v1/rules, health ok),
   and no alert fires on the healthy cluster.

Each failure is printed with the expression's source; the exit status is 1 if any.
"""

import argparse
import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import promql_exprs  # noqa: E402

COMPARISON = re.compile(r"(==|!=|>=|<=|(?<![=!<>-])>|<(?![=]))")


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def query(prom, expr):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        body = json.loads(get(url))
    except urllib.error.HTTPError as e:
        body = json.loads(e.read().decode() or "{}")
    if body.get("status") != "success":
        return None, body.get("error", "no answer")
    return body["data"]["result"], None


def declared(metrics_urls):
    """Sample names declared by the scraped endpoints' `# TYPE` lines."""
    names = set()
    for url in metrics_urls:
        for line in get(url).splitlines():
            m = re.match(r"# TYPE (\S+) (\S+)", line)
            if not m:
                continue
            name, kind = m.groups()
            names.add(name)
            if kind == "counter":
                names.add(name + "_total")
            elif kind in ("histogram", "summary"):
                names |= {name + "_bucket", name + "_sum", name + "_count"}
            elif kind == "info":
                names.add(name + "_info")
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--metrics-url", action="append", default=[])
    ap.add_argument("--wait", type=float, default=120, help="seconds to wait for the data")
    args = ap.parse_args()
    exprs = []
    for path in promql_exprs.dashboard_files() + [promql_exprs.RULES]:
        read = promql_exprs.dashboard_exprs if path.endswith(".json") else promql_exprs.rule_exprs
        exprs.extend(read(path))
    failures = []
    # Rates need at least two scrapes of every target within their window: wait for three.
    deadline = time.time() + args.wait
    while True:
        result, _ = query(args.prometheus, "min(count_over_time(up[1m])) >= 3")
        if result or time.time() > deadline:
            break
        time.sleep(2)

    known = declared(args.metrics_url)
    used = set()
    for _, expr in exprs:
        used |= promql_exprs.metric_names(expr)
    for name in sorted(used - {"up"} - known):
        failures.append(f"metric {name}: not on any /metrics")

    present = {}
    for source, expr in exprs:
        result, error = query(args.prometheus, expr)
        if error:
            failures.append(f"{source}: {error}: {expr}")
            continue
        names = promql_exprs.metric_names(expr)
        for name in sorted(names):
            if name not in present:
                series, _ = query(args.prometheus, f"count({{__name__={json.dumps(name)}}})")
                present[name] = bool(series)
            if not present[name]:
                failures.append(f"{source}: no series of {name}")
        is_rule = source.startswith("manifests/monitoring/rules")
        if not is_rule and not COMPARISON.search(expr) and not result:
            failures.append(f"{source}: no series: {expr}")

    rules = json.loads(get(f"{args.prometheus}/api/v1/rules"))["data"]["groups"]
    loaded = 0
    for group in rules:
        for r in group["rules"]:
            loaded += 1
            if r.get("health") != "ok":
                failures.append(f"rule {r['name']}: {r.get('health')}: {r.get('lastError')}")
            for alert in r.get("alerts", []):
                if alert.get("state") == "firing":
                    failures.append(f"alert {r['name']} fires: {alert.get('labels')}")
    wanted = sum(1 for source, _ in exprs if source.startswith("manifests/monitoring/rules"))
    if loaded != wanted:
        failures.append(f"Prometheus loaded {loaded} rules, the rule file has {wanted}")

    for f in failures:
        print(f"FAIL {f}")
    print(f"{len(exprs)} expressions, {len(used)} metric names, {loaded} rules: "
          f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
