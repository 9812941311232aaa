"""What reading a sweep's Jobs and pods costs the operator per pass: the client's models against the wire's dicts.

A sweep pass lists the sweep's Jobs and pods on every pass. The kubernetes
client used to turn each list into model objects (``V1JobList``,
``V1PodList``) and the operator turned those back into dicts; the operator now
takes the dicts the API sent (``controller/kube.py``: ``_preload_content=False``
and ``json.loads``). This builds the JSON an API server answers for N trials
(each trial's Job from :func:`hwmatch.execution.kubernetes.job_manifest` and a
pod with a terminated container), then times both ways of reading it, in the
same run; the floor is ``json.loads`` alone.

    .venv/bin/python bench/kube_lists.py [--trials 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any, Callable

from kubernetes import client

from hwmatch.api import AIAsset, BenchmarkSweep, load_text
from hwmatch.controller.kube import _items
from hwmatch.execution.kubernetes import job_manifest
from hwmatch.planning import Planner

MANIFESTS = """
apiVersion: hwmatch.dev/v1alpha1
kind: AIAsset
metadata: {name: bench}
spec:
  image: ghcr.io/hwmatch/benchmark:latest
  command: [hwmatch-bench, run, sklearn-forest]
  parameters: [{name: n_estimators, type: int, range: {min: 1, max: 100000}}]
  metrics: [{name: latency_ms, goal: minimize}]
---
apiVersion: hwmatch.dev/v1alpha1
kind: BenchmarkSweep
metadata: {name: bench-sweep}
spec:
  assetRef: {name: bench}
  platforms: [{name: pool, nodeSelector: {hwmatch.dev/pool: pool}, resources: {requests: {cpu: "1"}}}]
  sampling: {strategy: random, budget: %d}
"""


class _Response:
    """What the client returns with ``_preload_content=False``: a urllib3 response, its body in ``data``."""

    def __init__(self, body: bytes):
        self.data = body


def _bodies(n: int) -> tuple[bytes, bytes]:
    """The JSON of a Job list and a pod list for ``n`` finished trials, as an API server would send them."""
    asset, sweep = (d.resource for d in load_text(MANIFESTS % n))
    assert isinstance(asset, AIAsset) and isinstance(sweep, BenchmarkSweep)
    jobs, pods = [], []
    for i, trial in enumerate(Planner(asset, sweep).plan()):
        trial.metadata.uid = f"uid-{i}"
        job = job_manifest(trial, asset, sweep)
        job["metadata"].update(uid=f"job-{i}", creationTimestamp="2026-01-01T00:00:00Z", resourceVersion=str(i))
        job["status"] = {"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:00:09Z"}],
                         "startTime": "2026-01-01T00:00:01Z", "completionTime": "2026-01-01T00:00:09Z", "succeeded": 1}
        jobs.append(job)
        pod_spec = dict(job["spec"]["template"]["spec"], nodeName="node-1")
        pods.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {**job["spec"]["template"]["metadata"], "name": f"{trial.metadata.name}-x",
                                  "namespace": "ns", "uid": f"pod-{i}", "creationTimestamp": "2026-01-01T00:00:01Z"},
                     "spec": pod_spec,
                     "status": {"phase": "Succeeded", "containerStatuses": [{
                         "name": "trial", "image": "img", "imageID": "", "ready": False, "restartCount": 0,
                         "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                                  "message": json.dumps({"metrics": {"latency_ms": 1.5}}),
                                                  "startedAt": "2026-01-01T00:00:02Z",
                                                  "finishedAt": "2026-01-01T00:00:08Z"}}}]}})
    def as_list(kind: str, items: list[dict[str, Any]]) -> bytes:
        return json.dumps({"apiVersion": "v1", "kind": kind, "metadata": {}, "items": items}).encode()

    return as_list("JobList", jobs), as_list("PodList", pods)


def _time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    api = client.ApiClient()
    jobs, pods = _bodies(args.trials)

    def models() -> None:  # what the operator did: models, then back to dicts
        for body, kind in ((jobs, "V1JobList"), (pods, "V1PodList")):
            api.sanitize_for_serialization(api.deserialize(body.decode(), kind, "application/json").items)

    def wire() -> None:  # what it does now
        _items(_Response(jobs))
        _items(_Response(pods))

    def floor() -> None:
        json.loads(jobs)
        json.loads(pods)

    figures = {"client models → dicts (before)": _time(models, args.repeats),
               "wire dicts (now)": _time(wire, args.repeats), "json.loads (floor)": _time(floor, args.repeats)}
    base = figures["json.loads (floor)"]
    print(f"reading one pass's Jobs and pods for {args.trials} trials ({len(jobs) + len(pods):,} bytes), "
          f"median of {args.repeats}:")
    for name, seconds in figures.items():
        print(f"  {name:32s} {seconds * 1e3:9.1f} ms   {seconds / base:6.1f}× the floor")


if __name__ == "__main__":
    main()
