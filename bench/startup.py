"""Wall time of ``hwmatch --help`` and of ``hwmatch trials`` on a small store, against starting Python and loading Typer.

Each case runs ``--repeats`` times in a child process of its own, stdout to
/dev/null, and the median is printed with its ratio to ``python -c "import typer"``:

- floors: ``python -c pass`` and ``python -c "import typer"`` (the CLI's framework alone);
- ``import hwmatch.api``: the resource models every command reads, pydantic included;
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
        cases = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ("python -c 'import typer' (floor)", [sys.executable, "-c", "import typer"]),
            ("python -c 'import hwmatch.api'", [sys.executable, "-c", "import hwmatch.api"]),
            ("hwmatch --help", [hwmatch, "--help"]),
            (f"hwmatch trials ({args.rows} trials)", [hwmatch, "trials", "--store", str(store)]),
        ]
        figures = [(name, wall(argv, args.repeats)) for name, argv in cases]
    floor = figures[1][1]
    print(f"start-up, each case in a child process, median of {args.repeats}")
    print(f"{'case':<36} {'wall s':>8} {'x typer':>8}")
    for name, seconds in figures:
        print(f"{name:<36} {seconds:>8.3f} {seconds / floor:>7.1f}x")


if __name__ == "__main__":
    main()
