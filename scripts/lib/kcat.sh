# shellcheck shell=bash
# ensure_kcat LOG: installs kcat (Debian package) unless it is on the PATH, idempotently;
# apt-get's output goes to LOG. Non-zero, with LOG's tail on stderr, when it cannot.
ensure_kcat() {
  command -v kcat >/dev/null && return 0
  command -v apt-get >/dev/null || { echo "kcat is missing and there is no apt-get" >&2; return 1; }
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  echo "installing kcat (Debian package)" >&2
  {
    timeout 600 "${sudo[@]}" apt-get install -y -qq kcat ||
      { timeout 600 "${sudo[@]}" apt-get update -qq && timeout 600 "${sudo[@]}" apt-get install -y -qq kcat; }
  } >"$1" 2>&1 || { tail -n 3 "$1" >&2; return 1; }
}
