"""Solve time of the recommendation model against a plain vectorised brute force, 10^3 to 10^6 candidates.

Synthetic predictions (no surrogates: this measures the optimiser) for 8
platforms × n/8 configurations, with two constraints on interval bounds, a
throughput target (replicas per candidate), a budget and an energy-per-request
objective. For every size the same run times:

- ``brute``: the baseline written here from the spec's words — numpy
  replicas, filter, ``argmin``;
- ``numpy``: :func:`hwmatch.optimize.solve` with ``method="numpy"``;
- ``cp-sat``: CP-SAT after the numpy presolve (the default): infeasible and
  Pareto-dominated candidates removed, ``front`` Booleans left;
- ``cp-sat full``: CP-SAT with every candidate and the requirements as
  assumption-guarded constraints (up to ``--full-max`` candidates);

and checks that every method picks the brute force's candidate. ``build``
is :func:`hwmatch.optimize.build_problem` (replicas and derived metrics),
shared by the three methods; the ratios are method time / brute time. Times are medians of
``--repeat`` calls. Usage:
``python bench/optimizer_scaling.py [--sizes 1000 10000 ...] [--full-max N] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from hwmatch.api import HWRecommendationSpec
from hwmatch.modeling import Prediction
from hwmatch.optimize import CandidateSet, build_problem, solve

PLATFORMS = 8
RPS = 5000.0
MAX_REPLICAS = 32
BUDGET = 12.0
LATENCY_MAX = 40.0
ACCURACY_MIN = 0.9

SPEC = HWRecommendationSpec.model_validate({
    "assetRef": {"name": "synthetic"},
    "constraints": [{"metric": "latency_ms", "max": LATENCY_MAX}, {"metric": "accuracy", "min": ACCURACY_MIN}],
    "throughput": {"requestsPerSecond": RPS, "maxReplicas": MAX_REPLICAS},
    "budget": {"maxCostPerHour": BUDGET},
    "objective": {"minimize": "energy_per_request_j"},
})


def synthetic(n: int, seed: int) -> tuple[CandidateSet, dict[str, Prediction]]:
    rng = np.random.default_rng(seed)
    platform = np.arange(n) % PLATFORMS
    price = np.linspace(0.1, 3.0, PLATFORMS)[platform]
    speed = np.linspace(1.0, 20.0, PLATFORMS)[platform]
    frame = pd.DataFrame({
        "platform": np.array([f"p{i}" for i in range(PLATFORMS)])[platform],
        "cost_per_hour": price,
        "power_watts": np.nan,
        "param.config": np.arange(n) // PLATFORMS,
    })
    size = rng.uniform(0.5, 8.0, n)
    latency = 20.0 * size / speed * rng.lognormal(0, 0.3, n)
    throughput = 1000.0 / latency * rng.uniform(1, 8, n)
    accuracy = 0.85 + 0.12 * (1 - np.exp(-size / 3)) + rng.normal(0, 0.01, n)
    power = 50.0 * np.sqrt(speed) * rng.uniform(0.8, 1.2, n)
    width = rng.uniform(0.05, 0.25, n)
    predictions = {
        "latency_ms": Prediction(latency, latency * (1 - width), latency * (1 + width)),
        "throughput_per_s": Prediction(throughput, throughput * (1 - width), throughput * (1 + width)),
        "accuracy": Prediction(accuracy, accuracy - width / 10, accuracy + width / 10),
        "power_w": Prediction(power, power * 0.9, power * 1.1),
    }
    return CandidateSet(frame, ["config"]), predictions


def brute_force(candidates: CandidateSet, p: dict[str, Prediction]) -> int | None:
    """Filter + argmin, straight from the spec: the baseline."""
    replicas = np.ceil(RPS / p["throughput_per_s"].lower)
    cost = replicas * candidates.cost_per_hour
    ok = (
        (p["latency_ms"].upper <= LATENCY_MAX)
        & (p["accuracy"].lower >= ACCURACY_MIN)
        & (replicas <= MAX_REPLICAS)
        & (cost <= BUDGET)
    )
    energy = p["power_w"].value * replicas / RPS
    index = np.flatnonzero(ok)
    return int(index[np.argmin(energy[index])]) if index.size else None


def timed(fn, *args, repeat: int = 1, **kwargs):  # type: ignore[no-untyped-def]
    """The result and the median wall time of ``repeat`` calls, ms (a single call is at the mercy of the scheduler)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        times.append((time.perf_counter() - start) * 1e3)
    return result, float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--full-max", type=int, default=100_000, help="largest size for the full CP-SAT model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per method and size (the median is printed; "
                                                                "the full CP-SAT model runs once)")
    parser.add_argument("--time-limit", type=float, default=600.0, help="CP-SAT time limit per solve, seconds")
    args = parser.parse_args()
    print(f"{'candidates':>10} {'feasible':>8} {'front':>6} {'build ms':>9} {'brute ms':>9} {'numpy ms':>9} "
          f"{'cp-sat ms':>10} {'ratio':>7} {'full ms':>9} {'ratio':>7}  same answer")
    for n in args.sizes:
        candidates, predictions = synthetic(n, args.seed)
        r = args.repeat
        expected, brute_ms = timed(brute_force, candidates, predictions, repeat=r)
        problem, build_ms = timed(build_problem, candidates, predictions, SPEC, repeat=r)
        fast, numpy_ms = timed(solve, problem, "numpy", repeat=r)
        cpsat, cpsat_ms = timed(solve, problem, "cp-sat", seed=args.seed, repeat=r)
        answers = [fast.best, cpsat.best]
        full_ms = float("nan")
        if n <= args.full_max:
            full, full_ms = timed(solve, problem, "cp-sat", presolve=False, seed=args.seed, time_limit_s=args.time_limit)
            answers.append(full.best if full.status == "OPTIMAL" else full.status)
        same = all(a == expected for a in answers)
        print(f"{n:>10} {int(fast.feasible.sum()):>8} {cpsat.model_size:>6} {build_ms:>9.1f} {brute_ms:>9.1f} {numpy_ms:>9.1f} "
              f"{cpsat_ms:>10.1f} {cpsat_ms / brute_ms:>7.1f} {full_ms:>9.1f} {full_ms / brute_ms:>7.1f}  "
              f"{'yes' if same else 'NO: ' + str(answers) + ' vs ' + str(expected)}")


if __name__ == "__main__":
    main()
