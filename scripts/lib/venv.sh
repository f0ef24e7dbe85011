# shellcheck shell=bash
# ensure_venv VENV LOG NAME==VERSION...: a Python virtual environment at VENV with these
# versions of these packages. Nothing is done when it has them already; otherwise the venv is
# made if missing and pip installs them (at most 15 minutes), its output in LOG.
ensure_venv() {
  local venv="$1" out="$2"
  shift 2
  "$venv/bin/python" - "$@" >/dev/null 2>&1 <<'PY' && return 0
import importlib.metadata as m, sys
sys.exit(any(m.version(n) != v for n, v in (a.split("==") for a in sys.argv[1:])))
PY
  echo "installing $* into $venv" >&2
  { [[ -x "$venv/bin/pip" ]] || python3 -m venv "$venv"; } >"$out" 2>&1 &&
    timeout 900 "$venv/bin/pip" install -q "$@" >>"$out" 2>&1
}
