"""What a person sees at 80 columns: ``run``'s progress line, ``trials`` and ``recommend``; the listing's formats.

Each command renders at ``COLUMNS=80`` (rich reads it on every print); no word
may be cut (``latency_p99_m s``, ``batch_size=12 8``), no line may be wider
than the terminal, and the progress line keeps its bar, count, elapsed time
and ETA while the text of the current trial gives way.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrial, BenchmarkTrialStatus, load_text
from hwmatch.cli import app
from hwmatch.data.store import Store
from hwmatch.engine import run_sweep
from hwmatch.execution import result

NARROW = {"COLUMNS": "80"}

MANIFESTS = """
apiVersion: hwmatch.dev/v1alpha1
kind: AIAsset
metadata: {name: digits-forest}
spec:
  command: [python, -c, pass]
  parameters:
    - {name: batch_size, type: int, values: [1, 8, 32, 128]}
    - {name: n_estimators, type: int, values: [50, 200]}
    - {name: engine, type: categorical, values: [onnx, "[b]"]}
  metrics:
    - {name: latency_p99_ms, goal: minimize}
    - {name: throughput_per_s, goal: maximize}
    - {name: accuracy, goal: maximize}
---
apiVersion: hwmatch.dev/v1alpha1
kind: BenchmarkSweep
metadata: {name: digits-forest-local}
spec:
  assetRef: {name: digits-forest}
  platforms: [{name: cpu-small, costPerHour: 0.5}, {name: cpu-large, costPerHour: 2.0}]
  sampling: {strategy: grid, repetitions: 2}
"""
RECOMMENDATION = {
    "apiVersion": "hwmatch.dev/v1alpha1", "kind": "HWRecommendation", "metadata": {"name": "digits-forest-prod"},
    "spec": {"assetRef": {"name": "digits-forest"}, "objective": {"minimize": "cost_per_hour"}, "confidence": 0.9,
             "constraints": [{"metric": "latency_p99_ms", "max": 200}, {"metric": "accuracy", "min": 0.8}],
             "throughput": {"requestsPerSecond": 3000}},
}


class LawExecutor:
    """A known law in-process: larger batches are slower per request but serve more; ±3% between repetitions."""

    def check(self, asset: AIAsset, sweep: BenchmarkSweep) -> None:
        pass

    def cancel(self) -> None:
        pass

    def run(self, trial: BenchmarkTrial, asset: AIAsset, sweep: BenchmarkSweep) -> BenchmarkTrialStatus:
        p = trial.spec.parameters
        speed = 4.0 if trial.spec.platform == "cpu-large" else 1.0
        noise = 0.97 if trial.spec.repetition == 0 else 1.03
        latency = (5.0 + 0.8 * p["batch_size"] + 0.1 * p["n_estimators"]) / speed * noise
        metrics = {"latency_p99_ms": latency, "throughput_per_s": 1000.0 * p["batch_size"] / latency,
                   "accuracy": 0.7 + 0.001 * p["n_estimators"] * noise}
        now = result.now()
        return result.succeeded(result.HarnessResult(metrics), now, now, {})


@pytest.fixture(scope="module")
def solved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(store, recommendation file): the sweep run in-process, the recommendation not yet solved."""
    directory = tmp_path_factory.mktemp("terminal")
    db = directory / "store.db"
    asset, sweep = (d.resource for d in load_text(MANIFESTS))
    with Store(db) as store:
        assert run_sweep(store, asset, sweep, LawExecutor()).succeeded == 64
    rec = directory / "rec.yaml"
    rec.write_text(yaml.safe_dump(RECOMMENDATION))
    return db, rec


@pytest.fixture(scope="module")
def answered(solved: tuple[Path, Path]) -> tuple[Path, str]:
    """(store, what `hwmatch recommend` printed at 80 columns): the recommendation solved and stored."""
    db, rec = solved
    result = CliRunner().invoke(app, ["recommend", str(rec), "--store", str(db)], env=NARROW)
    assert result.exit_code == 0, result.output
    return db, result.output


