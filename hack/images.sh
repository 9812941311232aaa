#!/usr/bin/env bash
# The hwmatch images (benchmark-image/Containerfile), built here without a registry.
#
#   bash hack/images.sh build            base (cached) + both images; prints their names
#   bash hack/images.sh base             only the base image; prints its name
#   bash hack/images.sh names            the names `build` makes (benchmark, then operator)
#   bash hack/images.sh push REGISTRY    tag both as REGISTRY/{benchmark,hwmatch}:TAG and push them
#   bash hack/images.sh run IMAGE [--memory BYTES] -- CMD...
#                                        run CMD in IMAGE as the images' user (65532) with a read-only
#                                        root file system and a tmpfs /tmp, under runc (see below)
#   bash hack/images.sh pause            the pod sandbox ("pause") image of the real node; prints its name
#   bash hack/images.sh import SOCKET IMAGE...
#                                        copy images into the containerd at SOCKET (namespace k8s.io,
#                                        where the kubelet's pods find them), skipping those it has
#   bash hack/images.sh pin              rewrite benchmark-image/requirements.txt from pyproject.toml
#
# The base: Debian bookworm's python3 from Debian's packages (mmdebstrap), imported with
# `podman import` as localhost/hwmatch-base:<key>, where <key> hashes every input of that root
# file system (this script's recipe below). Its tar is cached in $HWMATCH_IMAGE_CACHE and is
# re-imported from there when podman's storage lost it. The Containerfile's layers are cached by
# buildah: a warm build redoes only the steps whose inputs changed.
#
# Why runc and not `podman run` for `run`: on machines without CAP_SYS_RESOURCE, podman (as root)
# always writes RLIMIT_NPROC and a raised RLIMIT_NOFILE into the OCI spec, which runc cannot apply
# ("error setting rlimit type 6: operation not permitted"). The spec written here sets neither.
#
# Environment:
#   HWMATCH_IMAGE_CACHE   base tar cache (default ~/.cache/hwmatch/images)
#   HWMATCH_IMAGE_BASE    build FROM this image instead of the Debian base (e.g.
#                         docker.io/library/python:3.11-slim-bookworm where a registry is reachable)
#   HWMATCH_IMAGE_REPO    name prefix (default ghcr.io/hwmatch, what the chart and examples name)
#   HWMATCH_IMAGE_TAG     tag (default: the version in pyproject.toml)
#   HWMATCH_DEBIAN_MIRROR Debian mirror for the base (default http://deb.debian.org/debian)
set -euo pipefail
shopt -s inherit_errexit

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HACK")"
CACHE="${HWMATCH_IMAGE_CACHE:-$HOME/.cache/hwmatch/images}"
IMAGE_REPO="${HWMATCH_IMAGE_REPO:-ghcr.io/hwmatch}"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/pyproject.toml" | head -n1)"
TAG="${HWMATCH_IMAGE_TAG:-$VERSION}"
BENCHMARK="$IMAGE_REPO/benchmark:$TAG"
OPERATOR="$IMAGE_REPO/hwmatch:$TAG"
MIRROR="${HWMATCH_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
#: The images' user: the chart's and the trial Jobs' runAsUser.
IMAGE_UID=65532

# The base's recipe. Every word of it goes into the base's cache key.
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,ca-certificates
MMDEBSTRAP_OPTS=(
    --variant=minbase --format=tar --include="$BASE_PACKAGES"
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*'
)

log() { printf '[hack/images %3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need() {  # need CMD DEBIAN-PACKAGE
    command -v "$1" >/dev/null 2>&1 || die "$1 is missing: apt-get install -y $2 (or run: make system-deps)"
}

base_key() {
    printf '%s\n' "$SUITE" "$MIRROR" "${MMDEBSTRAP_OPTS[@]}" | sha256sum | cut -c1-16
}

