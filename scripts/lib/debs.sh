# shellcheck shell=bash
# ensure_debs LOG PKG...: installs the Debian packages not yet installed, idempotently: `apt-get
# install`, else `apt-get update` and install again (a fresh machine has no package lists);
# apt-get's output goes to LOG. Non-zero, with LOG's tail on stderr, when it cannot.
ensure_debs() {
  local out="$1" pkg missing=()
  shift
  for pkg in "$@"; do
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" == installed ]] || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || { echo "missing ${missing[*]} and there is no apt-get" >&2; return 1; }
  # `env` under sudo, which would otherwise drop DEBIAN_FRONTEND.
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get)
  ((EUID == 0)) || apt=(sudo "${apt[@]}")
  echo "installing ${missing[*]} (Debian packages)" >&2
  {
    timeout 900 "${apt[@]}" install -y -qq "${missing[@]}" ||
      { timeout 600 "${apt[@]}" update -qq && timeout 900 "${apt[@]}" install -y -qq "${missing[@]}"; }
  } >"$out" 2>&1 || { tail -n 3 "$out" >&2; return 1; }
}
