#!/usr/bin/env bash
# The serving trials' load generator, vegeta (github.com/tsenart/vegeta), built from the Go module proxy
# into a cache outside the repository. Idempotent: returns at once when the pinned version is cached.
#
#   bash hack/vegeta.sh            build if needed, print the binary's path
#   bash hack/vegeta.sh --print    only print where the binary lives
#
# Environment: HWMATCH_BIN_CACHE   cache root (default ~/.cache/hwmatch/bin)
# Exit status: 0 built or cached; 3 the Go toolchain is missing; other: failure.
set -euo pipefail

VEGETA_VERSION="v12.13.0"
CACHE_ROOT="${HWMATCH_BIN_CACHE:-$HOME/.cache/hwmatch/bin}"
VEGETA="$CACHE_ROOT/vegeta-$VEGETA_VERSION/vegeta"
log() { printf '[hack/vegeta] %s\n' "$*" >&2; }

if [[ "${1:-}" == "--print" ]]; then
    echo "$VEGETA"
    exit 0
fi
if [[ -x "$VEGETA" ]]; then
    echo "$VEGETA"
    exit 0
fi
command -v go >/dev/null 2>&1 || { log "the Go toolchain (go) is not installed: cannot build vegeta"; exit 3; }
log "building vegeta $VEGETA_VERSION (Go module proxy; under a minute)"
mkdir -p "$CACHE_ROOT"
TMP="$(mktemp -d "$CACHE_ROOT/.vegeta.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
CGO_ENABLED=0 GOBIN="$TMP" go install -trimpath -ldflags="-s -w" "github.com/tsenart/vegeta/v12@$VEGETA_VERSION" \
    || { log "building vegeta failed"; exit 1; }
mkdir -p "$(dirname "$VEGETA")"
mv -f "$TMP/vegeta" "$VEGETA"  # moved into place only once built: present means complete
echo "$VEGETA"
