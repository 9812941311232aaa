"""``hwmatch run``, ``hwmatch trials`` and ``hwmatch export``: local sweeps and their results."""

from __future__ import annotations

import csv
import gc
import glob
import json
import signal
from collections import Counter
from enum import Enum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column as TableColumn
from rich.table import Table

from hwmatch.api.vocabulary import FAILED, ID_HEX, INSTANCE, METRIC, PARAM, PENDING, RUNNING, SUCCEEDED
from hwmatch.cli import listing
from hwmatch.cli.app import (
    Listing,
    command,
    console,
    err_console,
    fail,
    open_existing,
    renamed,
    reported,
    store_option,
)
from hwmatch.cli.listing import Column
from hwmatch.data.store import Store, TrialRecord

if TYPE_CHECKING:  # the engine loads pandas and the models: only `hwmatch run` pays for them (issue 14)
    from hwmatch.api import BenchmarkSweep, BenchmarkTrial, BenchmarkTrialStatus
    from hwmatch.engine import FileRun, SweepRun
    from hwmatch.execution.base import Executor


class RichProgress:
    """A rich progress bar per sweep: trials done / total, elapsed, ETA, and the trial that started last.

    The sweep's name and the trial's text are the columns that give way on a narrow terminal (ending in "…"):
    at 80 columns the bar, the count, the elapsed time and the ETA are all still there.
    """

    def __init__(self, console: Console):
        self.bar = Progress(
            TextColumn("[bold]{task.description}", table_column=TableColumn(no_wrap=True, overflow="ellipsis",
                                                                            max_width=24)),
            BarColumn(bar_width=16), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[current]}", table_column=TableColumn(no_wrap=True, overflow="ellipsis", ratio=1)),
            console=console, transient=False, expand=True,
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


class ReplayMode(str, Enum):
    """``--replay-mode``: how a replayed trial is answered from the tables."""

    nearest = "nearest"
    exact = "exact"


def _executor(store: Store, patterns: list[str] | None, mapping: Path | None, mode: ReplayMode) -> Executor:
    """The local executor, or a replay of the tables ``patterns`` name (their asset is put in ``store``)."""
    if not patterns:
        if mapping is not None:
            raise fail("--mapping applies to --replay tables; give the tables with --replay")
        from hwmatch.execution import LocalExecutor

        return LocalExecutor()
    if mapping is None:
        raise fail("--replay needs --mapping: the YAML that says how the tables read (see examples/import/)")
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
    return ReplayExecutor(ReplayTable(imported.frame, imported.asset, "exact" if mode is ReplayMode.exact else "nearest"))


