#!/usr/bin/env bash
# A real Kubernetes control plane on this machine, without Docker, for tests and
# development: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
# (built by hack/build.sh), kwok for the simulated node pools of
# hack/nodepools.yaml, and hack/local_kubelet.py for the node that is this
# machine. Everything listens on 127.0.0.1 (free ports, chosen at `up`).
#
#   bash hack/cluster.sh up       start (or say it is already running)
#   bash hack/cluster.sh status   what runs; exit 0 when every component is up
#   bash hack/cluster.sh down     stop everything and remove the state directory
#   bash hack/cluster.sh env      print the export lines for the shell
#
# Environment:
#   HWMATCH_CLUSTER_DIR   state: pki, kubeconfig, etcd data, logs, pids
#                         (default ~/.cache/hwmatch/cluster)
#   HWMATCH_PYTHON        Python with `kubernetes` and `pyyaml` (default .venv/bin/python)
#   HWMATCH_NODEPOOLS     node pool file (default hack/nodepools.yaml)
set -euo pipefail

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HACK")"
DIR="${HWMATCH_CLUSTER_DIR:-$HOME/.cache/hwmatch/cluster}"
POOLS="${HWMATCH_NODEPOOLS:-$HACK/nodepools.yaml}"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok local-kubelet)

log() { printf '[hack/cluster %3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

python_bin() {
    local py
    for py in "${HWMATCH_PYTHON:-}" "$REPO/.venv/bin/python" python3; do
        [[ -n "$py" ]] || continue
        if "$py" -c 'import kubernetes, yaml' >/dev/null 2>&1; then echo "$py"; return 0; fi
    done
    die "no Python with the 'kubernetes' and 'pyyaml' packages (run: make install)"
}

pid_of() {  # the pid of a component if it is alive and really ours (its command line names $DIR)
    local f="$DIR/pids/$1.pid" pid
    [[ -f "$f" ]] || return 1
    pid="$(cat "$f")"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR" || return 1
    echo "$pid"
}

start() {  # start NAME CMD...: detached, logging to $DIR/logs/NAME.log
    local name="$1"; shift
    setsid "$@" >>"$DIR/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$DIR/pids/$name.pid"
}

wait_for() {  # wait_for WHAT SECONDS LOGNAME CMD...
    local what="$1" secs="$2" logname="$3"; shift 3
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if [[ -n "$logname" ]] && ! pid_of "$logname" >/dev/null; then
            log "$logname exited; last lines of $DIR/logs/$logname.log:"
            tail -n 25 "$DIR/logs/$logname.log" >&2 || true
            die "$what: $logname is not running"
        fi
        if ((SECONDS >= deadline)); then
            [[ -n "$logname" ]] && tail -n 25 "$DIR/logs/$logname.log" >&2
            die "$what: not ready after ${secs}s"
        fi
        sleep 0.5
    done
}

free_ports() {  # N free loopback TCP ports
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

gen_pki() {
    local pki="$DIR/pki"
    mkdir -p "$pki"
    (
        cd "$pki"
        local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 3650 -subj "/CN=hwmatch-local-ca" 2>/dev/null
        cert() {  # cert NAME SUBJECT EXTENSIONS
            openssl req -new "${ec[@]}" -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
            openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" \
                -days 3650 -extfile <(printf '%b' "$3") 2>/dev/null
            rm -f "$1.csr"
        }
        local client='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n'
        cert apiserver "/CN=kube-apiserver" \
            'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n'
        cert admin "/O=system:masters/CN=hwmatch-admin" "$client"
        cert kube-controller-manager "/CN=system:kube-controller-manager" "$client"
        cert kube-scheduler "/CN=system:kube-scheduler" "$client"
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
        chmod 600 ./*.key
    )
}

kubeconfig() {  # kubeconfig CERTNAME FILE
    local pki="$DIR/pki"
    cat >"$2" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: hwmatch-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $1
  user:
    client-certificate-data: $(base64 -w0 "$pki/$1.crt")
    client-key-data: $(base64 -w0 "$pki/$1.key")
contexts:
- name: hwmatch-local
  context: {cluster: hwmatch-local, user: $1}
current-context: hwmatch-local
EOF
    chmod 600 "$2"
}

print_env() {
    echo "export KUBECONFIG=$DIR/kubeconfig; export PATH=$BIN:\$PATH; kubectl get nodes"
}

status() {
    local c pid ok=0
    for c in "${COMPONENTS[@]}"; do
        if pid="$(pid_of "$c")"; then
            printf '  %-24s running (pid %s, rss %s MiB)\n' "$c" "$pid" \
                "$(awk '/VmRSS/ {printf "%d", $2/1024}' "/proc/$pid/status" 2>/dev/null)"
        else
            printf '  %-24s not running\n' "$c"; ok=1
        fi
    done
    return $ok
}

up() {
    if [[ -f "$DIR/env" ]] && status >/dev/null; then
        # shellcheck disable=SC1091
        source "$DIR/env"
        log "already running (state in $DIR)"
        print_env
        return 0
    fi
    [[ -d "$DIR" ]] && { log "removing stale state in $DIR"; down_quiet; }
    BIN="$(bash "$HACK/build.sh")" || exit $?
    local PY; PY="$(python_bin)"
    command -v openssl >/dev/null || die "openssl is missing (apt-get install -y openssl)"
    local t0=$SECONDS
    # On any failure from here on, stop what was started (the logs stay in $DIR/logs).
    trap 'if [[ "${UP_DONE:-}" != 1 ]]; then log "up failed; stopping the components (logs in $DIR/logs)"; stop_all; fi' EXIT
    mkdir -p "$DIR"/{logs,pids,etcd}
    chmod 700 "$DIR" "$DIR/etcd"
    touch "$DIR/.hwmatch-cluster"  # down removes only directories that carry this mark
    read -r ETCD_PORT ETCD_PEER_PORT API_PORT < <(free_ports 3)
    cat >"$DIR/env" <<EOF
BIN=$BIN
ETCD_PORT=$ETCD_PORT
API_PORT=$API_PORT
EOF
    gen_pki
    local pki="$DIR/pki"
    kubeconfig admin "$DIR/kubeconfig"
    kubeconfig kube-controller-manager "$DIR/kube-controller-manager.kubeconfig"
    kubeconfig kube-scheduler "$DIR/kube-scheduler.kubeconfig"
    local KUBECTL=("$BIN/kubectl" --kubeconfig "$DIR/kubeconfig")

    log "starting etcd on 127.0.0.1:$ETCD_PORT"
    start etcd "$BIN/etcd" --name hwmatch --data-dir "$DIR/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "hwmatch=http://127.0.0.1:$ETCD_PEER_PORT" \
        --unsafe-no-fsync --log-level warn --listen-metrics-urls ""
    wait_for "etcd" 30 etcd curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

    log "starting kube-apiserver on https://127.0.0.1:$API_PORT"
    start kube-apiserver "$BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
        --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
        --client-ca-file "$pki/ca.crt" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
        --authorization-mode RBAC \
        --service-cluster-ip-range 10.96.0.0/16 \
        --allow-privileged=true --profiling=false \
        --cert-dir "$DIR/pki/apiserver-generated"
    wait_for "kube-apiserver" 90 kube-apiserver \
        curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        "https://127.0.0.1:$API_PORT/readyz"

    log "starting kube-controller-manager, kube-scheduler"
    start kube-controller-manager "$BIN/kube-controller-manager" \
        --kubeconfig "$DIR/kube-controller-manager.kubeconfig" \
        --authentication-kubeconfig "$DIR/kube-controller-manager.kubeconfig" \
        --authorization-kubeconfig "$DIR/kube-controller-manager.kubeconfig" \
        --secure-port 0 --leader-elect=false \
        --use-service-account-credentials=true \
        --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
        --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
        --controllers '*' \
        --cluster-name hwmatch-local
    start kube-scheduler "$BIN/kube-scheduler" \
        --kubeconfig "$DIR/kube-scheduler.kubeconfig" \
        --authentication-kubeconfig "$DIR/kube-scheduler.kubeconfig" \
        --authorization-kubeconfig "$DIR/kube-scheduler.kubeconfig" \
        --secure-port 0 --leader-elect=false

    log "starting kwok (simulated node pools) and the local kubelet (this machine)"
    start kwok "$BIN/kwok" --kubeconfig "$DIR/kubeconfig" --config "$HACK/kwok/stages.yaml" \
        --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
        --node-lease-duration-seconds 40 --cidr 10.244.0.0/16 --node-ip 10.128.0.1
    start local-kubelet "$PY" -u "$HACK/local_kubelet.py" --kubeconfig "$DIR/kubeconfig" \
        --state-dir "$DIR/local-kubelet" --pools "$POOLS"

    log "creating the simulated nodes of $POOLS"
    "$PY" "$HACK/nodepools.py" manifests --kubelet kwok --file "$POOLS" | "${KUBECTL[@]}" apply -f - >/dev/null
    local nodes; nodes="$("$PY" "$HACK/nodepools.py" names --file "$POOLS" | wc -l)"
    nodes_at_least() { [[ "$("${KUBECTL[@]}" get nodes -o name | wc -l)" -ge "$1" ]]; }
    wait_for "$nodes nodes registered" 60 local-kubelet nodes_at_least "$nodes"
    wait_for "nodes Ready" 90 kwok "${KUBECTL[@]}" wait --for=condition=Ready node --all --timeout=5s
    for c in kube-controller-manager kube-scheduler; do
        pid_of "$c" >/dev/null || { tail -n 25 "$DIR/logs/$c.log" >&2; die "$c exited (log: $DIR/logs/$c.log)"; }
    done
    wait_for "service account default/default (kube-controller-manager)" 60 kube-controller-manager \
        "${KUBECTL[@]}" -n default get serviceaccount default
    UP_DONE=1
    log "up in $((SECONDS - t0))s; state and logs in $DIR"
    print_env
}

stop_all() {
    local i c pid pids=()
    for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
        c="${COMPONENTS[$i]}"
        if pid="$(pid_of "$c")"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    local deadline=$((SECONDS + 15))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}

remove_state() {
    if [[ -f "$DIR/.hwmatch-cluster" ]]; then
        rm -rf "$DIR"
    else
        log "not removing $DIR: it was not made by hack/cluster.sh (no .hwmatch-cluster)"
    fi
}

down_quiet() {
    stop_all
    remove_state
}

down() {
    if [[ ! -d "$DIR" ]]; then log "not running (no $DIR)"; return 0; fi
    stop_all
    remove_state
    log "stopped; removed $DIR"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status)
        [[ -d "$DIR" ]] || { log "not running (no $DIR)"; exit 1; }
        log "state in $DIR"
        if status; then
            # shellcheck disable=SC1091
            source "$DIR/env"
            "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" get nodes -L hwmatch.dev/pool,kubernetes.io/arch
        else
            exit 1
        fi
        ;;
    env)
        [[ -f "$DIR/env" ]] || die "not running (no $DIR/env)"
        # shellcheck disable=SC1091
        source "$DIR/env"
        print_env
        ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
