"""Local sweeps for real: `hwmatch run` in a subprocess, pinned trial processes, SIGKILL and resume, failures."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from hwmatch.cli import app
from hwmatch.data.store import Store

HWMATCH = str(Path(sys.executable).parent / "hwmatch")
TWO_CPUS = {0, 1} <= os.sched_getaffinity(0)

# The asset: marks when it starts and when it has finished its work (one line per execution),
# then prints the harness result with what it saw of its CPU set and thread cap.
ASSET = textwrap.dedent("""
    import json, os, subprocess, sys, time
    from pathlib import Path
    p = json.loads(os.environ["HWMATCH_PARAMS"])
    marks = Path(os.environ["MARKS"])
    tid = os.environ["HWMATCH_TRIAL_ID"]
    (marks / (tid + ".started")).touch()
    mode = p.get("mode", "ok")
    if mode == "crash":
        print("loading the model", flush=True)
        print("boom: the model file is corrupt", file=sys.stderr)
        sys.exit(3)
    if mode == "hang":
        child = subprocess.Popen(["sleep", "120"])
        (marks / "grandchild.pid").write_text(str(child.pid))
        time.sleep(120)
    if mode == "oom":
        os.kill(os.getpid(), 9)
    if mode == "junk":
        print("this is not a result")
        sys.exit(0)
    time.sleep(p["sleep"])
    with open(marks / (tid + ".done"), "a") as f:
        f.write("done\\n")
    print(json.dumps({"metrics": {"latency_ms": 1.0 + p["n"]},
                      "host": {"affinity": sorted(os.sched_getaffinity(0)),
                               "omp": os.environ.get("OMP_NUM_THREADS"),
                               "openblas": os.environ.get("OPENBLAS_NUM_THREADS"),
                               "python": sys.executable}}))
