#!/usr/bin/env bash
# Builds the container images of the broker and the operator without Docker, then checks them
# (docs/images.md):
#
#   target/images/sluice-<version>.tar            tag sluice:<version>
#   target/images/sluice-operator-<version>.tar   tag sluice-operator:<version>
#
# `docker save`-style tarballs for `docker load -i`, `podman load -i` or `crane push`. Each
# image is one layer on an empty base: the release binary (debug info stripped) in /usr/bin,
# the C libraries it links (libc, libm, libgcc_s, nothing else: checked) and the dynamic
# loader, /etc/passwd and /etc/group with the user sluice (65532), /etc/nsswitch.conf, /tmp
# (1777) and, for the broker, its data directory /var/lib/sluice owned by 65532. The image is
# assembled by images/ocibuild (go-containerregistry), built here from its Go module (cached by
# Go's build cache: about 20 s cold, a second after).
#
# The check, on each tarball as a user would get it: its manifest.json and config are read (tag,
# user, entrypoint), its layers extracted into a temporary directory, and the binary run there
# with chroot as uid 65532 (without root: through the image's own loader): `--version` must
# print the version, and the broker (`sluice dev` on an ephemeral loopback port, data in
# /var/lib/sluice) must answer kcat: metadata, then one record produced and consumed.
#
#   bash scripts/images.sh
#
# Environment: IMAGES_NO_BUILD=1 uses target/release as it is (no cargo build);
# SOURCE_DATE_EPOCH sets the images' creation time (default: the HEAD commit's time).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET/images"
UID_GID=65532:65532
cd "$ROOT"
# shellcheck source=scripts/lib/rootfs.sh
source scripts/lib/rootfs.sh
# shellcheck source=scripts/lib/kcat.sh
source scripts/lib/kcat.sh

log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'images: FAILED: %s\n' "$*" >&2; exit 1; }

workspace_field() { # the [workspace.package] value of $1 in Cargo.toml
  sed -n '/^\[workspace\.package\]/,/^\[/{s/^'"$1"' *= *"\(.*\)"$/\1/p}' Cargo.toml
}
VERSION="$(workspace_field version)"
LICENSE="$(workspace_field license)"
SOURCE="$(workspace_field repository)"
[[ -n "$VERSION" && -n "$LICENSE" && -n "$SOURCE" ]] || die "no version, license or repository in Cargo.toml [workspace.package]"
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
# Not exported: the C compilers of build scripts (cc-rs) watch SOURCE_DATE_EPOCH, and a value
# that changes with each commit would rebuild them and all that depends on them.
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
CREATED="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
case "$(uname -m)" in
  x86_64) ARCH=amd64 ;;
  aarch64) ARCH=arm64 ;;
  *) die "unsupported machine $(uname -m)" ;;
esac

# The Dockerfiles (not built here: no Docker) name the same version, source and license.
for f in images/Dockerfile.sluice images/Dockerfile.sluice-operator; do
  grep -qx "ARG VERSION=$VERSION" "$f" && grep -qF "source=\"$SOURCE\"" "$f" &&
    grep -qF "licenses=\"$LICENSE\"" "$f" ||
    die "$f: ARG VERSION, source or licenses label differ from Cargo.toml ($VERSION, $SOURCE, $LICENSE)"
done

