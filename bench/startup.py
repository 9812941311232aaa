"""Wall time of ``hwmatch --help`` and of ``hwmatch trials`` on a small store, against a minimal Typer app doing the same.

Each case runs ``--repeats`` times in a child process of its own, stdout to
/dev/null, and the median is printed with its ratio to its floor:

- ``python -c pass`` and ``python -c "import typer"``: the interpreter and the CLI's framework alone;
- a minimal Typer app (two commands, one option each, a help panel): its ``--help``
  is the floor of ``hwmatch --help`` (Typer's rich help loads rich's markdown and
  traceback modules), and its command reading ``--rows`` rows from the same store
  with ``sqlite3`` and printing them is the floor of ``hwmatch trials`` (Typer builds
  a pydantic TypeAdapter per option when a command runs, so pydantic is in it);
- ``from hwmatch.api import BenchmarkTrial``: the resource models, which neither case should load;
- ``hwmatch --help`` and ``hwmatch trials`` on a store of ``--rows`` imported trials.

``python -X importtime -c "import hwmatch.cli"`` says where the rest goes.
Nothing here asserts a figure: the machine is shared.
Run: ``.venv/bin/python bench/startup.py [--rows 20] [--repeats 9]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_memory import generated_store  # noqa: E402  (the generator next door)


def wall(argv: list[str], repeats: int) -> float:
    """Median seconds ``argv`` takes, its output thrown away."""
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20, help="trials in the small store")
    parser.add_argument("--repeats", type=int, default=9, help="runs of each case (the median is printed)")
    args = parser.parse_args()
    hwmatch = str(Path(sys.executable).with_name("hwmatch"))
    with tempfile.TemporaryDirectory(prefix="hwmatch-startup-") as tmp:
        store = generated_store(Path(tmp), args.rows)
        minimal = Path(tmp) / "minimal.py"
        minimal.write_text(MINIMAL)
        cases = [  # (name, argv, index of its floor in this list, or None)
            ("python -c pass", [sys.executable, "-c", "pass"], None),
            ("python -c 'import typer'", [sys.executable, "-c", "import typer"], None),
            ("minimal Typer app --help (floor)", [sys.executable, str(minimal), "--help"], None),
            (f"minimal Typer app: {args.rows} rows (floor)", [sys.executable, str(minimal), "rows", "--store", str(store)],
             None),
            ("from hwmatch.api import BenchmarkTrial", [sys.executable, "-c", "from hwmatch.api import BenchmarkTrial"],
             None),
            ("hwmatch --help", [hwmatch, "--help"], 2),
            (f"hwmatch trials ({args.rows} trials)", [hwmatch, "trials", "--store", str(store)], 3),
        ]
        figures = [(name, wall(argv, args.repeats), floor) for name, argv, floor in cases]
    print(f"start-up, each case in a child process, median of {args.repeats}")
    print(f"{'case':<40} {'wall s':>8} {'x floor':>8}")
    for name, seconds, floor in figures:
        ratio = f"{seconds / figures[floor][1]:>7.2f}x" if floor is not None else ""
        print(f"{name:<40} {seconds:>8.3f} {ratio:>8}")


#: The floor: a Typer app as small as a CLI gets, with rich help, an option, and a command that reads the store.
MINIMAL = '''
import sqlite3
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True)


@app.command(rich_help_panel="Start here")
def rows(store: Path = typer.Option(..., "--store", help="The store.")) -> None:
    """Print the trials' id, platform, status and metrics."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    for row in db.execute("SELECT id, platform, status, metrics FROM trials ORDER BY rowid"):
        print("  ".join(map(str, row)))


@app.command(rich_help_panel="Data")
def other(limit: int = typer.Option(1, "--limit", help="A number.")) -> None:
    """Another command."""


app()
'''


if __name__ == "__main__":
    main()
