#!/usr/bin/env bash
# Build the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) and helm from the Go module proxy into a cache
# outside the repository. Idempotent: returns at once when the cached binaries
# match the pinned versions (hack/k8s/go.mod, hack/kwok/go.mod and their go.sum;
# HELM_VERSION below).
#
#   bash hack/build.sh            build if needed, print the bin directory
#   bash hack/build.sh --print-bin-dir   only print where the binaries live
#   bash hack/build.sh --print-helm      only print where helm lives
#   bash hack/build.sh --kubelet         build the kubelet if needed (cached apart), print its path
#   bash hack/build.sh --print-kubelet   only print where the kubelet lives
#   bash hack/build.sh --actionlint      build actionlint (the workflow linter) if needed, print its path
#
# Environment:
#   HWMATCH_K8S_CACHE   cache root (default ~/.cache/hwmatch/k8s)
#   HWMATCH_BUILD_JOBS  go build -p (default: number of CPUs)
#
# Exit status: 0 built or cached; 3 the Go toolchain is missing; other: failure.
set -euo pipefail

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION="$(awk '$1 == "k8s.io/kubernetes" {print $2; exit} $1 == "require" && $2 == "k8s.io/kubernetes" {print $3; exit}' "$HACK/k8s/go.mod")"
KWOK_VERSION="$(awk '$1 == "sigs.k8s.io/kwok" {print $2; exit}' "$HACK/kwok/go.mod")"
CACHE_ROOT="${HWMATCH_K8S_CACHE:-$HOME/.cache/hwmatch/k8s}"
BIN="$CACHE_ROOT/$K8S_VERSION/bin"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)
# helm is a Go module of its own (`go install` builds it with its own go.mod and go.sum);
# cached apart from the control plane, so changing one never rebuilds the other.
HELM_VERSION="v3.22.0"
HELM="$CACHE_ROOT/helm/$HELM_VERSION/helm"
# The kubelet of the real node (hack/cluster.sh) is cached apart too: it needs go.sum entries the
# other binaries do not (k8s.io/cri-streaming among them), which it resolves in a copy of the
# wrapper module (-mod=mod), so that hack/k8s/go.sum, and the control plane's stamp, stay as they are.
KUBELET="$CACHE_ROOT/$K8S_VERSION/kubelet/kubelet"
# actionlint lints .github/workflows (a test does); its own module, cached like helm.
ACTIONLINT_VERSION="v1.7.12"
ACTIONLINT="$CACHE_ROOT/actionlint/$ACTIONLINT_VERSION/actionlint"

log() { printf '[hack/build] %s\n' "$*" >&2; }

if [[ "${1:-}" == "--print-bin-dir" ]]; then
    echo "$BIN"
    exit 0
fi
if [[ "${1:-}" == "--print-helm" ]]; then
    echo "$HELM"
    exit 0
fi
if [[ "${1:-}" == "--actionlint" ]]; then
    if [[ -x "$ACTIONLINT" ]]; then echo "$ACTIONLINT"; exit 0; fi
    command -v go >/dev/null 2>&1 || { log "the Go toolchain (go) is not installed: cannot build actionlint"; exit 3; }
    log "building actionlint $ACTIONLINT_VERSION (about a minute)"
    mkdir -p "$CACHE_ROOT"
    ATMP="$(mktemp -d "$CACHE_ROOT/.actionlint.XXXXXX")"
    trap 'rm -rf "$ATMP"' EXIT
    CGO_ENABLED=0 GOBIN="$ATMP" go install -trimpath -ldflags="-s -w" \
        "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" || { log "building actionlint failed"; exit 1; }
    mkdir -p "$(dirname "$ACTIONLINT")"
    mv -f "$ATMP/actionlint" "$ACTIONLINT"  # moved into place only once built: present means complete
    echo "$ACTIONLINT"
    exit 0
fi
if [[ "${1:-}" == "--print-kubelet" ]]; then
    echo "$KUBELET"
    exit 0
fi

# The stamp identifies exactly what was built: both wrapper modules' go.mod/go.sum.
stamp_of() {
    cat "$HACK/k8s/go.mod" "$HACK/k8s/go.sum" "$HACK/kwok/go.mod" "$HACK/kwok/go.sum" \
        | sha256sum | cut -d' ' -f1
}
WANT_STAMP="$(stamp_of)"

cached() {
    [[ -f "$BIN/.stamp" && "$(cat "$BIN/.stamp")" == "$WANT_STAMP" ]] || return 1
    local b
    for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
}

helm_cached() { [[ -x "$HELM" ]]; }  # moved into place only once built: present means complete

version_ldflags() {  # what upstream's hack/lib/version.sh stamps in, so `kubectl version` and /version tell the truth
    local minor pkg flags=""
    minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    echo "$flags"
}

build_kubelet() {  # into $1/kubelet, from a copy of the wrapper module
    cp "$HACK/k8s/go.mod" "$HACK/k8s/go.sum" "$1/"
    (cd "$1" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -p "${HWMATCH_BUILD_JOBS:-$(nproc)}" -trimpath \
        -ldflags="-s -w $(version_ldflags)" -o "$1/kubelet" k8s.io/kubernetes/cmd/kubelet)
}

# The kubelet's stamp: the wrapper module and the recipe above.
kubelet_stamp() {
    { cat "$HACK/k8s/go.mod" "$HACK/k8s/go.sum"; declare -f build_kubelet version_ldflags; } | sha256sum | cut -d' ' -f1
}
kubelet_cached() {
    [[ -x "$KUBELET" && -f "$KUBELET.stamp" && "$(cat "$KUBELET.stamp")" == "$(kubelet_stamp)" ]]
}

