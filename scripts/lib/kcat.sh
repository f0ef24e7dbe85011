# shellcheck shell=bash
# shellcheck source=scripts/lib/debs.sh
source "$(dirname "${BASH_SOURCE[0]}")/debs.sh"

# ensure_kcat LOG: installs kcat (Debian package) unless it is on the PATH, idempotently;
# apt-get's output goes to LOG. Non-zero, with LOG's tail on stderr, when it cannot.
ensure_kcat() {
  command -v kcat >/dev/null && return 0
  ensure_debs "$1" kcat
}
