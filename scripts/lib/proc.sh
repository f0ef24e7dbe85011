# shellcheck shell=bash
# Process, port and CPU helpers shared by the test and benchmark scripts. Source it; it defines
# functions only.
#
#   stop_process PID [SECS]      TERM, wait up to SECS (default 20), then KILL; quiet if the
#                                process is already gone. Sets STOP_KILLED to 1 if it had to
#                                KILL, else 0, and STOP_STATUS to its exit status (when it is
#                                a child of this shell; else empty).
#   stop_checked PID LOG         stop_process, then fail (with the reason in STOP_REASON)
#                                unless the process exited 0 on TERM and LOG holds no panic
#                                line; call it in this shell, not in $(...), so it can wait
#   clean_exit_step PID LOG      stop_checked as a harness step: prints `ok broker-clean-exit`
#                                or `FAIL broker-clean-exit: REASON` and counts it in the
#                                caller's PASSED / FAILED
#   free_port                    print a TCP port that is free on 127.0.0.1 right now
#   wait_port HOST PORT SECS [PID]
#                                wait until HOST:PORT accepts a TCP connection; fails early if
#                                PID is given and that process has exited
#   start_dev_cluster BIN LOG ARGS...
#                                start `BIN dev ARGS...` (a local Sluice cluster) in the
#                                background, output in LOG, and wait up to 60 s for its ready
#                                line; sets DEV_PID and DEV_BOOTSTRAP, or fails with LOG's tail
#   dev_node LOG N FIELD         FIELD (kafka, controller, admin or pid) of node N of the
#                                cluster in LOG that started (`sluice dev` lists its nodes
#                                again when it starts over on new ports)
#   cpu_seconds PID              CPU seconds (user + system, all threads) PID has used so far
#   status_mib PID FIELD         a field of /proc/PID/status (VmRSS, VmHWM) in MiB
#   machine_busy_seconds         CPU seconds the whole machine has spent in user, nice and
#                                system mode (interrupts and steal left out, as they are from a
#                                process's user + system time)

_PROC_CLK_TCK="$(getconf CLK_TCK)"

stop_process() {
  local pid="$1" secs="${2:-20}" i
  STOP_KILLED=0
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    STOP_KILLED=1
    kill -KILL "$pid" 2>/dev/null || true
  fi
  STOP_STATUS=""
  wait "$pid" 2>/dev/null && STOP_STATUS=0 || STOP_STATUS=$?
}

stop_checked() {
  local pid="$1" log_file="$2" line
  STOP_REASON=""
  stop_process "$pid"
  if ((STOP_KILLED)); then
    STOP_REASON="process $pid did not exit within 20 s of SIGTERM"
  elif [[ "$STOP_STATUS" != 0 ]]; then
    STOP_REASON="process $pid exited with status $STOP_STATUS on SIGTERM"
  fi
  line="$(grep -m1 -E 'panicked at|panicked \(a bug\)' "$log_file" 2>/dev/null || true)"
  if [[ -n "$line" ]]; then
    STOP_REASON="${STOP_REASON:+$STOP_REASON; }panic in $log_file: $line"
  fi
  [[ -z "$STOP_REASON" ]]
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
  local host="$1" port="$2" secs="$3" pid="${4:-}"
  local deadline=$((SECONDS + secs))
  while ((SECONDS < deadline)); do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      printf 'process %s exited before %s:%s accepted connections\n' "$pid" "$host" "$port" >&2
      return 1
    fi
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  printf '%s:%s did not accept connections within %ss\n' "$host" "$port" "$secs" >&2
  return 1
}

start_dev_cluster() {
  local bin="$1" log="$2" i
  shift 2
  "$bin" dev "$@" >"$log" 2>&1 </dev/null &
  DEV_PID=$!
  for ((i = 0; i < 600; i++)); do
    grep -q '^sluice cluster ready' "$log" && break
    kill -0 "$DEV_PID" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q '^sluice cluster ready' "$log"; then
    printf 'the cluster did not start; last lines of %s:\n' "$log" >&2
    tail -n 30 "$log" >&2
    return 1
  fi
  DEV_BOOTSTRAP="$(sed -n 's/^sluice cluster ready bootstrap=//p' "$log")"
}

dev_node() {
  sed -n "s/^node $2:.* $3 \([^ ]*\).*\$/\1/p" "$1" | tail -n 1
}

cpu_seconds() {
  awk -v t="$_PROC_CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / t }' "/proc/$1/stat"
}

status_mib() {
  awk -v k="$2:" '$1 == k { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

machine_busy_seconds() {
  awk -v t="$_PROC_CLK_TCK" '$1 == "cpu" { printf "%.2f", ($2 + $3 + $4) / t }' /proc/stat
}

clean_exit_step() {
  if stop_checked "$1" "$2"; then
    PASSED=$((PASSED + 1))
    echo "ok broker-clean-exit"
  else
    FAILED=$((FAILED + 1))
    echo "FAIL broker-clean-exit: $STOP_REASON"
  fi
}
