"""Bad input through the real CLI: each case exits non-zero, names the place, and prints no traceback.

Manifests (validate and run), tables (import and evaluate) and stores (trials, run, export, report).
Cases that need a read-only or a full file system mount a small tmpfs and are skipped where that is not allowed.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hwmatch.cli import app
from hwmatch.data.store import Store

pytestmark = pytest.mark.integration
runner = CliRunner()

ASSET = """\
apiVersion: hwmatch.dev/v1alpha1
kind: AIAsset
metadata: {name: toy}
spec:
  command: [python, -c, "print('{}')"]
  env: {MODE: fast}
  parameters:
    - {name: n, type: int, values: [1, 2]}
    - {name: kind, type: categorical, values: [a, b]}
  metrics:
    - {name: latency_ms, goal: minimize}
    - {name: accuracy, goal: maximize}
---
apiVersion: hwmatch.dev/v1alpha1
kind: BenchmarkSweep
metadata: {name: toy-sweep}
spec:
  assetRef: {name: toy}
  platforms:
    - {name: cpu-a, cpus: [0], costPerHour: 1.0, resources: {limits: {cpu: "1"}}}
  sampling: {strategy: grid}
  trialTimeout: 1m
---
apiVersion: hwmatch.dev/v1alpha1
kind: HWRecommendation
metadata: {name: toy-rec}
spec:
  assetRef: {name: toy}
  constraints: [{metric: latency_ms, max: 10.0}]
  objective: {weights: {latency_ms: 1.0}}
"""


def swap(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)
    return edit


def nested(depth: int) -> str:
    return "spec: " + "[" * depth + "]" * depth + "\n"


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
) + "apiVersion: hwmatch.dev/v1alpha1\nkind: AIAsset\nmetadata: {name: bomb}\nspec: {command: [x], metrics: *i}\n"
GRID = "\n".join(f"    - {{name: p{i}, type: int, values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}}" for i in range(12))

# (id, file name, the file's content (a function of the valid manifest, or bytes), what the message must say)
MANIFESTS: list[tuple[str, str, Callable[[str], str] | bytes, list[str]]] = [
    ("markup-in-file-name", "sweep[bold].yaml", swap("goal: minimize", "goal: least"), ["sweep[bold].yaml", "goal"]),
    ("latin-1", "m.yaml", ("# caf\xe9\n" + ASSET).encode("latin-1"), ["m.yaml", "not UTF-8", "line 1"]),
    ("binary", "m.yaml", b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)), ["m.yaml", "binary"]),
    ("deep-nesting", "m.yaml", lambda _: nested(10_000), ["m.yaml", "nested deeper than"]),
    ("alias-bomb", "m.yaml", lambda _: BOMB, ["m.yaml", "expands to more than"]),
    ("huge-budget", "m.yaml", swap("sampling: {strategy: grid}", "sampling: {strategy: random, budget: 1000000000}"),
     ["spec.sampling.budget", "100000"]),
    ("huge-grid", "m.yaml", swap("    - {name: n, type: int, values: [1, 2]}", GRID), ["spec.sampling", "grid has 2e+12 points"]),
    ("tiny-step", "m.yaml", swap("values: [1, 2]}", "range: {min: 0, max: 1000000000000, step: 1}}"),
     ["parameters[0].range", "step"]),
    ("nan-cost", "m.yaml", swap("costPerHour: 1.0", "costPerHour: .nan"), ["platforms[0].costPerHour", "non-finite"]),
    ("inf-constraint", "m.yaml", swap("max: 10.0", "max: .inf"), ["constraints[0].max", "non-finite"]),
    ("nan-weight", "m.yaml", swap("latency_ms: 1.0}", "latency_ms: .nan}"), ["weights.latency_ms", "non-finite"]),
    ("duplicate-key", "m.yaml", swap("  trialTimeout: 1m", "  trialTimeout: 1m\n  trialTimeout: 2m"),
     ["m.yaml", "duplicate key 'trialTimeout'", "line"]),
    ("duplicate-document", "m.yaml", lambda t: t + "---\n" + t.split("---\n")[0], ["AIAsset toy", "defined twice"]),
    ("bad-quantity", "m.yaml", swap('cpu: "1"', 'cpu: "two"'), ["resources.limits", "not a Kubernetes quantity"]),
    ("bad-env-name", "m.yaml", swap("env: {MODE: fast}", "env: {1-MODE: fast}"), ["spec.env", "1-MODE"]),
    ("long-sweep-name", "m.yaml", swap("name: toy-sweep}", "name: " + "s" * 249 + "}"), ["metadata.name", "63"]),
    ("unknown-placeholder", "m.yaml",
     swap("    - {name: accuracy, goal: maximize}",
          "    - {name: accuracy, goal: maximize}\n    - {name: watts, source: prometheus, query: 'x{pod=\"{podname}\"}'}"),
     ["metrics[2]", "{podname}"]),
    ("zero-timeout", "m.yaml", swap("trialTimeout: 1m", "trialTimeout: 0s"), ["spec.trialTimeout", "longer than 0"]),
    ("empty-file", "m.yaml", lambda _: "", ["m.yaml", "no resources"]),
    ("only-comments", "m.yaml", lambda _: "# nothing here\n# at all\n", ["m.yaml", "no resources"]),
]


def _clean(result) -> str:
    """The output of a CliRunner call, after checking it ended as a CLI error and not an exception."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {type(result.exception).__name__}: {result.exception}\n{result.output}")
    assert "Traceback" not in result.output
    return result.output


