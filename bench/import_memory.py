"""Peak memory and wall time of ``hwmatch import`` on a generated table, against reading the same CSV alone.

A benchmark table of ``--rows`` rows (three platforms in a column, three integer
and one categorical parameter, an instance feature, three metrics with some
"not measured" zeros and repeated configurations) and its mapping are written
to a temporary directory. Each case then runs in a child process of its own,
and its peak resident set (``ru_maxrss`` of that child alone, from ``wait4``) and
wall time are printed:

- floor: the interpreter with hwmatch's CLI and the importer's code loaded
  (pandas, the store: the CLI loads them only for the commands that use
  them), reading nothing;
- baseline: ``pandas.read_csv`` of the same file alone (on that floor), the
  least any import of it must hold;
- ``hwmatch import`` of the file into a fresh store;
- same output: pandas reads the file and one ``executemany`` writes the rows
  ``hwmatch import`` writes (trial names, canonical JSON) into a store of the same
  schema: the least any import of the table costs in time. The two stores are
  compared row by row, and the speed ratio is hwmatch's wall time over this one's.

Per million rows is the growth above the floor, scaled: what a larger table
adds. Nothing here asserts a figure; ``tests/unit/test_importer.py`` bounds
the growth of a small import.

Run: ``.venv/bin/python bench/import_memory.py [--rows 1000000] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

PLATFORMS = ["pc", "vm", "g100"]
MAPPING = {
    "asset": "generated",
    "platform": {"column": "device"},
    "parameters": [
        {"name": "var_0", "type": "int"},
        {"name": "var_1", "type": "int"},
        {"name": "batch", "column": "batch_size", "type": "int"},
        {"name": "engine", "type": "categorical"},
    ],
    "instance": [{"name": "size"}],
    "metrics": [
        {"name": "time_s", "column": "time", "goal": "minimize", "unit": "s"},
        {"name": "memory_mb", "column": "memory", "goal": "minimize", "unit": "MB"},
        {"name": "power_w", "column": "power", "goal": "minimize", "unit": "W", "missing": [0]},
    ],
    "platforms": {
        "pc": {"pricePerRun": 7, "features": {"cores": 8, "hpc": 0}},
        "vm": {"pricePerRun": 38, "features": {"cores": 4, "hpc": 0}},
        "g100": {"pricePerRun": 22, "features": {"cores": 48, "hpc": 1}},
    },
}


@dataclass(frozen=True)
class Peak:
    """One child process: its peak resident set and its wall time."""

    mib: float
    wall_s: float


def write_table(directory: Path, rows: int, seed: int = 0) -> tuple[Path, Path]:
    """A generated benchmark table of ``rows`` rows and its mapping in ``directory``: (csv, mapping)."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({
        "device": rng.choice(PLATFORMS, rows),
        "var_0": rng.integers(4, 54, rows),
        "var_1": rng.integers(4, 54, rows),
        "batch_size": rng.choice([1, 8, 32, 128], rows),
        "engine": rng.choice(["onnx", "tvm", "torch"], rows),
        "size": rng.choice([224.0, 512.0, 1024.0], rows),
        "time": rng.lognormal(0.0, 1.0, rows).round(6),
        "memory": rng.integers(100, 4000, rows),
        "power": np.where(rng.random(rows) < 0.2, 0.0, rng.normal(60.0, 10.0, rows).round(2)),
    })
    csv, mapping = directory / "generated.csv", directory / "generated.yaml"
    table.to_csv(csv, index=False)
    mapping.write_text(yaml.safe_dump(MAPPING, sort_keys=False))
    return csv, mapping


#: Runs its arguments as a child and prints the child's exit status, ru_maxrss (KiB) and wall time. A child's
#: ru_maxrss starts at its parent's resident set (Linux carries it over fork and exec), so the measured command
#: is started from this small interpreter, not from the caller (a bench holding the table, or pytest).
LAUNCHER = """import os, subprocess, sys, time
begin = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=sys.stderr)
_, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, time.perf_counter() - begin)
"""


def peak_of(argv: list[str]) -> Peak:
    """Run ``argv`` as a child of :data:`LAUNCHER` and read that child's own peak resident set and wall time."""
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *argv], capture_output=True, text=True, check=True)
    status, kib, wall = done.stdout.split()
    if status != "0":
        raise RuntimeError(f"{argv[0]} exited {status}:\n{done.stderr[-2000:]}")
    return Peak(int(kib) / 1024, float(wall))  # Linux reports KiB


def floor_argv() -> list[str]:
    return [sys.executable, "-c", "import hwmatch.cli, hwmatch.data.importer, hwmatch.data.store"]


def read_csv_argv(csv: Path) -> list[str]:
    return [sys.executable, "-c", "import sys, hwmatch.cli, hwmatch.data.importer, hwmatch.data.store, pandas; "
            "pandas.read_csv(sys.argv[1])", str(csv)]  # on the floor


