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


@pytest.fixture
def tmpfs(tmp_path: Path):
    """A small tmpfs (root only), unmounted afterwards."""
    where = tmp_path / "small"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _succeeded(db: Path) -> int:
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("SELECT COUNT(*) FROM trials WHERE status = 'Succeeded'").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_full_disk_stops_the_run_with_the_finished_trials_named_and_a_rerun_resumes(tmp_path, tmpfs):
    sweep = manifests(tmp_path, "[ok]", "[1, 2, 3, 4, 5, 6, 7, 8]")
    db = tmpfs / "store.db"
    command = [HWMATCH, "run", str(sweep), "--store", str(db)]
    env = dict(os.environ, COLUMNS="500")
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _succeeded(db) < 2 and first.poll() is None:
        time.sleep(0.02)
    filler = tmpfs / "filler"
    with open(filler, "wb", buffering=0) as f:  # fill the file system to the last byte
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    output = first.communicate(timeout=120)[0]
    assert first.returncode == 1, output
    assert "Traceback" not in output and "OperationalError" not in output, output
    assert str(db) in output and "disk is full" in output and "finished in this run and are kept" in output, output
    assert "run the same command again to resume" in output
    filler.unlink()
    second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=200, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    with Store(db) as store:
        trials = store.trials()
    assert len(trials) == 16 and all(t.status.phase == "Succeeded" for t in trials)
    log = [json.loads(line) for line in (tmp_path / "marks" / "log").read_text().splitlines()]
    assert len(log) <= 16 + 2  # at most the attempts that were running when the disk filled ran twice


class _Trickle:
    """An HTTP server on 127.0.0.1 that answers every request one byte at a time, a byte every 0.3 s."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn) -> None:
        body = b'{"status": "success", "data": {"resultType": "vector", "result": []}}' + b" " * 10_000
        reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        conn.recv(65536)
        try:
            for i in range(len(reply)):
                if self.stop.is_set():
                    break
                conn.sendall(reply[i:i + 1])
                time.sleep(0.3)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_a_slow_prometheus_is_cut_off_at_the_deadline(tmp_path):
    (tmp_path / "asset.yaml").write_text(textwrap.dedent("""
        apiVersion: hwmatch.dev/v1alpha1
        kind: AIAsset
        metadata: {name: watts}
        spec:
          command: [x]
          metrics: [{name: gpu_energy_j, source: prometheus, preset: dcgm-energy}]
    """))
    server = _Trickle()
    try:
        done = subprocess.run(
            [HWMATCH, "telemetry", str(tmp_path / "asset.yaml"), "-n", "bench", "--pod", "p", "--start", "1000",
             "--end", "1030", "--prometheus-url", f"http://127.0.0.1:{server.port}", "--timeout", "2"],
            capture_output=True, text=True, timeout=80, env=dict(os.environ, COLUMNS="500"))
    finally:
        server.close()
    output = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in output, output
    assert f"Prometheus at http://127.0.0.1:{server.port} is unreachable (no complete answer within 2s)" in output