base() {  # the base image's name, building or re-importing it if needed
    if [[ -n "${HWMATCH_IMAGE_BASE:-}" ]]; then echo "$HWMATCH_IMAGE_BASE"; return 0; fi
    need podman podman
    local key name tar
    key="$(base_key)"
    name="localhost/hwmatch-base:$key"
    tar="$CACHE/base-$SUITE-$key.tar"
    if podman image exists "$name"; then echo "$name"; return 0; fi
    mkdir -p "$CACHE"
    if [[ ! -s "$tar" ]]; then
        need mmdebstrap mmdebstrap
        log "building the base root file system: Debian $SUITE with $BASE_PACKAGES (mmdebstrap, 2-4 min)"
        local aptopts=()
        # This machine's apt settings (e.g. a mirror snapshot whose Release files are old) apply too.
        local f
        for f in /etc/apt/apt.conf.d/*; do
            grep -q 'Check-Valid-Until' "$f" 2>/dev/null && aptopts+=(--aptopt="$f")
        done
        mmdebstrap --quiet "${MMDEBSTRAP_OPTS[@]}" "${aptopts[@]}" "$SUITE" "$tar.part" "$MIRROR" >&2 \
            || { rm -f "$tar.part"; die "mmdebstrap failed (see above): the base needs Debian's packages from $MIRROR"; }
        mv -f "$tar.part" "$tar"
    fi
    log "importing $tar as $name"
    podman import --quiet \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' "$tar" "$name" >/dev/null
    echo "$name"
}

build() {
    need buildah buildah
    need runc runc
    local from t0=$SECONDS
    from="$(base)"
    # pip inside the build uses this machine's pip settings (e.g. the certificate authority of a
    # proxy), mounted only while RUN steps run, never stored in a layer.
    local volumes=()
    if [[ -f /etc/pip.conf ]]; then
        volumes+=(--volume /etc/pip.conf:/etc/pip.conf:ro)
        local cert
        cert="$(sed -n 's/^[[:space:]]*cert[[:space:]]*=[[:space:]]*//p' /etc/pip.conf | head -n1)"
        [[ -n "$cert" && -f "$cert" ]] && volumes+=(--volume "$cert:$cert:ro")
    fi
    # The build context: only what the Containerfile copies (as its .dockerignore says). buildah would
    # otherwise walk the whole work tree, virtual environment included, at every build.
    local ctx
    ctx="$(mktemp -d)"
    tar -C "$REPO" --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' -cf - \
        pyproject.toml README.md operator benchmark-image | tar -C "$ctx" -xf -
    # The load generator of serving trials, built from the Go module proxy (cached) and copied in.
    local vegeta
    vegeta="$(bash "$HACK/vegeta.sh")" || { rm -rf "$ctx"; die "hack/vegeta.sh could not build vegeta (its output is above)"; }
    cp "$vegeta" "$ctx/benchmark-image/vegeta"
    local target name
    for target in benchmark operator; do
        name="$BENCHMARK"; [[ "$target" == operator ]] && name="$OPERATOR"
        log "building $name (target $target, FROM $from)"
        buildah --runtime runc bud --quiet --layers --network host "${volumes[@]}" \
            --file "$ctx/benchmark-image/Containerfile" \
            --ignorefile "$ctx/benchmark-image/Containerfile.dockerignore" \
            --build-arg "BASE=$from" --build-arg "VERSION=$VERSION" \
            --target "$target" --tag "$name" "$ctx" >/dev/null \
            || { rm -rf "$ctx"; die "building $name failed (buildah's output is above)"; }
    done
    rm -rf "$ctx"
    log "built in $((SECONDS - t0))s: $BENCHMARK $OPERATOR ($(podman image inspect --format '{{.Size}}' "$OPERATOR" \
        | awk '{printf "%d MB", $1 / 1e6}'))"
    printf '%s\n%s\n' "$BENCHMARK" "$OPERATOR"
}

pause() {  # FROM scratch, Debian's static busybox sleeping: all a pod sandbox does
    need buildah buildah
    local busybox=/bin/busybox key name ctx
    # (ldd fails on a static executable)
    [[ -x "$busybox" ]] && ! ldd "$busybox" >/dev/null 2>&1 \
        || die "no static busybox at $busybox: apt-get install -y busybox-static (or run: make system-deps)"
    key="$({ sha256sum <"$busybox"; declare -f pause; } | sha256sum | cut -c1-16)"
    name="localhost/hwmatch-pause:$key"
    if podman image exists "$name"; then echo "$name"; return 0; fi
    ctx="$(mktemp -d)"
    cp "$busybox" "$ctx/busybox"
    printf '%s\n' 'FROM scratch' 'COPY busybox /busybox' 'USER 65535:65535' \
        'ENTRYPOINT ["/busybox", "sleep", "2147483647"]' >"$ctx/Containerfile"
    buildah --runtime runc bud --quiet --tag "$name" "$ctx" >/dev/null || { rm -rf "$ctx"; die "building $name failed"; }
    rm -rf "$ctx"
    log "built $name"
    echo "$name"
}