if [[ "${1:-}" == "--kubelet" ]]; then
    if kubelet_cached; then log "cached: kubelet $K8S_VERSION in $KUBELET"; echo "$KUBELET"; exit 0; fi
    command -v go >/dev/null 2>&1 || { log "the Go toolchain (go) is not installed: cannot build the kubelet"; exit 3; }
    mkdir -p "$(dirname "$KUBELET")"
    exec 9>"$CACHE_ROOT/.build.lock"
    if ! flock -n 9; then
        log "another build is running; waiting for it ..."
        flock 9
        if kubelet_cached; then echo "$KUBELET"; exit 0; fi
    fi
    KTMP="$(mktemp -d "$CACHE_ROOT/.kubelet.XXXXXX")"
    trap 'rm -rf "$KTMP"' EXIT
    log "building the kubelet of Kubernetes $K8S_VERSION (about 4 min after the control plane, 10 cold)"
    start=$SECONDS
    build_kubelet "$KTMP" || { log "building the kubelet failed (see above)"; exit 1; }
    mv -f "$KTMP/kubelet" "$KUBELET"
    kubelet_stamp >"$KUBELET.stamp"
    log "kubelet built in $((SECONDS - start))s: $KUBELET"
    echo "$KUBELET"
    exit 0
fi

if cached && helm_cached; then
    log "cached: Kubernetes $K8S_VERSION, kwok $KWOK_VERSION in $BIN; helm $HELM_VERSION"
    echo "$BIN"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    log "the Go toolchain (go) is not installed: cannot build the control plane."
    log "install Go >= 1.26 (https://go.dev/dl/) and run: make cluster-build"
    exit 3
fi

mkdir -p "$BIN"
# One build at a time (make, pytest fixtures and people may all ask for it).
exec 9>"$CACHE_ROOT/.build.lock"
if ! flock -n 9; then
    log "another build is running; waiting for it ..."
    flock 9
    if cached && helm_cached; then echo "$BIN"; exit 0; fi
fi

JOBS="${HWMATCH_BUILD_JOBS:-$(nproc)}"
# (the emulation version is compiled in either way)
VERSION_LDFLAGS="$(version_ldflags)"

TMP="$(mktemp -d "$CACHE_ROOT/.build.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
export CGO_ENABLED=0

# helm builds in the background too (about 15 minutes on 2 busy cores, alone).
HELM_PID=""
if ! helm_cached; then
    (
        log "[helm] building helm $HELM_VERSION (in the background)"
        mkdir -p "$TMP/helm"
        # As upstream's Makefile: the Kubernetes version `helm template` and `helm lint` assume
        # without a cluster is that of the client-go helm is built with (else v1.20).
        mod_dir="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
        kube_minor="$(awk '$1 == "k8s.io/client-go" {print $2; exit}' "$mod_dir/go.mod" | cut -d. -f2)"
        ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
        for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
            ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
        done
        GOBIN="$TMP/helm" go install -trimpath -ldflags="$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
        log "[helm] done"
    ) &
    HELM_PID=$!
fi
finish_helm() {
    [[ -n "$HELM_PID" ]] || return 0
    wait "$HELM_PID" || { log "building helm failed"; return 1; }
    mkdir -p "$(dirname "$HELM")"
    mv -f "$TMP/helm/helm" "$HELM"
    log "helm $HELM_VERSION in $HELM"
}
if cached; then
    log "cached: Kubernetes $K8S_VERSION, kwok $KWOK_VERSION in $BIN"
    finish_helm || exit 1
    echo "$BIN"
    exit 0
fi
log "building Kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl), etcd and kwok $KWOK_VERSION"
log "$(go version); go build -p $JOBS; GOCACHE=$(go env GOCACHE)"
log "a cold build takes about 35 minutes on 2 idle cores (longer on a busy machine); later runs reuse $BIN"
start=$SECONDS

# kwok (its own module graph) builds alongside Kubernetes: on 2 cores it fills the
# gaps where the Kubernetes build compiles one huge package or links alone.
(
    cd "$HACK/kwok"
    log "[kwok] building kwok $KWOK_VERSION (in the background)"
    go build -p "$JOBS" -trimpath -ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
        -o "$TMP/kwok" sigs.k8s.io/kwok/cmd/kwok
    log "[kwok] done"
) &
KWOK_PID=$!
(
    cd "$HACK/k8s"
    log "[1/2] kube-apiserver kube-controller-manager kube-scheduler kubectl"
    go build -p "$JOBS" -trimpath -ldflags="-s -w $VERSION_LDFLAGS" -o "$TMP/" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler \
        k8s.io/kubernetes/cmd/kubectl
    log "[2/2] etcd ($(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2; exit}' go.mod))"
    go build -p "$JOBS" -trimpath -ldflags="-s -w" -o "$TMP/etcd" go.etcd.io/etcd/server/v3
) || { wait "$KWOK_PID" || true; [[ -z "$HELM_PID" ]] || wait "$HELM_PID" || true; exit 1; }
wait "$KWOK_PID" || { log "building kwok failed"; exit 1; }
finish_helm || exit 1

for b in "${BINARIES[@]}"; do mv -f "$TMP/$b" "$BIN/$b"; done
echo "$WANT_STAMP" > "$BIN/.stamp"
log "built in $((SECONDS - start))s into $BIN"
echo "$BIN"
