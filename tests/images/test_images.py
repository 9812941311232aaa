"""The images of benchmark-image/Containerfile, built here (hack/images.sh) and run in real containers.

Containers run under runc (``hack/images.sh run``), as the images' user, with a
read-only root file system and a tmpfs at /tmp: what a trial's pod gets.
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.fixtures.cluster import Images

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def run_in(image: str, *command: str, memory: int | None = None) -> subprocess.CompletedProcess:
    limit = ["--memory", str(memory)] if memory else []
    return subprocess.run(["bash", str(REPO / "hack" / "images.sh"), "run", image, *limit, "--", *command],
                          capture_output=True, text=True, timeout=600, check=False)


def inspect(image: str) -> dict:
    out = subprocess.run(["podman", "image", "inspect", image], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


def test_the_benchmark_image_runs_sklearn_forest_as_non_root_on_a_read_only_root(hwmatch_images: Images) -> None:
    proc = run_in(hwmatch_images.benchmark, "hwmatch-bench", "run", "sklearn-forest",
                  "--param", "n_estimators=5", "--param", "batch_size=16", "--warmup", "1", "--samples", "5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    metrics = result["metrics"]
    assert 0 < metrics["accuracy"] <= 1 and metrics["latency_p50_ms"] > 0, metrics
    assert result["samples"] == 5 and result["parameters"]["n_estimators"] == 5, result


def test_a_container_of_the_image_is_its_non_root_user_and_cannot_write_its_root(hwmatch_images: Images) -> None:
    script = ("import getpass, os, json\n"
              "try:\n    open('/opt/hwmatch/x', 'w'); wrote = True\nexcept OSError as e:\n    wrote = e.strerror\n"
              "open('/tmp/scratch', 'w').write('ok')\n"
              "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'root': wrote, 'home': os.environ['HOME'],\n"
              "                  'user': getpass.getuser()}))")
    proc = run_in(hwmatch_images.benchmark, "python3", "-c", script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    # A named user (kopf asks for the name at start-up), non-root, whose root file system is read-only.
    assert seen == {"uid": 65532, "gid": 65532, "root": "Read-only file system", "home": "/tmp", "user": "nonroot"}


def test_a_memory_limit_below_the_need_kills_the_benchmark(hwmatch_images: Images) -> None:
    """The cgroup limit of the spec is enforced: 40 MiB cannot even import scikit-learn."""
    proc = run_in(hwmatch_images.benchmark, "hwmatch-bench", "run", "sklearn-forest", memory=40 * 2**20)
    assert proc.returncode == 137, (proc.returncode, proc.stderr[-2000:])


def test_the_operator_image_starts_the_operator_cli(hwmatch_images: Images) -> None:
    proc = run_in(hwmatch_images.operator, "hwmatch", "operator", "--help")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--all-namespaces" in proc.stdout


def test_both_images_say_what_they_are_and_run_as_non_root(hwmatch_images: Images) -> None:
    benchmark, operator = inspect(hwmatch_images.benchmark), inspect(hwmatch_images.operator)
    for image, title, cmd in ((benchmark, "hwmatch-benchmark", ["hwmatch-bench", "list"]),
                              (operator, "hwmatch", ["hwmatch", "operator", "--all-namespaces"])):
        config = image["Config"]
        labels = config["Labels"]
        assert labels["org.opencontainers.image.title"] == title
        assert labels["org.opencontainers.image.version"] == VERSION
        assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
        assert config["User"] == "65532:65532" and config["Cmd"] == cmd and config["WorkingDir"] == "/tmp"
    # One environment, two entry points: the operator image adds no layer to the benchmark's.
    assert benchmark["RootFS"]["Layers"] == operator["RootFS"]["Layers"]
    assert hwmatch_images.tag == VERSION
