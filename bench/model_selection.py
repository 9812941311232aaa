"""Fitting every metric's surrogate against one boosted-tree fit per metric, with held-out scores of both.

For each table and size (1k, 10k, 40k trials by default), the rows are split
once (seeded, by configuration: a configuration's repetitions fall on one
side) into 80 % training and 20 % held-out rows. In the same run:

- ``floor``: encode the training rows (:class:`~hwmatch.modeling.FeatureEncoder`)
  and fit one ``hist_gradient_boosting`` (hwmatch's own settings, sized by the
  rows) per metric on that metric's rows, in the target space hwmatch would
  choose (logs for a skewed positive metric): the least any model per metric
  costs;
- ``hwmatch``: :meth:`Surrogates.fit` on the same rows (cache cleared, so it
  fits): family selection, cross-validation, intervals, selections.

Both are scored on the held-out rows per metric: R² and mean absolute error
in the metric's units. The ratio is hwmatch / floor of the median of
``--repeat`` fits. Tables: ``synthetic`` (8 platforms, three integer
parameters, latency, throughput, accuracy and a price per run fixed by the
platform) and, when ``../shared/datasets/hada/`` holds them, HADA's saxpy
tables imported with ``examples/import/hada-saxpy.yaml`` (rows drawn from
its 54,591 trials). Nothing here asserts a figure. Run::

    .venv/bin/python bench/model_selection.py [--sizes 1000,10000,40000] [--repeat 3] [--only synthetic]
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, r2_score
from threadpoolctl import threadpool_limits

from hwmatch.data.frame import METRIC, PARAM, columns, strip, succeeded
from hwmatch.modeling import FeatureEncoder, Surrogates, clear_cache
from hwmatch.modeling.families import hist_gradient_boosting
from hwmatch.modeling.metric_model import choose_transform

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("HWMATCH_DATASETS", ROOT.parent / "shared" / "datasets"))
#: Share of the configurations held out for scoring.
HELD_OUT = 0.2
T = TypeVar("T")


def synthetic(n: int, seed: int) -> pd.DataFrame:
    """``n`` trials on 8 platforms: latency falls with speed and grows with size; the price per run is the platform's."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 8, n)
    speed = 1.0 + 2.5 * pool
    width, depth, batch = (rng.integers(1, 33, n) for _ in range(3))
    size = width * depth / 32**2
    latency = (2.0 + 40.0 * size) * (1 + batch / 32) / speed * rng.lognormal(0, 0.1, n)
    return pd.DataFrame({
        "trial_id": [f"t{i}" for i in range(n)], "platform": [f"pool-{i}" for i in pool], "status": "Succeeded",
        "feature.speed": speed, PARAM + "width": width, PARAM + "depth": depth, PARAM + "batch": batch,
        METRIC + "latency_ms": latency,
        METRIC + "throughput_per_s": 1000.0 * batch / latency,
        METRIC + "accuracy": 0.8 + 0.19 * (1 - np.exp(-3 * size)) + rng.normal(0, 0.005, n),
        METRIC + "cost_per_run": (0.2 + 0.35 * pool) * 0.01,
    })


def saxpy() -> pd.DataFrame | None:
    """HADA's saxpy trials (every platform), or None when the tables are absent."""
    files = sorted((DATASETS / "hada").glob("saxpy_*.csv"))
    if not files:
        return None
    from hwmatch.data.importer import import_tables, load_mapping

    return succeeded(import_tables(load_mapping(ROOT / "examples" / "import" / "hada-saxpy.yaml"), files).frame)


def split(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and held-out rows, by configuration (platform and parameters), seeded."""
    keys = ["platform", *columns(frame, PARAM)]
    config = frame.groupby(keys, sort=True).ngroup().to_numpy()
    held = np.random.default_rng(seed).random(int(config.max()) + 1) < HELD_OUT
    return frame[~held[config]], frame[held[config]]


def timed(fns: tuple[Callable[[], T], ...], repeat: int) -> list[tuple[T, float]]:
    """Each function's last result and median wall time of ``repeat`` calls, seconds.

    The calls alternate (one of each per round), so that a slower spell of a
    shared machine weighs on every function alike and the ratios hold.
    """
    times: list[list[float]] = [[] for _ in fns]
    results: list[T | None] = [None for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - start)
    return [(r, float(np.median(t))) for r, t in zip(results, times) if r is not None]


Predictor = Callable[[pd.DataFrame], dict[str, np.ndarray]]


def floor(train: pd.DataFrame, seed: int) -> Predictor:
    """One boosted-tree fit per metric on the encoded rows; a function predicting every metric."""
    encoder = FeatureEncoder().fit(train)
    X_all = encoder.transform(train)
    models = {}
    for col in columns(train, METRIC):
        y = train[col].to_numpy(float)
        keep = np.isfinite(y)
        if not keep.any():
            continue
        log = choose_transform(y[keep]) == "log"
        z = np.log(y[keep]) if log else y[keep]
        models[strip(col)] = (log, hist_gradient_boosting(int(keep.sum()), seed).fit(X_all[keep], z))

    def predict(rows: pd.DataFrame) -> dict[str, np.ndarray]:
        X = encoder.transform(rows)
        return {m: np.exp(model.predict(X)) if log else model.predict(X) for m, (log, model) in models.items()}

    return predict


def ours(train: pd.DataFrame, seed: int) -> Predictor:
    """:meth:`Surrogates.fit` from scratch (the cache cleared); a function predicting every metric."""
    clear_cache()
    models = Surrogates(seed=seed).fit(train)
    return lambda rows: {m: p.value for m, p in models.predict(rows, 0.9).items()}


def scores(predict: Predictor, held: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Per metric: held-out R² and mean absolute error (metric units)."""
    out = {}
    for metric, value in predict(held).items():
        y = held[METRIC + metric].to_numpy(float)
        keep = np.isfinite(y)
        out[metric] = (float(r2_score(y[keep], value[keep])), float(mean_absolute_error(y[keep], value[keep])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,40000", help="trials per table, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="synthetic or saxpy (default: both)")
    args = parser.parse_args()
    tables: dict[str, Callable[[int], pd.DataFrame]] = {}
    if args.only in (None, "synthetic"):
        tables["synthetic"] = lambda n: synthetic(n, args.seed)
    if args.only in (None, "saxpy"):
        table = saxpy()
        if table is None:
            print(f"saxpy: skipped, no HADA saxpy tables in {DATASETS / 'hada'} (set HWMATCH_DATASETS)")
        else:
            tables["saxpy"] = lambda n: table.sample(min(n, len(table)), random_state=args.seed)
    print(f"{'table':>9} {'trials':>7} {'floor s':>8} {'hwmatch s':>9} {'ratio':>6}  "
          f"held-out R² / MAE per metric: floor -> hwmatch")
    with threadpool_limits(limits=1):  # as Surrogates fits (threads=1), the floor too
        for name, make in tables.items():
            for n in (int(s) for s in args.sizes.split(",")):
                train, held = split(make(n), args.seed)
                (cheap, floor_s), (full, ours_s) = timed((partial(floor, train, args.seed),
                                                          partial(ours, train, args.seed)), args.repeat)
                a, b = scores(cheap, held), scores(full, held)
                detail = "  ".join(f"{m} {a[m][0]:.4f}/{a[m][1]:.3g} -> {b[m][0]:.4f}/{b[m][1]:.3g}" for m in b)
                print(f"{name:>9} {n:>7,} {floor_s:>8.2f} {ours_s:>9.2f} {ours_s / floor_s:>6.2f}  {detail}", flush=True)


if __name__ == "__main__":
    main()
