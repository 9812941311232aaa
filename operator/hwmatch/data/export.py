"""Writing the dataset frame to a file a person or another tool opens: Parquet or CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from hwmatch.api.errors import InputError
from hwmatch.data.store import Store

FORMATS = (".parquet", ".csv")


def write_frame(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as Parquet or CSV, chosen by the file's suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"cannot write {path}: unknown format {suffix or '(no suffix)'!r}; name the file *.parquet or *.csv")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            _arrow_safe(frame).to_parquet(path, index=False)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}; pass --out with a path in a writable directory"
                         ) from None
    return path


def export(store: Store, path: str | Path, asset: str | None = None, sweeps: Sequence[str] | None = None) -> int:
    """Write the dataset frame of the store's finished trials (filtered by asset and sweeps); returns the row count."""
    frame = store.frame(asset=asset, sweeps=sweeps)
    write_frame(frame, path)
    return len(frame)


def _arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet columns have one type: a column mixing types (a categorical of 1 and "a") is written as text."""
    out = frame.copy()
    for col in [c for c in out.columns if pd.api.types.is_object_dtype(out[c])]:
        kinds = {type(v) for v in out[col].dropna()}
        if len(kinds) > 1:
            out[col] = out[col].map(lambda v: v if v is None or v != v else str(v))
    return out
