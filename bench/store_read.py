"""Wall time of ``Store.trials()`` on a store of generated trials, against reading the same rows with ``sqlite3`` and ``json``.

A table of ``--rows`` rows (bench/import_memory.py's generator) is imported into
a temporary store. Then, in this process, ``--repeats`` times each:

- floor: ``fetchall`` of the trial columns and ``json.loads`` of the four JSON
  columns (parameters, instance, metrics, host) of every row;
- ``Store.trials()``: the same rows as trial models, which every listing,
  export and dataset frame reads first.

Each case is timed twice: the call alone, and the call followed by one full
``gc.collect()``, the pass over the new objects that the collector makes
sooner or later (the floor's rows are mostly untracked; a trial's models are
not). Medians are printed, and the ratio of each to the floor. Nothing here
asserts a figure: the machine is shared.

Run: ``.venv/bin/python bench/store_read.py [--rows 100000] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from hwmatch.data.store import _TRIAL_COLUMNS, Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_memory import import_argv, write_table  # noqa: E402  (the generator next door)

COLUMNS = ", ".join(_TRIAL_COLUMNS)


def floor(store: Path) -> list[Any]:
    """The rows with their JSON columns decoded: what any reader of the store does at least."""
    db = sqlite3.connect(store)
    rows = db.execute(f"SELECT {COLUMNS} FROM trials ORDER BY rowid").fetchall()
    db.close()
    return [(r, json.loads(r[4]), json.loads(r[5]), json.loads(r[10]), json.loads(r[14])) for r in rows]


def trials(store: Path) -> list[Any]:
    return Store(store, readonly=True).trials()


def timed(case: Callable[[Path], list[Any]], store: Path, repeats: int) -> tuple[float, float]:
    """Median seconds of ``case`` alone, and of ``case`` then one full collection."""
    alone, collected = [], []
    for _ in range(repeats):
        gc.collect()
        begin = time.perf_counter()
        result = case(store)
        alone.append(time.perf_counter() - begin)
        gc.collect()
        collected.append(time.perf_counter() - begin)
        del result
    return statistics.median(alone), statistics.median(collected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="trials in the store")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each case (the median is printed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hwmatch-store-read-") as tmp:
        directory = Path(tmp)
        csv, mapping = write_table(directory, args.rows)
        store = directory / "store.db"
        subprocess.run(import_argv(csv, mapping, store), stdout=subprocess.DEVNULL, check=True)
        base = timed(floor, store, args.repeats)
        read = timed(trials, store, args.repeats)
    print(f"Store.trials() on {args.rows} stored trials, median of {args.repeats}")
    print(f"{'case':<34} {'call s':>8} {'x floor':>8} {'+ gc s':>8} {'x floor':>8}")
    for name, (alone, collected) in (("fetchall + json.loads (floor)", base), ("Store.trials()", read)):
        print(f"{name:<34} {alone:>8.2f} {alone / base[0]:>7.2f}x {collected:>8.2f} {collected / base[1]:>7.2f}x")


if __name__ == "__main__":
    main()
