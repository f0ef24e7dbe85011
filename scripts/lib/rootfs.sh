# shellcheck shell=bash
# The root filesystem of a Sluice image (docs/images.md), shared by scripts/images.sh (the
# daemonless build CI checks) and images/Dockerfile.* (its builder stage runs it as a command):
#
#   bash scripts/lib/rootfs.sh BINARY DIR [DATA_DIR]
#
# DIR is made anew with: BINARY in /usr/bin (debug info stripped: the release profile keeps
# line tables, 93 MB -> 18 MB for the broker; the symbol table stays, so a backtrace still names
# functions); the C libraries it links, at the paths ldd resolves them to (their sonames,
# copied from the files the links point to) and the dynamic loader at the binary's interpreter
# path; /etc/passwd and /etc/group with the user and group sluice (65532);
# /etc/nsswitch.conf (/etc/hosts before DNS); /tmp (1777); DATA_DIR if given (left root's:
# the image build makes it 65532's). Files are 0644 or 0755, as the image will have them.
#
# The libraries must be libc, libm and libgcc_s (and the loader): anything else fails, naming
# the library, as a binary that needs more would not run in the image.
#
# Sourced, it defines the functions only:
#   rootfs_libraries BINARY        the loader (first line) and library paths, after the check
#   rootfs_assemble BINARY DIR [DATA_DIR]

rootfs_die() { printf 'rootfs: FAILED: %s\n' "$*" >&2; exit 1; }

rootfs_libraries() {
  local bin="$1" needed interp deps line lib path
  [[ -x "$bin" ]] || rootfs_die "$bin: missing or not executable"
  needed="$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p')"
  [[ -n "$needed" ]] || rootfs_die "$bin: no NEEDED entries (not a dynamically linked executable)"
  for lib in $needed; do
    case "$lib" in
      libc.so.6 | libm.so.6 | libgcc_s.so.1 | ld-linux*.so.*) ;;
      *) rootfs_die "$bin links $lib: an image carries libc, libm and libgcc_s only (readelf -d $bin)" ;;
    esac
  done
  interp="$(readelf -l "$bin" | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]$/\1/p')"
  [[ -n "$interp" ]] || rootfs_die "$bin: no program interpreter (readelf -l $bin)"
  echo "$interp"
  # ldd for the resolved paths, dependencies of dependencies included.
  deps="$(ldd "$bin")" || rootfs_die "ldd $bin failed"
  while read -r line; do
    case "$line" in
      *"not found"*) rootfs_die "$bin: $line (ldd $bin)" ;;
      linux-vdso.so.* | linux-gate.so.*) continue ;;
      *" => "*) lib="${line%% =>*}" path="${line#*=> }" && path="${path%% (*}" ;;
      /*) path="${line%% (*}" && lib="$(basename "$path")" ;;
      *) rootfs_die "$bin: unexpected ldd line: $line" ;;
    esac
    case "$lib" in
      libc.so.6 | libm.so.6 | libgcc_s.so.1 | ld-linux*.so.*) ;;
      *) rootfs_die "$bin needs $lib ($path): an image carries libc, libm and libgcc_s only (ldd $bin)" ;;
    esac
    [[ "$path" == "$interp" ]] || echo "$path"
  done <<<"$deps"
}

rootfs_assemble() {
  local bin="$1" root="$2" data="${3:-}" name paths path
  name="$(basename "$bin")"
  paths="$(rootfs_libraries "$bin")" || exit 1
  rm -rf "$root"
  mkdir -p "$root"/{usr/bin,etc,tmp}
  objcopy --strip-debug "$bin" "$root/usr/bin/$name"
  for path in $paths; do
    mkdir -p "$root$(dirname "$path")"
    cp -L "$path" "$root$path"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'sluice:x:65532:65532:sluice:/var/lib/sluice:/sbin/nologin' >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'sluice:x:65532:' >"$root/etc/group"
  printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$root/etc/nsswitch.conf"
  [[ -z "$data" ]] || mkdir -p "$root$data"
  find "$root" -type d -exec chmod 0755 {} +
  find "$root" -type f -exec chmod 0644 {} +
  chmod 0755 "$root/usr/bin/$name"
  for path in $paths; do chmod 0755 "$root$path"; done
  chmod 1777 "$root/tmp"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  [[ $# -eq 2 || $# -eq 3 ]] || rootfs_die "usage: bash scripts/lib/rootfs.sh BINARY DIR [DATA_DIR]"
  rootfs_assemble "$@"
fi
