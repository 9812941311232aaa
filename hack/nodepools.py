"""Node objects for the local test cluster, from hack/nodepools.yaml.

    python hack/nodepools.py manifests [--kubelet kwok|local] [--file F]   Node YAML on stdout
    python hack/nodepools.py names [--kubelet kwok|local] [--file F]       node names, one a line
    python hack/nodepools.py kubelet [--file F]    the real node's name, labels and taints (JSON)

hack/cluster.sh applies the kwok nodes with kubectl; the real kubelet registers
the local node itself, with the name, labels and taints that ``kubelet`` prints.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import yaml

DEFAULT_FILE = Path(__file__).with_name("nodepools.yaml")
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
POOL_LABEL = "hwmatch.dev/pool"


def host_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def host_capacity() -> dict[str, str]:
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    st = os.statvfs("/")
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{mem_kib}Ki",
        "ephemeral-storage": f"{st.f_blocks * st.f_frsize // 1024}Ki",
        "pods": "110",
    }


def load(path: str | Path = DEFAULT_FILE) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def nodes(doc: dict, kubelet: str | None = None) -> list[dict]:
    """Node manifests (with status capacity/allocatable) for every pool."""
    region = doc.get("region", "local")
    out = []
    for pool in doc["pools"]:
        if kubelet and pool.get("kubelet", "kwok") != kubelet:
            continue
        arch = pool.get("arch", "amd64")
        if arch == "host":
            arch = host_arch()
        capacity = pool.get("capacity") or {}
        if capacity == "host":
            capacity = host_capacity()
        capacity = {k: str(v) for k, v in capacity.items()}
        zones = pool.get("zones") or [f"{region}-a"]
        for i in range(int(pool.get("count", 1))):
            name = f"{pool['name']}-{i}"
            labels = {
                "kubernetes.io/arch": arch,
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "node.kubernetes.io/instance-type": pool.get("instanceType", pool["name"]),
                "topology.kubernetes.io/region": region,
                "topology.kubernetes.io/zone": zones[i % len(zones)],
                POOL_LABEL: pool["name"],
            }
            labels.update({k: str(v) for k, v in (pool.get("labels") or {}).items()})
            annotations = {"node.alpha.kubernetes.io/ttl": "0"}
            if pool.get("kubelet", "kwok") == "kwok":
                annotations[KWOK_ANNOTATION[0]] = KWOK_ANNOTATION[1]
                labels["type"] = "kwok"
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": labels, "annotations": annotations},
                "spec": {},
                "status": {
                    "capacity": dict(capacity),
                    "allocatable": dict(capacity),
                    "nodeInfo": {
                        "architecture": arch, "operatingSystem": "linux", "bootID": "", "machineID": "",
                        "systemUUID": "", "containerRuntimeVersion": "", "kernelVersion": "",
                        "kubeProxyVersion": "", "kubeletVersion": "", "osImage": "",
                    },
                },
            }
            taints = [
                {k: str(v) for k, v in t.items()} for t in (pool.get("taints") or [])
            ]
            if taints:
                node["spec"]["taints"] = taints
            out.append(node)
    return out


#: Labels the kubelet sets on its node itself (it refuses them in --node-labels).
KUBELET_OWN_LABELS = ("kubernetes.io/arch", "kubernetes.io/os", "kubernetes.io/hostname")


def kubelet_node(doc: dict) -> dict:
    """The one node of this machine (the `local` pool) as the real kubelet registers it."""
    local = nodes(doc, "local")
    if len(local) != 1:
        raise SystemExit(f"hack/nodepools.yaml: exactly one node of this machine (kubelet: local, count: 1) is "
                         f"supported, found {len(local)}: {[n['metadata']['name'] for n in local]}")
    node = local[0]
    labels = {k: v for k, v in node["metadata"]["labels"].items() if k not in KUBELET_OWN_LABELS}
    return {"name": node["metadata"]["name"], "labels": labels, "taints": node["spec"].get("taints", [])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["manifests", "names", "kubelet"])
    p.add_argument("--file", default=str(DEFAULT_FILE))
    p.add_argument("--kubelet", choices=["kwok", "local"])
    a = p.parse_args(argv)
    if a.what == "kubelet":
        json.dump(kubelet_node(load(a.file)), sys.stdout)
        print()
        return 0
    ns = nodes(load(a.file), a.kubelet)
    if a.what == "names":
        for n in ns:
            print(n["metadata"]["name"])
    else:
        yaml.safe_dump_all(ns, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