# Every case through validate and run; run already escaped the problems it prints, so a markup file name is validate's.
MANIFEST_RUNS = [(command, *case) for command in ("validate", "run") for case in MANIFESTS
                 if not (command == "run" and case[0] == "markup-in-file-name")]


@pytest.mark.parametrize(("command", "name", "file", "content", "expected"), MANIFEST_RUNS,
                         ids=[f"{c[1]}-{c[0]}" for c in MANIFEST_RUNS])
def test_bad_manifests(tmp_path: Path, command: str, name: str, file: str, content, expected: list[str]) -> None:
    path = tmp_path / file
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content(ASSET))
    args = [command, str(path)] + (["--store", str(tmp_path / "store.db")] if command == "run" else [])
    result = runner.invoke(app, args)
    output = _clean(result)
    assert result.exit_code == 1, output
    for text in expected:
        assert text in output, f"{text!r} not in: {output}"
    if command == "run":
        assert not (tmp_path / "store.db").exists() or not Store(tmp_path / "store.db").trials()


def test_the_valid_manifest_is_valid(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(ASSET)
    result = runner.invoke(app, ["validate", str(tmp_path / "m.yaml")])
    assert result.exit_code == 0, result.output


# -- tables ------------------------------------------------------------------------------------------------

MAPPING = """
asset: kernel
platform: {column: machine}
parameters:
  - {name: bits, type: int}
instance:
  - {name: size}
metrics:
  - {name: time_s, column: time, goal: minimize}
  - {name: error, goal: minimize}
"""
GOOD = "machine,bits,size,time,error\nfast,4,10,1.0,0.1\nslow,8,10,2.0,0.2\nfast,8,20,1.5,0.05\n"

TABLES: list[tuple[str, str, bytes | str, list[str]]] = [
    ("empty", "t.csv", "", ["t.csv", "empty"]),
    ("header-only", "t.csv", "machine,bits,size,time,error\n", ["t.csv", "no rows"]),
    ("binary", "t.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, ["t.csv", "not"]),
    ("fake-parquet", "t.parquet", "machine,bits\nfast,4\n", ["t.parquet", "not a readable Parquet"]),
    ("ragged", "t.csv", GOOD + "fast,4,10,1.0,0.1,7,8\n", ["t.csv", "not a readable CSV"]),
    ("string-instance", "t.csv", GOOD.replace("fast,8,20,", "fast,8,big,"),
     ["t.csv", "instance feature 'size'", "'big'", "type: categorical"]),
    ("grouped-parameter", "t.csv", GOOD.replace("fast,8,20,", 'fast,"1,024",20,'),
     ["t.csv", "parameter 'bits'", "row 4", "'1,024'", "numbers: {thousands"]),
    ("free-text-platform", "t.csv", GOOD.replace("slow,", "Slow Box (2x),"),
     ["'Slow Box (2x)'", "platform.rename", "platform.normalize: true"]),
    ("empty-platform", "t.csv", GOOD.replace("slow,8,10", ",8,10"), ["t.csv", "no platform", "row 3"]),
    ("all-nan-metric", "t.csv", "machine,bits,size,time,error\nfast,4,10,x,0.1\nslow,8,10,,0.2\n",
     ["time_s", "no numeric value"]),
]


@pytest.mark.parametrize("command", ["import", "evaluate"])
@pytest.mark.parametrize(("name", "file", "content", "expected"), TABLES, ids=[c[0] for c in TABLES])
def test_bad_tables(tmp_path: Path, command: str, name: str, file: str, content, expected: list[str]) -> None:
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    table = tmp_path / file
    table.write_bytes(content if isinstance(content, bytes) else content.encode())
    args = [command, str(table), "-m", str(tmp_path / "mapping.yaml")]
    if command == "import":
        args += ["--store", str(tmp_path / "store.db")]
    result = runner.invoke(app, args)
    output = _clean(result)
    assert result.exit_code == 1, output
    for text in expected:
        assert text in output, f"{text!r} not in: {output}"


def test_bad_metric_cells_are_counted_and_reported(tmp_path: Path) -> None:
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    (tmp_path / "t.csv").write_text(GOOD + "slow,4,20,oops,0.3\nslow,4,30,inf,0.3\n")
    result = runner.invoke(app, ["import", str(tmp_path / "t.csv"), "-m", str(tmp_path / "mapping.yaml"),
                                 "--store", str(tmp_path / "store.db")])
    output = _clean(result)
    assert result.exit_code == 0, output
    assert ("metric 'time_s' (column 'time'): 1 non-numeric cell(s) (the first, row 5: 'oops') and 1 infinite value(s) "
            "skipped") in output
    frame = Store(tmp_path / "store.db").frame("kernel")
    assert frame["metric.time_s"].isna().sum() == 2 and np.isfinite(frame["metric.time_s"].dropna()).all()


def test_grouped_numbers_are_reported_or_read_as_the_mapping_says(tmp_path: Path) -> None:
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    (tmp_path / "t.csv").write_text(GOOD + 'slow,4,20,"1,500.5",0.3\n')
    args = ["import", str(tmp_path / "t.csv"), "-m", str(tmp_path / "mapping.yaml"), "--store", str(tmp_path / "s.db")]
    output = _clean(result := runner.invoke(app, args))
    assert result.exit_code == 0, output
    assert "metric 'time_s' (column 'time'): 1 non-numeric cell(s) (the first, row 5: '1,500.5'" in output
    assert "numbers: {thousands: ..., decimal: ...}" in output
    (tmp_path / "mapping.yaml").write_text(MAPPING + "numbers: {thousands: ','}\n")
    output = _clean(result := runner.invoke(app, args))
    assert result.exit_code == 0 and "warning" not in output, output
    assert 1500.5 in Store(tmp_path / "s.db").frame("kernel")["metric.time_s"].tolist()


LONG_MAPPING = """
asset: kernel
platform: {column: machine}
pivot: {column: unit, value: value}
metrics:
  - {name: time_s, goal: minimize, units: {s: 1, ms: 0.001}}
"""


def test_a_long_table_with_an_unknown_unit_names_file_row_and_column(tmp_path: Path) -> None:
    (tmp_path / "mapping.yaml").write_text(LONG_MAPPING)
    (tmp_path / "t.csv").write_text("machine,unit,value\nfast,s,1.0\nfast,ms,900\nslow,minutes,2\n")
    for command in (["import", "--store", str(tmp_path / "s.db")], ["evaluate"]):
        result = runner.invoke(app, [command[0], str(tmp_path / "t.csv"), "-m", str(tmp_path / "mapping.yaml"),
                                     *command[1:]])
        output = _clean(result)
        assert result.exit_code == 1, output
        assert "t.csv: row 4: 'unit' is 'minutes', which no metric lists in its units" in " ".join(output.split())


def test_markup_in_table_values_is_shown_as_written(tmp_path: Path) -> None:
    (tmp_path / "mapping.yaml").write_text(MAPPING.replace("{name: bits, type: int}", "{name: bits, type: categorical}"))
    (tmp_path / "t.csv").write_text(GOOD.replace("fast,4,", "fast,[/x],").replace("slow,8,", "slow,[bold]b,"))
    store = tmp_path / "store.db"
    imported = runner.invoke(app, ["import", str(tmp_path / "t.csv"), "-m", str(tmp_path / "mapping.yaml"),
                                   "--store", str(store)])
    assert imported.exit_code == 0 and "[/x]" in _clean(imported) and "[bold]b" in imported.output, imported.output
    listed = runner.invoke(app, ["trials", "--store", str(store)], env={"COLUMNS": "300"}, terminal_width=300)
    assert listed.exit_code == 0 and '"[/x]"' in _clean(listed) and '"[bold]b"' in listed.output, listed.output


@pytest.mark.timeout(120)
def test_evaluate_on_a_three_row_table_ends_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    (tmp_path / "t.csv").write_text(GOOD)
    result = runner.invoke(app, ["evaluate", str(tmp_path / "t.csv"), "-m", str(tmp_path / "mapping.yaml")])
    output = _clean(result)
    assert result.exit_code == 1 and "cannot draw" in output and "at least 30 configurations" in output, output


# -- stores --------------------------------------------------------------------------------------------------

def _store(tmp_path: Path) -> Path:
    """A real store with the valid manifest's asset and sweep and a planned trial."""
    (tmp_path / "m.yaml").write_text(ASSET)
    path = tmp_path / "store.db"
    pd.DataFrame({"machine": ["fast"] * 40, "bits": range(40), "size": [1] * 40, "time": np.linspace(1, 2, 40),
                  "error": np.linspace(0.1, 0.2, 40)}).to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    result = runner.invoke(app, ["import", str(tmp_path / "t.csv"), "-m", str(tmp_path / "mapping.yaml"),
                                 "--store", str(path)])
    assert result.exit_code == 0, result.output
    return path


def _not_sqlite(tmp_path: Path) -> Path:
    (tmp_path / "store.db").write_bytes(b"this is a text file, not a database\n" * 20)
    return tmp_path / "store.db"


def _truncated(tmp_path: Path) -> Path:
    path = _store(tmp_path)
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    for side in ("-wal", "-shm"):
        Path(str(path) + side).unlink(missing_ok=True)
    return path


def _foreign(tmp_path: Path) -> Path:
    with sqlite3.connect(tmp_path / "store.db") as con:
        con.execute("CREATE TABLE trials (x INTEGER)")
    return tmp_path / "store.db"


def _corrupt_row(tmp_path: Path) -> Path:
    path = _store(tmp_path)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE assets SET manifest = '{\"spec\": '")
    return path


def _directory(tmp_path: Path) -> Path:
    (tmp_path / "store.db").mkdir()
    return tmp_path / "store.db"


STORES = [
    ("not-sqlite", _not_sqlite, ["trials"], ["store.db", "not an hwmatch store"]),
    ("not-sqlite-run", _not_sqlite, ["run", "{dir}/m.yaml"], ["store.db", "not an hwmatch store"]),
    ("truncated", _truncated, ["trials"], ["store.db", "damaged"]),
    ("foreign-schema", _foreign, ["trials"], ["store.db", "not an hwmatch store", "lacks"]),
    ("foreign-schema-run", _foreign, ["run", "{dir}/m.yaml"], ["store.db", "not an hwmatch store"]),
    ("corrupt-json-row", _corrupt_row, ["trials"], ["store.db", "assets row 'kernel' is damaged"]),
    ("corrupt-json-row-export", _corrupt_row, ["export", "--out", "{dir}/out.csv"], ["assets row 'kernel' is damaged"]),
    ("a-directory", _directory, ["run", "{dir}/m.yaml"], ["store.db", "is a directory"]),
    ("report-o-a-file", _store, ["report", "--out", "{dir}/m.yaml"], ["m.yaml", "is a file", "--out names a directory"]),
]


@pytest.mark.parametrize(("name", "make", "args", "expected"), STORES, ids=[c[0] for c in STORES])
def test_bad_stores(tmp_path: Path, name: str, make, args: list[str], expected: list[str]) -> None:
    (tmp_path / "m.yaml").write_text(ASSET)
    store = make(tmp_path)
    argv = [a.format(dir=tmp_path) for a in args] + ["--store", str(store)]
    result = runner.invoke(app, argv)
    output = _clean(result)
    assert result.exit_code == 1, output
    for text in expected:
        assert text in output, f"{text!r} not in: {output}"


def test_a_locked_store_names_the_lock_and_the_fix(tmp_path: Path) -> None:
    store = _store(tmp_path)
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = runner.invoke(app, ["import", str(tmp_path / "t.csv"), "-m", str(tmp_path / "mapping.yaml"),
                                     "--store", str(store)], env={"HWMATCH_STORE_TIMEOUT": "0.2"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    output = _clean(result)
    assert result.exit_code == 1 and "store.db is locked by another process" in output, output


@pytest.fixture
def mount(tmp_path: Path):
    """mount(size, readonly=False) -> a fresh tmpfs directory (root only), unmounted afterwards."""
    mounted: list[Path] = []

    def make(size: str = "4m") -> Path:
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield make
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _readonly(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


def test_read_only_file_system(tmp_path: Path, mount) -> None:
    fs = mount()
    store = fs / "store.db"
    source = _store(tmp_path)
    with sqlite3.connect(source) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.write_bytes(source.read_bytes())
    out = mount()
    _readonly(fs)
    _readonly(out)
    listed = runner.invoke(app, ["trials", "--store", str(store)])  # reading works on a read-only file system
    assert listed.exit_code == 0 and "40 trial(s)" in _clean(listed), listed.output
    cases = [
        (["run", str(tmp_path / "m.yaml")], [str(store), "read-only"]),
        (["run", str(tmp_path / "m.yaml"), "--store", str(out / "new" / "store.db")], ["new", "writable"]),
        (["export", "--out", str(out / "d.csv")], ["d.csv", "cannot write", "writable directory"]),
        (["report", "--out", str(out / "report")], ["report", "cannot write the report", "writable directory"]),
    ]
    for args, expected in cases:
        if "--store" not in args:
            args = [*args, "--store", str(store)]
        result = runner.invoke(app, args)
        output = _clean(result)
        assert result.exit_code == 1, (args, output)
        for text in expected:
            assert text in output, (args, text, output)


# -- a trial result with markup and a huge number ------------------------------------------------------------

RESULTS = textwrap.dedent("""
    import json, os
    n = json.loads(os.environ["HWMATCH_PARAMS"])["n"]
    if n == 1:
        print(json.dumps({"metrics": {"[/x]": 1.0, "[bold]b": 2.0}}))
    elif n == 2:
        print('{"metrics": {"latency_ms": ' + "9" * 400 + ', "accuracy": 1}}')
    else:
        print(json.dumps({"metrics": {"latency_ms": float(n), "accuracy": 0.5}}))
""")


@pytest.mark.timeout(240)
def test_markup_and_huge_numbers_in_results_are_trial_failures(tmp_path: Path) -> None:
    (tmp_path / "asset.py").write_text(RESULTS)
    manifest = (ASSET.replace("""command: [python, -c, "print('{}')"]""", f"command: [python, {tmp_path / 'asset.py'}]")
                .replace("values: [1, 2]}", "values: [1, 2, 3, 4]}"))
    (tmp_path / "m.yaml").write_text(manifest)
    done = subprocess.run([sys.executable, "-m", "hwmatch.cli", "run", str(tmp_path / "m.yaml"),
                           "--store", str(tmp_path / "store.db")], capture_output=True, text=True, timeout=200)
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "MarkupError" not in output, output
    trials = {(t.spec.parameters["n"], t.spec.parameters["kind"]): t.status for t in Store(tmp_path / "store.db").trials()}
    assert len(trials) == 8 and all(s.phase in ("Succeeded", "Failed") for s in trials.values()), trials
    assert trials[(1, "a")].reason == "MissingMetrics" and "[/x]" in trials[(1, "a")].message
    assert trials[(2, "a")].reason == "NoResult" and "fit a float" in trials[(2, "a")].message
    assert trials[(3, "a")].phase == trials[(4, "b")].phase == "Succeeded"
    assert "[/x]" in output  # shown as written, not read as markup
    assert "toy-rec" in output  # the recommendation was solved


# -- CLI misuse with markup in what the user typed -------------------------------------------------------------

MISUSE = [
    ("recommend-no-recommendation", ["recommend", "{dir}/sweep[bold].yaml"], "sweep[bold].yaml: no HWRecommendation"),
    ("trials-bad-sort", ["trials", "--sort", "[/x]", "--store", "{dir}/store.db"], "--sort '[/x]': no such column"),
    ("run-nothing-to-run", ["run", "{dir}/sweep[bold].yaml", "--store", "{dir}/store.db"],
     "sweep[bold].yaml: nothing to run"),
    ("evaluate-bad-budget", ["evaluate", "{dir}/t.csv", "-m", "{dir}/mapping.yaml", "--budget", "[/x]"],
     "--budget: '[/x]' is not a share"),
]


@pytest.mark.parametrize(("name", "args", "expected"), MISUSE, ids=[c[0] for c in MISUSE])
def test_markup_in_arguments_is_shown_as_written(tmp_path: Path, name: str, args: list[str], expected: str) -> None:
    only_asset = ASSET.split("---\n")[0]
    (tmp_path / "sweep[bold].yaml").write_text(only_asset)
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    (tmp_path / "t.csv").write_text(GOOD)
    Store(tmp_path / "store.db").close()
    result = runner.invoke(app, [a.format(dir=tmp_path) for a in args])
    output = _clean(result)
    assert result.exit_code == 1 and expected in output, output
