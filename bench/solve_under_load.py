"""How long one recommendation solve takes, idle and with the CPUs busy (what an operator's re-solve costs).

The operator re-solves a HWRecommendation when a sweep records a succeeded
trial (and on every resync when the data changed). This times
:func:`hwmatch.engine.answer` on the example of ``examples/operator/`` with 4,
8 and 16 succeeded trials, first on an idle machine, then with one busy
process per CPU beside it (a loaded CI machine), and prints the ratio.

    .venv/bin/python bench/solve_under_load.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

import numpy as np

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrialStatus, HWRecommendation, load_files
from hwmatch.data.frame import build_frame
from hwmatch.engine import answer
from hwmatch.modeling import clear_cache
from hwmatch.planning import Planner

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "operator" / "digits-forest.yaml"


def _spin(stop: mp.synchronize.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def _inputs(n: int) -> tuple[AIAsset, BenchmarkSweep, HWRecommendation, list]:
    docs = load_files([EXAMPLE])
    asset = next(d for d in docs if isinstance(d, AIAsset))
    sweep = next(d for d in docs if isinstance(d, BenchmarkSweep))
    rec = next(d for d in docs if isinstance(d, HWRecommendation))
    sweep = sweep.model_copy(update={"spec": sweep.spec.model_copy(
        update={"sampling": sweep.spec.sampling.model_copy(update={"budget": n})})})
    rng = np.random.default_rng(0)
    trials = [t for t in Planner(asset, sweep).plan() if t.spec.platform == "local"]
    for t in trials:
        trees, depth, batch = (t.spec.parameters[k] for k in ("n_estimators", "max_depth", "batch_size"))
        latency = 0.05 * float(trees) * (1 + float(batch) / 64) * rng.lognormal(0, 0.05)
        t.status = BenchmarkTrialStatus(phase="Succeeded", metrics={
            "latency_p99_ms": latency, "throughput_per_s": 1000 * float(batch) / latency,
            "accuracy": min(0.99, 0.6 + 0.05 * np.log(float(trees)) + 0.01 * float(depth))})
    return asset, sweep, rec, trials


def _time_solves(repeats: int) -> dict[int, float]:
    out = {}
    for n in (4, 8, 16):
        asset, sweep, rec, trials = _inputs(n)
        times = []
        for _ in range(repeats):
            clear_cache()  # every re-solve in the operator has new data: nothing cached
            start = time.perf_counter()
            frame = build_frame([asset], [sweep], trials)
            answered = answer(rec, asset, [sweep], lambda names, frame=frame: frame, prior=lambda name: None)
            times.append(time.perf_counter() - start)
            assert answered.status is not None and answered.status.phase in ("Ready", "Infeasible"), answered.status
        out[n] = statistics.median(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    idle = _time_solves(args.repeats)
    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(os.cpu_count() or 1)]
    for p in spinners:
        p.start()
    try:
        loaded = _time_solves(args.repeats)
    finally:
        stop.set()
        for p in spinners:
            p.join()
    print(f"one solve of {EXAMPLE.name} (median of {args.repeats}), {os.cpu_count()} CPUs")
    print(f"{'trials':>7} {'idle s':>8} {'loaded s':>9} {'ratio':>6}")
    for n in idle:
        print(f"{n:>7} {idle[n]:>8.2f} {loaded[n]:>9.2f} {loaded[n] / idle[n]:>6.2f}")


if __name__ == "__main__":
    main()
