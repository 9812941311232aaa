"""The harness's own cost per timed iteration, and how repeatable its p50 is.

1. Overhead: an empty workload timed by :class:`hwmatch.harness.Measurer`
   against a bare loop doing the least any timer must (two ``perf_counter_ns``
   reads around a no-op call, stored in a preallocated array). Also the p50
   the harness reports for that empty workload: the floor below which its
   latencies mean nothing.
2. Repeatability: the p50 of the same sklearn-forest trial over repeated runs,
   each in a fresh ``hwmatch-bench`` process (what an executor does), against
   the same number of repeated measurements inside one process after a single
   setup (the baseline: no process-to-process variation).

Run: ``.venv/bin/python bench/harness_overhead.py [--runs 10] [--iterations 200000]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from hwmatch.harness import Measurer
from hwmatch.harness.assets import ForestAsset

FOREST_PARAMS = {"model": "random_forest", "n_estimators": 50, "max_depth": 12, "batch_size": 64, "n_jobs": 1}
FOREST_SAMPLES = 100
REPEATS = 5  # best-of for the overhead loops, to see past scheduler noise on a shared machine


def noop() -> None:
    """The empty workload."""


def bare_loop_ns(n: int) -> float:
    """ns per iteration of the minimal timing loop."""
    clock = time.perf_counter_ns
    out = np.empty(n, dtype=np.int64)
    begin = clock()
    for i in range(n):
        t0 = clock()
        noop()
        out[i] = clock() - t0
    return (clock() - begin) / n


def harness_loop_ns(n: int) -> tuple[float, float]:
    """ns per iteration of ``Measurer.measure`` on the empty workload, and the p50 it reports (ns)."""
    measurer = Measurer(warmup=0, samples=n, time_budget_s=3600)
    begin = time.perf_counter_ns()
    timing = measurer.measure(noop)
    elapsed = time.perf_counter_ns() - begin
    return elapsed / n, timing.metrics(1)["latency_p50_ms"] * 1e6


def spread(values: list[float]) -> str:
    cv = statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else 0.0
    return (f"min {min(values):8.3f}  median {statistics.median(values):8.3f}  max {max(values):8.3f} ms  "
            f"CV {100 * cv:5.1f}%")


def forest_p50_in_process(runs: int) -> list[float]:
    asset = ForestAsset()
    asset.setup(FOREST_PARAMS)
    measurer = Measurer(warmup=ForestAsset.warmup, samples=FOREST_SAMPLES, time_budget_s=60)
    return [measurer.measure(asset.run_batch).metrics(asset.batch_size)["latency_p50_ms"] for _ in range(runs)]


def forest_p50_per_process(runs: int) -> list[float]:
    bench = str(Path(sys.executable).with_name("hwmatch-bench"))
    flags = [arg for k, v in FOREST_PARAMS.items() for arg in ("-p", f"{k}={v}")]
    values = []
    for _ in range(runs):
        proc = subprocess.run([bench, "run", "sklearn-forest", *flags, "--samples", str(FOREST_SAMPLES),
                               "--time-budget", "60"], capture_output=True, text=True, check=True)
        values.append(json.loads(proc.stdout.strip().splitlines()[-1])["metrics"]["latency_p50_ms"])
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="repetitions of the forest trial")
    parser.add_argument("--iterations", type=int, default=200_000, help="iterations of the empty workload")
    args = parser.parse_args()

    bare = min(bare_loop_ns(args.iterations) for _ in range(REPEATS))
    harness_runs = [harness_loop_ns(args.iterations) for _ in range(REPEATS)]
    harness = min(ns for ns, _ in harness_runs)
    floor = min(p50 for _, p50 in harness_runs)
    print(f"overhead, empty workload, {args.iterations} iterations, best of {REPEATS}")
    print(f"  bare perf_counter_ns loop (baseline): {bare:8.1f} ns/iteration")
    print(f"  hwmatch Measurer.measure:             {harness:8.1f} ns/iteration  ({harness / bare:.2f}x baseline)")
    print(f"  p50 reported for the empty workload:  {floor:8.1f} ns (latency floor)")

    params = ", ".join(f"{k}={v}" for k, v in FOREST_PARAMS.items())
    print(f"\nsklearn-forest p50 over {args.runs} runs ({params}; {FOREST_SAMPLES} samples each)")
    print(f"  one process, setup once (baseline): {spread(forest_p50_in_process(args.runs))}")
    print(f"  fresh hwmatch-bench process each:   {spread(forest_p50_per_process(args.runs))}")


if __name__ == "__main__":
    main()