""")


def write_manifests(tmp_path: Path, parameters: str, platforms: str, extra: str = "") -> Path:
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "asset.py"
    script.write_text(ASSET)
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent(f"""
        apiVersion: hwmatch.dev/v1alpha1
        kind: AIAsset
        metadata: {{name: sleeper}}
        spec:
          command: [python, {script}]
          env: {{MARKS: {marks}}}
          parameters: {parameters}
          metrics: [{{name: latency_ms, goal: minimize}}]
        ---
        apiVersion: hwmatch.dev/v1alpha1
        kind: BenchmarkSweep
        metadata: {{name: sleeper-sweep}}
        spec:
          assetRef: {{name: sleeper}}
          platforms: {platforms}
        """) + textwrap.indent(textwrap.dedent(extra), "  "))
    return path


def rows(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the run has not created the tables yet
        return []
    finally:
        con.close()


@pytest.mark.integration
@pytest.mark.timeout(300)
@pytest.mark.skipif(not TWO_CPUS, reason="needs CPUs 0 and 1")
def test_killed_run_resumes_and_runs_every_trial_once(tmp_path):
    sweep = write_manifests(
        tmp_path,
        parameters="[{name: n, type: int, values: [1, 2, 3]}, {name: sleep, type: float, values: [0.6]}]",
        platforms="[{name: cpu-1core, cpus: [0]}, {name: cpu-2core, cpus: [0, 1]}]",
        extra="sampling: {strategy: grid, repetitions: 2}\n",
    )
    db = tmp_path / "store.db"
    marks = tmp_path / "marks"
    command = [HWMATCH, "run", str(sweep), "--store", str(db)]

    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    interrupted = None
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and first.poll() is None:
        succeeded = rows(db, "SELECT COUNT(*) FROM trials WHERE status = 'Succeeded'")
        running = rows(db, "SELECT id FROM trials WHERE status = 'Running'")
        if succeeded and succeeded[0][0] >= 3 and running:
            tid = running[0][0]
            if (marks / f"{tid}.started").exists() and not (marks / f"{tid}.done").exists():
                first.send_signal(signal.SIGKILL)  # mid-trial: the trial sleeps 0.6 s after its mark
                interrupted = tid
                break
        time.sleep(0.02)
    first.wait(30)
    assert interrupted, "the first run never reached a point to kill it at"
    time.sleep(1.0)  # time enough for an orphaned trial to finish, were it left alive
    assert not (marks / f"{interrupted}.done").exists(), "the trial outlived the killed run"
    before = dict(rows(db, "SELECT id, status FROM trials"))
    assert before[interrupted] == "Running" and 3 <= list(before.values()).count("Succeeded") < 12

    second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=200)
    assert second.returncode == 0, second.stderr
    assert "kept from before" in second.stdout

    with Store(db) as store:
        trials = store.trials()
    assert len(trials) == 12 and all(t.status.phase == "Succeeded" and t.status.attempts == 1 for t in trials)
    for t in trials:
        done = (marks / f"{t.metadata.name}.done").read_text().splitlines()
        assert done == ["done"], f"{t.metadata.name} finished {len(done)} times"
        host = t.status.host
        cpus = [0] if t.spec.platform == "cpu-1core" else [0, 1]
        assert host["affinity"] == cpus and host["cpus"] == cpus
        assert host["omp"] == host["openblas"] == str(len(cpus))
        assert Path(host["python"]).parent == Path(sys.executable).parent  # `python` resolved in this venv


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_failures_are_recorded_with_reasons_and_log_tails(tmp_path):
    sweep = write_manifests(
        tmp_path,
        parameters="[{name: mode, type: categorical, values: [crash, hang, oom, junk]}]",
        platforms="[{name: cpu-1core, cpus: [0]}]",
        extra="trialTimeout: 2s\n",
    )
    db = tmp_path / "store.db"
    done = subprocess.run([HWMATCH, "run", str(sweep), "--store", str(db)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    with Store(db) as store:
        got = {t.spec.parameters["mode"]: t.status for t in store.trials()}
    assert {m: (s.phase, s.reason) for m, s in got.items()} == {
        "crash": ("Failed", "Crashed"), "hang": ("Failed", "Timeout"),
        "oom": ("Failed", "OOMKilled"), "junk": ("Failed", "NoResult")}
    assert "exited with code 3" in got["crash"].message
    assert "boom: the model file is corrupt" in got["crash"].log_tail
    assert "loading the model" in got["crash"].log_tail
    assert "this is not a result" in got["junk"].log_tail
    grandchild = int((tmp_path / "marks" / "grandchild.pid").read_text())
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE

    listing = CliRunner().invoke(app, ["trials", "--status", "failed", "--logs", "--store", str(db)])
    assert listing.exit_code == 0 and "boom: the model file is corrupt" in listing.output


def flat(result) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_cli_errors_are_clear(tmp_path):
    runner = CliRunner()
    assets_only = tmp_path / "asset.yaml"
    assets_only.write_text(textwrap.dedent("""
        apiVersion: hwmatch.dev/v1alpha1
        kind: AIAsset
        metadata: {name: lonely}
        spec: {command: [python], metrics: [{name: m}]}
    """))
    out = runner.invoke(app, ["run", str(assets_only), "--store", str(tmp_path / "s.db")])
    assert out.exit_code == 1 and "nothing to run; add a BenchmarkSweep or a HWRecommendation" in flat(out)

    orphan = tmp_path / "orphan.yaml"
    orphan.write_text(textwrap.dedent("""
        apiVersion: hwmatch.dev/v1alpha1
        kind: BenchmarkSweep
        metadata: {name: orphan}
        spec: {assetRef: {name: missing}, platforms: [{name: cpu-1core, cpus: [0]}]}
    """))
    out = runner.invoke(app, ["run", str(orphan), "--store", str(tmp_path / "s.db")])
    assert out.exit_code == 1 and "refers to AIAsset 'missing'" in flat(out)

    out = runner.invoke(app, ["trials", "--store", str(tmp_path / "none.db")])
    assert out.exit_code == 1 and "no store at" in flat(out)

    out = runner.invoke(app, ["export", "--out", str(tmp_path / "x.xlsx"), "--store", str(tmp_path / "s.db")])
    assert out.exit_code == 1 and "*.parquet or *.csv" in flat(out)


def test_local_executor_refuses_cluster_platforms_and_missing_cpus(tmp_path):
    sweep = write_manifests(
        tmp_path, parameters="[]",
        platforms="[{name: gpu-l4, nodeSelector: {accelerator: nvidia-l4}}]",
    )
    out = CliRunner().invoke(app, ["run", str(sweep), "--store", str(tmp_path / "s.db")])
    assert out.exit_code == 1 and "selects cluster nodes" in flat(out)
    sweep.write_text(sweep.read_text().replace("{name: gpu-l4, nodeSelector: {accelerator: nvidia-l4}}",
                                               "{name: huge, cpus: [0, 4095]}"))
    out = CliRunner().invoke(app, ["run", str(sweep), "--store", str(tmp_path / "s.db")])
    assert out.exit_code == 1 and "cpus [0, 4095] are not all available" in flat(out)


@pytest.mark.integration
def test_export_writes_the_dataset(tmp_path):
    sweep = write_manifests(
        tmp_path,
        parameters="[{name: n, type: int, values: [1, 2]}, {name: sleep, type: float, values: [0.0]}]",
        platforms="[{name: cpu-1core, cpus: [0], costPerHour: 0.02}]",
    )
    db = str(tmp_path / "s.db")
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(sweep), "--store", db]).exit_code == 0
    out = runner.invoke(app, ["export", "--out", str(tmp_path / "d.csv"), "--asset", "sleeper", "--store", db])
    assert out.exit_code == 0, out.output
    lines = (tmp_path / "d.csv").read_text().splitlines()
    assert lines[0] == ("trial_id,asset,sweep,platform,repetition,status,reason,cost_per_hour,"
                        "param.n,param.sleep,feature.vcpus,metric.latency_ms")
    body = sorted((line.split(",") for line in lines[1:]), key=lambda r: r[8])
    assert [(r[3], r[5], r[7], r[8], r[10], r[11]) for r in body] == [
        ("cpu-1core", "Succeeded", "0.02", "1", "1", "2.0"), ("cpu-1core", "Succeeded", "0.02", "2", "1", "3.0")]


def test_trial_environment(monkeypatch):
    from hwmatch.api import load_text
    from hwmatch.execution import THREAD_VARIABLES, LocalExecutor
    from hwmatch.planning import Planner

    monkeypatch.setenv("OPENBLAS_CORETYPE", "ARMV8")
    monkeypatch.setenv("OMP_NUM_THREADS", "16")
    asset, sweep = (d.resource for d in load_text(textwrap.dedent("""
        apiVersion: hwmatch.dev/v1alpha1
        kind: AIAsset
        metadata: {name: a}
        spec:
          command: [python]
          env: {EXTRA: "1"}
          parameters: [{name: n, type: int, values: [3]}]
          instanceFeatures: [{name: rows}]
          metrics: [{name: m}]
        ---
        apiVersion: hwmatch.dev/v1alpha1
        kind: BenchmarkSweep
        metadata: {name: s}
        spec:
          assetRef: {name: a}
          instances: [{rows: 10}]
          platforms: [{name: pinned, cpus: [0], threads: 3}, {name: free}]
    """)))
    pinned, free = Planner(asset, sweep).plan()
    env = LocalExecutor().environment(pinned, asset, sweep.spec.platform("pinned"))
    assert json.loads(env["HWMATCH_PARAMS"]) == {"n": 3, "rows": 10.0}
    assert json.loads(env["HWMATCH_INSTANCE"]) == {"rows": 10.0}
    assert env["HWMATCH_TRIAL_ID"] == pinned.metadata.name and env["HWMATCH_PLATFORM"] == "pinned"
    assert all(env[v] == "3" for v in THREAD_VARIABLES)
    assert env["OPENBLAS_CORETYPE"] == "ARMV8" and env["EXTRA"] == "1"
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    unpinned = LocalExecutor().environment(free, asset, sweep.spec.platform("free"))
    assert unpinned["OMP_NUM_THREADS"] == "16"  # no cap asked: the user's setting stays