WORK=""
BROKER_PID=""
cleanup() {
  if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -KILL "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  [[ -z "$WORK" ]] || rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$OUT/bin"
WORK="$(mktemp -d "$OUT/work.XXXXXX")"

# --- the image tool, from its Go module ----------------------------------------------------
started=$SECONDS
log "building images/ocibuild into ${OUT#"$ROOT"/}/bin (Go build cache)"
(cd images/ocibuild && go build -trimpath -ldflags "-s -w" -o "$OUT/bin/ocibuild" .)
OCIBUILD="$OUT/bin/ocibuild"
log "ocibuild ready in $((SECONDS - started)) s"

# --- the release binaries --------------------------------------------------------------------
if [[ "${IMAGES_NO_BUILD:-}" != 1 ]]; then
  started=$SECONDS
  log "cargo build --release (sluice, sluice-operator)"
  cargo build --release -p sluice-broker --bin sluice -p sluice-operator --bin sluice-operator
  log "release build: $((SECONDS - started)) s"
fi

# Builds image $1 (binary name) with title $2, description $3, data directory $4 (or empty)
# and the remaining arguments passed to ocibuild.
build_image() {
  local name="$1" title="$2" description="$3" data="$4"
  shift 4
  local root="$WORK/rootfs-$name"
  [[ -x "$TARGET/release/$name" ]] || die "$TARGET/release/$name: missing (build it, or unset IMAGES_NO_BUILD)"
  rootfs_assemble "$TARGET/release/$name" "$root" "$data"
  [[ -z "$data" ]] || set -- -workdir "$data" -chown "$data=$UID_GID" "$@"
  "$OCIBUILD" -rootfs "$root" -tag "$name:$VERSION" -o "$OUT/$name-$VERSION.tar" \
    -arch "$ARCH" -created "$CREATED" -user "$UID_GID" \
    -entrypoint "/usr/bin/$name" \
    -env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    -label "org.opencontainers.image.title=$title" \
    -label "org.opencontainers.image.description=$description" \
    -label "org.opencontainers.image.version=$VERSION" \
    -label "org.opencontainers.image.source=$SOURCE" \
    -label "org.opencontainers.image.licenses=$LICENSE" \
    -label "org.opencontainers.image.revision=$REVISION" \
    -label "org.opencontainers.image.created=$CREATED" \
    "$@" >/dev/null
  rm -rf "$root"
}

started=$SECONDS
# The broker's data directory is the operator's claim mount (DATA_MOUNT) and its working
# directory, so that `sluice dev` keeps ./data there.
build_image sluice sluice "Sluice, a Kafka-compatible broker" /var/lib/sluice \
  -expose 9092/tcp -expose 9093/tcp -expose 9644/tcp
build_image sluice-operator sluice-operator "Sluice's Kubernetes operator" "" \
  -workdir / -expose 8080/tcp
log "images assembled in $((SECONDS - started)) s"

# --- the check -------------------------------------------------------------------------------
# scripts/lib/image_check.py reads a tarball's manifest.json and config (`inspect`) and runs
# the image's entrypoint in its extracted layers as a runtime would (`run`): its Env, its
# WorkingDir, its User, by chroot (without root: through the image's own loader).
CHECK=(python3 "$ROOT/scripts/lib/image_check.py")

# Unpacks tarball $1 into $2.meta and its layers, in order, into $2; checks tag $3 and the user.
extract_image() {
  local tarball="$1" root="$2" tag="$3" meta="$2.meta" layer
  mkdir -p "$meta" "$root"
  tar -xf "$tarball" -C "$meta"
  "${CHECK[@]}" inspect "$meta" "$tag" "$UID_GID" >"$meta/layers" || die "$tarball: its manifest or config is wrong (above)"
  while read -r layer; do tar -xf "$layer" -C "$root"; done <"$meta/layers"
}

check_version() { # rootfs, binary name
  local got
  got="$("${CHECK[@]}" run "$1.meta" "$1" --version 2>&1)" || die "$2 --version failed in the image: $got"
  [[ "$got" == "$2 $VERSION" ]] || die "$2 --version printed '$got', want '$2 $VERSION'"
  log "  $2 --version: $got"
}

# The broker as `docker run sluice:<version> dev` would start it, on ephemeral loopback ports:
# data in ./data of its working directory /var/lib/sluice, which only 65532 may write.
check_broker() { # rootfs
  local root="$1" logf="$WORK/broker.log" port="" topic=images-check got
  ensure_kcat "$WORK/kcat-install.log" || die "could not install kcat"
  "${CHECK[@]}" run "$root.meta" "$root" dev --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 >"$logf" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 1 300); do
    port="$(sed -n 's/^sluice ready kafka=127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$logf")"
    [[ -z "$port" ]] || break
    kill -0 "$BROKER_PID" 2>/dev/null || { cat "$logf" >&2; die "the broker in the image exited before its ready line"; }
    sleep 0.1
  done
  [[ -n "$port" ]] || { cat "$logf" >&2; die "no ready line from the broker in the image within 30 s"; }
  log "  sluice dev in the image: pid $BROKER_PID ($(cat "/proc/$BROKER_PID/comm")), uid $(stat -c %u "/proc/$BROKER_PID"), ready on 127.0.0.1:$port"
  got="$(timeout 30 kcat -b "127.0.0.1:$port" -L -m 10 2>&1)" || { cat "$logf" >&2; die "kcat -L failed: $got"; }
  grep -q "1 brokers:" <<<"$got" || die "kcat -L: no broker listed: $got"
  log "  kcat -L: $(grep -m1 'broker 1 at' <<<"$got" | sed 's/^ *//')"
  echo "hello from the image" | timeout 30 kcat -b "127.0.0.1:$port" -P -t "$topic" -m 10 ||
    { cat "$logf" >&2; die "kcat could not produce to the broker in the image"; }
  got="$(timeout 30 kcat -b "127.0.0.1:$port" -C -t "$topic" -o beginning -c 1 -e -m 10 2>&1)" ||
    { cat "$logf" >&2; die "kcat could not consume from the broker in the image: $got"; }
  [[ "$got" == *"hello from the image"* ]] || die "kcat consumed '$got', not the record produced"
  log "  kcat produced and consumed one record: $got"
  kill -TERM "$BROKER_PID"
  for _ in $(seq 1 100); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$BROKER_PID" 2>/dev/null && { kill -KILL "$BROKER_PID"; die "the broker in the image did not stop within 10 s of SIGTERM"; }
  wait "$BROKER_PID" || die "the broker in the image exited with $? after SIGTERM"
  BROKER_PID=""
  grep -q "shutdown complete" "$logf" || die "the broker in the image stopped without 'shutdown complete'"
  [[ -n "$(ls -A "$root/var/lib/sluice/data" 2>/dev/null)" ]] || die "nothing written under /var/lib/sluice/data"
  log "  SIGTERM: shutdown complete; its data in /var/lib/sluice/data (owner $(stat -c %u:%g "$root/var/lib/sluice/data"))"
}

for name in sluice sluice-operator; do
  tarball="$OUT/$name-$VERSION.tar"
  log "checking ${tarball#"$ROOT"/}"
  root="$WORK/check-$name"
  extract_image "$tarball" "$root" "$name:$VERSION"
  check_version "$root" "$name"
  [[ "$name" != sluice ]] || check_broker "$root"
done

for name in sluice sluice-operator; do
  tarball="$OUT/$name-$VERSION.tar"
  log "$(printf '%-42s %-22s %5.1f MiB (%s bytes), %5.1f MiB unpacked' "${tarball#"$ROOT"/}" \
    "$name:$VERSION" "$(awk "BEGIN { print $(stat -c %s "$tarball") / 1048576 }")" \
    "$(stat -c %s "$tarball")" "$(du -sb "$WORK/check-$name" | awk '{ print $1 / 1048576 }')")"
done
log "images built and checked: docker load -i / podman load -i the tarballs above"
