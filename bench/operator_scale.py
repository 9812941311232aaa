"""The operator at cluster scale: 1,000 simulated nodes, sweeps that add up to 1,000 and 10,000 trials.

A control plane of its own (``hack/cluster.sh`` in its own state directory,
the controller manager's and scheduler's client rate raised to
:data:`CONTROL_PLANE_QPS`) with ``--nodes`` kwok nodes in ``--pools`` pools, and for each size one
namespace holding one AIAsset, one BenchmarkSweep per pool (their budgets add
up to the size) and one HWRecommendation over all pools, applied together as a
user would. The asset's image is ``kwok.hwmatch.dev/simulated-benchmark``: kwok
finishes its pods after 1-4 s with a harness result in the termination message
(``hack/kwok/stages.yaml``, stage ``pod-complete-harness``), so trials succeed
and the recommendation is solved at scale too.

``hwmatch operator`` runs here as a process, watching only that namespace,
and is SIGKILLed and restarted ``--kills`` times during the biggest size (at
even fractions of its trials). Measured, per size:

- wall time from apply to the last trial recorded, and trials per second;
- the operator's peak RSS (each process's VmHWM; the largest) and CPU seconds;
- the operator's API requests (its client's ``hwmatch_kube_requests_total``)
  per second, and the Events it posted;
- reconcile pass durations of sweeps, p50 and p99 (from the operator's
  ``hwmatch_reconcile_seconds`` histogram: bucket bounds, so "p99 <= 1 s" is
  read exactly off the 1 s bucket);
- bytes in etcd per BenchmarkTrial (the stored values under its key prefix,
  read from etcd);
- the recommendation's (re)solve at that size: from the last trial recorded
  to the recommendation's answer on all trials (it re-solves as results
  arrive), and from applying a second recommendation after the sweeps to its
  answer (a solve from nothing);
- correctness: every trial Succeeded, and the API server counted one Job
  create (201) per trial (``apiserver_request_total``), also across the kills.

The figures are printed side by side, with each size's ratio to the smallest.

    .venv/bin/python bench/operator_scale.py [--trials 1000,10000] [--nodes 1000] [--pools 10] [--kills 3]
        [--parallelism 40] [--keep] [--json FILE]

Needs the control plane binaries (``make cluster-build``). On a 2-core machine
the control plane, not the operator, sets the pace (about 2-3 trials/s, the
API server saturated at about 126 requests/s, half of them the nodes' own):
about 8 minutes at 1,000 trials and over an hour at 10,000, plus the cluster's
start.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
HACK = ROOT / "hack"
HWMATCH = str(Path(sys.executable).parent / "hwmatch")
IMAGE = "kwok.hwmatch.dev/simulated-benchmark"
GROUP, VERSION = "hwmatch.dev", "v1alpha1"
DEFAULT_DIR = Path.home() / ".cache" / "hwmatch" / "scale-cluster"
#: The Job controller's and the scheduler's client rate here (theirs by default: 20 and 50 requests/s, which cap a
#: cluster at a few trials a second whatever the operator does); a cluster of 1,000 nodes is tuned so too.
CONTROL_PLANE_QPS = 500
TARGETS = {"rss_mib": 300 * 1e6 / 2**20, "reconcile_p99_s": 1.0, "resolve_s": 30.0}


# -- the cluster ----------------------------------------------------------------------------------


def pools_file(nodes: int, pools: int, path: Path) -> Path:
    """hack/nodepools.yaml's real node plus ``pools`` kwok pools sim-0.. of ``nodes`` nodes in all."""
    base = yaml.safe_load((HACK / "nodepools.yaml").read_text())
    local = [p for p in base["pools"] if p.get("kubelet") == "local"]
    per = math.ceil(nodes / pools)
    region = base.get("region", "local")
    sim = [{"name": f"sim-{i}", "kubelet": "kwok", "count": per, "arch": "amd64", "instanceType": f"sim-{i}",
            "zones": [f"{region}-a", f"{region}-b", f"{region}-c"],
            "capacity": {"cpu": "64", "memory": "256Gi", "ephemeral-storage": "1Ti", "pods": "110"}}
           for i in range(pools)]
    path.write_text(yaml.safe_dump({"region": region, "pools": local + sim}))
    return path


