#!/usr/bin/env bash
# Builds the real servers that Sandcat's tests start (im/testsvc) into a cache
# folder: ferretdb, kfake and consul from this module (versions pinned in
# go.mod/go.sum), minio and the Matrix homeserver Dendrite (dendrite and
# dendrite-generate-config; versions pinned below).
#
#   cmd/testservers/build.sh [DIR]
#
# DIR defaults to $SANDCAT_TESTBIN, else $HOME/.cache/sandcat-testbin. A
# binary is rebuilt only when the sources it was built from changed: a
# stamp file DIR/NAME.stamp holds a hash of them (file contents, not times,
# so a fresh clone reuses the cache). A cold build takes several minutes of
# CPU and about 10 GB of module and build cache; a warm run takes seconds.
# Needs only Go and the Go module proxy.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-${SANDCAT_TESTBIN:-$HOME/.cache/sandcat-testbin}}"
# github.com/minio/minio is not tagged as a Go module: this is the module
# proxy's @latest of 2026-02-12.
minio_version="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
# The second homeserver of the Matrix bridge tests (im/testsvc.RunDendrite).
dendrite_version="${DENDRITE_VERSION:-v0.13.8}"

go="${GO:-go}"
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0

mkdir -p "$out"
out="$(cd "$out" && pwd)"

# One build at a time per folder: a concurrent run waits, then finds the
# binaries up to date.
exec 9>"$out/.lock"
flock 9
rm -rf "$out"/.build-*

hash_of() { # hash_of TEXT FILE... (relative to this folder) -> one line
  (cd "$here" && { printf '%s\n' "$1"; shift; for f in "$@"; do printf '%s\n' "$f"; cat "$f"; done; }) |
    sha256sum | cut -d' ' -f1
}

built=()
total_start=$SECONDS

# build NAME STAMP COMMAND...: runs COMMAND (which must write $tmp/NAME)
# unless $out/NAME exists and $out/NAME.stamp holds STAMP.
build() {
  local name="$1" stamp="$2"
  shift 2
  if [ -x "$out/$name" ] && [ "$(cat "$out/$name.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "testservers: $name is up to date ($out/$name)"
    return
  fi
  echo "testservers: building $name ..."
  local start=$SECONDS
  tmp="$(mktemp -d "$out/.build-$name.XXXXXX")"
  if ! "$@"; then
    rm -rf "$tmp"
    echo "testservers: building $name failed" >&2
    exit 1
  fi
  mv -f "$tmp/$name" "$out/$name"
  rm -rf "$tmp"
  printf '%s\n' "$stamp" >"$out/$name.stamp"
  local took=$((SECONDS - start))
  echo "testservers: built $name in ${took}s"
  built+=("$name ${took}s")
}

build_local() { # build_local NAME: go build ./NAME of this module into $tmp
  (cd "$here" && "$go" build -trimpath -ldflags='-s -w' -o "$tmp/$1" "./$1")
}

build_minio() {
  # go install PKG@VERSION ignores any go.mod; it builds minio's own module.
  (cd "$tmp" && GOBIN="$tmp" "$go" install -trimpath -ldflags='-s -w' "github.com/minio/minio@$minio_version")
}

# build_dendrite NAME CMD: go install of Dendrite's cmd/CMD (its own module
# and go.sum, like minio), installed as NAME. CGO_ENABLED=0 gives it the pure
# Go SQLite driver (modernc.org/sqlite).
build_dendrite() {
  (cd "$tmp" && GOBIN="$tmp" "$go" install -trimpath -ldflags='-s -w' "github.com/matrix-org/dendrite/cmd/$2@$dendrite_version") || return
  if [ "$1" != "$2" ]; then mv "$tmp/$2" "$tmp/$1"; fi
}

for name in ferretdb kfake consul; do
  build "$name" "$(cd "$here" && hash_of "$name" go.mod go.sum "$name"/*.go)" build_local "$name"
done
build minio "$(hash_of "minio $minio_version")" build_minio
build dendrite "$(hash_of "dendrite $dendrite_version")" build_dendrite dendrite dendrite
build dendrite-generate-config "$(hash_of "dendrite-generate-config $dendrite_version")" \
  build_dendrite dendrite-generate-config generate-config

if [ ${#built[@]} -eq 0 ]; then
  echo "testservers: nothing to build in $out ($((SECONDS - total_start))s)"
else
  echo "testservers: built ${built[*]}; total $((SECONDS - total_start))s in $out"
fi
