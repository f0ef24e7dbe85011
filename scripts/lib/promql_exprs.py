#!/usr/bin/env python3
"""Lists every PromQL expression of the monitoring manifests (manifests/monitoring): the
targets of the Grafana dashboards, the metric selectors of their template variables, and
the rules of rules.yaml. Standard library only.

    python3 scripts/lib/promql_exprs.py              # one JSON object per line:
        {"source": "<file>#<panel title | alert or record name | variable NAME>", "expr": "..."}
    python3 scripts/lib/promql_exprs.py --metrics    # every distinct metric name used that
                                                     # starts with sluice_ (--prefix), sorted
    python3 scripts/lib/promql_exprs.py FILE...      # only these dashboards (.json) / rule files

Grafana variables are substituted so each expression is plain PromQL: $__rate_interval ->
1m, $__interval -> 30s, $__range -> 5m, and every template variable of the dashboard ($job,
${job}, ${job:regex}, [[job]]; job, instance, topic, group, ...) -> .+ (they are all used
with =~). A variable query `label_values(<selector>, <label>)` yields <selector>;
`query_result(<expr>)` yields <expr>; `label_values(<label>)` and `metrics(...)` yield
nothing. Names are printed as used: histogram series keep their _bucket/_sum/_count suffix,
as /metrics shows them.

rules.yaml is read without a YAML library, so it keeps to the subset described at its top:
`expr:` on one line or as a `|` block, rules starting with `- alert:` / `- record:`, other
multi-line values as block scalars. Anything else is reported as an error (exit status 1).
"""

import argparse
import glob
import json
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MONITORING = os.path.join(ROOT, "manifests", "monitoring")

BUILTINS = {"__rate_interval": "1m", "__interval": "30s", "__range": "5m"}
# Substituted even where a dashboard does not define them.
DEFAULT_VARIABLES = ("job", "instance", "topic", "group")

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "atan2", "inf", "nan", "start", "end", "le",
}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
IDENT = re.compile(r"(?<![\w:.])[A-Za-z_:][A-Za-z0-9_:]*")
NAME_MATCHER = re.compile(r'__name__\s*=\s*"([A-Za-z_:][A-Za-z0-9_:]*)"')


class FormatError(Exception):
    pass


