#!/usr/bin/env bash
# A real Kubernetes control plane on this machine, without Docker, for tests and
# development: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
# (built by hack/build.sh), kwok for the simulated node pools of
# hack/nodepools.yaml, and a real node, this machine: the kubelet (built by
# hack/build.sh --kubelet) with containerd and runc (Debian's packages), the
# cgroupfs driver, pods networked by Debian's CNI bridge plugin on a bridge of
# their own (no route to or from the host: trials need no network), a pause
# image built here, and the hwmatch images (hack/images.sh) imported into
# containerd's k8s.io namespace. Everything listens on 127.0.0.1 (free ports,
# chosen at `up`); pods that must reach the API server use hostNetwork.
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
#   HWMATCH_CLUSTER_QPS   client rate of kube-controller-manager and kube-scheduler (requests/s, burst twice
#                         that; default theirs, 20 and 50): the Job controller's 20/s caps a cluster at a few
#                         trials a second, so bench/operator_scale.py raises it, as kwokctl --disable-qps-limits does
#
# Two clusters can run at once (each in its own HWMATCH_CLUSTER_DIR): each has its own
# containerd, kubelet ports, cgroup root (/hwmatch-<API port>) and bridge (hwm<API port>).
set -euo pipefail
shopt -s inherit_errexit

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HACK")"
DIR="${HWMATCH_CLUSTER_DIR:-$HOME/.cache/hwmatch/cluster}"
POOLS="${HWMATCH_NODEPOOLS:-$HACK/nodepools.yaml}"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok containerd kubelet)

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
    local pid=$! i
    echo "$pid" >"$DIR/pids/$name.pid"
    # Until both execs are done (the forked shell's into setsid, setsid's into the component), the
    # command line is this script's, then setsid's, and for a moment empty (the kernel swaps in the
    # new image's memory before it writes the arguments there); pid_of, which reads it, would call a
    # starting component gone (on a busy machine wait_for's first check came first: "kube-apiserver is
    # not running" with an empty log, the component then stopped by the failure trap). So return once
    # the command line's first word is the component's own, or once the process is gone.
    for ((i = 0; i < 200; i++)); do
        [[ -r "/proc/$pid/cmdline" ]] || return 0
        [[ "$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1)" == "$1" ]] && return 0
        sleep 0.05
    done
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
        cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$client"
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

# -- the real node --------------------------------------------------------------------------------

