#!/usr/bin/env bash
# Browser tests of the web console (issue 16): a 3-node Sluice cluster with console actions
# enabled, some data written to it, then scripts/console/test_console.py (Playwright for Python
# driving Debian's Chromium, axe-core for accessibility) against node 1's admin listener.
#
#   bash scripts/console-browser.sh                start target/debug/sluice (`sluice dev --nodes 3`)
#   bash scripts/console-browser.sh --update-docs  also copy the main screenshots to docs/console/
#   bash scripts/console-browser.sh --only REGEX   run only the browser checks matching REGEX
#   CONSOLE_URL=http://127.0.0.1:9644/ bash scripts/console-browser.sh
#                                                  test a console already running (no cluster is
#                                                  started and nothing is written: it must hold a
#                                                  topic with records and an inactive group, see
#                                                  test_console.py; CONSOLE_TEST_ARGS adds
#                                                  arguments such as "--topic T --group G")
#
# Data (scripts/console/seed.py, confluent-kafka): a topic whose partition 0 holds JSON, text
# and binary records; an inactive group with committed offsets (the offset reset acts on it);
# a group whose id holds quotes, markup and URL delimiters; and one consumer kept as a member
# of a third group for the whole run (the pages of an active group).
#
# Dependencies, installed on first use, idempotently: Debian's chromium and fonts-liberation
# (apt-get); a venv target/console-venv with pinned playwright, axe-playwright-python and
# confluent-kafka. `playwright install` is never run: the browser is Debian's /usr/bin/chromium.
#
# Each step prints `ok NAME` or `FAIL NAME: reason`; the last line is `N passed, M failed`,
# and the exit status is non-zero if M > 0. Screenshots: target/console-browser/screenshots/.
#
# Environment: SLUICE_BIN (default target/debug/sluice), CONSOLE_URL, CONSOLE_TEST_ARGS,
# COMPAT_TIMEOUT (seconds per setup or client command, default 60), COMPAT_KEEP=1 (keep the
# work directory: cluster log, data, step logs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/proc.sh
source "$ROOT/scripts/lib/proc.sh"
# shellcheck source=scripts/lib/debs.sh
source "$ROOT/scripts/lib/debs.sh"
# shellcheck source=scripts/lib/venv.sh
source "$ROOT/scripts/lib/venv.sh"

SLUICE_BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/sluice}"
PLAYWRIGHT_VERSION=1.65.2
AXE_PLAYWRIGHT_VERSION=0.1.8
CONFLUENT_KAFKA_VERSION="${CONFLUENT_KAFKA_VERSION:-2.16.1}"
VENV="$ROOT/target/console-venv"
OUT="$ROOT/target/console-browser"
T="${COMPAT_TIMEOUT:-60}"
# The pip wheel brings Playwright's driver only; never let anything fetch a browser build.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

TEST_ARGS=()
while (($#)); do
  case "$1" in
    --update-docs) TEST_ARGS+=(--update-docs) ;;
    --only)
      [[ $# -ge 2 ]] || { echo "--only needs a REGEX" >&2; exit 2; }
      TEST_ARGS+=(--only "$2")
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ -n "${CONSOLE_TEST_ARGS:-}" ]]; then
  read -r -a extra <<<"$CONSOLE_TEST_ARGS"
  TEST_ARGS+=("${extra[@]}")
fi

log() { printf '[console-browser] %s\n' "$*" >&2; }

# shellcheck source=scripts/lib/steps.sh
source "$ROOT/scripts/lib/steps.sh"
make_work console-browser
CLUSTER_PID=""
HOLD_PID=""

