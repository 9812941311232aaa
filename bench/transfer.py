"""Transfer to a new platform, leave-one-platform-out, on every public table family.

For each family in ``../shared/datasets/`` (edge-AI imagenet and body-pose
over 7 devices; HADA anticipate, saxpy, convolution over 3 machines) and each
of its platforms ``P``: train on the other platforms plus k of ``P``'s
configurations, score predictions on ``P``'s unseen configurations
(Spearman, MAPE, interval coverage per metric) and recommendations
restricted to ``P`` (:mod:`hwmatch.evaluation.transfer`). The baselines are
in the same run: ``hwmatch`` (the ordinary surrogates, no per-platform
correction) and k = 0 (no trial of ``P``). On the edge tables the other
family is also given as a prior asset (``transfer+prior``: body-pose for
imagenet and the reverse). Seeds are explicit (``--seed``); the run is
deterministic.

    .venv/bin/python bench/transfer.py --only edge-imagenet --ks 0,5,10 --queries 20
    .venv/bin/python bench/transfer.py --json transfer.json        # everything, tens of minutes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from hwmatch.cli.quality import finite
from hwmatch.data.importer import import_tables, load_mapping
from hwmatch.evaluation.transfer import TransferEvaluation

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("HWMATCH_DATASETS", ROOT.parent / "shared" / "datasets"))
#: family -> (tables, the metric the headline figures are about, budget of each source platform, prior family)
FAMILIES = {
    "edge-imagenet": ("edge-ai/imagenet_*.csv", "latency_ms", 1.0, "edge-bodypose"),
    "edge-bodypose": ("edge-ai/bodypose-estimation_*.csv", "latency_ms", 1.0, "edge-imagenet"),
    "hada-anticipate": ("hada/anticipate_*.csv", "time_s", 0.1, None),
    "hada-saxpy": ("hada/saxpy_*.csv", "time_s", 0.1, None),
    "hada-convolution": ("hada/convolution_*.csv", "time_s", 0.1, None),
}


def _load(family: str):  # type: ignore[no-untyped-def]
    files = sorted(DATASETS.glob(FAMILIES[family][0]))
    return import_tables(load_mapping(ROOT / "examples" / "import" / f"{family}.yaml"), files) if files else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", default="0,5,10,20", help="target trials, comma-separated")
    parser.add_argument("--queries", type=int, default=40, help="recommendation queries per target platform")
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="comma-separated families (default: all present)")
    parser.add_argument("--platforms", help="comma-separated target platforms (default: every one)")
    parser.add_argument("--no-prior", action="store_true", help="skip the transfer+prior method")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    console = Console(width=160)
    if not DATASETS.is_dir():
        console.print(f"skipped: no public datasets at {DATASETS} (set HWMATCH_DATASETS or see the project README)")
        return 0
    figures = []
    for family in (args.only.split(",") if args.only else list(FAMILIES)):
        _, headline, budget, prior_family = FAMILIES[family]
        imported = _load(family)
        if imported is None:
            console.print(f"{family}: skipped (no {FAMILIES[family][0]} under {DATASETS})")
            continue
        prior = None
        if prior_family and not args.no_prior:
            loaded = _load(prior_family)
            prior = None if loaded is None else loaded.frame
        start = time.perf_counter()
        table = Table(title=f"{family}: {headline} on the held-out platform (confidence {args.confidence}, "
                            f"sources at {budget:.0%}, seed {args.seed})", box=None)
        for name in ("platform", "k", "method", "spearman", "mape", "coverage", "rows", "feasible", "clear-inf",
                     "regret", "queries"):
            table.add_column(name, justify="left" if name in ("platform", "method") else "right")
        rows = []
        platforms = sorted(imported.frame["platform"].astype(str).unique())
        for platform in (args.platforms.split(",") if args.platforms else platforms):
            with threadpool_limits(1):
                ev = TransferEvaluation(imported, platform, args.queries, args.confidence, args.seed, budget, prior)
                results = ev.run(ks)
            for note in ev.notes:
                console.print(f"note: {note}")
            for r in results:
                m = r.metrics.get(headline, {})
                s = r.summary
                table.add_row(platform, str(r.k), r.method, _f(m.get("spearman")), _p(m.get("mape")),
                              _p(m.get("coverage")), str(m.get("rows", "-")), _p(s.feasible_rate),
                              _p(s.clear_false_infeasible_rate), _p(s.regret_median_pct / 100), str(s.queries))
                rows.append(r.as_dict())
            table.add_section()
        console.print(table)
        console.print(_means(family, headline, rows))
        figures.append({"family": family, "headline": headline, "budget": budget, "seconds":
                        round(time.perf_counter() - start, 1), "results": rows})
    if args.json:
        args.json.write_text(json.dumps(finite(figures), indent=2))
    return 0


def _means(family: str, headline: str, rows: list[dict]) -> Table:
    """Per (k, method): the mean over target platforms of each figure (NaN-skipping), and how many platforms."""
    table = Table(title=f"{family}: mean over held-out platforms ({headline})", box=None)
    for name in ("k", "method", "platforms", "spearman", "min", "mape", "coverage", "feasible", "clear-inf", "regret"):
        table.add_column(name, justify="left" if name == "method" else "right")
    keys = list(dict.fromkeys((r["k"], r["method"]) for r in rows))
    for k, method in keys:
        sel = [r for r in rows if r["k"] == k and r["method"] == method]
        ms = [r["metrics"].get(headline, {}) for r in sel]

        def mean(values: list) -> float:
            arr = np.array([v for v in values if v is not None and v == v], dtype=float)
            return float(arr.mean()) if arr.size else float("nan")

        rho = [m.get("spearman") for m in ms]
        table.add_row(str(k), method, str(len(sel)), _f(mean(rho)),
                      _f(min((v for v in rho if v is not None and v == v), default=float("nan"))),
                      _p(mean([m.get("mape") for m in ms])), _p(mean([m.get("coverage") for m in ms])),
                      _p(mean([r["feasible"] for r in sel])), _p(mean([r["false_infeasible_clear"] for r in sel])),
                      _p(mean([r["regret_median"] / 100 if r["regret_median"] is not None else None for r in sel])))
    return table


def _f(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"


def _p(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.1%}"


if __name__ == "__main__":
    sys.exit(main())
