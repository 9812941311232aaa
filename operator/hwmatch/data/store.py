"""The embedded trial store: one SQLite file (stdlib, WAL mode) per project.

It holds the manifests of assets and sweeps (so later steps find an asset's
metrics and a sweep's platforms, features and prices) and one row per trial.
Every state change is its own committed transaction, so a run killed at any
moment loses no finished trial. A trial is *claimed* (``Running``, with the
claiming process named in ``runner``) before it starts; a ``Running`` row
whose process is gone is stale and may be claimed again, one whose process
still lives is left to it.

A sweep has one runner at a time per store: :meth:`Store.lock_sweep` takes
the sweep for a process (a row in ``sweep_runners``), which a second process
sees and waits on; the lock of a process that is gone is taken over.

Every SQLite failure (not a database, damaged, locked, disk full, read-only)
is a :class:`StoreError` whose message names the file and what to do.

A *verification* trial (``verification = 1``, label
``hwmatch.dev/verification``) is a run of a recommended configuration by
``hwmatch verify``: it belongs to the sweep whose platform it ran on, so it
joins that sweep's dataset frame as training data, but it is not one of the
sweep's planned trials — the sweep policy's states and counts leave it out.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, NamedTuple, Sequence

from hwmatch.api.errors import HwmatchError
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

if TYPE_CHECKING:
    # The models load in the methods that build them, pandas in the dataset frame's: a listing
    # (hwmatch trials) reads rows as plain values and starts without pydantic or pandas (issue 14).
    import pandas as pd

    from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrial, BenchmarkTrialStatus, HWRecommendation

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
CREATE TABLE IF NOT EXISTS sweep_runners (
    sweep TEXT PRIMARY KEY,
    runner TEXT NOT NULL,
    since TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trials_sweep ON trials (sweep, status);
CREATE INDEX IF NOT EXISTS trials_asset ON trials (asset, status);
"""
_TRIAL_COLUMNS = (
    "id", "asset", "sweep", "platform", "parameters", "instance", "repetition", "status", "reason", "message",
    "metrics", "started", "finished", "attempts", "host", "log_tail", "runner", "verification",
)


#: Seconds a statement waits for another process's write lock (``HWMATCH_STORE_TIMEOUT`` overrides).
DEFAULT_TIMEOUT_S = 30.0


class StoreError(HwmatchError):
    """The store's file cannot be used as it is (not SQLite, damaged, locked, full, read-only); the message says what to do."""


def _explain(path: Path, exc: Exception) -> str:
    """One line for an SQLite failure on ``path``: what it means and the fix."""
    text = str(exc)
    low = text.lower()
    if "not a database" in low or "malformed" in low or "file is encrypted" in low:
        return (f"{path} is not an hwmatch store, or it is damaged ({text}); pass --store with another path, "
                "or move the file away to start a new store")
    if "locked" in low or "busy" in low:
        return (f"the store {path} is locked by another process ({text}); wait for that process to finish "
                "(or stop it) and run again")
    if "disk is full" in low or "disk i/o" in low or "full" in low:
        return (f"cannot write the store {path}: the disk is full or failing ({text}); free space and run the "
                "same command again: finished trials are kept")
    if "readonly" in low or "read-only" in low or "unable to open" in low or "permission" in low:
        return (f"cannot write the store {path} ({text}): the file or its directory is read-only; make it "
                "writable, or pass --store with a writable path")
    if "no such column" in low or "no such table" in low or "has no column" in low:
        return (f"{path} is an SQLite database but not an hwmatch store ({text}); pass --store with another path")
    return f"the store {path} failed: {text}; check the file, or pass --store with another path"


