#!/usr/bin/env bash
#/ Test support, not used by the pipeline: make this kind of machine (Debian bookworm, root, no
#/ container registry reachable) able to build and run the DockerCoins images for real.
#/
#/   1. installs podman, buildah, runc, debootstrap, the dnsname CNI plugin, dnsmasq-base and
#/      Debian's docker-compose (1.29, for checking compose.yaml through podman's socket);
#/   2. configures podman for this machine: runc (crun does not work here), cgroupfs, file
#/      events, and default ulimits below the hard limits (limits equal to them fail);
#/   3. makes two local images, since none can be pulled:
#/        localhost/python-base:bookworm  debootstrap minbase + python3, python3-venv, certs,
#/                                        netbase, tzdata (a stand-in for python:3.12-slim)
#/        localhost/redis-test:bookworm   the same root + Debian's redis-server (a stand-in for
#/                                        the official redis image, for tests only)
#/      Both root filesystems are cached as tarballs under ${DOCKERCOINS_CACHE:-~/.cache/dockercoins},
#/      so a second run only re-imports them (seconds) and a third finds them already imported.
#/
#/ Idempotent. Needs root (apt, debootstrap, chroot).
#/
#/   ci/podman-setup.sh [--rebuild]   --rebuild: make both root filesystems again
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # CACHE, say, die, usage, apt_install
# shellcheck disable=SC2034  # read by say() in lib.sh
LOG_NAME=podman-setup

BASE_IMAGE=localhost/python-base:bookworm
REDIS_IMAGE=localhost/redis-test:bookworm
SUITE=bookworm
# Bump when the recipe below changes, so cached tarballs from an older recipe are not reused.
RECIPE=3
BASE_PACKAGES=python3,python3-venv,ca-certificates,netbase,tzdata
BASE_TAR=$CACHE/python-base-$SUITE-r$RECIPE.tar
REDIS_TAR=$CACHE/redis-test-$SUITE-r$RECIPE.tar

REBUILD=0
for arg in "$@"; do
  case $arg in
    --rebuild) REBUILD=1 ;;
    -h|--help) usage 0 ;;
    *) say "unknown argument: $arg"; usage ;;
  esac
done

[ "$(id -u)" = 0 ] || die "needs root (apt-get, debootstrap, chroot)"

# --- 1. packages -------------------------------------------------------------------------
apt_install podman buildah runc debootstrap dnsmasq-base containernetworking-plugins \
  golang-github-containernetworking-plugin-dnsname iptables docker-compose

# --- 2. podman configuration -------------------------------------------------------------
conf=/etc/containers/containers.conf.d/50-dockercoins.conf
want=$(cat <<'EOF'
# Written by dockercoins ci/podman-setup.sh: what podman needs on this kind of machine.
[containers]
default_ulimits = ["nofile=10000:10000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
)
if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
  say "writing $conf"
  mkdir -p "$(dirname "$conf")"
  printf '%s\n' "$want" >"$conf"
fi

# --- 3. local images -----------------------------------------------------------------------
# The Debian mirror this machine already uses (never hard-coded here).
mirror() {
  local uri
  uri=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' \
          /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -n1)
  if [ -z "$uri" ]; then
    uri=$(awk '$1=="deb" && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' \
            /etc/apt/sources.list 2>/dev/null)
  fi
  [ -n "$uri" ] || { say "no Debian mirror found in /etc/apt/sources*"; return 1; }
  printf '%s\n' "$uri"
}

# Remove what a container never needs: apt lists and caches, docs, man pages, locales.
trim_root() {
  local root=$1
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
         "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/debconf/*-old \
         "$root"/var/log/*.log "$root"/var/log/apt/* \
         "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
         "$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/tmp/* \
         "$root"/usr/sbin/policy-rc.d
  : >"$root"/etc/machine-id
}

make_tarballs() {
  local work root
  work=$(mktemp -d "${TMPDIR:-/tmp}/dockercoins-rootfs.XXXXXX")
  # shellcheck disable=SC2064  # expand $work now: it is local
  trap "umount -l '$work/root/proc' 2>/dev/null || true; rm -rf '$work'" EXIT
  root=$work/root
  say "debootstrap --variant=minbase $SUITE (about 45 s)"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$root" "$(mirror)" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; return 1; }
  # Same layout as the official image's apt setup, minus the lists.
  printf 'deb %s %s main\n' "$(mirror)" "$SUITE" >"$root/etc/apt/sources.list"
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"

  # The base first: trimmed copy of the root, tarred.
  mkdir -p "$CACHE"
  cp -a "$root" "$work/base"
  trim_root "$work/base"
  tar --numeric-owner -C "$work/base" -cf "$BASE_TAR.tmp" .
  mv "$BASE_TAR.tmp" "$BASE_TAR"
  rm -rf "$work/base"

  # Then redis: Debian's redis-server into the same root, using debootstrap's apt lists.
  say "adding redis-server for $REDIS_IMAGE"
  mount -t proc proc "$root/proc"
  DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq --no-install-recommends \
    redis-server >"$work/redis.log" 2>&1 || { tail -n 30 "$work/redis.log" >&2; return 1; }
  umount "$root/proc"
  trim_root "$root"
  tar --numeric-owner -C "$root" -cf "$REDIS_TAR.tmp" .
  mv "$REDIS_TAR.tmp" "$REDIS_TAR"
  rm -rf "$work"
  trap - EXIT
}

have_image() { podman image exists "$1" 2>/dev/null; }
# The recipe an image was imported from, so a stale one is replaced.
image_recipe() {
  podman image inspect --format '{{ index .Config.Labels "dockercoins.recipe" }}' "$1" 2>/dev/null || true
}

if [ "$REBUILD" = 1 ]; then
  rm -f "$BASE_TAR" "$REDIS_TAR"
fi

if [ "$REBUILD" = 1 ] || [ "$(image_recipe $BASE_IMAGE)" != "$RECIPE" ] \
   || [ "$(image_recipe $REDIS_IMAGE)" != "$RECIPE" ]; then
  if [ ! -s "$BASE_TAR" ] || [ ! -s "$REDIS_TAR" ]; then
    make_tarballs
  else
    say "using cached root filesystems in $CACHE"
  fi
  say "importing $BASE_IMAGE"
  podman import --quiet \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL dockercoins.recipe=$RECIPE" \
    --change 'CMD ["python3"]' \
    "$BASE_TAR" "$BASE_IMAGE" >/dev/null
  say "importing $REDIS_IMAGE"
  # redis as Debian's redis user, no persistence, reachable on the container network.
  redis_uid=$(tar -xOf "$REDIS_TAR" ./etc/passwd | awk -F: '$1=="redis"{print $3":"$4}')
  podman import --quiet \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL dockercoins.recipe=$RECIPE" \
    --change "USER $redis_uid" \
    --change 'EXPOSE 6379' \
    --change 'CMD ["redis-server", "--bind", "0.0.0.0", "--port", "6379", "--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", "/tmp"]' \
    "$REDIS_TAR" "$REDIS_IMAGE" >/dev/null
else
  say "$BASE_IMAGE and $REDIS_IMAGE are current"
fi

podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
  | grep -E "^($BASE_IMAGE|$REDIS_IMAGE) " >&2 || true
say "ready: build with BASE_IMAGE=$BASE_IMAGE ci/build-images.sh"
