"""kind (Kubernetes in Docker), for machines with Docker: `make kind-up`, then the example to a Ready recommendation.

The end-to-end test needs docker and kind and is skipped, saying so, where either
is missing. The kind configuration that `make kind-up` uses is checked everywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack"))
import nodepools  # noqa: E402  (hack/ is not a package: found through the path set above)

CLUSTER = "hwmatch-e2e"


def test_kind_config_has_one_worker_per_pool_of_this_architecture_with_its_labels() -> None:
    out = subprocess.run(["bash", str(REPO / "hack" / "kind.sh"), "config"], capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin", "HWMATCH_PYTHON": sys.executable})
    config = yaml.safe_load(out.stdout)
    assert config["kind"] == "Cluster" and config["nodes"][0] == {"role": "control-plane"}
    workers = {w["labels"]["hwmatch.dev/pool"]: w["labels"] for w in config["nodes"][1:]}
    doc = nodepools.load()
    expected = {p["name"] for p in doc["pools"] if p.get("arch", "amd64") in ("host", nodepools.host_arch())}
    assert set(workers) == expected and "local" in workers
    for pool in doc["pools"]:
        if pool["name"] in workers:
            assert {k: str(v) for k, v in (pool.get("labels") or {}).items()}.items() <= workers[pool["name"]].items()
    # Labels the kubelet sets itself are left to it (kind would refuse them).
    assert not any(k.startswith("kubernetes.io/") for labels in workers.values() for k in labels)


def _kind_unavailable() -> str | None:
    """Why the kind path cannot run here, or None."""
    missing = [tool for tool in ("docker", "kind", "kubectl") if shutil.which(tool) is None]
    if missing:
        return f"kind path: {', '.join(missing)} not installed here (docs/kind.md)"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=60, check=False).returncode != 0:
        return "kind path: the docker daemon does not answer (`docker info` fails; docs/kind.md)"
    return None


def test_kind_up_runs_the_example_to_a_ready_recommendation() -> None:
    reason = _kind_unavailable()
    if reason:
        pytest.skip(reason)
    env = {**os.environ, "HWMATCH_KIND_NAME": CLUSTER}
    kubectl = ["kubectl", "--context", f"kind-{CLUSTER}"]
    subprocess.run(["make", "kind-up"], cwd=REPO, check=True, timeout=2400,
                   env=env)
    try:
        benchmark = subprocess.run(["bash", str(REPO / "hack" / "images.sh"), "names"], capture_output=True,
                                   text=True, check=True).stdout.split()[0]
        docs = [d for d in yaml.safe_load_all((REPO / "examples" / "operator" / "digits-forest.yaml").read_text()) if d]
        for d in docs:
            if d["kind"] == "AIAsset":
                d["spec"]["image"] = benchmark
        subprocess.run([*kubectl, "create", "namespace", "demo"], check=True)
        subprocess.run([*kubectl, "apply", "-n", "demo", "-f", "-"], input=yaml.safe_dump_all(docs), text=True,
                       check=True)
        deadline = time.monotonic() + 900
        while True:
            out = subprocess.run([*kubectl, "get", "hwrecommendations", "-n", "demo", "-o", "json"],
                                 capture_output=True, text=True, check=True).stdout
            phases = [i.get("status", {}).get("phase") for i in json.loads(out)["items"]]
            if phases and all(p == "Ready" for p in phases):
                break
            assert time.monotonic() < deadline, f"recommendations not Ready after 900 s: {phases}"
            time.sleep(5)
    finally:
        subprocess.run(["bash", str(REPO / "hack" / "kind.sh"), "down"], env=env, check=False)
