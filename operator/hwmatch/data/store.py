"""The embedded trial store: one SQLite file (stdlib, WAL mode) per project.

It holds the manifests of assets and sweeps (so later steps find an asset's
metrics and a sweep's platforms, features and prices) and one row per trial.
Every state change is its own committed transaction, so a run killed at any
moment loses no finished trial. A trial is *claimed* (``Running``, with the
claiming process named in ``runner``) before it starts; a ``Running`` row
whose process is gone is stale and may be claimed again, one whose process
still lives is left to it.

A *verification* trial (``verification = 1``, label
``hwmatch.dev/verification``) is a run of a recommended configuration by
``hwmatch verify``: it belongs to the sweep whose platform it ran on, so it
joins that sweep's dataset frame as training data, but it is not one of the
sweep's planned trials — the sweep policy's states and counts leave it out.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import pandas as pd
import psutil

from hwmatch.api import (
    AIAsset,
    BenchmarkSweep,
    BenchmarkTrial,
    BenchmarkTrialSpec,
    BenchmarkTrialStatus,
    HWRecommendation,
    ObjectMeta,
    ObjectRef,
)
from hwmatch.api.errors import InputError
from hwmatch.api.vocabulary import (
    FINISHED,
    LABEL_ASSET,
    LABEL_PLATFORM,
    LABEL_SWEEP,
    LABEL_VERIFICATION,
    PENDING,
    RUNNING,
    SUCCEEDED,
    canonical,
)
from hwmatch.data.frame import build_frame

DEFAULT_PATH = Path(".hwmatch") / "hwmatch.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS assets (
    name TEXT PRIMARY KEY,
    manifest TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sweeps (
    name TEXT PRIMARY KEY,
    asset TEXT NOT NULL,
    manifest TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    id TEXT PRIMARY KEY,
    asset TEXT NOT NULL,
    sweep TEXT NOT NULL,
    platform TEXT NOT NULL,
    parameters TEXT NOT NULL,
    instance TEXT NOT NULL,
    repetition INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    message TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    started TEXT,
    finished TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    host TEXT NOT NULL DEFAULT '{}',
    log_tail TEXT,
    runner TEXT,
    verification INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS recommendations (
    name TEXT PRIMARY KEY,
    asset TEXT NOT NULL,
    manifest TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trials_sweep ON trials (sweep, status);
CREATE INDEX IF NOT EXISTS trials_asset ON trials (asset, status);
"""
_TRIAL_COLUMNS = (
    "id", "asset", "sweep", "platform", "parameters", "instance", "repetition", "status", "reason", "message",
    "metrics", "started", "finished", "attempts", "host", "log_tail", "runner", "verification",
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def runner_id() -> str:
    """This process, as ``host:pid:start-time`` (the start time tells a reused pid apart)."""
    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{me.create_time():.3f}"


def runner_alive(runner: str | None) -> bool:
    """Whether the process named by :func:`runner_id` still runs (unknown hosts count as alive)."""
    if not runner:
        return False
    host, pid, started = runner.rsplit(":", 2)
    if host != socket.gethostname():
        return True
    try:
        return f"{psutil.Process(int(pid)).create_time():.3f}" == started
    except (psutil.NoSuchProcess, ValueError):
        return False


@dataclass(frozen=True)
class TrialRow:
    """A stored trial's row as resuming reads it (the sweep policy's TrialState is made from it)."""

    status: str
    reason: str | None
    attempts: int
    runner: str | None


class Store:
    """Trials, assets and sweeps in one SQLite file. Use from one thread; open one per process."""

    def __init__(self, path: str | Path = DEFAULT_PATH):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except sqlite3.OperationalError as exc:
            raise InputError(f"cannot open the store {self.path}: {exc}") from None
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        known = {row[1] for row in self._db.execute("PRAGMA table_info(trials)")}
        if "verification" not in known:  # a store written before verification runs were kept
            self._db.execute("ALTER TABLE trials ADD COLUMN verification INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- manifests ---------------------------------------------------------------------------

    def put_asset(self, asset: AIAsset) -> None:
        self._db.execute(
            "INSERT INTO assets (name, manifest, updated) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET manifest = excluded.manifest, updated = excluded.updated",
            (asset.metadata.name, canonical(_spec_only(asset)), _now()),
        )

    def asset(self, name: str) -> AIAsset | None:
        row = self._db.execute("SELECT manifest FROM assets WHERE name = ?", (name,)).fetchone()
        return AIAsset.model_validate(json.loads(row[0])) if row else None

    def assets(self) -> list[AIAsset]:
        return [AIAsset.model_validate(json.loads(m)) for (m,) in self._db.execute("SELECT manifest FROM assets ORDER BY name")]

    def put_sweep(self, sweep: BenchmarkSweep) -> None:
        self._db.execute(
            "INSERT INTO sweeps (name, asset, manifest, updated) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
            "SET asset = excluded.asset, manifest = excluded.manifest, updated = excluded.updated",
            (sweep.metadata.name, sweep.spec.asset_ref.name, canonical(_spec_only(sweep)), _now()),
        )

    def sweep(self, name: str) -> BenchmarkSweep | None:
        row = self._db.execute("SELECT manifest FROM sweeps WHERE name = ?", (name,)).fetchone()
        return BenchmarkSweep.model_validate(json.loads(row[0])) if row else None

    def sweeps(self, asset: str | None = None) -> list[BenchmarkSweep]:
        sql, args = "SELECT manifest FROM sweeps", tuple[str, ...]()
        if asset is not None:
            sql, args = sql + " WHERE asset = ?", (asset,)
        return [BenchmarkSweep.model_validate(json.loads(m)) for (m,) in self._db.execute(sql + " ORDER BY name", args)]

    def put_recommendation(self, recommendation: HWRecommendation) -> None:
        """Keep a solved recommendation (spec and status), for ``report`` and ``verify``."""
        self._db.execute(
            "INSERT INTO recommendations (name, asset, manifest, updated) VALUES (?, ?, ?, ?) ON CONFLICT (name) "
            "DO UPDATE SET asset = excluded.asset, manifest = excluded.manifest, updated = excluded.updated",
            (recommendation.metadata.name, recommendation.spec.asset_ref.name,
             canonical(recommendation.model_dump(by_alias=True, exclude_none=True, mode="json")), _now()),
        )

    def recommendations(self, asset: str | None = None) -> list[HWRecommendation]:
        sql, args = "SELECT manifest FROM recommendations", tuple[str, ...]()
        if asset is not None:
            sql, args = sql + " WHERE asset = ?", (asset,)
        return [HWRecommendation.model_validate(json.loads(m)) for (m,) in self._db.execute(sql + " ORDER BY name", args)]

    # -- trials ------------------------------------------------------------------------------

    def plan(self, trials: Iterable[BenchmarkTrial]) -> int:
        """Record planned trials as Pending; trials already stored are left as they are. Returns how many were new."""
        rows = [_trial_row(t, status=PENDING) for t in trials]
        with self._transaction():
            before = self._db.total_changes
            self._db.executemany(
                f"INSERT OR IGNORE INTO trials ({', '.join(_TRIAL_COLUMNS)}) VALUES ({', '.join('?' * len(_TRIAL_COLUMNS))})",
                rows,
            )
            return self._db.total_changes - before

    def add_trials(self, trials: Iterable[BenchmarkTrial]) -> int:
        """Insert or replace whole trials (spec and status), e.g. imported results. Returns how many were written."""
        rows = [_trial_row(t) for t in trials]
        with self._transaction():
            self._db.executemany(
                f"INSERT OR REPLACE INTO trials ({', '.join(_TRIAL_COLUMNS)}) VALUES ({', '.join('?' * len(_TRIAL_COLUMNS))})",
                rows,
            )
        return len(rows)

    def add_verification(self, trial: BenchmarkTrial) -> None:
        """Keep a finished verification run (spec and status) as training data of its sweep, outside its plan."""
        labels = {**trial.metadata.labels, LABEL_VERIFICATION: "true"}
        self.add_trials([trial.model_copy(update={"metadata": trial.metadata.model_copy(update={"labels": labels})})])

    def verifications(self, asset: str | None = None) -> list[BenchmarkTrial]:
        """Stored verification runs, oldest first."""
        return [t for t in self.trials(asset=asset) if t.metadata.labels.get(LABEL_VERIFICATION) == "true"]

    def states(self, sweep: str) -> dict[str, TrialRow]:
        rows = self._db.execute(
            "SELECT id, status, reason, attempts, runner FROM trials WHERE sweep = ? AND verification = 0", (sweep,))
        return {i: TrialRow(*state) for i, *state in rows}

    def claim(self, trial_id: str, runner: str) -> bool:
        """Mark a trial Running for ``runner``; False if it succeeded already or a live process holds it."""
        with self._transaction():
            row = self._db.execute("SELECT status, runner FROM trials WHERE id = ?", (trial_id,)).fetchone()
            if row is None:
                raise KeyError(f"trial {trial_id!r} is not in the store; plan it first")
            status, holder = row
            if status == SUCCEEDED or (status == RUNNING and holder != runner and runner_alive(holder)):
                return False
            self._db.execute(
                "UPDATE trials SET status = ?, runner = ?, started = ?, finished = NULL WHERE id = ?",
                (RUNNING, runner, _now(), trial_id),
            )
            return True

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction, taken at once (IMMEDIATE) so concurrent writers queue instead of failing."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def release(self, trial_id: str, runner: str) -> None:
        """Give back a claimed trial that did not finish (the run was interrupted): Pending again."""
        self._db.execute(
            "UPDATE trials SET status = ?, runner = NULL, started = NULL WHERE id = ? AND status = ? AND runner = ?",
            (PENDING, trial_id, RUNNING, runner),
        )

    def finish(self, trial_id: str, status: BenchmarkTrialStatus) -> None:
        """Record an attempt's outcome (committed at once); ``status.attempts`` is the total so far."""
        self._db.execute(
            "UPDATE trials SET status = ?, reason = ?, message = ?, metrics = ?, started = COALESCE(?, started), "
            "finished = ?, attempts = ?, host = ?, log_tail = ?, runner = NULL WHERE id = ?",
            (
                status.phase, status.reason, status.message, canonical(status.metrics),
                status.start_time.isoformat() if status.start_time else None,
                (status.completion_time.isoformat() if status.completion_time else _now()),
                status.attempts, canonical(status.host), status.log_tail, trial_id,
            ),
        )

    def trials(
        self, sweep: str | Sequence[str] | None = None, asset: str | None = None,
        status: str | Sequence[str] | None = None,
    ) -> list[BenchmarkTrial]:
        """Stored trials in the order they were planned, filtered by sweep, asset and status."""
        where, args = _where(sweep=sweep, asset=asset, status=status)
        rows = self._db.execute(f"SELECT {', '.join(_TRIAL_COLUMNS)} FROM trials{where} ORDER BY rowid", args)
        return [_row_trial(dict(zip(_TRIAL_COLUMNS, r))) for r in rows]

    def counts(self, sweep: str) -> dict[str, dict[str, int]]:
        """Trials of a sweep per platform and status: ``{platform: {status: n}}``."""
        out: dict[str, dict[str, int]] = {}
        for platform, status, n in self._db.execute(
            "SELECT platform, status, COUNT(*) FROM trials WHERE sweep = ? AND verification = 0 GROUP BY platform, status",
            (sweep,),
        ):
            out.setdefault(platform, {})[status] = n
        return out

    # -- the dataset ---------------------------------------------------------------------------

    def frame(self, asset: str | None = None, sweeps: Sequence[str] | None = None) -> pd.DataFrame:
        """Finished trials as the dataset frame (:func:`hwmatch.data.frame.build_frame`), one row per trial."""
        trials = self.trials(sweep=sweeps, asset=asset, status=FINISHED)
        names = {asset} if asset is not None else {t.spec.asset_ref.name for t in trials}
        return build_frame([a for a in self.assets() if a.metadata.name in names], self.sweeps(), trials)


def _spec_only(resource: AIAsset | BenchmarkSweep) -> dict[str, Any]:
    wire = resource.to_wire()
    wire.pop("status", None)
    return wire


def _where(**filters: str | Sequence[str] | None) -> tuple[str, list[Any]]:
    clauses, args = [], []
    for column, value in filters.items():
        if value is None:
            continue
        values = [value] if isinstance(value, str) else list(value)
        clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
        args.extend(values)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _trial_row(trial: BenchmarkTrial, status: str | None = None) -> tuple[Any, ...]:
    s = trial.status or BenchmarkTrialStatus()
    return (
        trial.metadata.name, trial.spec.asset_ref.name, trial.spec.sweep_ref.name, trial.spec.platform,
        canonical(trial.spec.parameters), canonical(trial.spec.instance), trial.spec.repetition,
        status or s.phase or PENDING, s.reason, s.message, canonical(s.metrics),
        s.start_time.isoformat() if s.start_time else None,
        s.completion_time.isoformat() if s.completion_time else None,
        s.attempts, canonical(s.host), s.log_tail, None, int(trial.metadata.labels.get(LABEL_VERIFICATION) == "true"),
    )


def _row_trial(row: dict[str, Any]) -> BenchmarkTrial:
    labels = {LABEL_ASSET: row["asset"], LABEL_SWEEP: row["sweep"], LABEL_PLATFORM: row["platform"]}
    if row["verification"]:
        labels[LABEL_VERIFICATION] = "true"
    return BenchmarkTrial(
        metadata=ObjectMeta(name=row["id"], labels=labels),
        spec=BenchmarkTrialSpec(
            sweep_ref=ObjectRef(name=row["sweep"]), asset_ref=ObjectRef(name=row["asset"]), platform=row["platform"],
            parameters=json.loads(row["parameters"]), instance=json.loads(row["instance"]), repetition=row["repetition"],
        ),
        status=BenchmarkTrialStatus(
            phase=row["status"], reason=row["reason"], message=row["message"], metrics=json.loads(row["metrics"]),
            attempts=row["attempts"], start_time=row["started"], completion_time=row["finished"],
            host=json.loads(row["host"]), log_tail=row["log_tail"],
        ),
    )
