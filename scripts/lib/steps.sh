# shellcheck shell=bash
# The step machinery of the compatibility scripts (compat.sh, compat-groups.sh,
# compat-cluster.sh). Source it after setting WORK (with a steps/ directory), T (seconds each
# client command may take), and optionally ONLY (a regex of step names to run), BROKER_PID, and
# STEP_GUARD (a command that prints why no step can pass any more, and nothing while they can:
# the test bed's check that its control plane still runs).
#
#   step NAME CMD...     runs CMD in a subshell with its output in $WORK/steps/NAME.log;
#                        prints `ok NAME (Ns)` or `FAIL NAME: reason (log: ...)` and counts it
#                        in PASSED / FAILED; STATUS[NAME] is ok or fail
#   fail REASON          ends the step with REASON
#   need SETUP           fails the step unless SETUP is "ok" (else it holds why not)
#   after STEP           fails the step at once unless STEP passed (it builds on STEP)
#   tmo CMD...           CMD bounded by T seconds; `why $?` says how it ended
#   CMD | has PATTERN    grep -q that reads all of CMD's output (safe under pipefail)
#   timed_out RC         for programs that print their own `FAIL: reason`: only a timeout
#                        needs saying
#   tally_steps OUT RC WHAT
#                        counts the step lines of another program's output OUT (`ok NAME`,
#                        `FAIL NAME`; shown, with its `# ` notes) in PASSED / FAILED; a
#                        non-zero RC without a FAIL line is one more failure, `FAIL WHAT`
#   make_work NAME       creates WORK=target/tmp/NAME.XXXXXX with a steps/ directory (ROOT set)
#   settle_work RC       at exit: keeps WORK (and says so) after a failure, a non-zero RC or
#                        with COMPAT_KEEP=1; removes it otherwise

PASSED=${PASSED:-0}
FAILED=${FAILED:-0}
declare -A STATUS=()

fail() {
  echo "reason: $*"
  exit 1
}

need() { [[ "$1" == ok ]] || fail "$1"; }

tally_steps() {
  local out="$1" rc="$2" what="$3" ok failed
  grep -E '^(ok|FAIL|#) ' "$out" || true
  ok="$(grep -c '^ok ' "$out" || true)"
  failed="$(grep -c '^FAIL ' "$out" || true)"
  PASSED=$((PASSED + ok))
  FAILED=$((FAILED + failed))
  if ((rc != 0 && failed == 0)); then
    FAILED=$((FAILED + 1))
    echo "FAIL $what"
  fi
}

after() { [[ "${STATUS[$1]:-}" == ok ]] || fail "skipped: needs $1, which did not pass"; }

tmo() { timeout "$T" "$@"; }
# CMD | has PATTERN: true when a line matches. Reads all of its input: `grep -q` stops at the
# first match, and the writer's SIGPIPE then fails the whole pipeline under pipefail.
has() { grep "$@" >/dev/null; }
why() {
  case "$1" in
    124) echo "timed out after ${T}s" ;;
    *) echo "exit status $1" ;;
  esac
}
timed_out() {
  (($1 != 124)) || fail "$(why "$1")"
  exit "$1"
}

step() {
  local name="$1"
  shift
  if [[ -n "${ONLY:-}" && ! "$name" =~ $ONLY ]]; then
    return 0
  fi
  local out="$WORK/steps/$name.log" started=$SECONDS
  local gone=""
  if [[ -n "${BROKER_PID:-}" ]] && ! kill -0 "$BROKER_PID" 2>/dev/null; then
    gone="the broker process has exited (see its log in $WORK)"
  elif [[ -n "${STEP_GUARD:-}" ]]; then
    gone="$($STEP_GUARD)" || true
  fi
  if [[ -n "$gone" ]]; then
    echo "reason: skipped: $gone" >"$out"
    STATUS[$name]=fail
    FAILED=$((FAILED + 1))
    echo "FAIL $name: $gone"
    return 0
  fi
  if ("$@") >"$out" 2>&1; then
    STATUS[$name]=ok
    PASSED=$((PASSED + 1))
    echo "ok $name ($((SECONDS - started))s)"
  else
    STATUS[$name]=fail
    FAILED=$((FAILED + 1))
    local reason hint
    reason="$(grep -E '^(reason|FAIL): ' "$out" | tail -n 1)" || true
    if [[ "$reason" == "reason: "* ]]; then
      # A generic reason from the script: add the tool's last error line, if any.
      hint="$(grep -v '^reason: ' "$out" | grep -E '^% ERROR|^Error|ERROR|Exception' | tail -n 1 | cut -c1-240)" || true
      reason="${reason#reason: }${hint:+ -- $hint}"
    fi
    reason="${reason#FAIL: }"
    [[ -n "$reason" ]] || reason="$(tail -n 1 "$out" | cut -c1-240)"
    [[ -n "$reason" ]] || reason="exited non-zero with no output"
    echo "FAIL $name: $reason (log: $out)"
  fi
}

make_work() {
  mkdir -p "$ROOT/target/tmp"
  WORK="$(mktemp -d "$ROOT/target/tmp/$1.XXXXXX")"
  mkdir -p "$WORK/steps"
}

settle_work() {
  if ((${FAILED:-0} > 0 || $1 != 0)) || [[ "${COMPAT_KEEP:-}" == 1 ]]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