import() {  # import SOCKET IMAGE...: podman's images into containerd's k8s.io namespace
    local socket="${1:?usage: $0 import SOCKET IMAGE...}"; shift
    need ctr containerd
    local image missing=()
    for image in "$@"; do
        podman image exists "$image" || die "$image is not built: run make images"
        # An image is there when containerd has its name with podman's image id, which the label below records.
        if ctr --address "$socket" -n k8s.io images ls -q "labels.\"hwmatch.dev/podman-id\"==$(podman image inspect \
                --format '{{.Id}}' "$image"),name==$image" 2>/dev/null | grep -q .; then
            continue
        fi
        missing+=("$image")
    done
    ((${#missing[@]})) || return 0
    local t0=$SECONDS archive
    archive="$(mktemp "${TMPDIR:-/tmp}/hwmatch-images.XXXXXX")"
    podman save --quiet --multi-image-archive --format docker-archive -o "$archive" "${missing[@]}"
    ctr --address "$socket" -n k8s.io images import "$archive" >/dev/null \
        || { rm -f "$archive"; die "ctr images import failed for ${missing[*]} (containerd at $socket)"; }
    rm -f "$archive"
    for image in "${missing[@]}"; do
        ctr --address "$socket" -n k8s.io images label "$image" \
            "hwmatch.dev/podman-id=$(podman image inspect --format '{{.Id}}' "$image")" >/dev/null
    done
    log "imported ${missing[*]} into containerd in $((SECONDS - t0))s"
}

push() {
    local registry="${1:-}"
    [[ -n "$registry" ]] || die "usage: $0 push REGISTRY (e.g. ghcr.io/you; log in first: podman login)"
    local image name
    for image in "$BENCHMARK" "$OPERATOR"; do
        podman image exists "$image" || die "$image is not built: run make images"
        name="$registry/${image#"$IMAGE_REPO"/}"
        podman tag "$image" "$name"
        log "pushing $name"
        podman push "$name"
    done
}

run() {  # run IMAGE [--memory BYTES] -- CMD...
    local image="${1:?usage: $0 run IMAGE [--memory BYTES] -- CMD...}"; shift
    local memory=""
    while [[ $# -gt 0 && "$1" != "--" ]]; do
        case "$1" in
            --memory) memory="$2"; shift 2 ;;
            *) die "unknown option $1 (usage: $0 run IMAGE [--memory BYTES] -- CMD...)" ;;
        esac
    done
    [[ "${1:-}" == "--" ]] && shift
    [[ $# -gt 0 ]] || die "no command to run (usage: $0 run IMAGE -- CMD...)"
    need runc runc
    need podman podman
    podman image exists "$image" || die "$image is not built: run make images"
    local bundle id rootfs rc=0
    bundle="$(mktemp -d "${TMPDIR:-/tmp}/hwmatch-run.XXXXXX")"
    id="hwmatch-run-$(basename "$bundle" | cut -d. -f2 | tr 'A-Z' 'a-z')"
    # A container of the image (never started) lends its mounted root file system to runc.
    local ctr
    ctr="$(podman create --quiet "$image")"
    rootfs="$(podman mount "$ctr")"
    trap 'runc delete --force "$id" >/dev/null 2>&1 || true; podman umount "$ctr" >/dev/null 2>&1 || true;
          podman rm --force "$ctr" >/dev/null 2>&1 || true; rm -rf "$bundle"' RETURN
    podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$image" >"$bundle/env"
    python3 - "$bundle" "$rootfs" "$IMAGE_UID" "$memory" "$@" <<'EOF'
import json, sys
bundle, rootfs, uid, memory, *args = sys.argv[1:]
env = [line for line in open(f"{bundle}/env").read().splitlines() if line]
spec = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": False, "user": {"uid": int(uid), "gid": int(uid)}, "args": args, "env": env, "cwd": "/tmp",
        "capabilities": {k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")},
        # Only RLIMIT_NOFILE, below the hard limit: see this script's header.
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": rootfs, "readonly": True},
    "hostname": "hwmatch",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777", "size=512m"]},
    ],
    "linux": {
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        "resources": {"memory": {"limit": int(memory)}} if memory else {},
    },
}
json.dump(spec, open(f"{bundle}/config.json", "w"), indent=1)
EOF
    runc run --bundle "$bundle" "$id" </dev/null || rc=$?
    return "$rc"
}

pin() {
    local py="$REPO/.venv/bin/python"
    [[ -x "$py" ]] || die "no $py: run make install"
    local report
    report="$(mktemp)"
    "$py" -m pip install --quiet --dry-run --ignore-installed --report "$report" "$REPO" >/dev/null
    {
        sed -n '1,2p' "$REPO/benchmark-image/requirements.txt"
        "$py" - "$report" <<'EOF'
import json, sys
for item in sorted(json.load(open(sys.argv[1]))["install"], key=lambda i: i["metadata"]["name"].lower()):
    meta = item["metadata"]
    if meta["name"] != "hwmatch":
        print(f"{meta['name']}=={meta['version']}")
EOF
    } >"$report.txt"
    mv -f "$report.txt" "$REPO/benchmark-image/requirements.txt"
    rm -f "$report"
    log "pinned $(grep -c '==' "$REPO/benchmark-image/requirements.txt") packages in benchmark-image/requirements.txt"
}

case "${1:-}" in
    build) build ;;
    base) base ;;
    names) printf '%s\n%s\n' "$BENCHMARK" "$OPERATOR" ;;
    push) shift; push "$@" ;;
    run) shift; run "$@" ;;
    pause) pause ;;
    import) shift; import "$@" ;;
    pin) pin ;;
    *) echo "usage: $0 build|base|names|pause|import SOCKET IMAGE...|push REGISTRY|run IMAGE -- CMD...|pin" >&2; exit 2 ;;
esac
