#!/usr/bin/env bash
# hwmatch on kind (Kubernetes in Docker), for machines with Docker: docs/kind.md.
#
#   bash hack/kind.sh up      create the cluster, build and load the images, install the chart
#   bash hack/kind.sh down    delete the cluster
#   bash hack/kind.sh config  print the kind configuration (one worker per pool of hack/nodepools.yaml)
#
# Each pool of hack/nodepools.yaml whose architecture is this machine's becomes one kind worker
# carrying the pool's labels (hwmatch.dev/pool=<name> and the pool's own), so the examples'
# nodeSelectors find them; the pools' taints and GPU capacity are not reproduced (kind's nodes
# have no GPUs: trials that request nvidia.com/gpu stay unschedulable, as they should).
# The images are built with docker FROM python:3.11-slim-bookworm (benchmark-image/Containerfile)
# and loaded with `kind load docker-image`; the chart is installed with pullPolicy IfNotPresent.
#
# Environment:
#   HWMATCH_KIND_NAME   cluster name (default hwmatch)
#   HWMATCH_PYTHON      Python with pyyaml (default .venv/bin/python)
#   HELM                helm binary (default: helm on PATH, else the one hack/build.sh built)
set -euo pipefail
shopt -s inherit_errexit

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HACK")"
NAME="${HWMATCH_KIND_NAME:-hwmatch}"
PY="${HWMATCH_PYTHON:-$REPO/.venv/bin/python}"

log() { printf '[hack/kind %3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2"
}

config() {
    "$PY" - "$HACK" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import nodepools
import yaml

doc = nodepools.load()
workers = []
for node in nodepools.nodes(doc):
    name = node["metadata"]["name"]
    pool = node["metadata"]["labels"][nodepools.POOL_LABEL]
    if not name.endswith("-0") or node["metadata"]["labels"]["kubernetes.io/arch"] != nodepools.host_arch():
        continue  # one worker per pool, and only of this machine's architecture
    labels = {k: v for k, v in node["metadata"]["labels"].items()
              if not k.startswith(("kubernetes.io/", "beta.kubernetes.io/")) and k != "type"}
    workers.append({"role": "worker", "labels": labels})
    print(f"# worker: pool {pool}", file=sys.stderr)
print(yaml.safe_dump({"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
                      "nodes": [{"role": "control-plane"}, *workers]}, sort_keys=False))
EOF
}

helm_bin() {
    if [[ -n "${HELM:-}" ]]; then echo "$HELM"; return 0; fi
    if command -v helm >/dev/null 2>&1; then command -v helm; return 0; fi
    local built; built="$(bash "$HACK/build.sh" --print-helm)"
    [[ -x "$built" ]] || die "helm is not installed: install Helm 3, or build one with: make cluster-build"
    echo "$built"
}

up() {
    need docker "install Docker (https://docs.docker.com/engine/install/)"
    need kind "install kind (go install sigs.k8s.io/kind@latest, or https://kind.sigs.k8s.io)"
    need kubectl "install kubectl (https://kubernetes.io/docs/tasks/tools/)"
    [[ -x "$PY" ]] || die "no $PY: run make install"
    local helm; helm="$(helm_bin)"
    local images; images="$(bash "$HACK/images.sh" names)"
    local benchmark operator
    { read -r benchmark; read -r operator; } <<<"$images"

    if kind get clusters 2>/dev/null | grep -qx "$NAME"; then
        log "kind cluster $NAME exists; reusing it"
    else
        log "creating kind cluster $NAME"
        kind create cluster --name "$NAME" --config <(config) --wait 120s
    fi
    local target image
    for target in benchmark operator; do
        image="$benchmark"; [[ "$target" == operator ]] && image="$operator"
        log "building $image (docker, target $target)"
        docker build --file "$REPO/benchmark-image/Containerfile" --target "$target" --tag "$image" "$REPO"
        kind load docker-image --name "$NAME" "$image"
    done
    log "installing the chart (namespace hwmatch-system)"
    "$helm" upgrade --install hwmatch "$REPO/charts/hwmatch" --kube-context "kind-$NAME" \
        --namespace hwmatch-system --create-namespace \
        --set "image.repository=${operator%:*}" --set "image.tag=${operator##*:}" --set image.pullPolicy=IfNotPresent \
        --wait --timeout 5m
    kubectl --context "kind-$NAME" get nodes -L hwmatch.dev/pool
    log "ready: kubectl --context kind-$NAME apply -f examples/operator/digits-forest.yaml (docs/kind.md)"
}

down() {
    need kind "install kind"
    kind delete cluster --name "$NAME"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    config) config ;;
    *) echo "usage: $0 up|down|config" >&2; exit 2 ;;
esac
