"""The workflow that publishes the images from a fork (.github/workflows/images.yaml), checked by actionlint."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "images.yaml"


@pytest.fixture(scope="module")
def actionlint() -> str:
    """actionlint, built from the Go module proxy on first use (hack/build.sh --actionlint, cached)."""
    if shutil.which("go") is None:
        pytest.skip("actionlint is built with the Go toolchain, which is not installed: install Go >= 1.26")
    proc = subprocess.run(["bash", str(REPO / "hack" / "build.sh"), "--actionlint"],
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_actionlint_finds_nothing_wrong_with_the_images_workflow(actionlint: str) -> None:
    # With shellcheck installed (make system-deps), actionlint checks the run: scripts with it too.
    proc = subprocess.run([actionlint, str(WORKFLOW)], capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_would_catch_a_broken_workflow(actionlint: str, tmp_path: Path) -> None:
    """The check can fail: an unknown expression context in the same workflow is reported."""
    broken = tmp_path / ".github" / "workflows" / "images.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace("${{ matrix.target }}", "${{ matrix.nosuchkey }}", 1))
    proc = subprocess.run([actionlint, str(broken)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          check=False)
    assert proc.returncode == 1 and "nosuchkey" in proc.stdout, proc.stdout + proc.stderr


def test_the_workflow_builds_both_targets_of_the_containerfile() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    job = doc["jobs"]["publish"]
    assert job["strategy"]["matrix"]["target"] == ["benchmark", "operator"]
    build = next(s for s in job["steps"] if s.get("uses", "").startswith("docker/build-push-action"))
    assert build["with"]["file"] == "benchmark-image/Containerfile"
    containerfile = (REPO / "benchmark-image" / "Containerfile").read_text()
    assert all(f"AS {t}" in containerfile for t in job["strategy"]["matrix"]["target"])
