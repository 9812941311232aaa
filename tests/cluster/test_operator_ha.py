"""Two operator replicas on the real control plane: one holds the Lease and reconciles, the other stands by.

Each replica is a real ``hwmatch operator --leader-elect`` process (a SIGKILL kills a process, not a thread
of the test). The leader is SIGKILLed mid-sweep; the standby takes the Lease once it has not been renewed
for its duration, finishes the sweep, and the API server counted exactly one Job create per trial (its own
``apiserver_request_total``, and a watch of the namespace's Jobs: no Job was created, deleted and created
again). The trials run on a kwok pool (pods complete in 1-4 s, NoResult), so the sweep is short.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import IO, Iterator

import pytest
import yaml

from hwmatch.controller.config import DEFAULT_LEASE_DURATION
from hwmatch.execution.kubernetes import LABEL_TRIAL
from tests.cluster.helpers import wait_until
from tests.fixtures.prometheus import free_port

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "operator" / "digits-forest.yaml"
HWMATCH = str(Path(sys.executable).parent / "hwmatch")
GROUP, VERSION = "hwmatch.dev", "v1alpha1"
LEASE = "hwmatch-ha"
TRIALS = 8


def _docs(image: str) -> list[dict]:
    """The example's asset, and a sweep of :data:`TRIALS` trials one at a time on the kwok pool cpu-x86."""
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    asset = next(d for d in docs if d["kind"] == "AIAsset")
    asset["spec"]["image"] = image
    sweep = next(d for d in docs if d["kind"] == "BenchmarkSweep")
    sweep["metadata"]["name"] = "ha"
    sweep["spec"]["platforms"] = [p for p in sweep["spec"]["platforms"] if p["name"] == "cpu-x86"]
    sweep["spec"]["sampling"]["budget"] = TRIALS
    sweep["spec"]["parallelism"] = 1  # one trial at a time: the sweep lasts long enough to kill its leader
    return [asset, sweep]