@command()
def run(
    files: list[Path] = typer.Argument(..., help="Manifest files with AIAssets, BenchmarkSweeps and HWRecommendations.",
                                       show_default=False),
    store: Path = store_option(),
    sweep: Optional[list[str]] = typer.Option(None, "--sweep", metavar="NAME", help="Run only this sweep (repeatable)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run failed trials again (with fresh retries)."),
    replay: Optional[list[str]] = typer.Option(
        None, "--replay", metavar="TABLE", help="Answer trials from these benchmark tables instead of running them: a path or a quoted "
                               "glob ('tables/saxpy_*.csv'), repeatable.",
    ),
    mapping: Optional[Path] = typer.Option(None, "--mapping", "-m", help="YAML mapping of the --replay tables."),
    replay_mode: ReplayMode = typer.Option(ReplayMode.nearest, "--replay-mode", case_sensitive=False,
                                           help="nearest: the closest measured row; exact: only measured "
                                                "configurations."),
) -> None:
    """Run the sweeps in FILES on this machine, then solve their HWRecommendations (and verify them: spec.verify).

    Trials already finished in the store are kept, not rerun: a run killed at any point resumes where it stopped.
    With --replay, trials are answered from published tables (see `hwmatch import`): sampling strategies compared
    offline, at no cost; the tables' asset is stored, so the files need only the sweeps and recommendations.
    """
    from hwmatch.cli.recommend import answer_all, verify_all
    from hwmatch.engine import run_file

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
    """One row per sweep and platform: outcomes, the first metric's median, failure reasons.

    Narrow enough for 80 columns: the median's metric is named in the title when every sweep shares it.
    """
    firsts = {}
    for report in outcome.runs:
        asset = db.asset(report.asset)
        firsts[report.sweep] = asset.spec.metrics[0].name if asset else None
    shared = next(iter(firsts.values())) if len(set(firsts.values())) == 1 else None
    table = Table("sweep", "platform", "ok", "failed", "not run", "median", "failures", box=box.SIMPLE_HEAD,
                  title=escape(f"sweeps (median {shared})" if shared else "sweeps"))
    for report in outcome.runs:
        metric = firsts[report.sweep]
        frame = db.frame(asset=report.asset, sweeps=[report.sweep])
        for platform, counts in report.counts.items():
            rows = frame[(frame["platform"] == platform) & (frame["status"] == SUCCEEDED)]
            column = f"metric.{metric}"
            median = "-"
            if metric and column in rows and len(rows):
                median = f"{rows[column].median():.4g}" if shared else f"{metric} {rows[column].median():.4g}"
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
    """The sweep's status as the operator writes it (phase, progress, the Ready message), then what this run did."""
    from hwmatch.api import READY

    status = report.status
    ready = next((c.message for c in status.conditions if c.type == READY), "")
    return (f"{report.sweep}: {status.phase} {status.progress} ({ready}); this run: {report.attempts} attempt(s), "
            f"{report.succeeded} succeeded, {report.failed} failed, {report.skipped} kept from before, "
            f"in {report.elapsed_s:.1f}s")


class Phase(str, Enum):
    """``--status``: a trial's phase (any case)."""

    pending = PENDING
    running = RUNNING
    succeeded = SUCCEEDED
    failed = FAILED


#: The columns of ``hwmatch trials`` before the metrics, and whether the compact table shows them.
_FIXED = (Column("trial"), Column("sweep", optional=True), Column("platform"), Column("status"),
          Column("reason", optional=True), Column("rep", right=True, optional=True),
          Column("tries", right=True, optional=True))
_COMPACT = ("trial", "platform", "status")
_NUMERIC = ("rep", "tries")