#: Every word with "_" or "-" in it that these outputs print: a cut one ("latency_p99_m", "cpu-…") is none of them.
WORDS = {"latency_p99_ms", "throughput_per_s", "cost_per_hour", "cpu-small", "cpu-large", "two-sided",
         "hist_gradient_boosting+log", "extra_trees", "digits-forest", "digits-forest-local", "digits-forest-prod", "-", "-o"}
VALUES = {"batch_size": {"1", "8", "32", "128"}, "n_estimators": {"50", "200"}, "engine": {'"onnx"', '"[b]"', "onnx", "[b]"}}


def assert_fits(output: str, width: int = 80) -> None:
    """No line wider than ``width``; every ``name=value`` and every word with "_" or "-" whole."""
    for line in output.splitlines():
        assert len(line.rstrip()) <= width, line
    for token in output.split():
        word = token.strip("()[],:;│┃")
        name, _, value = word.partition("=")
        if value:
            assert name in VALUES and value.rstrip(",") in VALUES[name], f"cut: {token!r} in\n{output}"
        elif "_" in word or "-" in word:
            assert word in WORDS or word.startswith("digits-forest-local-"), f"cut: {token!r} in\n{output}"


def test_recommend_fits_80_columns_with_throughput_and_a_replicas_header(answered: tuple[Path, str]) -> None:
    _, output = answered
    assert_fits(output)
    header = next(line for line in output.splitlines() if "platform" in line)
    assert header.split() == ["platform", "replicas", "cost/h", "parameters"]
    assert "batch_size=128" in output and "latency_p99_ms" in output
    row = next(line for line in output.splitlines() if line.split()[:1] == ["throughput_per_s"])
    assert ">= 3000" in row  # the target, and the throughput every replica serves together


def test_run_keeps_bar_count_elapsed_and_eta_at_80_columns(tmp_path: Path) -> None:
    code = ("import json, os; p = json.loads(os.environ['HWMATCH_PARAMS']); "
            "print(json.dumps({'metrics': {'latency_p99_ms': 1.0 + p['batch_size']}}))")
    manifests = list(yaml.safe_load_all(MANIFESTS))
    manifests[0]["spec"].update(command=[sys.executable, "-c", code],
                                metrics=[{"name": "latency_p99_ms", "goal": "minimize"}])
    manifests[0]["spec"]["parameters"][1]["name"] = "a_parameter_with_a_long_name_that_cannot_fit"
    manifests[1]["spec"]["platforms"] = [{"name": "cpu-small", "cpus": [0]}]
    manifests[1]["spec"]["sampling"] = {"strategy": "grid"}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump_all(manifests))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "sweep.yaml"), "--store", str(tmp_path / "s.db")],
                                env=NARROW)
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.output.splitlines() if "━" in line]
    assert len(line) <= 80, line
    assert re.search(r"16/16 \d:\d\d:\d\d eta \d:\d\d:\d\d ", line), line  # count, elapsed, ETA, then the trial
    assert line.rstrip().endswith("…"), line  # the trial's text gives way, not the figures
    assert_fits(result.output.replace(line, ""))  # the summary: nothing cut
    assert "sweeps (median latency_p99_ms)" in result.output


def test_trials_is_one_line_per_trial_and_fits_80_columns(solved: tuple[Path, Path]) -> None:
    db, _ = solved
    narrow = CliRunner().invoke(app, ["trials", "--store", str(db)], env=NARROW)
    assert narrow.exit_code == 0, narrow.output
    assert_fits(narrow.output)
    lines = narrow.output.splitlines()
    assert lines[0].split()[:4] == ["trial", "platform", "status", "latency_p99_ms"]
    assert len(lines) == 1 + 64 + 2 and lines[-2] == "64 trial(s)"
    assert "not shown at 80 columns: throughput_per_s, accuracy; -o wide shows every column" in lines[-1]
    assert '"[b]"' in narrow.output  # a value with markup in it, printed as it is
    wide = CliRunner().invoke(app, ["trials", "--store", str(db), "-o", "wide"], env=NARROW)
    header = wide.output.splitlines()[0].split()
    assert header == ["trial", "sweep", "platform", "status", "reason", "rep", "tries", "latency_p99_ms",
                      "throughput_per_s", "accuracy", "parameters"]
    assert len(wide.output.splitlines()) == 1 + 64 + 1  # wide lines are not cut: one line per trial still
    assert "digits-forest-local-" in wide.output and "n_estimators=200" in wide.output