class Replica:
    """One ``hwmatch operator --leader-elect`` process; its log goes to a file (printed when the test fails)."""

    def __init__(self, cluster, ns: str, name: str, log_dir: Path) -> None:
        self.name, self.metrics, self.health = name, free_port(), free_port()
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[str] = self.log_path.open("w")
        env = dict(os.environ, KUBECONFIG=cluster.kubeconfig, HWMATCH_POD_NAME=name)
        self.proc = subprocess.Popen(
            [HWMATCH, "operator", "--namespace", ns, "--leader-elect", "--lease-name", LEASE, "--lease-namespace", ns,
             "--metrics-port", str(self.metrics), "--liveness-port", str(self.health), "--resync", "5"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, text=True)

    def get(self, port: int, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.read().decode()

    def leader_gauge(self) -> float:
        match = re.search(r"^hwmatch_leader ([0-9.]+)$", self.get(self.metrics, "/metrics"), re.M)
        assert match, "no hwmatch_leader in /metrics"
        return float(match.group(1))

    def healthy(self) -> bool:
        try:
            return bool(self.get(self.health, "/healthz"))
        except OSError:
            return False

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        return f"--- {self.name} (exit {self.proc.poll()}) ---\n" + "\n".join(
            self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _holder(cluster, ns: str) -> str:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    try:
        lease = client.CoordinationV1Api(cluster.api_client).read_namespaced_lease(LEASE, ns)
    except ApiException as exc:
        if exc.status == 404:
            return ""
        raise
    return lease.spec.holder_identity or ""


def _job_creates(cluster) -> Counter:
    """The API server's own count of Job creates, by response code (cluster-wide: the test's are the only ones)."""
    out = cluster.kubectl("get", "--raw", "/metrics").stdout
    counts: Counter = Counter()
    for line in out.splitlines():
        if line.startswith("apiserver_request_total{") and 'resource="jobs"' in line and 'verb="POST"' in line \
                and 'subresource=""' in line:
            code = re.search(r'code="(\d+)"', line)
            counts[code.group(1) if code else "?"] += int(float(line.rsplit(" ", 1)[1]))
    return counts


@pytest.fixture
def job_watch(crds_installed, k8s_namespace) -> Iterator[dict[str, set[str]]]:
    """Every Job the namespace sees, by trial: the uids of each (two uids would be a trial's Job created twice)."""
    from kubernetes import watch

    seen: dict[str, set[str]] = {}
    stop = threading.Event()
    batch = crds_installed.batch

    def follow() -> None:
        w = watch.Watch()
        version = batch.list_namespaced_job(k8s_namespace).metadata.resource_version
        while not stop.is_set():
            for event in w.stream(batch.list_namespaced_job, k8s_namespace, resource_version=version,
                                  timeout_seconds=2):
                job = event["object"]
                version = job.metadata.resource_version
                seen.setdefault((job.metadata.labels or {}).get(LABEL_TRIAL, "?"), set()).add(job.metadata.uid)
                if stop.is_set():
                    break

    thread = threading.Thread(target=follow, name="job-watch", daemon=True)
    thread.start()
    yield seen
    stop.set()
    thread.join(10)


def test_the_standby_takes_over_from_a_killed_leader_and_no_job_is_created_twice(
        crds_installed, k8s_namespace, hwmatch_images, job_watch, tmp_path) -> None:
    from kubernetes import client

    cluster, ns = crds_installed, k8s_namespace
    custom = client.CustomObjectsApi(cluster.api_client)
    creates_before = _job_creates(cluster)
    replicas = {name: Replica(cluster, ns, name, tmp_path) for name in ("replica-a", "replica-b")}
    try:
        holder = wait_until("a replica to take the Lease", lambda: _holder(cluster, ns), timeout=60, interval=0.5)
        leader = next(r for name, r in replicas.items() if holder.startswith(f"{name}_"))
        standby = next(r for r in replicas.values() if r is not leader)
        # The standby is live and serves its metrics, as a standby.
        wait_until("the standby's /healthz and /metrics", lambda: standby.healthy() and standby.leader_gauge() == 0,
                   timeout=30)
        wait_until("the leader's metrics", lambda: leader.leader_gauge() == 1, timeout=30)

        cluster.kubectl("apply", "--server-side", "-n", ns, "-f", "-",
                        input=yaml.safe_dump_all(_docs(hwmatch_images.benchmark)))
        wait_until("the leader to start a few trials", lambda: len(job_watch) >= 2, timeout=90, interval=0.2)
        leader.proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        leader.proc.wait(10)
        jobs_at_kill = len(job_watch)

        new_holder = wait_until("the standby to take the Lease", lambda: (
            h := _holder(cluster, ns)) and not h.startswith(f"{leader.name}_") and h, timeout=60, interval=0.2)
        took_lease = time.monotonic() - killed_at
        assert new_holder.startswith(f"{standby.name}_"), new_holder
        wait_until("a Job created by the new leader", lambda: len(job_watch) > jobs_at_kill, timeout=60, interval=0.2)
        first_job = time.monotonic() - killed_at
        print(f"\n[ha] leader {leader.name} SIGKILLed with {jobs_at_kill}/{TRIALS} Jobs created; {standby.name} "
              f"took the Lease after {took_lease:.1f}s (lease duration {DEFAULT_LEASE_DURATION:g}s) and created the "
              f"next Job after {first_job:.1f}s", file=sys.stderr)
        assert took_lease <= DEFAULT_LEASE_DURATION * 2 / 15 * 2 + DEFAULT_LEASE_DURATION + 5, took_lease
        assert standby.leader_gauge() == 1

        sweep = wait_until("the sweep to complete under the new leader", lambda: (
            s := custom.get_namespaced_custom_object(GROUP, VERSION, ns, "benchmarksweeps", "ha"))
            and s.get("status", {}).get("phase") in ("Succeeded", "Failed") and s, timeout=120, interval=1)
        assert sweep["status"]["total"] == TRIALS and sweep["status"]["progress"] == f"{TRIALS}/{TRIALS}", sweep["status"]
        trials = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "benchmarktrials")["items"]
        names = {t["metadata"]["name"] for t in trials}
        assert len(names) == TRIALS and all(t["status"]["phase"] in ("Succeeded", "Failed") for t in trials)
        # Exactly one Job per trial: one uid each in the watch, and one successful create each at the API server.
        wait_until("the watch to see every Job", lambda: set(job_watch) == names, timeout=10)
        assert {trial: len(uids) for trial, uids in job_watch.items()} == dict.fromkeys(names, 1), job_watch
        creates = _job_creates(cluster) - creates_before
        print(f"[ha] the API server's Job creates by code: {dict(creates)}", file=sys.stderr)
        assert creates["201"] == TRIALS and creates["409"] == 0, creates

        # A replica stopped cleanly hands the Lease back at once (empty holder): no wait for its duration.
        assert standby.stop() == 0, standby.tail()
        assert _holder(cluster, ns) == ""
    except BaseException:
        for replica in replicas.values():
            replica.stop()
            print(replica.tail(), file=sys.stderr)
        raise
    finally:
        for replica in replicas.values():
            replica.stop()
        cluster.kubectl("delete", "-n", ns, "benchmarksweeps,aiassets", "--all", "--wait=true", "--timeout=60s",
                        check=False)
