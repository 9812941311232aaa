"""The chart's ``replicaCount: 2`` on the real control plane: one replica holds the Lease and reconciles, the
other stands by, and a SIGKILLed leader's sweep is finished by the standby with one Job per trial.

``helm install`` with ``replicaCount: 2`` puts the Deployment (two pods, on a kwok pool: they are scheduled and
Ready but run nothing), its PodDisruptionBudget and the Lease's Role into the API server. The replicas that
really run are two ``hwmatch operator`` processes here (a SIGKILL kills a process, not a thread of the test),
started with the Deployment's own arguments and the chart's service account's token: the chart's RBAC is what
they have. (The local node can run only one operator pod: its pods use the host's network, and two replicas
would want the same ports; tests/cluster/test_in_cluster.py runs the chart's operator in a pod.)

The leader is SIGKILLed mid-sweep; the standby takes the Lease once it has not been renewed for its duration,
finishes the sweep, and the API server counted exactly one Job create per trial (its own
``apiserver_request_total``, and a watch of the namespace's Jobs: no Job was created, deleted and created
again). The trials run on a kwok pool (pods complete in 1-4 s, NoResult), so the sweep is short.
"""

from __future__ import annotations

import base64
import json
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
from tests.cluster.test_helm_chart import can_i, helm_cmd  # noqa: F401 (fixture)
from tests.fixtures.prometheus import free_port
from tests.unit.test_chart import CHART

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "operator" / "digits-forest.yaml"
HWMATCH = str(Path(sys.executable).parent / "hwmatch")
GROUP, VERSION = "hwmatch.dev", "v1alpha1"
RELEASE = "hwm-ha"
LEASE = f"{RELEASE}-hwmatch"  # the chart's: its full name
TRIALS = 8
#: Where the Deployment's own pods go: a kwok pool (scheduled and Ready, nothing runs).
KWOK_POOL = {"hwmatch.dev/pool": "arm64"}


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


def _service_account_kubeconfig(cluster, ns: str, sa: str, path: Path) -> Path:
    """A kubeconfig of the chart's service account (a token from the TokenRequest API): its RBAC, not an admin's."""
    token = cluster.kubectl("create", "token", sa, "-n", ns, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    entry = admin["clusters"][0]
    if "certificate-authority" in entry["cluster"]:  # inline it: the file's path may be relative to the kubeconfig
        ca = (Path(cluster.kubeconfig).parent / entry["cluster"].pop("certificate-authority")).read_bytes()
        entry["cluster"]["certificate-authority-data"] = base64.b64encode(ca).decode()
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [entry],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": sa, "context": {"cluster": entry["name"], "user": sa, "namespace": ns}}],
        "current-context": sa}))
    return path


class Replica:
    """One ``hwmatch operator`` process with the chart's arguments; its log goes to a file (shown on failure)."""

    def __init__(self, args: list[str], kubeconfig: Path, name: str, log_dir: Path) -> None:
        self.name, self.metrics, self.health = name, free_port(), free_port()
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[str] = self.log_path.open("w")
        env = dict(os.environ, KUBECONFIG=str(kubeconfig), HWMATCH_POD_NAME=name)
        env.pop("KUBERNETES_SERVICE_HOST", None)
        # The chart's ports would clash on this one machine: the later flags win.
        self.proc = subprocess.Popen(
            [HWMATCH, *args, f"--metrics-port={self.metrics}", f"--liveness-port={self.health}"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, text=True)

    def get(self, port: int, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return str(resp.read().decode())

    def leader_gauge(self) -> float | None:
        try:
            match = re.search(r"^hwmatch_leader ([0-9.]+)$", self.get(self.metrics, "/metrics"), re.M)
        except OSError:
            return None
        return float(match.group(1)) if match else None

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
    return str(lease.spec.holder_identity or "")


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


def _install(cluster, ns: str, helm_cmd, tmp_path: Path) -> list[str]:  # noqa: F811
    """``helm install`` with ``replicaCount: 2``: its Deployment, PDB and the Lease's RBAC as the API server has
    them; the operator's arguments (the Deployment's)."""
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "replicaCount": 2, "nodeSelector": KWOK_POOL, "crds": {"enabled": False},
        "metrics": {"serviceMonitor": {"enabled": "false"}},
        "operator": {"watchNamespaces": [ns], "extraArgs": ["--resync=5"]}}))
    helm_cmd("install", RELEASE, str(CHART), "--namespace", ns, "-f", str(values))
    wait_until("the Deployment's two replicas to be available", lambda: (
        cluster.apps.read_namespaced_deployment(LEASE, ns).status.available_replicas or 0) == 2, timeout=120, interval=1)
    pdb = json.loads(cluster.kubectl("get", "pdb", LEASE, "-n", ns, "-o", "json").stdout)
    assert pdb["spec"]["maxUnavailable"] == 1
    wait_until("the PodDisruptionBudget to allow one disruption", lambda: json.loads(cluster.kubectl(
        "get", "pdb", LEASE, "-n", ns, "-o", "json").stdout).get("status", {}).get("disruptionsAllowed") == 1,
        timeout=60, interval=1)
    sa = f"system:serviceaccount:{ns}:{LEASE}"
    lease = "leases.coordination.k8s.io"
    assert can_i(cluster, sa, "create", lease, namespace=ns)
    assert not can_i(cluster, sa, "update", lease, namespace=ns)  # any Lease: no; the chart's, by name: below
    from kubernetes import client

    def may(verb: str, name: str, namespace: str) -> bool:
        review = client.AuthorizationV1Api(cluster.api_client).create_subject_access_review({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": sa, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}"],
                     "resourceAttributes": {"verb": verb, "group": "coordination.k8s.io", "resource": "leases",
                                            "name": name, "namespace": namespace}}})
        return bool(review.status.allowed)

    assert may("get", LEASE, ns) and may("update", LEASE, ns)
    assert not may("update", "another", ns) and not may("update", "local-0", "kube-node-lease")
    deployment = cluster.apps.read_namespaced_deployment(LEASE, ns)
    (container,) = deployment.spec.template.spec.containers
    assert container.command == ["hwmatch"] and "--leader-elect" in container.args, container.args
    assert f"--lease-name={LEASE}" in container.args and f"--lease-namespace={ns}" in container.args
    return list(container.args)