cleanup() {
  local rc=$?
  [[ -z "$HOLD_PID" ]] || stop_process "$HOLD_PID"
  [[ -z "$CLUSTER_PID" ]] || stop_process "$CLUSTER_PID" 60
  settle_work "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Dependencies. A failed setup fails the steps that need it.

setup_browser() {
  ensure_debs "$WORK/setup-browser.log" chromium fonts-liberation && [[ -x /usr/bin/chromium ]]
}

setup_venv() {
  ensure_venv "$VENV" "$WORK/setup-venv.log" "playwright==$PLAYWRIGHT_VERSION" \
    "axe-playwright-python==$AXE_PLAYWRIGHT_VERSION" "confluent-kafka==$CONFLUENT_KAFKA_VERSION"
}

SETUP_BROWSER=ok SETUP_VENV=ok
setup_browser || SETUP_BROWSER="setup failed (chromium), see $WORK/setup-browser.log"
setup_venv || SETUP_VENV="setup failed (Python venv), see $WORK/setup-venv.log"

# ---------------------------------------------------------------------------------------------
# The cluster, and its data.

TOPIC="console-orders"
GROUP="console-billing"
ODD_GROUP='console "odd" <b>id</b> a/b?c#d'
ACTIVE_GROUP="console-live"
CLUSTER=ok

if [[ -n "${CONSOLE_URL:-}" ]]; then
  BASE_URL="${CONSOLE_URL%/}/"
  log "testing the console at $BASE_URL (no cluster started, no data written)"
else
  [[ -x "$SLUICE_BIN" ]] || { echo "Sluice binary not found at $SLUICE_BIN (build it, set SLUICE_BIN, or set CONSOLE_URL)" >&2; exit 2; }
  CLUSTER_LOG="$WORK/cluster.log"
  if start_dev_cluster "$SLUICE_BIN" "$CLUSTER_LOG" --nodes 3 --data-dir "$WORK/data" \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --set console.actions.enable=true --set group.initial.rebalance.delay.ms=100; then
    BOOTSTRAP="$DEV_BOOTSTRAP"
    admin="$(dev_node "$CLUSTER_LOG" 1 admin)"
    BASE_URL="http://$admin/"
    log "cluster up: kafka $BOOTSTRAP, console $BASE_URL (log $CLUSTER_LOG)"
  else
    CLUSTER="the cluster did not start, see $CLUSTER_LOG"
    BASE_URL=""
  fi
  CLUSTER_PID="$DEV_PID"
fi

# The console answers, with every broker registered and unfenced.
console_up() {
  need "$CLUSTER"
  local out="$WORK/cluster.json" i
  for ((i = 0; i < T * 2; i++)); do
    if curl -sf -m 5 "${BASE_URL}api/v1/cluster" >"$out" 2>/dev/null &&
      python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); sys.exit(not (len(c["brokers"]) == 3 and not any(b["fenced"] for b in c["brokers"])))' "$out"; then
      cat "$out"
      return 0
    fi
    sleep 0.5
  done
  cat "$out" 2>/dev/null || true
  fail "GET ${BASE_URL}api/v1/cluster did not show 3 unfenced brokers within ${T}s"
}

seed() {
  need "$SETUP_VENV"
  after console-up
  tmo "$VENV/bin/python" "$ROOT/scripts/console/seed.py" data "$BOOTSTRAP" "$TOPIC" "$GROUP" "$ODD_GROUP" || timed_out $?
}

# A member of ACTIVE_GROUP for the rest of the run (stopped by cleanup, or after 15 minutes).
hold_member() {
  local out="$WORK/hold.log" i
  "$VENV/bin/python" "$ROOT/scripts/console/seed.py" hold "$BOOTSTRAP" "$TOPIC" "$ACTIVE_GROUP" 900 >"$out" 2>&1 &
  HOLD_PID=$!
  for ((i = 0; i < T * 5; i++)); do
    grep -q "^member of " "$out" && return 0
    kill -0 "$HOLD_PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "the consumer of $ACTIVE_GROUP did not join: $(tail -n 3 "$out")"
  return 1
}

# browser_checks [ARGS...]: test_console.py with ARGS, each of its checks counted here as a step.
browser_checks() {
  local out="$WORK/steps/browser.out" rc=0 why=""
  [[ -n "$BASE_URL" ]] || why="$CLUSTER"
  [[ "$SETUP_VENV" == ok ]] || why="$SETUP_VENV"
  [[ "$SETUP_BROWSER" == ok ]] || why="$SETUP_BROWSER"
  if [[ -n "$why" ]]; then
    FAILED=$((FAILED + 1))
    echo "FAIL browser: skipped: $why"
    return 0
  fi
  mkdir -p "$OUT"
  rm -rf "$OUT/screenshots"
  log "browser checks against $BASE_URL (screenshots in $OUT/screenshots)"
  timeout 1200 "$VENV/bin/python" "$ROOT/scripts/console/test_console.py" "$BASE_URL" "$OUT" "$@" >"$out" 2>&1 || rc=$?
  tally_steps "$out" "$rc" "browser: test_console.py exited $rc without a failed check; see $out"
}

if [[ -z "${CONSOLE_URL:-}" ]]; then
  step console-up console_up
  step seed seed
  TEST_ARGS+=(--topic "$TOPIC" --group "$GROUP")
  if [[ "${STATUS[seed]:-}" == ok ]]; then
    if hold_member; then
      TEST_ARGS+=(--active-group "$ACTIVE_GROUP")
    else
      log "continuing without an active group"
    fi
  fi
fi

browser_checks "${TEST_ARGS[@]}"

if [[ -n "$HOLD_PID" ]]; then
  stop_process "$HOLD_PID"
  HOLD_PID=""
fi
# The cluster stops on SIGTERM, exits 0, and no node panicked.
if [[ -n "$CLUSTER_PID" ]] && kill -0 "$CLUSTER_PID" 2>/dev/null; then
  clean_exit_step "$CLUSTER_PID" "$CLUSTER_LOG"
  CLUSTER_PID=""
fi

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
