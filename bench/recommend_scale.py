"""The whole recommendation at 10^6 candidates against a numpy floor that uses the same fitted models.

A synthetic asset (three integer parameters, ``--per-axis`` values each) on 8
platforms with price and speed features, 2,000 trials of latency, throughput
and accuracy, and one request (accuracy and p99 latency bounds, a throughput
target sized in replicas, the cost per hour minimised). The surrogates are
fitted once, outside the timings; then, in the same run:

- ``floor``: the candidate grid (:meth:`CandidateSet.grid`), every metric
  predicted by the same fitted models at the same interval level, replicas
  from the throughput's lower bound, the bounds filtered and ``argmin`` of the
  cost: the least any answer from these models costs;
- ``recommend``: :func:`hwmatch.optimize.recommend` with those models: the
  same, plus the novelty of each candidate, the CP-SAT solve, the
  explanation, the alternatives and the Pareto front of the status.

Both must choose the same platform and configuration; the ratio is
recommend / floor. Times are medians of ``--repeat`` runs. Peak memory needs
one process per path: ``--only floor`` or ``--only recommend`` times that
path alone and prints the process's peak resident memory (the fitted models
and the trials included, so the pair compares like with like). Nothing here
asserts a figure. Run: ``.venv/bin/python bench/recommend_scale.py
[--per-axis 50] [--repeat 3] [--only floor|recommend]`` (50 values per axis:
8 × 50³ = 10^6 candidates).
"""

from __future__ import annotations

import argparse
import resource
import time
from typing import Any, Callable

import numpy as np
import pandas as pd

from hwmatch.api import HWRecommendationSpec, Parameter, Platform
from hwmatch.data.frame import METRIC, PARAM
from hwmatch.modeling.surrogates import Surrogates
from hwmatch.optimize import CandidateSet, recommend
from hwmatch.optimize.problem import interval_level

PLATFORMS = [Platform(name=f"pool-{i}", cost_per_hour=0.2 + 0.35 * i, features={"speed": 1.0 + 2.5 * i})
             for i in range(8)]
RPS = 2000.0
MAX_REPLICAS = 64
LATENCY_MAX = 30.0
ACCURACY_MIN = 0.9


def parameters(per_axis: int) -> list[Parameter]:
    return [Parameter(name=name, type="int", values=list(range(1, per_axis + 1))) for name in ("width", "depth", "batch")]


def spec(per_axis: int) -> HWRecommendationSpec:
    return HWRecommendationSpec.model_validate({
        "assetRef": {"name": "synthetic"},
        "constraints": [{"metric": "latency_ms", "max": LATENCY_MAX}, {"metric": "accuracy", "min": ACCURACY_MIN}],
        "throughput": {"requestsPerSecond": RPS, "maxReplicas": MAX_REPLICAS},
        "objective": {"minimize": "cost_per_hour"},
        "resolution": per_axis,
    })


def trials(n: int, per_axis: int, seed: int) -> pd.DataFrame:
    """``n`` succeeded trials in the dataset frame's columns: latency falls with speed and grows with size."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, len(PLATFORMS), n)
    speed = np.array([p.features["speed"] for p in PLATFORMS])[pool]
    width, depth, batch = (rng.integers(1, per_axis + 1, n) for _ in range(3))
    size = width * depth / per_axis**2
    latency = (2.0 + 40.0 * size) * (1 + batch / per_axis) / speed * rng.lognormal(0, 0.1, n)
    return pd.DataFrame({
        "trial_id": [f"t{i}" for i in range(n)], "asset": "synthetic", "sweep": "synthetic",
        "platform": [PLATFORMS[i].name for i in pool], "repetition": 0, "status": "Succeeded", "reason": None,
        "cost_per_hour": np.array([p.cost_per_hour for p in PLATFORMS])[pool],
        "feature.speed": speed,
        PARAM + "width": width, PARAM + "depth": depth, PARAM + "batch": batch,
        METRIC + "latency_ms": latency,
        METRIC + "throughput_per_s": 1000.0 * batch / latency,
        METRIC + "accuracy": 0.8 + 0.19 * (1 - np.exp(-3 * size)) + rng.normal(0, 0.005, n),
    })


def floor(models: Surrogates, per_axis: int) -> tuple[str, dict[str, Any]]:
    """Grid, predictions, replicas, filter, argmin: the answer with nothing around it."""
    request = spec(per_axis)
    candidates = CandidateSet.grid(parameters(per_axis), PLATFORMS, resolution=per_axis)
    p = models.predict(candidates.frame, interval_level(request))
    with np.errstate(divide="ignore", invalid="ignore"):
        replicas = np.maximum(np.ceil(RPS / p["throughput_per_s"].lower), 1)
    ok = (p["latency_ms"].upper <= LATENCY_MAX) & (p["accuracy"].lower >= ACCURACY_MIN) & (replicas <= MAX_REPLICAS)
    cost = np.where(ok, replicas * candidates.cost_per_hour, np.inf)
    best = int(np.argmin(cost))
    return str(candidates.platform[best]), candidates.parameters_of(best)


def whole(models: Surrogates, frame: pd.DataFrame, per_axis: int) -> tuple[str, dict[str, Any]]:
    status = recommend(frame, parameters(per_axis), PLATFORMS, spec(per_axis), surrogates=models)
    assert status.recommendation is not None, status.conditions
    return status.recommendation.platform, dict(status.recommendation.parameters)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[Any, float]:
    """The result and the median wall time of ``repeat`` calls, seconds."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-axis", type=int, default=50, help="values per parameter (8 × n³ candidates)")
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("floor", "recommend"), help="time one path and print its peak memory")
    args = parser.parse_args()
    frame = trials(args.trials, args.per_axis, args.seed)
    start = time.perf_counter()
    models = Surrogates(seed=args.seed).fit(frame)
    fit_s = time.perf_counter() - start
    n = len(PLATFORMS) * args.per_axis**3
    if args.only:
        run = (lambda: floor(models, args.per_axis)) if args.only == "floor" else (lambda: whole(models, frame, args.per_axis))
        answer, seconds = timed(run, args.repeat)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        print(f"candidates {n:,}  {args.only} {seconds:.2f} s  peak RSS {peak:.0f} MiB  {answer}")
        return
    cheap, floor_s = timed(lambda: floor(models, args.per_axis), args.repeat)
    chosen, whole_s = timed(lambda: whole(models, frame, args.per_axis), args.repeat)
    print(f"candidates {n:,}  trials {args.trials:,}  fit {fit_s:.1f} s (not in the timings)")
    print(f"{'':>10} {'seconds':>8} {'ratio':>6}  choice")
    print(f"{'floor':>10} {floor_s:>8.2f} {1.0:>6.2f}  {cheap}")
    print(f"{'recommend':>10} {whole_s:>8.2f} {whole_s / floor_s:>6.2f}  {chosen}")
    print("same choice" if (chosen[0], {k: int(v) for k, v in chosen[1].items()}) ==
          (cheap[0], {k: int(v) for k, v in cheap[1].items()}) else "DIFFERENT CHOICES")


if __name__ == "__main__":
    main()