node_prereqs() {
    local c pkg missing=()
    for c in containerd:containerd ctr:containerd runc:runc podman:podman buildah:buildah \
             mmdebstrap:mmdebstrap /usr/lib/cni/bridge:containernetworking-plugins /bin/busybox:busybox-static; do
        pkg="${c#*:}"; c="${c%%:*}"
        if [[ "$c" == /* ]]; then [[ -x "$c" ]] || missing+=("$pkg"); else command -v "$c" >/dev/null || missing+=("$pkg"); fi
    done
    ((${#missing[@]} == 0)) || die "the real node needs ${missing[*]}: apt-get install -y ${missing[*]} (or run: make system-deps)"
}

cgroup_controllers() {  # the cgroup v1 hierarchies (hybrid mode: cgroup2 is only at unified/)
    awk '$3 == "cgroup" {print $2}' /proc/mounts
}

make_cgroup_root() {  # the kubelet's cgroupRoot must exist in every hierarchy
    local d
    for d in $(cgroup_controllers); do
        mkdir -p "$d$CGROUP_ROOT"
        if [[ -f "$d/cpuset.cpus" ]]; then
            cat "$d/cpuset.cpus" >"$d$CGROUP_ROOT/cpuset.cpus"
            cat "$d/cpuset.mems" >"$d$CGROUP_ROOT/cpuset.mems"
        fi
    done
}

remove_cgroup_root() {
    [[ -n "${CGROUP_ROOT:-}" ]] || return 0
    local d
    for d in $(cgroup_controllers); do
        if [[ -d "$d$CGROUP_ROOT" ]]; then find "$d$CGROUP_ROOT" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
    done
}

write_node_config() {
    local node="$DIR/node" pki="$DIR/pki"
    mkdir -p "$node"/{cni,ipam,kubelet,pod-logs,containerd}
    cat >"$node/containerd.toml" <<EOF
# containerd of the real node (hack/cluster.sh): its own root, state and socket.
version = 2
root = "$node/containerd/root"
state = "$node/containerd/state"
[grpc]
  address = "$node/containerd.sock"
[ttrpc]
  address = "$node/containerd.sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$node/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # A negative OOM score needs CAP_SYS_RESOURCE, which root here lacks: without this the pod
  # sandbox fails ("runc create failed: can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node/cni"
EOF
    # A bridge of this cluster's own, without an address on the host (isGateway false): pods reach
    # each other and nothing else, and no route is added to the host.
    cat >"$node/cni/10-hwmatch.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "hwmatch", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]], "dataDir": "$node/ipam"}}]}
EOF
    kubeconfig kubelet "$node/kubelet.kubeconfig"
    "$PY" - "$POOLS" "$HACK" >"$node/kubelet.yaml" <<EOF
import json, sys
sys.path.insert(0, sys.argv[2])
import nodepools
node = nodepools.kubelet_node(nodepools.load(sys.argv[1]))
config = {
    "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
    "cgroupDriver": "cgroupfs", "cgroupRoot": "$CGROUP_ROOT", "failCgroupV1": False, "failSwapOn": False,
    "containerRuntimeEndpoint": "unix://$node/containerd.sock",
    "address": "127.0.0.1", "port": $KUBELET_PORT, "readOnlyPort": 0,
    "healthzBindAddress": "127.0.0.1", "healthzPort": $KUBELET_HEALTHZ_PORT,
    # Only holders of a certificate of this cluster's CA (the API server) may call the kubelet.
    "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                       "x509": {"clientCAFile": "$pki/ca.crt"}},
    "authorization": {"mode": "AlwaysAllow"},
    "podLogsDir": "$node/pod-logs",
    "registerWithTaints": node["taints"],
    "maxPods": 30, "serializeImagePulls": False,
    # The images are imported, never pulled: never collect them; evict only when really short.
    "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
    "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
    "nodeStatusReportFrequency": "10s",
}
print(json.dumps(config, indent=1))
EOF
    NODE_LABELS="$("$PY" -c 'import sys; sys.path.insert(0, sys.argv[2]); import nodepools
print(",".join(f"{k}={v}" for k, v in nodepools.kubelet_node(nodepools.load(sys.argv[1]))["labels"].items()))' \
        "$POOLS" "$HACK")"
}

start_node() {
    log "starting containerd ($DIR/node/containerd.sock)"
    start containerd containerd --config "$DIR/node/containerd.toml"
    wait_for "containerd" 30 containerd ctr --address "$DIR/node/containerd.sock" version
    bash "$HACK/images.sh" import "$DIR/node/containerd.sock" "$PAUSE_IMAGE" "${IMAGES[@]}"
    make_cgroup_root
    log "starting the kubelet (node $NODE_NAME, port $KUBELET_PORT, cgroup root $CGROUP_ROOT)"
    start kubelet "$KUBELET" --config "$DIR/node/kubelet.yaml" --kubeconfig "$DIR/node/kubelet.kubeconfig" \
        --hostname-override "$NODE_NAME" --cloud-provider external --node-labels "$NODE_LABELS" \
        --root-dir "$DIR/node/kubelet" --cert-dir "$DIR/node/kubelet/pki" --v 0
}

address_node() {
    # The kubelet refuses a loopback --node-ip ("nodeIP can't be loopback address"), yet it listens, and
    # the API server must reach it (logs), on 127.0.0.1 only. With --cloud-provider external the kubelet
    # leaves addresses that are set alone, as it would for a cloud controller: this sets them, and
    # lifts the taint that waits for that controller.
    local kubectl=("$BIN/kubectl" --kubeconfig "$DIR/kubeconfig")
    "${kubectl[@]}" patch node "$NODE_NAME" --subresource status --type json -p "[{\"op\": \"replace\", \"path\": \"/status/addresses\",
        \"value\": [{\"type\": \"InternalIP\", \"address\": \"127.0.0.1\"}, {\"type\": \"Hostname\", \"address\": \"$NODE_NAME\"}]}]" >/dev/null
    "${kubectl[@]}" taint node "$NODE_NAME" node.cloudprovider.kubernetes.io/uninitialized- >/dev/null
}

drain_node() {  # delete the real node's pods through the API, so that the kubelet tears them down
    [[ -f "$DIR/kubeconfig" && -n "${BIN:-}" ]] || return 0
    pid_of kubelet >/dev/null && pid_of kube-apiserver >/dev/null || return 0
    "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" --request-timeout 10s delete pods --all-namespaces \
        --field-selector "spec.nodeName=$NODE_NAME" --grace-period 1 --wait=false >/dev/null 2>&1 || return 0
    local deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        ctr --address "$DIR/node/containerd.sock" -n k8s.io tasks ls 2>/dev/null | awk '$3 == "RUNNING" {found = 1} END {exit found}' \
            && return 0
        sleep 0.5
    done
    log "pods of $NODE_NAME still running after 30 s; killing their containers"
}

node_names() {  # node_names API_PORT: this cluster's node name, cgroup root and bridge
    NODE_NAME="$("$PY" "$HACK/nodepools.py" kubelet --file "$POOLS" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["name"])')"
    CGROUP_ROOT="/hwmatch-$1"
    BRIDGE="hwm$1"
}

kill_containers() {  # the node's containers that draining left (containerd still runs)
    local sock="$DIR/node/containerd.sock" id
    [[ -S "$sock" ]] && ctr --address "$sock" version >/dev/null 2>&1 || return 0
    for id in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
        ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr --address "$sock" -n k8s.io containers ls -q 2>/dev/null); do
        ctr --address "$sock" -n k8s.io tasks delete --force "$id" >/dev/null 2>&1 || true
        ctr --address "$sock" -n k8s.io containers delete "$id" >/dev/null 2>&1 || true
    done
}

clean_node() {  # what stopping the components leaves of the node: shims, mounts, cgroups, the bridge
    local id m
    # Shims outlive containerd: theirs name this node's state directory on their command line.
    for id in $(pgrep -f "containerd-shim-runc-v2 .*$DIR/node/" 2>/dev/null); do kill -KILL "$id" 2>/dev/null || true; done
    # Mounts under the state directory (volumes, overlays, network namespaces), deepest first.
    while read -r m; do umount -l "$m" 2>/dev/null || true; done \
        < <(awk -v d="$DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r)
    remove_cgroup_root
    if [[ -n "${BRIDGE:-}" ]] && ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE" || true; fi
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
    KUBELET="$(bash "$HACK/build.sh" --kubelet)" || exit $?
    PY="$(python_bin)"
    command -v openssl >/dev/null || die "openssl is missing (apt-get install -y openssl)"
    node_prereqs
    # The images the node runs: built when missing (`make images` and the tests' fixture rebuild them
    # when benchmark-image/ or the package changed; here they are only ensured).
    local images image; images="$(bash "$HACK/images.sh" names)"
    mapfile -t IMAGES <<<"$images"
    for image in "${IMAGES[@]}"; do
        podman image exists "$image" || { bash "$HACK/images.sh" build >/dev/null; break; }
    done
    PAUSE_IMAGE="$(bash "$HACK/images.sh" pause)"
    local t0=$SECONDS
    # On any failure from here on, stop what was started (the logs stay in $DIR/logs).
    trap 'if [[ "${UP_DONE:-}" != 1 ]]; then log "up failed; stopping the components (logs in $DIR/logs)"; stop_all; fi' EXIT
    mkdir -p "$DIR"/{logs,pids,etcd}
    chmod 700 "$DIR" "$DIR/etcd"
    touch "$DIR/.hwmatch-cluster"  # down removes only directories that carry this mark
    read -r ETCD_PORT ETCD_PEER_PORT API_PORT KUBELET_PORT KUBELET_HEALTHZ_PORT < <(free_ports 5)
    node_names "$API_PORT"
    cat >"$DIR/env" <<EOF
BIN=$BIN
ETCD_PORT=$ETCD_PORT
API_PORT=$API_PORT
KUBELET_PORT=$KUBELET_PORT
NODE_NAME=$NODE_NAME
CGROUP_ROOT=$CGROUP_ROOT
BRIDGE=$BRIDGE
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
        --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
        --kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
        --kubelet-preferred-address-types InternalIP \
        --service-cluster-ip-range 10.96.0.0/16 \
        --allow-privileged=true --profiling=false \
        --cert-dir "$DIR/pki/apiserver-generated"
    wait_for "kube-apiserver" 90 kube-apiserver \
        curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        "https://127.0.0.1:$API_PORT/readyz"

    log "starting kube-controller-manager, kube-scheduler"
    local qps=()
    if [[ -n "${HWMATCH_CLUSTER_QPS:-}" ]]; then
        qps=(--kube-api-qps "$HWMATCH_CLUSTER_QPS" --kube-api-burst "$((HWMATCH_CLUSTER_QPS * 2))")
    fi
    start kube-controller-manager "$BIN/kube-controller-manager" \
        --kubeconfig "$DIR/kube-controller-manager.kubeconfig" \
        --authentication-kubeconfig "$DIR/kube-controller-manager.kubeconfig" \
        --authorization-kubeconfig "$DIR/kube-controller-manager.kubeconfig" \
        --secure-port 0 --leader-elect=false \
        --use-service-account-credentials=true \
        --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
        --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
        --controllers '*' \
        --cluster-name hwmatch-local "${qps[@]}"
    start kube-scheduler "$BIN/kube-scheduler" \
        --kubeconfig "$DIR/kube-scheduler.kubeconfig" \
        --authentication-kubeconfig "$DIR/kube-scheduler.kubeconfig" \
        --authorization-kubeconfig "$DIR/kube-scheduler.kubeconfig" \
        --secure-port 0 --leader-elect=false "${qps[@]}"

    log "starting kwok (simulated node pools)"
    start kwok "$BIN/kwok" --kubeconfig "$DIR/kubeconfig" --config "$HACK/kwok/stages.yaml" \
        --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
        --node-lease-duration-seconds 40 --cidr 10.244.0.0/16 --node-ip 10.128.0.1
    write_node_config
    start_node

    log "creating the simulated nodes of $POOLS"
    "$PY" "$HACK/nodepools.py" manifests --kubelet kwok --file "$POOLS" | "${KUBECTL[@]}" apply -f - >/dev/null
    local nodes; nodes="$("$PY" "$HACK/nodepools.py" names --kubelet kwok --file "$POOLS" | wc -l)"
    nodes_at_least() { [[ "$("${KUBECTL[@]}" get nodes -o name | wc -l)" -ge "$1" ]]; }
    wait_for "$((nodes + 1)) nodes registered" 90 kubelet nodes_at_least "$((nodes + 1))"
    address_node
    # One list per try: `kubectl wait node --all` asks node by node and runs out of its timeout on a few
    # hundred nodes although all are Ready.
    all_ready() {
        local states
        states="$("${KUBECTL[@]}" get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')" || return 1
        [[ -n "$states" ]] && ! grep -qv '^True$' <<<"$states"
    }
    wait_for "nodes Ready" 90 kubelet all_ready
    for c in kube-controller-manager kube-scheduler; do
        pid_of "$c" >/dev/null || { tail -n 25 "$DIR/logs/$c.log" >&2; die "$c exited (log: $DIR/logs/$c.log)"; }
    done
    wait_for "service account default/default (kube-controller-manager)" 60 kube-controller-manager \
        "${KUBECTL[@]}" -n default get serviceaccount default
    UP_DONE=1
    log "up in $((SECONDS - t0))s; state and logs in $DIR"
    print_env
}

stop() {  # stop NAME...: TERM, then KILL after 15 s
    local c pid pids=()
    for c in "$@"; do
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

stop_all() {
    # shellcheck disable=SC1091
    if [[ -f "$DIR/env" ]]; then source "$DIR/env"; fi
    # The node first, while the API server and containerd still answer: its pods, the kubelet, then
    # the containers that are left, and only then containerd and the control plane.
    drain_node
    stop kubelet
    kill_containers
    stop containerd kwok kube-scheduler kube-controller-manager kube-apiserver etcd
    clean_node
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
