"""Wall time of ``hwmatch trials`` on a store of generated trials, against printing the same columns plainly.

A table of ``--rows`` rows (bench/import_memory.py's generator) is imported into
a temporary store; then, each in a child process with stdout to /dev/null
(``--repeats`` runs, the median printed):

- floor: Python reads the same rows with ``sqlite3`` and ``json.loads`` and
  prints id, platform, status, metrics and parameters, one line each;
- ``Store.records()`` alone: the plain values a listing reads first (no models);
- ``hwmatch trials`` (the compact table, fit to 80 columns), ``-o wide``,
  ``-o csv``, ``--sort`` by a metric and ``--limit 20``;
- ``-o json``: the trials as resources, which builds their models (pydantic) on top.

The ratio is each against the floor; what ``hwmatch trials`` takes above
``Store.records()`` is the listing itself. Nothing here asserts a figure: the
machine is shared. Run: ``.venv/bin/python bench/trials_listing.py [--rows 100000] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_memory import generated_store  # noqa: E402  (the generator next door)

FLOOR = """import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
out = []
for name, platform, status, params, metrics in db.execute(
        "SELECT id, platform, status, parameters, metrics FROM trials ORDER BY rowid"):
    m = json.loads(metrics)
    out.append(f"{name[-10:]:<10}  {platform:<8}  {status:<9}  " + "  ".join(f"{v:>10.4g}" for v in m.values())
               + "  " + " ".join(f"{k}={v}" for k, v in json.loads(params).items()))
sys.stdout.write("\\n".join(out) + "\\n")
"""


def wall(argv: list[str]) -> float:
    """Seconds ``argv`` takes, its output thrown away (at 80 columns, as a terminal of that size would)."""
    begin = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, env={**os.environ, "COLUMNS": "80"})
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="trials in the store")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each case (the median is printed)")
    args = parser.parse_args()
    hwmatch = str(Path(sys.executable).with_name("hwmatch"))
    with tempfile.TemporaryDirectory(prefix="hwmatch-trials-") as tmp:
        store = generated_store(Path(tmp), args.rows)
        read = ("import sys; from pathlib import Path; from hwmatch.data.store import Store; "
                "Store(Path(sys.argv[1]), readonly=True).records()")
        listing = [hwmatch, "trials", "--store", str(store)]
        argvs = [("plain print of the columns (floor)", [sys.executable, "-c", FLOOR, str(store)]),
                 ("Store.records() alone", [sys.executable, "-c", read, str(store)]),
                 ("hwmatch trials", listing),
                 ("hwmatch trials -o wide", [*listing, "-o", "wide"]),
                 ("hwmatch trials -o csv", [*listing, "-o", "csv"]),
                 ("hwmatch trials --sort -time_s", [*listing, "--sort", "-time_s"]),
                 ("hwmatch trials --limit 20", [*listing, "--limit", "20"]),
                 ("hwmatch trials -o json (the resources)", [*listing, "-o", "json"])]
        cases = [(name, statistics.median(wall(argv) for _ in range(args.repeats))) for name, argv in argvs]
    floor = cases[0][1]
    print(f"hwmatch trials on {args.rows} stored trials; each case in a child process, stdout to /dev/null, "
          f"median of {args.repeats}")
    print(f"{'case':<40} {'wall s':>8} {'x floor':>8}")
    for name, seconds in cases:
        print(f"{name:<40} {seconds:>8.2f} {seconds / floor:>7.2f}x")


if __name__ == "__main__":
    main()