class Cluster:
    """hack/cluster.sh in its own state directory; kubectl, the API server's and etcd's metrics, etcd's keys."""

    def __init__(self, state: Path, pools: Path):
        self.state, self.pools = state, pools
        self.env = {**os.environ, "HWMATCH_CLUSTER_DIR": str(state), "HWMATCH_NODEPOOLS": str(pools),
                    "HWMATCH_PYTHON": sys.executable, "HWMATCH_CLUSTER_QPS": str(CONTROL_PLANE_QPS)}

    def script(self, verb: str) -> None:
        subprocess.run(["bash", str(HACK / "cluster.sh"), verb], env=self.env, check=True)

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    def _vars(self) -> dict[str, str]:
        return dict(line.split("=", 1) for line in (self.state / "env").read_text().splitlines() if "=" in line)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        kubectl = Path(self._vars()["BIN"]) / "kubectl"
        proc = subprocess.run([str(kubectl), "--kubeconfig", str(self.kubeconfig), *args], input=input,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def get(self, *args: str) -> dict[str, Any]:
        return dict(json.loads(self.kubectl("get", *args, "-o", "json")))

    def apiserver_metrics(self) -> str:
        return self.kubectl("get", "--raw", "/metrics")

    def _etcd(self, path: str, body: dict[str, Any] | None = None) -> bytes:
        url = f"http://127.0.0.1:{self._vars()['ETCD_PORT']}{path}"
        data = json.dumps(body).encode() if body is not None else None
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=60) as resp:
            return bytes(resp.read())

    def etcd_values(self, prefix: str) -> tuple[int, int]:
        """(keys, total bytes of their values) under ``prefix`` (etcd's v3 JSON gateway)."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        enc = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
        answer = json.loads(self._etcd("/v3/kv/range", {"key": enc(prefix), "range_end": enc(end)}))
        kvs = answer.get("kvs") or []
        return len(kvs), sum(len(base64.b64decode(kv.get("value", ""))) for kv in kvs)

    def etcd_db_in_use(self) -> float:
        return metric(self._etcd("/metrics").decode(), "etcd_mvcc_db_total_size_in_use_in_bytes")


# -- Prometheus text ------------------------------------------------------------------------------------


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, _, value = line.rpartition(" ")
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', head))
            out.append((labels, float(value)))
    return out


def metric(text: str, name: str, **match: str) -> float:
    return sum(v for labels, v in samples(text, name) if all(labels.get(k) == m for k, m in match.items()))


def job_creates(apiserver: str) -> dict[str, float]:
    """POSTs of Jobs by response code, as the API server counted them."""
    out: dict[str, float] = {}
    for labels, value in samples(apiserver, "apiserver_request_total"):
        if labels.get("resource") == "jobs" and labels.get("verb") == "POST" and not labels.get("subresource"):
            out[labels.get("code", "")] = out.get(labels.get("code", ""), 0.0) + value
    return out


def histogram(texts: list[str], name: str, **match: str) -> dict[float, float]:
    """Cumulative bucket counts of a histogram, summed over the operator processes' last scrapes."""
    buckets: dict[float, float] = {}
    for text in texts:
        for labels, value in samples(text, name + "_bucket"):
            if all(labels.get(k) == m for k, m in match.items()):
                le = math.inf if labels["le"] == "+Inf" else float(labels["le"])
                buckets[le] = buckets.get(le, 0.0) + value
    return dict(sorted(buckets.items()))


