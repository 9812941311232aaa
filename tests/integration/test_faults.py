"""Faults during local sweeps: two runners on one sweep, a SIGKILLed run's grandchildren, a full disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from hwmatch.data.store import Store

HWMATCH = str(Path(sys.executable).parent / "hwmatch")

# Each execution appends one line to MARKS/log: trial, platform, start, end (wall clock), then crashes
# (mode crash) or prints a result; mode spawn leaves a grandchild that sleeps, its pid in MARKS/spawned.
ASSET = textwrap.dedent("""
    import json, os, subprocess, sys, time
    from pathlib import Path
    p = json.loads(os.environ["HWMATCH_PARAMS"])
    marks = Path(os.environ["MARKS"])
    tid, platform = os.environ["HWMATCH_TRIAL_ID"], os.environ["HWMATCH_PLATFORM"]
    if p["mode"] == "spawn":
        child = subprocess.Popen(["sleep", "300"])
        (marks / "spawned").write_text(str(child.pid))
        time.sleep(300)
    start = time.time()
    time.sleep(0.15)
    with open(marks / "log", "a") as f:
        f.write(json.dumps([tid, platform, start, time.time()]) + "\\n")
    if p["mode"] == "crash" and p["n"] % 2:
        sys.exit(3)
    print(json.dumps({"metrics": {"latency_ms": 1.0 + p["n"]}}))
""")


def manifests(tmp_path: Path, modes: str, n: str, backoff: int = 0) -> Path:
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    (tmp_path / "asset.py").write_text(ASSET)
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent(f"""
        apiVersion: hwmatch.dev/v1alpha1
        kind: AIAsset
        metadata: {{name: faulty}}
        spec:
          command: [python, {tmp_path / 'asset.py'}]
          env: {{MARKS: {marks}}}
          parameters:
            - {{name: mode, type: categorical, values: {modes}}}
            - {{name: n, type: int, values: {n}}}
          metrics: [{{name: latency_ms, goal: minimize}}]
        ---
        apiVersion: hwmatch.dev/v1alpha1
        kind: BenchmarkSweep
        metadata: {{name: faulty-sweep}}
        spec:
          assetRef: {{name: faulty}}
          platforms: [{{name: a, cpus: [0]}}, {{name: b, cpus: [0]}}]
          sampling: {{strategy: grid}}
          parallelism: 2
          backoffLimit: {backoff}
        """))
    return path


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_two_runners_on_one_sweep_keep_the_retry_limit_and_one_trial_per_platform(tmp_path):
    sweep = manifests(tmp_path, "[crash]", "[1, 2, 3, 4, 5, 6]", backoff=1)
    db = tmp_path / "store.db"
    command = [HWMATCH, "run", str(sweep), "--store", str(db)]
    runners = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    outputs = [r.communicate(timeout=240)[0] for r in runners]
    assert all(r.returncode == 0 for r in runners), outputs
    assert "Traceback" not in "".join(outputs)
    log = [json.loads(line) for line in (tmp_path / "marks" / "log").read_text().splitlines()]
    executions: dict[str, int] = {}
    for tid, *_ in log:
        executions[tid] = executions.get(tid, 0) + 1
    with Store(db) as store:
        trials = {t.metadata.name: t for t in store.trials()}
    assert len(trials) == 12 and set(executions) == set(trials)
    for tid, trial in trials.items():
        limit = 1 if trial.status.phase == "Succeeded" else 2  # backoffLimit 1: two attempts of a failing trial
        assert executions[tid] == limit == trial.status.attempts, (tid, executions[tid], trial.status)
    for platform in ("a", "b"):
        spans = sorted((start, end) for _, p, start, end in log if p == platform)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end, f"two trials on platform {platform} at once"
    assert any("being run by another hwmatch run" in out for out in outputs), outputs


def _sleepers_of(pid_file: Path) -> list[psutil.Process]:
    if not pid_file.exists():
        return []
    try:
        return [psutil.Process(int(pid_file.read_text()))]
    except (psutil.NoSuchProcess, ValueError):
        return []


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_sigkilled_runs_grandchildren_do_not_survive_the_next_start(tmp_path):
    sweep = manifests(tmp_path, "[spawn]", "[1]")
    db = tmp_path / "store.db"
    command = [HWMATCH, "run", str(sweep), "--store", str(db)]
    spawned = tmp_path / "marks" / "spawned"
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _sleepers_of(spawned):
        time.sleep(0.05)
    grandchild = _sleepers_of(spawned)
    assert grandchild, "the trial never started its child"
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    time.sleep(0.5)
    assert grandchild[0].is_running() and grandchild[0].status() != psutil.STATUS_ZOMBIE, \
        "the grandchild died with the run: the test shows nothing"
    os.unlink(spawned)
    # The next start (a sweep whose trial spawns again: stop it as soon as it has)
    second = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _sleepers_of(spawned):
            time.sleep(0.05)
        try:
            alive = grandchild[0].is_running() and grandchild[0].status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            alive = False
        assert not alive, "the killed run's grandchild survived the next start"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
        for p in _sleepers_of(spawned):
            p.kill()