@command()
def trials(
    sweep: Optional[list[str]] = typer.Option(None, "--sweep", metavar="NAME", help="Only this sweep (repeatable)."),
    asset: Optional[str] = typer.Option(None, "--asset", metavar="NAME", help="Only this asset."),
    status: Optional[list[Phase]] = typer.Option(None, "--status", case_sensitive=False, metavar="PHASE",
                                                 help="Only this status: pending, running, succeeded or failed "
                                                      "(repeatable)."),
    output: Listing = typer.Option(Listing.table, "-o", "--output",
                                   help="table: one line per trial, fit to the terminal; wide: every column; "
                                        "csv, json or yaml: the data."),
    sort: Optional[str] = typer.Option(None, "--sort", metavar="COLUMN",
                                       help="Order by this column (a metric, platform, status...); -COLUMN descending."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, metavar="N", help="Only the first N trials."),
    logs: bool = typer.Option(False, "--logs", help="Also print the log tail of failed trials."),
    store: Path = store_option(),
) -> None:
    """List the stored trials, one line each: id, platform, status, the metrics their asset declares, parameters.

    The table fits the terminal: metrics that do not fit are left out (it says which) and parameters end in "…";
    -o wide shows every column, and each trial's whole name.
    """
    if logs and output not in (Listing.table, Listing.wide):
        raise fail(f"--logs prints log tails under a table; with -o {output.value} drop --logs "
                   "(json and yaml carry each trial's status.logTail)")
    filters: dict[str, Any] = {"sweep": sweep or None, "asset": asset,
                               "status": [s.value for s in status] if status else None}
    resources = output in (Listing.json, Listing.yaml)
    with reported(), open_existing(store, readonly=True) as db:
        # without --sort, the first N trials are the first N rows: read only those (and count the rest)
        early = limit if sort is None else None
        rows = db.records(**filters, limit=early)
        total = db.count(**filters) if early is not None else len(rows)
        declared = db.declared_metrics()
        # The trials live until the command ends: out of the collector's sight, or its next two passes walk all
        # of them (read with the collector paused, they are all young), two seconds at 100k trials.
        gc.freeze()
        metrics = _metric_columns(rows, declared, every=output is not Listing.table)
        names = [c.name for c in _FIXED] + ["parameters"] + metrics
        if sort is not None:
            rows = _sorted(rows, sort, names)
        rows = rows[:limit] if limit else rows
        if resources:  # the trials as resources: their models, in the listing's order
            by_name = {t.metadata.name: t for t in db.trials(**filters, limit=early)}
            _write_resources([by_name[r.name] for r in rows], output)
            return
    if output is Listing.csv:
        _write_csv(rows, metrics)
        return
    columns = [*(c for c in _FIXED if output is Listing.wide or c.name in _COMPACT),
               *(Column(m, right=True, optional=True) for m in metrics),
               Column("parameters", min_width=24)]
    cells = _cells(rows, columns)
    if output is Listing.table:  # a name is its sweep's prefix and an id: the id is enough to tell trials apart
        for row in cells:
            row[0] = _id(row[0])
    shown, widths, left_out = listing.fit(columns, cells, None if output is Listing.wide else console.width)
    listing.write(console.file, listing.lines(columns, cells, shown, widths))
    console.print(f"{len(rows)} of {total} trial(s)" if len(rows) < total else f"{total} trial(s)", highlight=False)
    if left_out:
        console.print(escape(f"not shown at {console.width} columns: {', '.join(left_out)}; -o wide shows every column"),
                      style="dim", highlight=False)
    if logs:
        for t in rows:
            if t.phase == FAILED:
                console.rule(escape(f"{t.name}: {t.reason}"))
                console.print(t.message or "", highlight=False, markup=False)
                console.print(t.log_tail or "(no output)", highlight=False, markup=False)


def _metric_columns(rows: list[TrialRecord], declared: dict[str, list[str]], every: bool) -> list[str]:
    """The metrics the trials' assets declare, in their order; ``every``: then any other metric a trial reported."""
    assets = dict.fromkeys(t.asset for t in rows)
    names = list(dict.fromkeys(m for a in assets for m in declared.get(a, ())))
    if every or not names:
        names += [m for m in dict.fromkeys(k for t in rows for k in t.metrics) if m not in names]
    return names


_GETTERS: dict[str, Callable[[TrialRecord], str | float | None]] = {
    "trial": lambda t: t.name,
    "sweep": lambda t: t.sweep,
    "platform": lambda t: t.platform,
    "status": lambda t: t.phase,
    "reason": lambda t: t.reason or "",
    "rep": lambda t: t.repetition,
    "tries": lambda t: t.attempts,
    "parameters": lambda t: _kv({**t.instance, **t.parameters}),
}


def _getter(column: str) -> Callable[[TrialRecord], str | float | None]:
    """How to read ``column`` of a trial, chosen once per column (a listing reads 10^5 trials × its columns)."""
    return _GETTERS.get(column) or (lambda t: t.metrics.get(column))


def _id(name: str) -> str:
    """The hash that ends a trial's name (:func:`~hwmatch.api.vocabulary.trial_id`); other names whole."""
    tail = name.rsplit("-", 1)[-1]
    return tail if len(tail) == ID_HEX and all(c in "0123456789abcdef" for c in tail) and tail != name else name