def quantile(buckets: dict[float, float], q: float) -> float:
    """The upper bound of the bucket that holds quantile ``q`` (exact as a bound: "p99 <= that")."""
    total = buckets.get(math.inf, 0.0)
    if total == 0:
        return math.nan
    for le, count in buckets.items():
        if count >= q * total:
            return le
    return math.inf


def share_within(buckets: dict[float, float], bound: float) -> float:
    total = buckets.get(math.inf, 0.0)
    return buckets.get(bound, math.nan) / total if total else math.nan


# -- the operator -----------------------------------------------------------------------------------------


def _usage(pid: int) -> tuple[float, float] | None:
    """(peak RSS in MiB, CPU seconds) of a process, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    hwm = re.search(r"VmHWM:\s+(\d+) kB", status)
    return (int(hwm.group(1)) / 1024 if hwm else 0.0), (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Operator:
    """``hwmatch operator`` as a process watching one namespace; its peak RSS, CPU and last /metrics."""

    def __init__(self, cluster: Cluster, namespace: str, log: Path):
        self.metrics_port, self.health_port = free_port(), free_port()
        self.log = log.open("a")
        self.log_path = log
        self.proc = subprocess.Popen(
            [HWMATCH, "operator", "--namespace", namespace,
             f"--metrics-port={self.metrics_port}", f"--liveness-port={self.health_port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "KUBECONFIG": str(cluster.kubeconfig)})
        self.peak_rss = 0.0
        self.cpu = 0.0
        self.children: dict[int, tuple[float, float]] = {}  # the solver worker (and multiprocessing's tracker)
        self.last_metrics = ""

    def sample(self) -> None:
        if self.proc.poll() is not None:
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
            raise SystemExit(f"the operator exited with status {self.proc.returncode}:\n{tail}")
        got = _usage(self.proc.pid)
        if got is None:
            return
        rss, self.cpu = got
        self.peak_rss = max(self.peak_rss, rss)
        kids = []
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):  # a process's children are listed by the thread
            try:                                                     # that started them
                kids += (task / "children").read_text().split()
            except OSError:
                pass
        for kid in map(int, kids):
            usage = _usage(kid)
            if usage is not None:
                before = self.children.get(kid, (0.0, 0.0))
                self.children[kid] = (max(before[0], usage[0]), usage[1])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
                self.last_metrics = resp.read().decode()
        except OSError:
            pass

    def kill(self) -> None:
        self.sample()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self) -> None:
        self.sample()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# -- the workload ---------------------------------------------------------------------------------------------


def manifests(trials: int, pools: int, parallelism: int) -> list[dict[str, Any]]:
    """One asset, one sweep per pool (budgets adding up to ``trials``), one recommendation over every pool."""
    asset = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIAsset", "metadata": {"name": "scale"}, "spec": {
        "image": IMAGE, "command": ["hwmatch-bench", "run", "simulated"],
        "parameters": [{"name": "batch_size", "type": "int", "range": {"min": 1, "max": 64}},
                       {"name": "width", "type": "float", "range": {"min": 1, "max": 32}}],
        "metrics": [{"name": "latency_ms", "goal": "minimize", "unit": "ms"},
                    {"name": "throughput_per_s", "goal": "maximize", "unit": "1/s"},
                    {"name": "accuracy", "goal": "maximize"},
                    {"name": "memory_mb", "goal": "minimize", "unit": "MB"}]}}
    per = [trials // pools + (1 if i < trials % pools else 0) for i in range(pools)]
    docs: list[dict[str, Any]] = [asset]
    for i, budget in enumerate(per):
        docs.append({"apiVersion": f"{GROUP}/{VERSION}", "kind": "BenchmarkSweep", "metadata": {"name": f"sim-{i}"},
                     "spec": {"assetRef": {"name": "scale"},
                              "platforms": [{"name": f"sim-{i}", "nodeSelector": {"hwmatch.dev/pool": f"sim-{i}"},
                                             "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                                             "costPerHour": round(0.1 * (1 + i), 2),
                                             "features": {"vcpus": 4 + 4 * i, "arch": "x86_64"}}],
                              "sampling": {"strategy": "random", "budget": budget, "seed": i},
                              "parallelism": parallelism, "parallelismPerPlatform": parallelism,
                              "trialTimeout": "5m"}})
    docs.append(recommendation("scale", pools))
    return docs


def recommendation(name: str, pools: int) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "HWRecommendation", "metadata": {"name": name}, "spec": {
        "assetRef": {"name": "scale"}, "platforms": [f"sim-{i}" for i in range(pools)],
        "constraints": [{"metric": "accuracy", "min": 0.78}, {"metric": "latency_ms", "max": 60}],
        "throughput": {"requestsPerSecond": 2000, "maxReplicas": 64},
        "objective": {"minimize": "cost_per_hour"}, "confidence": 0.9}}


def apply(cluster: Cluster, namespace: str, docs: list[dict[str, Any]]) -> None:
    cluster.kubectl("apply", "-n", namespace, "--server-side", "-f", "-", input=yaml.safe_dump_all(docs))


def recorded(cluster: Cluster, namespace: str) -> tuple[int, int, int]:
    """(succeeded, failed, sweeps complete) from the sweeps' statuses."""
    sweeps = cluster.get("benchmarksweeps", "-n", namespace)["items"]
    succeeded = sum((s.get("status") or {}).get("succeeded", 0) for s in sweeps)
    failed = sum((s.get("status") or {}).get("failed", 0) for s in sweeps)
    done = sum(1 for s in sweeps if (s.get("status") or {}).get("phase") in ("Succeeded", "Failed"))
    return succeeded, failed, done


