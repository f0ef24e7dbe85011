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
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  echo "installing ${missing[*]} (Debian packages)" >&2
  {
    DEBIAN_FRONTEND=noninteractive timeout 900 "${sudo[@]}" apt-get install -y -qq "${missing[@]}" ||
      {
        timeout 600 "${sudo[@]}" apt-get update -qq &&
          DEBIAN_FRONTEND=noninteractive timeout 900 "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
      }
  } >"$out" 2>&1 || { tail -n 3 "$out" >&2; return 1; }
}
