#!/usr/bin/env bash
# System dependencies of the integration and cluster tests, on Debian/Ubuntu:
#   prometheus (real Prometheus server the tests start), openssl and curl (the
#   local control plane's certificates and health checks); for the images and
#   the real node: containerd, runc, the CNI plugins, podman, buildah,
#   mmdebstrap (the images' base from Debian's packages), a static busybox (the
#   pause image), iproute2; shellcheck (actionlint checks the workflow's
#   scripts with it); chromium (the report's browser test); then the control plane, the kubelet and actionlint
#   themselves (hack/build.sh, Go module proxy, cached), and vegeta, the serving trials' load
#   generator (hack/vegeta.sh, the same way).
# Safe to run again: installs only what is missing. Needs root (or sudo) for apt.
# Without the Go toolchain the build is skipped and the cluster tests skip
# themselves, saying why; this script still exits 0.
set -euo pipefail

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[hack/system-deps] %s\n' "$*" >&2; }

need=()
command -v prometheus >/dev/null 2>&1 || [[ -x /usr/bin/prometheus ]] || need+=(prometheus)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v flock >/dev/null 2>&1 || need+=(util-linux)
for c in containerd runc podman buildah mmdebstrap shellcheck; do
    command -v "$c" >/dev/null 2>&1 || need+=("$c")
done
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
[[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 || need+=(busybox-static)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# the report's browser test (Playwright drives Debian's chromium; no browser download)
command -v chromium >/dev/null 2>&1 || need+=(chromium)

if ((${#need[@]})); then
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
            log "missing ${need[*]} and not root (no sudo): install them yourself; continuing"
            need=()
        fi
    fi
    if ((${#need[@]})); then
        if command -v apt-get >/dev/null 2>&1; then
            log "installing ${need[*]} (apt-get)"
            export DEBIAN_FRONTEND=noninteractive
            "${SUDO[@]}" apt-get update -qq
            "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
            # The Debian package starts a system Prometheus on :9090; the tests start
            # their own on free ports and do not need it.
            if [[ " ${need[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
                "${SUDO[@]}" systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
            fi
        else
            log "missing ${need[*]} and no apt-get: install them yourself; the tests that need them will skip"
        fi
    fi
fi
log "prometheus: $(prometheus --version 2>&1 | head -n1 || echo missing)"

# The images' base root file system (mmdebstrap: network and dpkg, little CPU) is made while the Go
# builds below use the CPUs; `make images` then finds it cached.
BASE_PID=""
if command -v mmdebstrap >/dev/null 2>&1 && command -v podman >/dev/null 2>&1; then
    BASE_LOG="$(mktemp)"
    bash "$HACK/images.sh" base >"$BASE_LOG" 2>&1 &
    BASE_PID=$!
fi
wait_for_base() {
    [[ -n "$BASE_PID" ]] || return 0
    if ! wait "$BASE_PID"; then
        cat "$BASE_LOG" >&2
        log "making the images' base failed (above); make images will try again"
    fi
    rm -f "$BASE_LOG"
}

if ! command -v go >/dev/null 2>&1; then
    log "the Go toolchain (go) is not installed: the control plane cannot be built,"
    log "so the cluster tests (pytest -m cluster) will be SKIPPED, and so will the serving tests (no vegeta)."
    log "Install Go >= 1.26 to run them."
    wait_for_base
    exit 0
fi
bash "$HACK/build.sh" >/dev/null
bash "$HACK/build.sh" --kubelet >/dev/null
bash "$HACK/build.sh" --actionlint >/dev/null
bash "$HACK/vegeta.sh" >/dev/null  # the serving trials' load generator
wait_for_base