def ready(obj: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)


@dataclass
class Run:
    trials: int
    kills: int
    wall_s: float = math.nan
    trials_per_s: float = math.nan
    peak_rss_mib: float = math.nan
    cpu_s: float = math.nan
    solver_rss_mib: float = math.nan
    solver_cpu_s: float = math.nan
    api_requests: float = math.nan
    api_requests_per_s: float = math.nan
    events: float = math.nan
    reconcile_p50_s: float = math.nan
    reconcile_p99_s: float = math.nan
    reconcile_within_1s: float = math.nan
    etcd_bytes_per_trial: float = math.nan
    etcd_db_growth_per_trial: float = math.nan
    resolve_s: float = math.nan
    apply_to_ready_s: float = math.nan
    succeeded: int = 0
    failed: int = 0
    job_creates: dict[str, float] = field(default_factory=dict)
    recommendation: str = ""


def run_size(cluster: Cluster, trials: int, pools: int, parallelism: int, kills: int, logs: Path) -> Run:
    namespace = f"scale-{trials}"
    out = Run(trials=trials, kills=kills)
    cluster.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=600s")
    cluster.kubectl("create", "namespace", namespace)
    creates0 = job_creates(cluster.apiserver_metrics())
    db0 = cluster.etcd_db_in_use()
    operators = [Operator(cluster, namespace, logs / f"operator-{trials}.log")]
    time.sleep(3)  # its watches start before the objects come
    kill_at = [trials * (k + 1) / (kills + 1) for k in range(kills)]
    t0 = time.monotonic()
    apply(cluster, namespace, manifests(trials, pools, parallelism))
    done_at = None
    last_print = 0.0
    while True:
        time.sleep(1.0)
        operators[-1].sample()
        succeeded, failed, complete = recorded(cluster, namespace)
        now = time.monotonic() - t0
        if now - last_print >= 30:
            print(f"  {trials}: {now:5.0f}s {succeeded + failed}/{trials} recorded, rss {operators[-1].peak_rss:.0f} MiB",
                  file=sys.stderr)
            last_print = now
        if kill_at and succeeded + failed >= kill_at[0]:
            kill_at.pop(0)
            print(f"  {trials}: SIGKILL the operator at {succeeded + failed} recorded", file=sys.stderr)
            operators[-1].kill()
            operators.append(Operator(cluster, namespace, logs / f"operator-{trials}.log"))
        if complete == pools:
            done_at = now
            out.succeeded, out.failed = succeeded, failed
            break
        if now > 3 * 3600:
            raise SystemExit(f"{trials}: not complete after 3 h ({succeeded + failed} recorded)")
    out.wall_s = done_at
    out.trials_per_s = trials / done_at
    # The recommendation re-solves as results arrive: the time from the last trial to its answer on all of them.
    t_done = time.monotonic()
    out.resolve_s = math.nan
    while time.monotonic() - t_done < 600:
        rec = cluster.get("hwrecommendations", "scale", "-n", namespace)
        models = (rec.get("status") or {}).get("models") or {}
        if models and min(m.get("trainedOnTrials", 0) for m in models.values()) >= out.succeeded:
            out.resolve_s = time.monotonic() - t_done
            break
        time.sleep(0.5)
        operators[-1].sample()
    out.recommendation = (ready(rec) or {}).get("reason", "") + ": " + (ready(rec) or {}).get("message", "")[:160]
    # A second recommendation, applied once every trial exists: apply to Ready (or to its answer).
    t1 = time.monotonic()
    second = recommendation("scale-again", pools)
    apply(cluster, namespace, [second])
    while time.monotonic() - t1 < 600:
        rec2 = cluster.get("hwrecommendations", "scale-again", "-n", namespace)
        condition = ready(rec2) or {}
        if (rec2.get("status") or {}).get("observedGeneration") and condition.get("reason") not in (None, "Solving"):
            break
        time.sleep(0.5)
        operators[-1].sample()
    out.apply_to_ready_s = time.monotonic() - t1
    operators[-1].stop()
    texts = [o.last_metrics for o in operators]
    out.peak_rss_mib = max(o.peak_rss for o in operators)
    out.cpu_s = sum(o.cpu for o in operators)
    out.solver_rss_mib = max((rss for o in operators for rss, _ in o.children.values()), default=math.nan)
    out.solver_cpu_s = sum(cpu for o in operators for _, cpu in o.children.values())
    out.api_requests = sum(metric(t, "hwmatch_kube_requests_total") for t in texts)
    out.api_requests_per_s = out.api_requests / done_at
    out.events = sum(metric(t, "hwmatch_events_total") for t in texts)
    passes = histogram(texts, "hwmatch_reconcile_seconds", kind="BenchmarkSweep")
    out.reconcile_p50_s, out.reconcile_p99_s = quantile(passes, 0.5), quantile(passes, 0.99)
    out.reconcile_within_1s = share_within(passes, 1.0)
    keys, size = cluster.etcd_values(f"/registry/{GROUP}/benchmarktrials/{namespace}/")
    out.etcd_bytes_per_trial = size / keys if keys else math.nan
    out.etcd_db_growth_per_trial = (cluster.etcd_db_in_use() - db0) / trials
    creates = job_creates(cluster.apiserver_metrics())
    out.job_creates = {code: creates.get(code, 0) - creates0.get(code, 0) for code in creates
                       if creates.get(code, 0) - creates0.get(code, 0)}
    return out