def test_trials_sort_limit_sweep_and_status(solved: tuple[Path, Path]) -> None:
    db, _ = solved
    runner = CliRunner()
    top = runner.invoke(app, ["trials", "--store", str(db), "--sort", "-latency_p99_ms", "--limit", "3", "-o", "csv"])
    rows = list(csv.DictReader(io.StringIO(top.output)))
    everything = list(csv.DictReader(io.StringIO(runner.invoke(app, ["trials", "--store", str(db), "-o", "csv"]).output)))
    slowest = sorted((float(r["metric.latency_p99_ms"]) for r in everything), reverse=True)[:3]
    assert [float(r["metric.latency_p99_ms"]) for r in rows] == slowest
    ascending = runner.invoke(app, ["trials", "--store", str(db), "--sort", "platform", "-o", "csv"]).output
    assert [r["platform"] for r in csv.DictReader(io.StringIO(ascending))][::32] == ["cpu-large", "cpu-small"]
    limited = runner.invoke(app, ["trials", "--store", str(db), "--limit", "5"], env=NARROW).output
    assert "5 of 64 trial(s)" in limited
    both = runner.invoke(app, ["trials", "--store", str(db), "--sweep", "digits-forest-local", "--sweep", "other"])
    assert "64 trial(s)" in both.output
    failed = runner.invoke(app, ["trials", "--store", str(db), "--status", "FAILED", "--status", "pending"])
    assert failed.exit_code == 0 and "0 trial(s)" in failed.output
    bad = runner.invoke(app, ["trials", "--store", str(db), "--sort", "speed"])
    assert bad.exit_code == 1 and "--sort 'speed': no such column; choose one of trial," in " ".join(bad.output.split())
    wrong = runner.invoke(app, ["trials", "--store", str(db), "--status", "done"])
    assert wrong.exit_code == 2 and "'done' is not one of" in wrong.output


def test_trials_as_data(solved: tuple[Path, Path]) -> None:
    db, _ = solved
    runner = CliRunner()
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, ["trials", "--store", str(db), "-o", "csv"]).output)))
    assert len(rows) == 64 and rows[0]["param.engine"] in ("onnx", "[b]") and rows[0]["asset"] == "digits-forest"
    docs = json.loads(runner.invoke(app, ["trials", "--store", str(db), "-o", "json", "--limit", "2"]).output)
    assert [d["kind"] for d in docs] == ["BenchmarkTrial"] * 2 and "latency_p99_ms" in docs[0]["status"]["metrics"]
    listed = list(yaml.safe_load_all(runner.invoke(app, ["trials", "--store", str(db), "-o", "yaml"]).output))
    assert len(listed) == 64 and listed[0]["spec"]["platform"] in ("cpu-small", "cpu-large")
    logs = runner.invoke(app, ["trials", "--store", str(db), "-o", "json", "--logs"])
    assert logs.exit_code == 1 and "--logs" in logs.output and "drop --logs" in logs.output


def test_trials_as_resources_follow_the_listing_s_order(solved: tuple[Path, Path]) -> None:
    """``-o json --sort`` is the resources in the order ``-o csv --sort`` lists them (the listing reads plain rows)."""
    db, _ = solved
    runner = CliRunner()
    args = ["trials", "--store", str(db), "--sort", "-latency_p99_ms", "--limit", "7"]
    listed = [r["trial"] for r in csv.DictReader(io.StringIO(runner.invoke(app, [*args, "-o", "csv"]).output))]
    docs = json.loads(runner.invoke(app, [*args, "-o", "json"]).output)
    assert [d["metadata"]["name"] for d in docs] == listed and len(listed) == 7


