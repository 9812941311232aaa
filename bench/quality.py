"""Recommendation quality on every public table family: hwmatch vs random sampling vs a HADA-like baseline.

For each family in ``../shared/datasets/`` (HADA anticipate, saxpy,
convolution; edge-AI imagenet and body-pose) this imports the tables with
the example mapping, draws random requirement queries, trains on a budget of
each platform's configurations (random and adaptive sampling), recommends
through hwmatch's optimiser, and scores every answer against the measured
table (definitions: docs/quality.md). One table of figures is printed, with
the baseline in the same run. Families whose files are absent are skipped.

    .venv/bin/python bench/quality.py --quick        # minutes: 60 queries, budgets 5% and 10%
    .venv/bin/python bench/quality.py                # tens of minutes: 200 queries, 5/10/20%
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from hwmatch.cli.quality import COLUMNS, finite, results_table
from hwmatch.data.importer import import_tables, load_mapping
from hwmatch.engine.verification import UNPROVEN_RUNS
from hwmatch.evaluation import Evaluation
from hwmatch.evaluation.run import STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("HWMATCH_DATASETS", ROOT.parent / "shared" / "datasets"))
FAMILIES = {
    "hada-anticipate": "hada/anticipate_*.csv",
    "hada-saxpy": "hada/saxpy_*.csv",
    "hada-convolution": "hada/convolution_*.csv",
    "edge-imagenet": "edge-ai/imagenet_*.csv",
    "edge-bodypose": "edge-ai/bodypose-estimation_*.csv",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 queries, budgets 5%% and 10%%")
    parser.add_argument("--queries", type=int, help="queries per family (default 200, quick 60)")
    parser.add_argument("--budgets", help="comma-separated shares, e.g. 0.05,0.1,0.2")
    parser.add_argument("--confidence", default="0.95", help="one level, or several (0.9,0.95,0.99) for the trade-off")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verify-budget", type=int, default=0, help="closed loop: replayed runs per query (0: none)")
    parser.add_argument("--no-improve", action="store_true",
                        help="closed loop: stop at the first answer measured to hold (no runs spent on better candidates)")
    parser.add_argument("--fresh-runs", action="store_true",
                        help="closed loop: a verification run is the configuration's true value with noise drawn from "
                             "the table's repetitions (default: one of its own rows)")
    parser.add_argument("--unproven-runs", type=int, default=UNPROVEN_RUNS,
                        help="closed loop: runs of a candidate the bounds do not vouch for, all of which must hold "
                             f"(default {UNPROVEN_RUNS})")
    parser.add_argument("--only", help="comma-separated families to run (default: all present)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"comma-separated sampling strategies (default {','.join(STRATEGIES)})")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    queries = args.queries or (60 if args.quick else 200)
    budgets = [float(b) for b in args.budgets.split(",")] if args.budgets else ([0.05, 0.1] if args.quick else [0.05, 0.1, 0.2])
    console = Console(width=160)
    if not DATASETS.is_dir():
        console.print(f"skipped: no public datasets at {DATASETS} (set HWMATCH_DATASETS or see the project README)")
        return 0
    chosen = args.only.split(",") if args.only else list(FAMILIES)
    confidences = [float(c) for c in args.confidence.split(",")]
    strategies = tuple(args.strategies.split(","))
    table = Table(title=f"recommendation quality at confidence {args.confidence} ({queries} queries per family, seed {args.seed})",
                  box=None)
    table.add_column("family")
    for name in COLUMNS:
        table.add_column(name, justify="left" if name in ("sampling", "model") else "right")
    figures = []
    for family in chosen:
        files = sorted(DATASETS.glob(FAMILIES[family]))
        if not files:
            console.print(f"{family}: skipped (no {FAMILIES[family]} under {DATASETS})")
            continue
        start = time.perf_counter()
        imported = import_tables(load_mapping(ROOT / "examples" / "import" / f"{family}.yaml"), files)
        with threadpool_limits(1):  # many small fits on shared cores: threads only contend
            results = Evaluation(imported, queries, confidences, args.seed, args.verify_budget,
                                 improve=not args.no_improve, fresh_runs=args.fresh_runs,
                                 unproven_runs=args.unproven_runs).run(budgets, strategies)
        seconds = time.perf_counter() - start
        section = results_table(f"{family} ({len(imported.frame)} rows, {seconds:.0f} s)", results)
        console.print(section)  # as each family finishes; all of them together at the end
        for cells in zip(*(c.cells for c in section.columns)):
            table.add_row(family, *cells)
        table.add_section()
        figures.append({"family": family, "rows": len(imported.frame), "seconds": round(seconds, 1),
                        "results": [r.as_dict() for r in results]})
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(finite(figures), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