# -- the table ----------------------------------------------------------------------------------------------


ROWS = [
    ("wall time to the last trial", "wall_s", "{:.0f} s"),
    ("trials per second", "trials_per_s", "{:.1f}"),
    ("operator peak RSS", "peak_rss_mib", "{:.0f} MiB"),
    ("operator CPU", "cpu_s", "{:.0f} s"),
    ("solver worker peak RSS", "solver_rss_mib", "{:.0f} MiB"),
    ("solver worker CPU", "solver_cpu_s", "{:.0f} s"),
    ("operator API requests", "api_requests", "{:.0f}"),
    ("operator API requests per second", "api_requests_per_s", "{:.1f}"),
    ("Events posted", "events", "{:.0f}"),
    ("sweep reconcile p50 (bucket bound)", "reconcile_p50_s", "<= {:g} s"),
    ("sweep reconcile p99 (bucket bound)", "reconcile_p99_s", "<= {:g} s"),
    ("sweep passes within 1 s", "reconcile_within_1s", "{:.1%}"),
    ("etcd bytes per BenchmarkTrial", "etcd_bytes_per_trial", "{:.0f} B"),
    ("etcd in-use growth per trial (all objects)", "etcd_db_growth_per_trial", "{:.0f} B"),
    ("recommendation answer on all trials, after the last", "resolve_s", "{:.1f} s"),
    ("new recommendation at that size, apply to answer", "apply_to_ready_s", "{:.1f} s"),
]


