"""Reading a trial's outcome: the harness's JSON result line, and failed trials as data.

Every executor ends a trial in a :class:`~hwmatch.api.BenchmarkTrialStatus`;
these helpers make the Succeeded and Failed ones the same way wherever the
trial ran (the local executor reads stdout, a Kubernetes executor the pod's
termination message).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

from hwmatch.api import AIAsset, BenchmarkTrialStatus
from hwmatch.api.errors import InputError
from hwmatch.api.vocabulary import (  # noqa: F401  (the reasons, re-exported: result.OOM_KILLED)
    CANCELLED,
    COMMAND_NOT_FOUND,
    CRASHED,
    EXECUTOR_ERROR,
    MISSING_METRICS,
    NO_RESULT,
    OOM_KILLED,
    TIMEOUT,
)

_READ_LIMIT = 1 << 20  # bytes of each stream read back: the result line and the tail are at the end
#: Lines of output kept with a failed trial.
TAIL_LINES = 20
_MAX_LINE = 500

class ResultError(InputError):
    """The output holds no usable result."""


@dataclass(frozen=True)
class HarnessResult:
    """The harness contract's JSON line: metrics plus how and where they were measured."""

    metrics: dict[str, float]
    host: dict[str, Any] = field(default_factory=dict)
    measurement: dict[str, Any] = field(default_factory=dict)  # samples, warmup, started, finished


def parse_result(output: str) -> HarnessResult:
    """The last line of ``output`` that is a JSON object with ``metrics``; metrics must be finite numbers."""
    for line in reversed(output.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except ValueError:  # not JSON, or an integer too long to read (Python's digit limit)
            continue
        if isinstance(doc, dict) and "metrics" in doc:
            return _validate(doc)
    raise ResultError('no result line: the command must print one JSON line {"metrics": {...}} as its last output')


def _validate(doc: dict[str, Any]) -> HarnessResult:
    metrics = doc["metrics"]
    if not isinstance(metrics, dict):
        raise ResultError(f"'metrics' must be an object of name -> number, got {type(metrics).__name__}")
    bad = {k: (v if not isinstance(v, int) or abs(v) < 10**20 else f"an integer of {len(str(abs(v)))} digits")
           for k, v in metrics.items() if not _finite(v)}
    if bad:
        raise ResultError(f"metrics must be finite numbers that fit a float; not so: {bad}")
    host: dict[str, Any] = doc["host"] if isinstance(doc.get("host"), dict) else {}
    measurement: dict[str, Any] = {k: doc[k] for k in ("samples", "warmup", "started", "finished") if k in doc}
    return HarnessResult({k: float(v) for k, v in metrics.items()}, host, measurement)


def _finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer beyond a float's range
        return False


def missing_metrics(asset: AIAsset, metrics: dict[str, float]) -> list[str]:
    """Metrics the asset declares with ``source: harness`` that a result lacks."""
    return [m.name for m in asset.spec.metrics if m.source == "harness" and m.name not in metrics]


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines, each cut to a readable length."""
    kept = text.rstrip("\n").splitlines()[-lines:]
    return "\n".join(line if len(line) <= _MAX_LINE else line[:_MAX_LINE] + "…" for line in kept)


def log_tail(stdout: str, stderr: str, lines: int = TAIL_LINES) -> str | None:
    """The ends of both streams, labelled; None when the trial printed nothing."""
    parts = [f"--- {name} (last lines) ---\n{tail(text, lines)}" for name, text in (("stderr", stderr), ("stdout", stdout))
             if text.strip()]
    return "\n".join(parts) or None


def now() -> datetime:
    return datetime.now(timezone.utc)


def succeeded(result: HarnessResult, started: datetime, finished: datetime, host: dict[str, Any]) -> BenchmarkTrialStatus:
    measured = {**host, **result.host}
    if result.measurement:
        measured["measurement"] = result.measurement
    return BenchmarkTrialStatus(
        phase="Succeeded", metrics=result.metrics, start_time=started, completion_time=finished, host=measured
    )


def failed(
    reason: str, message: str, started: datetime, finished: datetime, host: dict[str, Any], log: str | None
) -> BenchmarkTrialStatus:
    return BenchmarkTrialStatus(
        phase="Failed", reason=reason, message=message, start_time=started, completion_time=finished,
        host=host, log_tail=log,
    )


def read_end(stream: IO[bytes]) -> str:
    """The last MiB of a process's captured output, as text."""
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(0, size - _READ_LIMIT))
    return stream.read().decode(errors="replace")
