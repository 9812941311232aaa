"""``hwmatch run``, ``hwmatch trials`` and ``hwmatch export``: local sweeps and their results."""

from __future__ import annotations

import glob
import json
import signal
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from hwmatch.api import BenchmarkSweep, BenchmarkTrial, BenchmarkTrialStatus
from hwmatch.api.vocabulary import FAILED, PHASES, RUNNING, SUCCEEDED
from hwmatch.cli.app import app, console, err_console, fail, open_existing, reported, store_option
from hwmatch.cli.recommend import answer_all, verify_all
from hwmatch.data.store import Store
from hwmatch.engine import FileRun, SweepRun, run_file
from hwmatch.execution.base import Executor

STATUS_STYLE = {SUCCEEDED: "green", FAILED: "red", RUNNING: "yellow"}


class RichProgress:
    """A rich progress bar per sweep: trials done / total, ETA, and the trial that started last."""

    def __init__(self, console: Console):
        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[current]}"),
            console=console, transient=False,
        )
        self.task: Any = None
        self.failed = 0

    def __enter__(self) -> "RichProgress":
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def start(self, sweep: BenchmarkSweep, total: int, done: int) -> None:
        name = escape(sweep.metadata.name)
        if self.task is not None and self.bar.tasks[self.task].description == name:
            self.bar.update(self.task, total=total, completed=done)
            return
        self.task = self.bar.add_task(name, total=total, completed=done, current="")

    def trial_started(self, trial: BenchmarkTrial) -> None:
        self.bar.update(self.task, current=escape(f"{trial.spec.platform} {_kv(trial.spec.parameters)}"))

    def trial_finished(self, trial: BenchmarkTrial, status: BenchmarkTrialStatus) -> None:
        self.bar.advance(self.task)
        if status.phase == FAILED:
            self.bar.console.print(
                "[red]✗[/] " + escape(f"{trial.metadata.name} {trial.spec.platform} {_kv(trial.spec.parameters)}: "
                                      f"{status.reason}: {status.message}"), highlight=False,
            )

    def waiting(self, sweep: BenchmarkSweep, holder: str) -> None:
        host, pid, _ = holder.rsplit(":", 2)
        self.bar.console.print(escape(
            f"sweep {sweep.metadata.name} is being run by another hwmatch run (pid {pid} on {host}) in this store; "
            "waiting for it to finish (one runner per sweep), then running what it left"), highlight=False)


def _executor(store: Store, patterns: list[str] | None, mapping: Path | None, mode: str) -> Executor:
    """The local executor, or a replay of the tables ``patterns`` name (their asset is put in ``store``)."""
    if not patterns:
        if mapping is not None:
            raise fail("--mapping applies to --replay tables; give the tables with --replay")
        from hwmatch.execution import LocalExecutor

        return LocalExecutor()
    if mapping is None:
        raise fail("--replay needs --mapping: the YAML that says how the tables read (see examples/import/)")
    if mode not in ("nearest", "exact"):
        raise fail(f"--replay-mode: {mode!r} is not a mode; choose nearest or exact")
    from hwmatch.data.importer import TableError, import_tables, load_mapping
    from hwmatch.execution.replay import ReplayExecutor, ReplayTable

    tables: list[Path] = []
    for pattern in patterns:
        found = sorted(Path(p) for p in glob.glob(pattern))
        if not found:
            raise fail(f"--replay: no table matches {pattern!r}")
        tables.extend(found)
    try:
        imported = import_tables(load_mapping(mapping), tables)
    except TableError as exc:
        raise fail(f"--replay: {exc}") from None
    store.put_asset(imported.asset)
    return ReplayExecutor(ReplayTable(imported.frame, imported.asset, mode))  # type: ignore[arg-type]  # checked above