def test_the_charts_two_replicas_elect_a_leader_and_the_standby_finishes_a_killed_leaders_sweep(
        crds_installed, k8s_namespace, hwmatch_images, job_watch, helm_cmd, tmp_path) -> None:  # noqa: F811
    from kubernetes import client

    cluster, ns = crds_installed, k8s_namespace
    custom = client.CustomObjectsApi(cluster.api_client)
    t0 = time.monotonic()
    replicas: dict[str, Replica] = {}
    try:
        args = _install(cluster, ns, helm_cmd, tmp_path)
        kubeconfig = _service_account_kubeconfig(cluster, ns, LEASE, tmp_path / "sa.kubeconfig")
        print(f"\n[ha] chart installed, 2 replicas available, RBAC checked in {time.monotonic() - t0:.1f}s",
              file=sys.stderr)
        creates_before = _job_creates(cluster)
        replicas = {name: Replica(args, kubeconfig, name, tmp_path) for name in ("replica-a", "replica-b")}
        holder = wait_until("a replica to take the Lease", lambda: _holder(cluster, ns), timeout=60, interval=0.5)
        leader = next(r for name, r in replicas.items() if holder.startswith(f"{name}_"))
        standby = next(r for r in replicas.values() if r is not leader)
        # The standby is live (its /healthz) and serves its metrics, as a standby; the leader as the leader.
        wait_until("the standby's /healthz and /metrics", lambda: standby.healthy() and standby.leader_gauge() == 0,
                   timeout=30)
        wait_until("the leader's /healthz and /metrics", lambda: leader.healthy() and leader.leader_gauge() == 1,
                   timeout=30)
        # A third replica stands by too, and a SIGTERM stops it at once, cleanly, with the Lease untouched.
        extra = replicas["replica-c"] = Replica(args, kubeconfig, "replica-c", tmp_path)
        wait_until("the third replica's /healthz", extra.healthy, timeout=60, interval=0.5)
        assert extra.leader_gauge() == 0 and extra.stop() == 0, extra.tail()
        assert _holder(cluster, ns) == holder

        cluster.kubectl("apply", "--server-side", "-n", ns, "-f", "-",
                        input=yaml.safe_dump_all(_docs(hwmatch_images.benchmark)))
        applied = time.monotonic()
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
        print(f"[ha] leader {leader.name} SIGKILLed with {jobs_at_kill}/{TRIALS} Jobs created; {standby.name} "
              f"took the Lease after {took_lease:.1f}s (lease duration {DEFAULT_LEASE_DURATION:g}s) and created the "
              f"next Job after {first_job:.1f}s", file=sys.stderr)
        # at most the duration and two renewal periods (one to notice the last renewal, one to retry), and slack
        assert took_lease <= DEFAULT_LEASE_DURATION * (1 + 2 * 2 / 15) + 5, took_lease
        assert standby.leader_gauge() == 1

        sweep = wait_until("the sweep to complete under the new leader", lambda: (
            s := custom.get_namespaced_custom_object(GROUP, VERSION, ns, "benchmarksweeps", "ha"))
            and s.get("status", {}).get("phase") in ("Succeeded", "Failed") and s, timeout=120, interval=1)
        print(f"[ha] sweep of {TRIALS} trials complete {time.monotonic() - applied:.1f}s after it was applied",
              file=sys.stderr)
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
        # A leader that finds another holder in the Lease stops reconciling and exits (status 1), to be restarted
        # as a standby: it never reconciles beside the replica that took the Lease.
        last = replicas["replica-d"] = Replica(args, kubeconfig, "replica-d", tmp_path)
        wait_until("a new replica to take the released Lease at once", lambda: _holder(cluster, ns).startswith(
            "replica-d_") and last.leader_gauge() == 1, timeout=60, interval=0.5)
        cluster.kubectl("patch", "lease", LEASE, "-n", ns, "--type=merge", "-p",
                        json.dumps({"spec": {"holderIdentity": "intruder"}}))
        assert last.proc.wait(60) == 1, last.tail()
        assert "lost the Lease" in last.log_path.read_text() and "intruder holds it now" in last.log_path.read_text()
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
        helm_cmd("uninstall", RELEASE, "--namespace", ns, "--wait", check=False)
        print(f"[ha] {time.monotonic() - t0:.1f}s in all", file=sys.stderr)