@pytest.mark.parametrize("argv", [["--help"], ["trials", "--store", "{store}"], ["trials", "--store", "{store}", "-o", "csv"]])
def test_help_and_a_listing_start_without_models_or_pandas(solved: tuple[Path, Path], argv: list[str]) -> None:
    """They load neither hwmatch's models nor pandas (issue 14: those imports were most of their start-up).

    (Typer itself builds a pydantic TypeAdapter per option when a command runs, so pydantic is not counted.)
    """
    db, _ = solved
    heavy = "{'pandas', 'numpy', 'sklearn', 'hwmatch.api.base', 'hwmatch.api.sweep', 'hwmatch.api.asset'}"
    code = ("import sys\nfrom hwmatch.cli import app\ntry:\n    app(sys.argv[1:], prog_name='hwmatch')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            f"print(sorted(({{m.split('.')[0] for m in sys.modules}} | set(sys.modules)) & {heavy}))")
    done = subprocess.run([sys.executable, "-c", code, *(a.format(store=db) for a in argv)], capture_output=True,
                          text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[]", done.stdout[-500:] + done.stderr


def test_get_recommendation_shows_the_stored_answer(answered: tuple[Path, str]) -> None:
    db, printed = answered
    runner = CliRunner()
    shown = runner.invoke(app, ["get", "recommendation", "digits-forest-prod", "--store", str(db)], env=NARROW)
    assert shown.exit_code == 0, shown.output
    assert sorted(shown.output.split()) == sorted(printed.split())  # as `recommend` printed it, not solved again
    docs = json.loads(runner.invoke(app, ["get", "recommendations", "--store", str(db), "-o", "json"]).output)
    assert [d["metadata"]["name"] for d in docs] == ["digits-forest-prod"] and docs[0]["status"]["recommendation"]
    missing = runner.invoke(app, ["get", "recommendation", "nope", "--store", str(db)])
    assert missing.exit_code == 1
    assert "no stored recommendation named nope" in missing.output and "(stored: digits-forest-prod)" in missing.output


def _commands(group: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    from typer.core import TyperGroup

    out = [path]
    if isinstance(group, TyperGroup):
        for name, sub in group.commands.items():
            if not sub.hidden:
                out += _commands(sub, (*path, name))
    return out


def test_help_pages_carry_no_placeholders_and_lead_with_run() -> None:
    import typer.main

    runner = CliRunner()
    commands = _commands(typer.main.get_command(app))
    assert ("get", "recommendation") in commands and ("run",) in commands
    for path in commands:
        result = runner.invoke(app, [*path, "--help"], env=NARROW)
        assert result.exit_code == 0, (path, result.output)
        for placeholder in ("<bool>", "<list["):
            assert placeholder not in result.output, (path, placeholder, result.output)
        usage = next(line for line in result.output.splitlines() if "Usage:" in line)
        assert "{" not in usage and "[OPTIONS]" in usage, usage  # FILES..., not {files}...
    top = runner.invoke(app, ["--help"], env=NARROW).output
    assert "Start here" in top and top.index("Start here") < top.index(" validate ")
    assert top.index(" run ") < top.index(" trials ") < top.index(" recommend ") < top.index(" import ")


def test_old_spellings_still_work_and_say_the_new_one(solved: tuple[Path, Path], tmp_path: Path) -> None:
    db, _ = solved
    result = CliRunner().invoke(app, ["export", "-o", str(tmp_path / "d.csv"), "--store", str(db)])
    assert result.exit_code == 0 and (tmp_path / "d.csv").exists(), result.output
    assert "-o/--output FILE is now --out FILE" in result.output
    missing = CliRunner().invoke(app, ["export", "--store", str(db)])
    assert missing.exit_code == 1 and "give --out FILE.parquet" in missing.output


def test_listing_pads_wide_and_zero_width_characters_by_their_cells() -> None:
    """Columns stay aligned whatever a cell holds: ASCII, CJK (two cells a character), combining marks (none)."""
    from rich.cells import cell_len

    from hwmatch.cli import listing

    columns = [listing.Column("name"), listing.Column("value", right=True), listing.Column("note")]
    rows = [["plain", "1.5", "ascii only"], ["東京", "22", "two cells each"], ["e\u0301te\u0301", "333", "combining"]]
    shown, widths, left_out = listing.fit(columns, rows, 80)
    assert not left_out and widths[:2] == [5, 5]
    out = list(listing.lines(columns, rows, shown, widths))
    # the third column starts at the same cell on every line
    starts = [cell_len(line[:line.index(note)]) for line, note in zip(out, ["note", "ascii", "two", "combining"])]
    assert len(set(starts)) == 1, out