#: The same output without hwmatch's importer: pandas reads the table, each row becomes the store's row (the
#: planner's trial name, canonical JSON), and one ``executemany`` writes them into a store of the same schema.
SAME_OUTPUT = """import sys
import numpy as np, pandas as pd, sqlite3
from hwmatch.api.vocabulary import canonical, trial_id
from hwmatch.data.store import _TRIAL_COLUMNS, Store
csv, store = sys.argv[1], sys.argv[2]
Store(store).close()
t = pd.read_csv(csv)
t["rep"] = t.groupby(["device", "var_0", "var_1", "batch_size", "engine", "size"], sort=False).cumcount()
price = {"pc": 7.0, "vm": 38.0, "g100": 22.0}
rows = []
for d, v0, v1, b, e, size, time, mem, power, rep in zip(*(t[c].tolist() for c in (
        "device", "var_0", "var_1", "batch_size", "engine", "size", "time", "memory", "power", "rep"))):
    params, instance = {"var_0": v0, "var_1": v1, "batch": b, "engine": e}, {"size": size}
    metrics = {"time_s": time, "memory_mb": float(mem), "cost_per_run": price[d]}
    if power != 0:
        metrics["power_w"] = power
    rows.append((trial_id("import-generated", d, params, instance, rep), "generated", "import-generated", d,
                 canonical(params), canonical(instance), rep, "Succeeded", None, None, canonical(metrics), None, None,
                 0, canonical({"importedFrom": "generated.csv"}), None, None, 0))
db = sqlite3.connect(store, isolation_level=None)
db.execute("BEGIN")
db.executemany(f"INSERT INTO trials ({', '.join(_TRIAL_COLUMNS)}) VALUES ({', '.join('?' * len(_TRIAL_COLUMNS))})", rows)
db.execute("COMMIT")
"""


def same_output_argv(csv: Path, store: Path) -> list[str]:
    return [sys.executable, "-c", SAME_OUTPUT, str(csv), str(store)]


def same_rows(a: Path, b: Path) -> bool:
    """Whether two stores hold the same trial rows (the columns an import writes; its times aside)."""
    import sqlite3

    columns = "id, asset, sweep, platform, parameters, instance, repetition, status, metrics, host"
    read = [sorted(sqlite3.connect(p).execute(f"SELECT {columns} FROM trials").fetchall()) for p in (a, b)]
    return read[0] == read[1]


def import_argv(csv: Path, mapping: Path, store: Path) -> list[str]:
    return [str(Path(sys.executable).with_name("hwmatch")), "import", str(csv), "--mapping", str(mapping), "--store", str(store)]


def generated_store(directory: Path, rows: int) -> Path:
    """A store in ``directory`` holding ``rows`` generated trials, written by ``hwmatch import`` (the benches' input)."""
    csv, mapping = write_table(directory, rows)
    store = directory / "store.db"
    subprocess.run(import_argv(csv, mapping, store), stdout=subprocess.DEVNULL, check=True)
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated table")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hwmatch-import-") as tmp:
        directory = Path(tmp)
        csv, mapping = write_table(directory, args.rows, args.seed)
        size_mib = csv.stat().st_size / 2**20
        floor = peak_of(floor_argv())
        baseline = peak_of(read_csv_argv(csv))
        imported = peak_of(import_argv(csv, mapping, directory / "store.db"))
        same = peak_of(same_output_argv(csv, directory / "same.db"))
        agree = same_rows(directory / "store.db", directory / "same.db")

    millions = args.rows / 1e6
    print(f"import of a generated table: {args.rows} rows, {size_mib:.1f} MiB of CSV; each case in a child process")
    print(f"{'case':<40} {'peak MiB':>9} {'wall s':>8} {'MiB/M rows above floor':>23} {'x baseline':>11}")
    for name, peak in [("python + hwmatch, nothing read (floor)", floor),
                       ("pandas.read_csv alone (baseline)", baseline), ("hwmatch import", imported)]:
        growth = (peak.mib - floor.mib) / millions
        print(f"{name:<40} {peak.mib:>9.0f} {peak.wall_s:>8.1f} {growth:>23.0f} {peak.mib / baseline.mib:>10.2f}x")
    ratio = (imported.mib - floor.mib) / max(baseline.mib - floor.mib, 1.0)
    print(f"hwmatch import holds {ratio:.1f}x what read_csv alone holds above the floor "
          f"({(imported.mib - floor.mib) / millions:.0f} vs {(baseline.mib - floor.mib) / millions:.0f} MiB per million rows)")
    print(f"speed: hwmatch import {imported.wall_s:.2f} s, the same rows by read_csv + executemany "
          f"{same.wall_s:.2f} s ({same.mib:.0f} MiB): {imported.wall_s / same.wall_s:.2f}x; "
          f"{'the two stores hold the same rows' if agree else 'THE TWO STORES DIFFER'}")


if __name__ == "__main__":
    main()