def table(runs: list[Run]) -> str:
    base = runs[0]
    head = f"{'':46}" + "".join(f"{f'{r.trials} trials':>22}" for r in runs)
    lines = [head]
    for label, key, fmt in ROWS:
        cells = []
        for r in runs:
            value = getattr(r, key)
            text = "-" if isinstance(value, float) and math.isnan(value) else fmt.format(value)
            ratio = getattr(base, key)
            if r is not base and isinstance(value, float) and ratio and not math.isnan(ratio) and math.isfinite(value):
                text += f" ({value / ratio:.1f}x)"
            cells.append(f"{text:>22}")
        lines.append(f"{label:46}" + "".join(cells))
    for r in runs:
        lines.append(f"{r.trials} trials: {r.succeeded} Succeeded, {r.failed} Failed, {r.kills} operator kills, "
                     f"Job POSTs by code {r.job_creates}; recommendation {r.recommendation}")
    big = runs[-1]
    lines.append(f"targets at {big.trials}: RSS <= {TARGETS['rss_mib']:.0f} MiB: {big.peak_rss_mib <= TARGETS['rss_mib']}; "
                 f"reconcile p99 <= 1 s: {big.reconcile_within_1s >= 0.99}; "
                 f"re-solve <= 30 s: {big.resolve_s <= 30}; "
                 f"one Job per trial: {big.job_creates == {'201': float(big.trials)}}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", default="1000,10000", help="Sizes, comma-separated (the last one gets the kills).")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pools", type=int, default=10)
    parser.add_argument("--parallelism", type=int, default=40, help="Trials at once per sweep (one sweep per pool).")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs of the operator during the biggest size.")
    parser.add_argument("--state", type=Path, default=DEFAULT_DIR, help="The cluster's state directory.")
    parser.add_argument("--keep", action="store_true", help="Leave the cluster running afterwards.")
    parser.add_argument("--reuse", action="store_true", help="Use the cluster running in --state (from --keep).")
    parser.add_argument("--json", type=Path, help="Also write the figures as JSON.")
    args = parser.parse_args()
    sizes = [int(s) for s in args.trials.split(",")]
    work = Path(tempfile.mkdtemp(prefix="hwmatch-scale-"))
    cluster = Cluster(args.state, pools_file(args.nodes, args.pools, work / "nodepools.yaml"))
    print(f"cluster: {args.nodes} kwok nodes in {args.pools} pools ({args.state}); logs in {work}", file=sys.stderr)
    if not args.reuse:
        cluster.script("down")
        cluster.script("up")
    try:
        cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        runs = []
        for i, size in enumerate(sizes):
            kills = args.kills if i == len(sizes) - 1 else 0
            print(f"{size} trials ({kills} operator kills)", file=sys.stderr)
            runs.append(run_size(cluster, size, args.pools, args.parallelism, kills, work))
            print(table(runs), file=sys.stderr)
    finally:
        if not args.keep:
            cluster.script("down")
    print(table(runs))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=2))


if __name__ == "__main__":
    main()