def _cells(rows: list[TrialRecord], columns: list[Column]) -> list[list[str]]:
    """Each trial's cells as text: ``-`` for no value, floats to 4 significant digits."""
    getters = [_getter(c.name) for c in columns]
    out = []
    for trial in rows:
        cells = []
        for get in getters:
            value = get(trial)
            cells.append("-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value))
        out.append(cells)
    return out


def _sorted(rows: list[TrialRecord], sort: str, names: list[str]) -> list[TrialRecord]:
    """``rows`` ordered by the column ``sort`` names (``-name``: descending); trials without a value last."""
    column, descending = (sort[1:], True) if sort.startswith("-") else (sort, False)
    if column not in names:
        raise fail(f"--sort {sort!r}: no such column; choose one of {', '.join(names)} (-COLUMN for descending)")
    get = _getter(column)
    values: list[tuple[Any, TrialRecord]] = [(get(t), t) for t in rows]  # one type in a column
    present = sorted(((v, t) for v, t in values if v is not None), key=lambda pair: pair[0], reverse=descending)
    return [t for _, t in present] + [t for v, t in values if v is None]


def _write_csv(rows: list[TrialRecord], metrics: list[str]) -> None:
    """``-o csv``: one row per trial, a column per parameter, instance feature and metric, prefixed as the dataset's."""
    params = list(dict.fromkeys(k for t in rows for k in t.parameters))
    instance = list(dict.fromkeys(k for t in rows for k in t.instance))
    writer = csv.writer(console.file, lineterminator="\n")
    fixed = [c.name for c in _FIXED]
    writer.writerow([*fixed, "asset", *(f"{PARAM}{k}" for k in params), *(f"{INSTANCE}{k}" for k in instance),
                     *(f"{METRIC}{m}" for m in metrics)])
    getters = [_getter(c) for c in fixed]
    for t in rows:
        writer.writerow([*(get(t) for get in getters), t.asset, *(t.parameters.get(k, "") for k in params),
                         *(t.instance.get(k, "") for k in instance), *(t.metrics.get(m, "") for m in metrics)])


def _write_resources(rows: list[BenchmarkTrial], output: Listing) -> None:
    """``-o json`` or ``-o yaml``: the trials as resources, as ``kubectl get -o`` prints them.

    Both are written by compiled code (pydantic's serialiser, libyaml when PyYAML has it): Python's
    indenting JSON encoder took ten seconds for 100,000 trials. JSON has no NaN: a NaN metric is ``null``.
    """
    out = console.file
    if output is Listing.json:
        from pydantic import TypeAdapter

        from hwmatch.api import BenchmarkTrial

        text = TypeAdapter(list[BenchmarkTrial]).dump_json(rows, indent=2, by_alias=True, exclude_none=True)
        out.write(text.decode() + "\n")
        return
    import yaml

    docs = (t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in rows)
    yaml.dump_all(docs, out, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)


@command()
def export(
    out: Optional[Path] = typer.Option(None, "--out", metavar="FILE", help="FILE.parquet or FILE.csv.",
                                       show_default=False),
    asset: Optional[str] = typer.Option(None, "--asset", metavar="NAME", help="Only this asset's trials."),
    sweep: Optional[list[str]] = typer.Option(None, "--sweep", metavar="NAME", help="Only these sweeps (repeatable)."),
    store: Path = store_option(),
    old_output: Optional[Path] = typer.Option(None, "-o", "--output", hidden=True),
) -> None:
    """Write the dataset: one row per finished trial with its platform, features, parameters and metrics."""
    from hwmatch.data.export import export as write

    output = renamed("-o/--output FILE", "--out FILE", old_output, out)
    if output is None:
        raise fail("no file to write: give --out FILE.parquet or --out FILE.csv")
    with reported(), open_existing(store, readonly=True) as db:
        count = write(db, output, asset=asset, sweeps=sweep or None)
    if count == 0:
        err_console.print("[yellow]warning:[/] no finished trials matched; the file has only the header")
    console.print(f"wrote {count} trial(s) to {output}", markup=False, highlight=False)


def _kv(values: dict[str, Any]) -> str:
    """``name=value`` pairs, strings quoted as JSON (plain ones without calling json: 10^5 trials' worth)."""
    return " ".join(f"{k}={_quoted(v) if isinstance(v, str) else v}" for k, v in values.items())


def _quoted(text: str) -> str:
    return f'"{text}"' if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text \
        else json.dumps(text)
