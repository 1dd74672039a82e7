#!/usr/bin/env bash
# Builds the Matrix homeserver that Sandcat's bridge tests start
# (im/testsvc.RunSynapse): Debian sid's matrix-synapse inside a minbase
# debootstrap chroot at DIR/synapse-root. Synapse is not in Debian 12, and
# installing sid's package on the host would replace its libc.
#
#   cmd/testservers/synapse.sh [DIR]
#
# DIR defaults to $SANDCAT_TESTBIN, else $HOME/.cache/sandcat-testbin. The
# chroot is built once: DIR/synapse-root.stamp marks it complete and a
# later run does nothing. A cold build takes about two minutes and 550 MB.
# Must run as root (debootstrap, chroot, mount). Needs Debian's package
# mirror, read from this machine's apt sources ($DEBIAN_MIRROR overrides).
set -euo pipefail

out="${1:-${SANDCAT_TESTBIN:-$HOME/.cache/sandcat-testbin}}"
# Bump when the steps below change so that existing chroots are rebuilt.
recipe="synapse-root v1: debootstrap minbase sid; matrix-synapse --no-install-recommends"
start=$SECONDS

if [ "$(id -u)" -ne 0 ]; then
  echo "synapse: must run as root (debootstrap, chroot and mount need it)" >&2
  exit 1
fi

mkdir -p "$out"
out="$(cd "$out" && pwd)"
root="$out/synapse-root"
stamp="$out/synapse-root.stamp"

# One build at a time per folder (its own lock: build.sh holds .lock).
exec 8>"$out/.synapse.lock"
flock 8

if [ -x "$root/usr/bin/python3" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$recipe" ]; then
  echo "synapse: chroot is up to date ($root, $((SECONDS - start))s)"
  exit 0
fi

# mirror prints the Debian archive URL named by this machine's apt sources
# (one-line .list and deb822 .sources formats; never debian-security).
mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then
    echo "$DEBIAN_MIRROR"
    return
  fi
  local files=() f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || return 0
  {
    # deb822: "URIs: a b" lines
    awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "${files[@]}"
    # one-line: "deb [opts] URI suite comp..."
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/ && $i !~ /=/) { print $i; break } }' "${files[@]}"
  } | grep -E '^(https?|file)://' | grep -E '/debian/?$' | head -1
}

url="$(mirror)"
if [ -z "$url" ]; then
  echo "synapse: no Debian mirror (a URI ending in /debian) in /etc/apt/sources.list{,.d/*}; set DEBIAN_MIRROR" >&2
  exit 1
fi

if ! command -v debootstrap >/dev/null; then
  echo "synapse: installing debootstrap on the host ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# proc is mounted only while apt runs; the trap unmounts it on every exit.
proc_mounted=""
cleanup() {
  if [ -n "$proc_mounted" ] && mountpoint -q "$root/proc"; then
    umount "$root/proc" || umount -l "$root/proc" || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A half-built chroot from an interrupted run is started over.
if [ -e "$root" ]; then
  echo "synapse: removing the incomplete chroot $root ..."
  for m in proc sys dev/pts dev; do
    if mountpoint -q "$root/$m" 2>/dev/null; then umount "$root/$m" || umount -l "$root/$m"; fi
  done
  rm -rf --one-file-system "$root"
fi
rm -f "$stamp"

echo "synapse: debootstrap --variant=minbase sid $root $url ..."
debootstrap --variant=minbase sid "$root" "$url" >"$out/synapse-debootstrap.log" 2>&1 || {
  echo "synapse: debootstrap failed; log tail ($out/synapse-debootstrap.log):" >&2
  tail -n 30 "$out/synapse-debootstrap.log" >&2
  exit 1
}

# No daemon may start inside the chroot during package installation.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
# The mirror's sid index may be a frozen copy.
printf 'Acquire::Check-Valid-Until "false";\n' >"$root/etc/apt/apt.conf.d/99sandcat-no-valid-until"

echo "synapse: installing matrix-synapse in the chroot ..."
mount -t proc proc "$root/proc"
proc_mounted=1
export DEBIAN_FRONTEND=noninteractive
chroot "$root" apt-get -o Acquire::Check-Valid-Until=false update -qq
chroot "$root" apt-get -o Acquire::Check-Valid-Until=false install -y -qq --no-install-recommends matrix-synapse \
  >"$out/synapse-apt.log" 2>&1 || {
  echo "synapse: apt-get install matrix-synapse failed; log tail ($out/synapse-apt.log):" >&2
  tail -n 30 "$out/synapse-apt.log" >&2
  exit 1
}
chroot "$root" apt-get clean
umount "$root/proc"
proc_mounted=""

version="$(chroot "$root" python3 -c 'import synapse; print(synapse.__version__)')"
printf '%s\n' "$recipe" >"$stamp"
echo "synapse: built the chroot with Synapse $version in $((SECONDS - start))s ($root)"