def rel(path):
    path = os.path.abspath(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


# ------------------------------------------------------------------------- dashboards


def substitute(expr, variables):
    for name, value in BUILTINS.items():
        expr = re.sub(r"\$\{" + name + r"(?::[^}]*)?\}|\$" + name + r"\b", value, expr)
    for name in variables:
        pattern = r"\$\{" + name + r"(?::[^}]*)?\}|\$" + name + r"\b|\[\[" + name + r"(?::[^\]]*)?\]\]"
        expr = re.sub(pattern, ".+", expr)
    return expr


def variable_expr(query):
    """The PromQL inside a Prometheus variable query, or None."""
    if isinstance(query, dict):
        query = query.get("query", "")
    query = (query or "").strip()
    m = re.fullmatch(r"label_values\((.*),\s*[A-Za-z_][\w.]*\s*\)", query, re.S)
    if m:
        return m.group(1).strip()
    m = re.fullmatch(r"query_result\((.*)\)", query, re.S)
    if m:
        return m.group(1).strip()
    return None


def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


def dashboard_exprs(path):
    with open(path) as f:
        board = json.load(f)
    templating = (board.get("templating") or {}).get("list") or []
    names = [v["name"] for v in templating if v.get("name") and v.get("type") != "datasource"]
    variables = sorted(set(names) | set(DEFAULT_VARIABLES), key=len, reverse=True)
    src = rel(path)
    for v in templating:
        if v.get("type") == "query":
            expr = variable_expr(v.get("query") or v.get("definition"))
            if expr:
                yield f"{src}#variable {v['name']}", substitute(expr, variables)
    for panel in walk_panels(board.get("panels")):
        for target in panel.get("targets") or []:
            ds = target.get("datasource") or panel.get("datasource") or {}
            if isinstance(ds, dict) and ds.get("type") not in (None, "prometheus"):
                continue
            expr = target.get("expr")
            if expr:
                yield f"{src}#{panel.get('title', '')}", substitute(expr, variables)


# ------------------------------------------------------------------------- rule files

KEY = re.compile(r"^(\s*)(-\s+)?([A-Za-z_][\w.-]*):(?:\s+(.*?))?\s*$")
BLOCK = re.compile(r"^[|>][+-]?$")


def scalar(value, where):
    """A one-line YAML scalar: plain, 'single' or "double" quoted."""
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"'):
            raise FormatError(f"{where}: a multi-line double-quoted value")
        return json.loads(value)
    if value.startswith("'"):
        if len(value) < 2 or not value.endswith("'"):
            raise FormatError(f"{where}: a multi-line single-quoted value")
        return value[1:-1].replace("''", "'")
    return re.sub(r"\s+#.*$", "", value)


def rule_exprs(path):
    with open(path) as f:
        lines = f.read().splitlines()
    src = rel(path)
    name, rules, found = None, 0, 0
    i = 0
    while i < len(lines):
        line, where = lines[i], f"{src}:{i + 1}"
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = KEY.match(line)
        if not m:
            continue
        indent = len(m.group(1)) + len(m.group(2) or "")
        key, value = m.group(3), m.group(4) or ""
        block = None
        if BLOCK.match(value):
            block = []
            while i < len(lines) and (
                not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
            ):
                block.append(lines[i].strip())
                i += 1
        if key in ("alert", "record"):
            if block is not None or not value:
                raise FormatError(f"{where}: `{key}:` needs its name on the same line")
            name = scalar(value, where)
            rules += 1
        elif key == "expr":
            if name is None:
                raise FormatError(f"{where}: `expr:` before any `- alert:` or `- record:`")
            if block is not None:
                expr = " ".join(part for part in block if part)
            elif value:
                expr = scalar(value, where)
            else:
                raise FormatError(f"{where}: `expr:` must be on one line or a `|` block")
            if not expr:
                raise FormatError(f"{where}: empty expr")
            found += 1
            yield f"{src}#{name}", expr
    if found != rules:
        raise FormatError(f"{src}: {rules} rules but {found} `expr:` lines read")


# ------------------------------------------------------------------------- metric names


def metric_names(expr):
    names = set(NAME_MATCHER.findall(expr))
    s = STRING.sub('""', expr)
    s = re.sub(r"\{[^{}]*\}", "{}", s)
    s = GROUPING.sub(r"\1 ()", s)
    for m in IDENT.finditer(s):
        word = m.group(0)
        rest = s[m.end():].lstrip()
        # A function or an aggregation (`sum (`, `sum by (...) (`), or a keyword.
        if rest.startswith("(") or re.match(r"(by|without)\b", rest) or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


RULES = os.path.join(MONITORING, "rules.yaml")


def dashboard_files():
    return sorted(glob.glob(os.path.join(MONITORING, "dashboards", "*.json")))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help="dashboards (.json) and rule files (.yaml)")
    ap.add_argument("--metrics", action="store_true", help="print the metric names used")
    ap.add_argument("--prefix", default="sluice_", help="with --metrics: the names to print")
    args = ap.parse_args()
    files = args.files or dashboard_files() + [RULES]
    try:
        exprs = []
        for path in files:
            read = dashboard_exprs if path.endswith(".json") else rule_exprs
            exprs.extend(read(path))
    except (FormatError, OSError, ValueError) as e:
        print(f"promql_exprs: {e}", file=sys.stderr)
        return 1
    if args.metrics:
        names = set()
        for _, expr in exprs:
            names |= metric_names(expr)
        for n in sorted(n for n in names if n.startswith(args.prefix)):
            print(n)
    else:
        for source, expr in exprs:
            print(json.dumps({"source": source, "expr": expr}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