class _Rows:
    """A statement's rows, fetched at once (so a failure surfaces inside the guard)."""

    def __init__(self, rows: list[Any]):
        self._rows = rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class _Guarded:
    """The connection, with every SQLite error turned into a :class:`StoreError` naming the file."""

    def __init__(self, db: sqlite3.Connection, path: Path):
        self._conn, self._path = db, path

    @property
    def total_changes(self) -> int:
        return self._conn.total_changes

    def execute(self, sql: str, args: Sequence[Any] = ()) -> _Rows:
        try:
            return _Rows(self._conn.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise StoreError(_explain(self._path, exc)) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise StoreError(_explain(self._path, exc)) from None

    def executescript(self, sql: str) -> None:
        try:
            self._conn.executescript(sql)
        except sqlite3.Error as exc:
            raise StoreError(_explain(self._path, exc)) from None

    def close(self) -> None:
        self._conn.close()


def _timeout() -> float:
    try:
        return float(os.environ.get("HWMATCH_STORE_TIMEOUT", DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def runner_id() -> str:
    """This process, as ``host:pid:start-time`` (the start time tells a reused pid apart)."""
    import psutil  # a writer's import: listings start without it

    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{me.create_time():.3f}"


def runner_alive(runner: str | None) -> bool:
    """Whether the process named by :func:`runner_id` still runs (unknown hosts count as alive)."""
    if not runner:
        return False
    import psutil

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


class TrialRecord(NamedTuple):
    """A stored trial as plain values, without the trial's models: what a listing reads and an import writes.

    Validating a trial into its six pydantic models takes longer than reading its
    row at all; a listing (``hwmatch trials``) needs neither the validation (the
    store wrote the row) nor the resource, and an import has checked its table
    already. :meth:`Store.trials` and :meth:`Store.add_trials` take the resources (issue 14).
    """

    name: str
    asset: str
    sweep: str
    platform: str
    parameters: dict[str, Any]
    instance: dict[str, float]
    repetition: int
    phase: str
    reason: str | None
    message: str | None
    metrics: dict[str, float]
    attempts: int
    log_tail: str | None
    host: dict[str, Any]


_RECORD_COLUMNS = ("id", "asset", "sweep", "platform", "parameters", "instance", "repetition", "status", "reason",
                   "message", "metrics", "attempts", "log_tail", "host")


class Store:
    """Trials, assets and sweeps in one SQLite file. Use from one thread; open one per process."""

    def __init__(self, path: str | Path = DEFAULT_PATH, readonly: bool = False):
        """Open (or, unless ``readonly``, create) the store at ``path``; a :class:`StoreError` if it cannot be used."""
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"the store {self.path} is a directory; pass --store with a file path")
        try:
            if readonly:
                self._db = _Guarded(_open_readonly(self.path), self.path)
            else:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot create the directory of the store {self.path}: {exc.strerror}; "
                                     "pass --store with a writable path") from None
                self._db = _Guarded(sqlite3.connect(self.path, isolation_level=None, timeout=_timeout()), self.path)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
                self._upgrade()
            self._check_schema()
        except sqlite3.Error as exc:
            raise StoreError(_explain(self.path, exc)) from None

    def _check_schema(self) -> None:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(trials)")}
        if set(_TRIAL_COLUMNS) - columns == {"verification"}:
            raise StoreError(f"{self.path} was written by an earlier hwmatch; open it once with a command that writes "
                             "(hwmatch run or hwmatch recommend) to bring it up to date")
        if not set(_TRIAL_COLUMNS) <= columns:
            raise StoreError(f"{self.path} is an SQLite database but not an hwmatch store (its trials table lacks "
                             f"{sorted(set(_TRIAL_COLUMNS) - columns)}); pass --store with another path")

    def _upgrade(self) -> None:
        """Bring a store written by an earlier hwmatch up to this schema (columns added since)."""
        known = {row[1] for row in self._db.execute("PRAGMA table_info(trials)")}
        if known and "verification" not in known:  # written before verification runs were kept
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
        from hwmatch.api import AIAsset

        row = self._db.execute("SELECT manifest FROM assets WHERE name = ?", (name,)).fetchone()
        return self._load(AIAsset, row[0], f"assets row {name!r}") if row else None

    def assets(self) -> list[AIAsset]:
        from hwmatch.api import AIAsset

        return [self._load(AIAsset, m, f"assets row {n!r}")
                for n, m in self._db.execute("SELECT name, manifest FROM assets ORDER BY name")]

    def put_sweep(self, sweep: BenchmarkSweep) -> None:
        self._db.execute(
            "INSERT INTO sweeps (name, asset, manifest, updated) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
            "SET asset = excluded.asset, manifest = excluded.manifest, updated = excluded.updated",
            (sweep.metadata.name, sweep.spec.asset_ref.name, canonical(_spec_only(sweep)), _now()),
        )

    def sweep(self, name: str) -> BenchmarkSweep | None:
        from hwmatch.api import BenchmarkSweep

        row = self._db.execute("SELECT manifest FROM sweeps WHERE name = ?", (name,)).fetchone()
        return self._load(BenchmarkSweep, row[0], f"sweeps row {name!r}") if row else None

    def sweeps(self, asset: str | None = None) -> list[BenchmarkSweep]:
        from hwmatch.api import BenchmarkSweep

        sql, args = "SELECT name, manifest FROM sweeps", tuple[str, ...]()
        if asset is not None:
            sql, args = sql + " WHERE asset = ?", (asset,)
        return [self._load(BenchmarkSweep, m, f"sweeps row {n!r}")
                for n, m in self._db.execute(sql + " ORDER BY name", args)]

    def put_recommendation(self, recommendation: HWRecommendation) -> None:
        """Keep a solved recommendation (spec and status), for ``report`` and ``verify``."""
        self._db.execute(
            "INSERT INTO recommendations (name, asset, manifest, updated) VALUES (?, ?, ?, ?) ON CONFLICT (name) "
            "DO UPDATE SET asset = excluded.asset, manifest = excluded.manifest, updated = excluded.updated",
            (recommendation.metadata.name, recommendation.spec.asset_ref.name,
             canonical(recommendation.model_dump(by_alias=True, exclude_none=True, mode="json")), _now()),
        )

    def recommendations(self, asset: str | None = None) -> list[HWRecommendation]:
        from hwmatch.api import HWRecommendation

        sql, args = "SELECT name, manifest FROM recommendations", tuple[str, ...]()
        if asset is not None:
            sql, args = sql + " WHERE asset = ?", (asset,)
        return [self._load(HWRecommendation, m, f"recommendations row {n!r}")
                for n, m in self._db.execute(sql + " ORDER BY name", args)]

    def _load(self, kind: Any, text: str, where: str) -> Any:
        """A stored manifest as its model; a damaged row is a :class:`StoreError` naming it."""
        try:
            return kind.model_validate(json.loads(text))
        except (ValueError, TypeError) as exc:
            raise self._damaged(where, exc) from None

    def _damaged(self, where: str, exc: Exception) -> StoreError:
        """The error for a row (``where``: ``trials row 'x'``) that does not read as what it should hold."""
        return StoreError(f"{self.path}: {where} is damaged ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                          "remove the row, or pass --store with another store")

    # -- one runner per sweep ----------------------------------------------------------------

    def lock_sweep(self, sweep: str, runner: str) -> str | None:
        """Take ``sweep`` for ``runner``; None when taken, else the live runner that holds it (nothing changes)."""
        with self._transaction():
            row = self._db.execute("SELECT runner FROM sweep_runners WHERE sweep = ?", (sweep,)).fetchone()
            if row is not None and row[0] != runner and runner_alive(row[0]):
                return str(row[0])
            self._db.execute(
                "INSERT INTO sweep_runners (sweep, runner, since) VALUES (?, ?, ?) ON CONFLICT (sweep) "
                "DO UPDATE SET runner = excluded.runner, since = excluded.since", (sweep, runner, _now()),
            )
            return None

    def unlock_sweep(self, sweep: str, runner: str) -> None:
        """Give ``sweep`` back (only if ``runner`` holds it)."""
        self._db.execute("DELETE FROM sweep_runners WHERE sweep = ? AND runner = ?", (sweep, runner))

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
        """Insert or replace whole trials (spec and status), e.g. imported results. Returns how many were written.

        Each row is made as SQLite takes it, so an iterator of a million trials (an import) is never held at once.
        """
        with self._transaction():
            before = self._db.total_changes
            self._db.executemany(
                f"INSERT OR REPLACE INTO trials ({', '.join(_TRIAL_COLUMNS)}) VALUES ({', '.join('?' * len(_TRIAL_COLUMNS))})",
                (_trial_row(t) for t in trials),
            )
            return self._db.total_changes - before

    def add_records(self, records: Iterable[TrialRecord]) -> int:
        """Insert or replace whole trials given as plain values (an import's rows). Returns how many were written.

        The same rows as :meth:`add_trials` writes for the same trials, without building their models:
        the caller has checked the values (names, scalars, finite metrics). A record is made as SQLite
        takes it, so a million-row import is never held at once.
        """
        with self._transaction():
            before = self._db.total_changes
            self._db.executemany(
                f"INSERT OR REPLACE INTO trials ({', '.join(_TRIAL_COLUMNS)}) VALUES ({', '.join('?' * len(_TRIAL_COLUMNS))})",
                ((r.name, r.asset, r.sweep, r.platform, canonical(r.parameters), canonical(r.instance), r.repetition,
                  r.phase, r.reason, r.message, canonical(r.metrics), None, None, r.attempts, canonical(r.host),
                  r.log_tail, None, 0) for r in records),
            )
            return self._db.total_changes - before

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
        status: str | Sequence[str] | None = None, limit: int | None = None,
    ) -> list[BenchmarkTrial]:
        """Stored trials in the order they were planned, filtered by sweep, asset and status; the first ``limit``.

        SQLite writes each row as one trial document and pydantic validates it from
        JSON in one call: reading the columns and building the six models of a trial
        in Python took five times as long as reading the rows at all (issue 14).
        A row that is not such a document is read again column by column
        (:meth:`_trial_at`), which accepts what JSON cannot carry (a NaN metric) and
        names a damaged row.
        """
        from hwmatch.api import BenchmarkTrial

        where, args = _where(sweep=sweep, asset=asset, status=status)
        if limit is not None:
            where, args = f"{where} ORDER BY rowid LIMIT ?", [*args, limit]
        else:
            where += " ORDER BY rowid"
        out = []
        with _collector_paused():
            rows = self._db.execute(f"SELECT rowid, {_TRIAL_DOCUMENT} FROM trials{where}", args)
            for rowid, document in rows:
                try:
                    out.append(BenchmarkTrial.model_validate_json(document))
                except (ValueError, TypeError):
                    out.append(self._trial_at(rowid))
        return out

    def records(
        self, sweep: str | Sequence[str] | None = None, asset: str | None = None,
        status: str | Sequence[str] | None = None, limit: int | None = None,
    ) -> list[TrialRecord]:
        """The trials :meth:`trials` would return, as :class:`TrialRecord` values; a damaged row is a :class:`StoreError`."""
        where, args = _where(sweep=sweep, asset=asset, status=status)
        where += " ORDER BY rowid" + (" LIMIT ?" if limit is not None else "")
        rows = self._db.execute(f"SELECT {', '.join(_RECORD_COLUMNS)} FROM trials{where}",
                                [*args, limit] if limit is not None else args)
        loads, out = json.loads, []
        with _collector_paused():
            for name, asset_, sweep_, platform, parameters, instance, rep, phase, reason, message, metrics, \
                    attempts, log_tail, host in rows:
                try:
                    values = loads(parameters), loads(instance), loads(metrics), loads(host)
                    if not all(type(v) is dict for v in values):
                        raise TypeError("parameters, instance, metrics and host must each be a JSON object")
                    out.append(TrialRecord(name, asset_, sweep_, platform, values[0], values[1], rep, phase, reason,
                                           message, values[2], attempts, log_tail, values[3]))
                except (ValueError, TypeError) as exc:
                    raise self._damaged(f"trials row {name!r}", exc) from None
        return out

    def declared_metrics(self) -> dict[str, list[str]]:
        """Each stored asset's metric names, in the order its manifest declares them, without building the assets.

        A manifest that does not read as an asset with named metrics is a :class:`StoreError` naming its row.
        """
        out: dict[str, list[str]] = {}
        for name, text in self._db.execute("SELECT name, manifest FROM assets ORDER BY name"):
            try:
                metrics = json.loads(text)["spec"]["metrics"]
                out[name] = [m["name"] for m in metrics]
                if not all(isinstance(n, str) for n in out[name]):
                    raise TypeError("a metric name is not a string")
            except (ValueError, TypeError, KeyError) as exc:
                raise self._damaged(f"assets row {name!r}", exc) from None
        return out

    def count(self, sweep: str | Sequence[str] | None = None, asset: str | None = None,
              status: str | Sequence[str] | None = None) -> int:
        """How many trials :meth:`trials` would return with these filters, without reading them."""
        where, args = _where(sweep=sweep, asset=asset, status=status)
        return int(self._db.execute(f"SELECT COUNT(*) FROM trials{where}", args).fetchone()[0])

    def _trial_at(self, rowid: int) -> BenchmarkTrial:
        """The trial of row ``rowid`` from its columns; a damaged row is a :class:`StoreError` naming it."""
        row = self._db.execute(f"SELECT {', '.join(_TRIAL_COLUMNS)} FROM trials WHERE rowid = ?", (rowid,)).fetchone()
        try:
            return _row_trial(dict(zip(_TRIAL_COLUMNS, row)))
        except (ValueError, TypeError) as exc:
            raise self._damaged(f"trials row {row[0]!r}", exc) from None

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
        from hwmatch.data.frame import build_frame

        trials = self.trials(sweep=sweeps, asset=asset, status=FINISHED)
        names = {asset} if asset is not None else {t.spec.asset_ref.name for t in trials}
        return build_frame([a for a in self.assets() if a.metadata.name in names], self.sweeps(), trials)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a listing builds its models, as it was before afterwards.

    A trial's models form no reference cycle, so the collector finds nothing in
    them; but its full passes over a heap growing by a hundred thousand trials
    took three quarters of the time of :meth:`Store.trials` (issue 14).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _sql_object(fields: dict[str, Any]) -> tuple[str, list[str]]:
    """A JSON object of ``fields`` (key: SQL giving JSON text, or a nested dict) as a ``printf`` format and its arguments.

    One ``printf`` writes the whole document at once, where ``||`` would copy it once per field.
    """
    parts, args = [], []
    for key, value in fields.items():
        if isinstance(value, dict):
            text, inner = _sql_object(value)
            parts.append(f'"{key}":{text}')
            args.extend(inner)
        else:
            parts.append(f'"{key}":%s')
            args.append(value)
    return "{" + ",".join(parts) + "}", args


def _sql_document(column: str) -> str:
    """A column holding a JSON document as JSON text: the text when it is one JSON value, else ``null``.

    ``null`` fails validation, so such a row is read again column by column, which
    names it; the check also keeps a damaged cell from adding keys to the trial.
    """
    return f"iif(json_valid({column}), {column}, 'null')"


_LABELS = (f"'{LABEL_ASSET}', asset, '{LABEL_SWEEP}', sweep, '{LABEL_PLATFORM}', platform")
#: One row as the wire form of its trial (what :func:`_row_trial` builds from the columns), as SQL.
_TRIAL_FORMAT, _TRIAL_FIELDS = _sql_object({
    "metadata": {
        "name": "json_quote(id)",
        "labels": (f"CASE verification WHEN 0 THEN json_object({_LABELS}) "
                   f"WHEN 1 THEN json_object({_LABELS}, '{LABEL_VERIFICATION}', 'true') ELSE 'null' END"),
    },
    "spec": {
        "sweepRef": {"name": "json_quote(sweep)"}, "assetRef": {"name": "json_quote(asset)"},
        "platform": "json_quote(platform)", "parameters": _sql_document("parameters"),
        "instance": _sql_document("instance"), "repetition": "json_quote(repetition)",
    },
    "status": {
        "phase": "json_quote(status)", "reason": "json_quote(reason)", "message": "json_quote(message)",
        "metrics": _sql_document("metrics"), "attempts": "json_quote(attempts)",
        "startTime": "json_quote(started)", "completionTime": "json_quote(finished)",
        "host": _sql_document("host"), "logTail": "json_quote(log_tail)",
    },
})
_TRIAL_DOCUMENT = f"printf('{_TRIAL_FORMAT}', {', '.join(_TRIAL_FIELDS)})"


def _open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection; on a read-only file system (no -shm can be made) the file is read as immutable."""
    if not path.is_file():
        raise StoreError(f"no store at {path}; run `hwmatch run FILE` first, or pass --store PATH")
    uri = path.resolve().as_uri()
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=_timeout())
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchall()
        return db
    except sqlite3.OperationalError as exc:
        if "not a database" in str(exc).lower() or "locked" in str(exc).lower():
            raise
        db.close()
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None, timeout=_timeout())


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
    s = trial.status
    if s is None:  # planned, not run (imports and the engine's rows have one: no import per row)
        from hwmatch.api import BenchmarkTrialStatus

        s = BenchmarkTrialStatus()
    return (
        trial.metadata.name, trial.spec.asset_ref.name, trial.spec.sweep_ref.name, trial.spec.platform,
        canonical(trial.spec.parameters), canonical(trial.spec.instance), trial.spec.repetition,
        status or s.phase or PENDING, s.reason, s.message, canonical(s.metrics),
        s.start_time.isoformat() if s.start_time else None,
        s.completion_time.isoformat() if s.completion_time else None,
        s.attempts, canonical(s.host), s.log_tail, None, int(trial.metadata.labels.get(LABEL_VERIFICATION) == "true"),
    )


def _row_trial(row: dict[str, Any]) -> BenchmarkTrial:
    from hwmatch.api import BenchmarkTrial, BenchmarkTrialSpec, BenchmarkTrialStatus, ObjectMeta, ObjectRef

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
