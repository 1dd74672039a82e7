#!/usr/bin/env bash
# Runs sandcat-bench, Sandcat's load tool (see BENCHMARKS.md), after building
# its peer baseline Centrifugo v6.9.1 once into the cache (about 70 s, 92 MB).
#
#   cmd/sandcat-bench/run.sh                  the default suite: scenarios a,b,c,d,e
#   cmd/sandcat-bench/run.sh -scenarios b     one scenario; every flag: -h
#   cmd/sandcat-bench/run.sh -scenarios e     the Matrix bridge through Synapse (as root,
#                                             after `make synapse`; no Centrifugo needed)
#
# Cache: $SANDCAT_BENCH_CACHE (default ~/.cache/sandcat-bench) holds the
# Centrifugo binary, the tool and the seed of users and groups that the first
# run registers over HTTP (later runs copy it).
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="${SANDCAT_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sandcat-bench}"
export SANDCAT_BENCH_CACHE="$CACHE"
mkdir -p "$CACHE/bin"

# Centrifugo is the baseline of scenarios a and c only.
scenarios="a,b,c,d,e"
prev=""
for arg in "$@"; do
	case "$arg" in
	-scenarios=* | --scenarios=*) scenarios="${arg#*=}" ;;
	esac
	if [ "$prev" = "-scenarios" ] || [ "$prev" = "--scenarios" ]; then scenarios="$arg"; fi
	prev="$arg"
done
need_centrifugo=no
case ",$scenarios," in *,a,* | *,c,*) need_centrifugo=yes ;; esac

if [ "$need_centrifugo" = yes ] && [ ! -x "$CACHE/bin/centrifugo" ]; then
	echo "run.sh: building Centrifugo v6.9.1 into $CACHE/bin (once, about 70 s)" >&2
	GOBIN="$CACHE/bin" go install github.com/centrifugal/centrifugo/v6@v6.9.1
fi

go build -o "$CACHE/bin/sandcat-bench" ./cmd/sandcat-bench

# A process may hold 20,000 open files here: use all of them (the tool
# spreads connections over processes of at most 18,000).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec "$CACHE/bin/sandcat-bench" "$@"