@app.command()
def run(
    files: list[Path] = typer.Argument(..., help="Manifest files with AIAssets, BenchmarkSweeps and HWRecommendations.",
                                       show_default=False),
    store: Path = store_option(),
    sweep: Optional[list[str]] = typer.Option(None, "--sweep", help="Run only this sweep (repeatable)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run failed trials again (with fresh retries)."),
    replay: Optional[list[str]] = typer.Option(
        None, "--replay", help="Answer trials from these benchmark tables instead of running them: a path or a quoted "
                               "glob ('tables/saxpy_*.csv'), repeatable.",
    ),
    mapping: Optional[Path] = typer.Option(None, "--mapping", "-m", help="YAML mapping of the --replay tables."),
    replay_mode: str = typer.Option("nearest", "--replay-mode",
                                    help="nearest: the closest measured row; exact: only measured configurations."),
) -> None:
    """Run the sweeps in FILES on this machine, then solve their HWRecommendations (and verify them: spec.verify).

    Trials already finished in the store are kept, not rerun: a run killed at any point resumes where it stopped.
    With --replay, trials are answered from published tables (see `hwmatch import`): sampling strategies compared
    offline, at no cost; the tables' asset is stored, so the files need only the sweeps and recommendations.
    """
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with reported(), Store(store) as db:
            executor = _executor(db, replay, mapping, replay_mode)
            with RichProgress(console) as progress:
                outcome = run_file(files, db, executor, sweeps=sweep, progress=progress, retry_failed=retry_failed)
            if not outcome.sweeps and not outcome.recommendations:
                raise fail(f"{', '.join(map(str, files))}: nothing to run; add a BenchmarkSweep or a HWRecommendation")
            if outcome.runs:
                print_summary(outcome, db)
            if outcome.recommendations:
                solved = verify_all(db, answer_all(db, outcome.recommendations), executor)
                if any(r.status and (r.status.phase == "Failed" or (
                        r.status.verification and r.status.verification.phase == "Failed")) for r in solved):
                    raise typer.Exit(1)
    except KeyboardInterrupt:
        err_console.print(escape(f"interrupted: finished trials are kept in {store}; run the same command again to resume"))
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def print_summary(outcome: FileRun, db: Store) -> None:
    """One row per sweep and platform: outcomes, the first metric's median, failure reasons."""
    table = Table("sweep", "platform", "succeeded", "failed", "not run", "median", "failures", title="sweeps")
    for report in outcome.runs:
        asset = db.asset(report.asset)
        metric = asset.spec.metrics[0].name if asset else None
        frame = db.frame(asset=report.asset, sweeps=[report.sweep])
        for platform, counts in report.counts.items():
            rows = frame[(frame["platform"] == platform) & (frame["status"] == SUCCEEDED)]
            column = f"metric.{metric}"
            median = f"{metric} {rows[column].median():.4g}" if metric and column in rows and len(rows) else "-"
            reasons = Counter(frame[(frame["platform"] == platform) & (frame["status"] == FAILED)]["reason"])
            table.add_row(
                escape(report.sweep), escape(platform), str(counts.get(SUCCEEDED, 0)), str(counts.get(FAILED, 0)),
                str(sum(n for s, n in counts.items() if s not in (SUCCEEDED, FAILED))), escape(median),
                escape(", ".join(f"{r} ×{n}" for r, n in reasons.most_common()) or "-"),
            )
    console.print(table)
    for report in outcome.runs:
        console.print(_sentence(report), markup=False, highlight=False)


def _sentence(report: SweepRun) -> str:
    """The sweep's status as the operator writes it (phase, progress, Complete), then what this run did."""
    status = report.status
    complete = next((c.message for c in status.conditions if c.type == "Complete"), "")
    return (f"{report.sweep}: {status.phase} {status.progress} ({complete}); this run: {report.attempts} attempt(s), "
            f"{report.succeeded} succeeded, {report.failed} failed, {report.skipped} kept from before, "
            f"in {report.elapsed_s:.1f}s")


@app.command()
def trials(
    sweep: Optional[str] = typer.Option(None, "--sweep", help="Only this sweep."),
    asset: Optional[str] = typer.Option(None, "--asset", help="Only this asset."),
    status: Optional[str] = typer.Option(None, "--status", help="Only this status: Pending, Running, Succeeded, Failed."),
    logs: bool = typer.Option(False, "--logs", help="Also print the log tail of failed trials."),
    store: Path = store_option(),
) -> None:
    """List the stored trials: platform, parameters, status, and the metrics their asset declares."""
    if status is not None and status.capitalize() not in PHASES:
        raise fail(f"--status {status!r}: use one of Pending, Running, Succeeded, Failed")
    with reported(), open_existing(store, readonly=True) as db:
        rows = db.trials(sweep=sweep, asset=asset, status=status.capitalize() if status else None)
        declared = {a.metadata.name: [m.name for m in a.spec.metrics] for a in db.assets()}
    table = Table(box=None)
    table.add_column("trial", no_wrap=True)
    for name in ("platform", "parameters", "rep", "status", "reason", "tries", "metrics"):
        table.add_column(name)
    for t in rows:
        s = t.status or BenchmarkTrialStatus()
        phase = s.phase or PHASES[0]
        table.add_row(
            escape(t.metadata.name), escape(t.spec.platform), escape(_kv({**t.spec.instance, **t.spec.parameters})),
            str(t.spec.repetition), f"[{STATUS_STYLE.get(phase, 'dim')}]{escape(phase)}[/]", escape(s.reason or ""),
            str(s.attempts),
            escape(_kv({k: float(f"{v:.4g}") for k, v in s.metrics.items()
                        if k in declared.get(t.spec.asset_ref.name, s.metrics)})),
        )
    console.print(table)
    console.print(f"{len(rows)} trial(s)")
    if logs:
        for t in rows:
            if t.status and t.status.phase == FAILED:
                console.rule(escape(f"{t.metadata.name}: {t.status.reason}"))
                console.print(t.status.message or "", highlight=False, markup=False)
                console.print(t.status.log_tail or "(no output)", highlight=False, markup=False)


@app.command()
def export(
    output: Path = typer.Option(..., "-o", "--output", help="FILE.parquet or FILE.csv.", show_default=False),
    asset: Optional[str] = typer.Option(None, "--asset", help="Only this asset's trials."),
    sweep: Optional[list[str]] = typer.Option(None, "--sweep", help="Only these sweeps (repeatable)."),
    store: Path = store_option(),
) -> None:
    """Write the dataset: one row per finished trial with its platform, features, parameters and metrics."""
    from hwmatch.data.export import export as write

    with reported(), open_existing(store, readonly=True) as db:
        count = write(db, output, asset=asset, sweeps=sweep or None)
    if count == 0:
        err_console.print("[yellow]warning:[/] no finished trials matched; the file has only the header")
    console.print(f"wrote {count} trial(s) to {output}", markup=False, highlight=False)


def _kv(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in values.items())
