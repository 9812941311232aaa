"""The trial's result: one JSON line on stdout, and a copy in the pod's termination log.

stdout is the contract of every executor (the last JSON line is the result);
the termination log is how a Kubernetes operator reads the result from the
pod's status without fetching logs. The kubelet keeps at most 4096 bytes of
it, so the copy is shrunk (host details, then precision, then parameters)
until it fits, and writing it never fails a trial.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TERMINATION_LOG_ENV = "HWMATCH_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")
#: The kubelet truncates termination messages at 4096 bytes; stay strictly below.
TERMINATION_LOG_LIMIT = 4096


def to_json(document: Mapping[str, Any]) -> str:
    """Compact, single-line JSON (what executors parse)."""
    return json.dumps(document, separators=(",", ":"), default=str)


def termination_log_path(environ: Mapping[str, str] = os.environ) -> Path | None:
    """``$HWMATCH_TERMINATION_LOG`` when set, else ``/dev/termination-log`` when writable (in a pod), else none."""
    configured = environ.get(TERMINATION_LOG_ENV)
    if configured:
        return Path(configured)
    if DEFAULT_TERMINATION_LOG.exists() and os.access(DEFAULT_TERMINATION_LOG, os.W_OK):
        return DEFAULT_TERMINATION_LOG
    return None


def fit_termination_log(document: Mapping[str, Any], limit: int = TERMINATION_LOG_LIMIT) -> str | None:
    """The most complete form of ``document`` whose JSON is shorter than ``limit`` bytes, or none."""
    slim = {k: v for k, v in document.items() if k != "host"}
    rounded = _round(slim)
    for candidate in (document, slim, rounded, {k: v for k, v in rounded.items() if k != "parameters"}):
        text = to_json(candidate)
        if len(text.encode()) < limit:
            return text
    return None


def write_termination_log(document: Mapping[str, Any], path: Path | None) -> bool:
    """Write the shrunk result to ``path``; report problems on stderr instead of failing the trial."""
    if path is None:
        return False
    text = fit_termination_log(document)
    if text is None:
        print(f"hwmatch-bench: warning: result is over {TERMINATION_LOG_LIMIT} bytes even shrunk; "
              f"not written to {path}", file=sys.stderr)
        return False
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"hwmatch-bench: warning: cannot write termination log {path}: {exc}", file=sys.stderr)
        return False
    return True


def _round(value: Any, digits: int = 4) -> Any:
    """Floats to ``digits`` significant digits, recursively (timestamps keep whole seconds' precision)."""
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        if abs(value) >= 1e6:  # Unix times: 4 significant digits would lose the trial's window
            return round(value, 3)
        return float(f"{value:.{digits}g}")
    if isinstance(value, Mapping):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v, digits) for v in value]
    return value
