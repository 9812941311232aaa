"""Bringing existing benchmark tables (CSV or Parquet) into hwmatch as trials of an asset.

Published benchmark results are worth as much as trials hwmatch ran itself:
they train the same surrogates and answer the same recommendations, and they
let sampling strategies be compared offline (:mod:`hwmatch.execution.replay`).
A small YAML *mapping* says how a table family reads: which column (or which
part of the file name) is the platform, which columns are parameters,
instance features and metrics, how they are renamed, what each platform
costs and which features it has. From the mapping and the tables this module
derives the :class:`~hwmatch.api.AIAsset` (its parameter space read from the
data), the platforms, and a frame in the shared dataset convention
(:mod:`hwmatch.data.frame`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Sequence, cast

import numpy as np
import pandas as pd
import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from hwmatch.api import (
    AIAsset,
    AIAssetSpec,
    BenchmarkSweep,
    BenchmarkSweepSpec,
    BenchmarkTrial,
    BenchmarkTrialStatus,
    InstanceFeature,
    ManifestError,
    ManifestProblem,
    MetricSpec,
    ObjectRef,
    Parameter,
    Platform,
)
from hwmatch.api.asset import MetricGoal, ParameterType, Range, Scalar
from hwmatch.api.base import IDENTIFIER_PATTERN, ApiModel, ObjectMeta, check_dns_label
from hwmatch.api.errors import InputError
from hwmatch.api.manifest import problems_from_validation
from hwmatch.api.vocabulary import make_trial, trial_id
from hwmatch.data.frame import FEATURE, ID_COLUMNS, INSTANCE, METRIC, PARAM, columns, strip
from hwmatch.data.store import Store

#: A parameter with at most this many distinct values in the data gets ``values``; more gets a ``range``.
MAX_LISTED_VALUES = 64
#: The metric a per-run price becomes (a constant per platform).
COST_PER_RUN = "cost_per_run"
#: Rows turned into Python values at a time (trial ids, trials): a million rows' cells boxed at once cost hundreds of MiB.
CHUNK_ROWS = 10_000


class SourceColumn(ApiModel):
    """One column of the table under its hwmatch name; ``column`` lists the spellings tables use."""

    name: str = Field(pattern=IDENTIFIER_PATTERN, max_length=63, description="Name in hwmatch, e.g. time_s.")
    column: str | list[str] | None = Field(
        default=None,
        description="Column name(s) in the tables; the first one a table has is used (default: name).",
    )

    def spellings(self) -> list[str]:
        if self.column is None:
            return [self.name]
        return [self.column] if isinstance(self.column, str) else list(self.column)

    def find(self, table: pd.DataFrame) -> str | None:
        """The column of ``table`` that holds this value, or None."""
        return next((c for c in self.spellings() if c in table.columns), None)


class ParameterColumn(SourceColumn):
    type: ParameterType = Field(description="int, float or categorical.")
    values: list[Scalar] | None = Field(default=None, description="The space (default: read from the data).")
    range: Range | None = Field(default=None, description="The space as an interval (default: read from the data).")


class InstanceColumn(SourceColumn):
    description: str | None = None


class MetricColumn(SourceColumn):
    goal: MetricGoal | None = Field(default=None, description="minimize or maximize.")
    unit: str | None = None
    missing: list[float] = Field(
        default_factory=list, description="Values that mean 'not measured' (e.g. 0 for a power meter that was absent)."
    )


class PlatformSource(ApiModel):
    """Where a row's platform comes from: a column, or a named group of a regex on the file name."""

    column: str | None = None
    from_file: str | None = Field(
        default=None, description="Regex on the file name with a group named 'platform', e.g. '_(?P<platform>pc|vm)\\.csv$'."
    )

    @field_validator("from_file")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise InputError(f"not a valid regex: {exc}") from None
            if "platform" not in pattern.groupindex:
                raise InputError("the regex needs a named group (?P<platform>...)")
        return value

    @model_validator(mode="after")
    def _one(self) -> "PlatformSource":
        if (self.column is None) == (self.from_file is None):
            raise InputError("set exactly one of 'column' or 'fromFile'")
        return self


class PlatformEntry(ApiModel):
    """What the tables do not say about a platform: its price and its features."""

    cost_per_hour: float | None = Field(default=None, ge=0, description="Price of one replica per hour.")
    price_per_run: float | None = Field(
        default=None, ge=0, description=f"Price of one run; becomes the metric {COST_PER_RUN!r}."
    )
    features: dict[str, Scalar] = Field(default_factory=dict, description="Descriptors the models learn from.")


class Join(ApiModel):
    """A second table family whose metrics attach to the main rows by key columns (e.g. a quality table)."""

    match: str = Field(description="Regex on the file name that marks a table as this join's, e.g. '_quality\\.csv$'.")
    keys: list[str] = Field(min_length=1, description="Key columns (names of parameters/instance features).")
    metrics: list[MetricColumn] = Field(min_length=1)
    unmatched: Literal["drop", "append"] = Field(
        default="append",
        description="append: rows without a main row become trials (with only these metrics) on every platform; "
        "drop: they are ignored.",
    )

    @field_validator("match")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise InputError(f"not a valid regex: {exc}") from None
        return value


class ImportMapping(ApiModel):
    """How a family of benchmark tables maps onto an asset, its platforms and its trials."""

    asset: str = Field(description="Name of the AIAsset the trials belong to (a DNS-1123 label).")
    description: str | None = None
    platform: PlatformSource
    parameters: list[ParameterColumn] = Field(default_factory=list)
    instance: list[InstanceColumn] = Field(default_factory=list, description="Instance features (not chosen by the user).")
    metrics: list[MetricColumn] = Field(min_length=1)
    platforms: dict[str, PlatformEntry] = Field(default_factory=dict, description="Price and features per platform.")
    joins: list[Join] = Field(default_factory=list)

    @field_validator("asset")
    @classmethod
    def _asset(cls, value: str) -> str:
        return check_dns_label(value, "asset name")

    @field_validator("platforms")
    @classmethod
    def _platform_names(cls, value: dict[str, PlatformEntry]) -> dict[str, PlatformEntry]:
        for name in value:
            check_dns_label(name, "platform name")
        return value

    @model_validator(mode="after")
    def _names(self) -> "ImportMapping":
        seen: set[str] = set()
        for col in [*self.parameters, *self.instance, *self.metrics, *(m for j in self.joins for m in j.metrics)]:
            if col.name in seen:
                raise InputError(f"name {col.name!r} is used twice; parameters, instance features and metrics need distinct names")
            seen.add(col.name)
        keys = {c.name for c in [*self.parameters, *self.instance]}
        for i, join in enumerate(self.joins):
            bad = [k for k in join.keys if k not in keys]
            if bad:
                raise InputError(f"joins[{i}].keys names {bad}, which are not parameters or instance features of the mapping")
        if any(p.price_per_run is not None for p in self.platforms.values()) and COST_PER_RUN in seen:
            raise InputError(f"a metric is named {COST_PER_RUN!r}, the name pricePerRun produces; rename it")
        return self

    @property
    def sweep(self) -> str:
        """The name of the sweep imported trials are recorded under."""
        return f"import-{self.asset}"


def load_mapping(path: str | Path) -> ImportMapping:
    """Read and validate a mapping file; problems name the field path (``metrics[2].goal``)."""
    file = str(path)
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ManifestError([ManifestProblem(file, 1, "", "", f"cannot read the mapping: {exc.strerror}")]) from None
    except yaml.YAMLError as exc:
        raise ManifestError([ManifestProblem(file, 1, "", "", f"not valid YAML: {exc}")]) from None
    return parse_mapping(doc, file)


def parse_mapping(doc: object, file: str = "<mapping>") -> ImportMapping:
    if not isinstance(doc, dict):
        raise ManifestError([ManifestProblem(file, 1, "", "", f"expected a mapping (an object), got {type(doc).__name__}")])
    try:
        return ImportMapping.model_validate(doc)
    except ValidationError as exc:
        raise ManifestError(problems_from_validation(exc, ImportMapping, file, 1, "ImportMapping")) from None


class TableError(InputError):
    """A table does not fit its mapping; the message names the file, the column and the fix."""


@dataclass(frozen=True)
class Imported:
    """What an import yields: the asset (space read from the data), its platforms, and the trial frame."""

    asset: AIAsset
    platforms: list[Platform]
    frame: pd.DataFrame
    mapping: ImportMapping
    sources: list[str]  # the file (or join) each frame row came from
    #: Cells that were not measurements (text, ±inf) and were skipped (stored as missing), one line per column.
    skipped: list[str] = field(default_factory=list)


def _table_errors() -> tuple[type[BaseException], ...]:
    """What pandas and pyarrow raise for a file that is not a readable table."""
    errors: list[type[BaseException]] = [ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError]
    try:
        import pyarrow

        errors.append(pyarrow.ArrowException)
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        pass
    return tuple(errors)


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame; a :class:`TableError` naming the file if it is not one, or has no rows."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise TableError(f"{path}: unknown table format {path.suffix!r}; use .csv or .parquet")
    try:
        table = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise TableError(f"{path}: the file is empty; give a table with a header and rows") from None
    except UnicodeDecodeError as exc:
        raise TableError(f"{path}: not a text CSV file (byte 0x{exc.object[exc.start]:02x} at offset {exc.start} is "
                         "not UTF-8); give a CSV file saved as UTF-8") from None
    except _table_errors() as exc:
        kind = "CSV" if suffix == ".csv" else "Parquet"
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise TableError(f"{path}: not a readable {kind} table ({detail}); fix the file (ragged rows, a binary "
                         f"or damaged file) or give another one") from None
    if len(table) == 0:
        raise TableError(f"{path}: the table has a header but no rows; give a table with measurements")
    return table


def import_tables(mapping: ImportMapping, paths: Sequence[str | Path]) -> Imported:
    """Read ``paths`` as ``mapping`` says; the result is deterministic for the same files."""
    if not paths:
        raise TableError("no tables given")
    frame, skipped = _read_tables(mapping, paths)
    frame, sources = _finish(mapping, frame)
    return Imported(_asset(mapping, frame), _platforms(mapping, frame), frame, mapping, sources, skipped)


def _read_tables(mapping: ImportMapping, paths: Sequence[str | Path]) -> tuple[pd.DataFrame, list[str]]:
    """The main tables' rows in one frame in a stable order, the joins' metrics attached; and the skipped-cell notes.

    A function of its own so that the tables as read, the per-file parts and the unsorted frame are freed
    before :func:`_finish` adds its columns: at a million rows that lowers the import's peak by ~90 MiB.
    """
    join_tables: dict[int, list[pd.DataFrame]] = {i: [] for i in range(len(mapping.joins))}
    parts: list[pd.DataFrame] = []
    for path in sorted(Path(p) for p in paths):
        join = next((i for i, j in enumerate(mapping.joins) if re.search(j.match, path.name)), None)
        table = read_table(path)
        if join is not None:
            join_tables[join].append(_read_join(mapping, mapping.joins[join], table, path))
        else:
            parts.append(_read_main(mapping, table, path))
    if not parts:
        raise TableError("every table matched a join; give at least one table of measurements per platform")
    skipped = [note for part in parts for note in part.attrs.get("skipped", [])]
    frame = pd.concat(parts, ignore_index=True)
    frame.attrs.clear()
    for i, spec in enumerate(mapping.joins):
        if join_tables[i]:
            frame = _apply_join(frame, spec, pd.concat(join_tables[i], ignore_index=True))
    for metric in mapping.metrics:
        if not frame[METRIC + metric.name].notna().any():
            raise TableError(f"metric {metric.name!r} has no numeric value in any table "
                             f"({', '.join(sorted({Path(p).name for p in paths}))}); fix the column or the mapping")
    return frame.sort_values(["platform", "source", "row"], kind="stable").reset_index(drop=True), skipped


def _read_main(mapping: ImportMapping, table: pd.DataFrame, path: Path) -> pd.DataFrame:
    out = pd.DataFrame(index=table.index)
    if mapping.platform.from_file is not None:
        match = re.search(mapping.platform.from_file, path.name)
        if not match:
            raise TableError(
                f"{path}: the file name does not match platform.fromFile {mapping.platform.from_file!r}; "
                "rename the file or fix the regex"
            )
        out["platform"] = match.group("platform")
    else:
        column = mapping.platform.column
        if column not in table.columns:
            raise TableError(f"{path}: no platform column {column!r}; columns are {list(table.columns)}")
        empty = table[column].isna() | (table[column].astype(str).str.strip() == "")
        if empty.any():
            first = int(np.flatnonzero(empty.to_numpy())[0])
            raise TableError(f"{path}: {int(empty.sum())} row(s) have no platform in column {column!r} (the first is "
                             f"row {first + 2} of the file); fill the platform in or remove those rows")
        out["platform"] = table[column].astype(str)
    for col in mapping.parameters:
        out[PARAM + col.name] = _column(table, col, path, "parameters")
    for feature in mapping.instance:
        raw = _column(table, feature, path, "instance")
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna() & raw.notna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise TableError(f"{path}: instance feature {feature.name!r} must be numeric, but {int(bad.sum())} cell(s) "
                             f"are not (the first, row {first + 2}: {raw.iloc[first]!r}); map that column as a "
                             "categorical parameter, or fix the cells")
        out[INSTANCE + feature.name] = values
    skipped = []
    for metric in mapping.metrics:
        series = _metric(table, metric, path)
        if "skipped" in series.attrs:
            skipped.append(series.attrs["skipped"])
        out[METRIC + metric.name] = series
    out["source"] = path.name
    out.attrs["skipped"] = skipped
    out["row"] = np.arange(len(table))
    return out


def _read_join(mapping: ImportMapping, join: Join, table: pd.DataFrame, path: Path) -> pd.DataFrame:
    keys = {c.name: c for c in [*mapping.parameters, *mapping.instance]}
    out = pd.DataFrame(index=table.index)
    for name in join.keys:
        prefix = PARAM if name in {p.name for p in mapping.parameters} else INSTANCE
        out[prefix + name] = _column(table, keys[name], path, "joins.keys")
    for col in join.metrics:
        out[METRIC + col.name] = _metric(table, col, path)
    return out


def _column(table: pd.DataFrame, col: SourceColumn, path: Path, where: str) -> pd.Series:
    found = col.find(table)
    if found is None:
        raise TableError(
            f"{path}: {where} {col.name!r} reads column {' or '.join(map(repr, col.spellings()))}, "
            f"which the table lacks; its columns are {list(table.columns)}"
        )
    series = table[found]
    if isinstance(col, ParameterColumn):
        if col.type == "categorical":
            return series.astype(str)
        series = pd.to_numeric(series, errors="coerce")
        if series.isna().any():
            raise TableError(f"{path}: parameter {col.name!r} (column {found!r}) has non-numeric values; use type: categorical")
        return series.astype(int) if col.type == "int" else series.astype(float)
    return series


def _metric(table: pd.DataFrame, col: MetricColumn, path: Path) -> pd.Series:
    raw = _column(table, col, path, "metrics")
    series = pd.to_numeric(raw, errors="coerce").astype(float)
    if col.missing:
        series = series.mask(series.isin(col.missing))
    text = series.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if col.missing:
        text &= ~raw.isin(col.missing) & ~raw.astype(str).isin([str(m) for m in col.missing])
    infinite = np.isinf(series.to_numpy())
    series = series.mask(infinite)
    notes = []
    if text.any():
        first = int(np.flatnonzero(text.to_numpy())[0])
        notes.append(f"{int(text.sum())} non-numeric cell(s) (the first, row {first + 2}: {raw.iloc[first]!r})")
    if infinite.any():
        notes.append(f"{int(infinite.sum())} infinite value(s)")
    if notes:
        series.attrs["skipped"] = f"{path.name}: metric {col.name!r}: {' and '.join(notes)} skipped (stored as missing)"
    return series


def _apply_join(frame: pd.DataFrame, join: Join, table: pd.DataFrame) -> pd.DataFrame:
    """Attach a join table's metrics by key; its unmatched rows become trials on every platform (``append``)."""
    keys = [c for c in table.columns if not c.startswith(METRIC)]
    table = table.groupby(keys, as_index=False, sort=True).mean()  # one value per key: the mean of repeats
    merged = frame.merge(table, on=keys, how="left")
    if join.unmatched == "drop":
        return merged
    seen = frame[keys].drop_duplicates()
    extra = table.merge(seen, on=keys, how="left", indicator=True)
    extra = extra[extra["_merge"] == "left_only"].drop(columns="_merge")
    appended = []
    for platform in sorted(frame["platform"].unique()):
        rows = extra.copy()
        rows["platform"] = platform
        rows["source"] = f"join:{join.match}"
        rows["row"] = np.arange(len(rows))
        appended.append(rows)
    return pd.concat([merged, *appended], ignore_index=True)


def _finish(mapping: ImportMapping, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Identity, repetition, price and platform features: the shared frame schema (built on ``frame`` in place)."""
    bad = sorted({str(p) for p in frame["platform"].unique()
                  if not re.match(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", str(p))})
    if bad:
        raise TableError(f"platform names {bad} are not DNS-1123 labels; map them to lower-case names")
    params = [c for c in frame.columns if c.startswith(PARAM)]
    instance = [c for c in frame.columns if c.startswith(INSTANCE)]
    metrics = [c for c in frame.columns if c.startswith(METRIC)]
    group = ["platform", *params, *instance]
    frame["repetition"] = frame.groupby(group, sort=False, dropna=False).cumcount()
    frame["asset"] = mapping.asset
    frame["sweep"] = mapping.sweep
    frame["status"] = "Succeeded"
    frame["reason"] = ""
    info = {name: mapping.platforms.get(name, PlatformEntry()) for name in frame["platform"].unique()}
    frame["cost_per_hour"] = frame["platform"].map(
        {n: (i.cost_per_hour if i.cost_per_hour is not None else np.nan) for n, i in info.items()}
    ).astype(float)
    if any(i.price_per_run is not None for i in info.values()):
        frame[METRIC + COST_PER_RUN] = frame["platform"].map(
            {n: (i.price_per_run if i.price_per_run is not None else np.nan) for n, i in info.items()}
        ).astype(float)
        metrics.append(METRIC + COST_PER_RUN)
    features = sorted({k for i in info.values() for k in i.features})
    for key in features:
        frame[FEATURE + key] = frame["platform"].map({n: i.features.get(key) for n, i in info.items()})
    frame["trial_id"] = _trial_ids(mapping.sweep, frame, params, instance)
    ordered = [*ID_COLUMNS, *params, *instance, *(FEATURE + k for k in features), *metrics]
    return frame[ordered], frame["source"].astype(str).tolist()


def _trial_ids(sweep: str, frame: pd.DataFrame, params: list[str], instance: list[str]) -> list[str]:
    """The planner's trial names, so an imported trial is named as a planned one measuring the same thing."""
    out: list[str] = []
    for rows in _chunks(len(frame)):
        chunk = frame.iloc[rows]
        p_values = chunk[params].to_numpy(dtype=object)
        i_values = chunk[instance].to_numpy(dtype=object)
        out.extend(trial_id(sweep, platform, _as_dict(params, p), _as_dict(instance, i), int(rep))
                   for platform, p, i, rep in zip(chunk["platform"], p_values, i_values, chunk["repetition"]))
    return out


def _chunks(n: int) -> Iterator[slice]:
    """``n`` rows as slices of :data:`CHUNK_ROWS`, so only one slice at a time is held as Python objects."""
    for start in range(0, n, CHUNK_ROWS):
        yield slice(start, start + CHUNK_ROWS)


def _as_dict(cols: list[str], values: np.ndarray) -> dict[str, object]:
    return {strip(c): _plain(v) for c, v in zip(cols, values) if not (isinstance(v, float) and np.isnan(v))}


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _scalar(value: object) -> Scalar:
    plain = _plain(value)
    if not isinstance(plain, (bool, int, float, str)):
        raise TableError(f"value {value!r} is not a number, a string or a boolean")
    return plain


def _platforms(mapping: ImportMapping, frame: pd.DataFrame) -> list[Platform]:
    out = []
    for name in sorted(frame["platform"].unique()):
        info = mapping.platforms.get(name, PlatformEntry())
        out.append(Platform(name=name, cost_per_hour=info.cost_per_hour, features=dict(info.features)))
    return out


def _asset(mapping: ImportMapping, frame: pd.DataFrame) -> AIAsset:
    """The asset with its parameter space read from the data (unless the mapping states it)."""
    parameters = [_parameter(col, frame[PARAM + col.name]) for col in mapping.parameters]
    metric_cols = [*mapping.metrics, *(m for j in mapping.joins for m in j.metrics)]
    metrics = [MetricSpec(name=m.name, goal=m.goal, unit=m.unit) for m in metric_cols]
    if METRIC + COST_PER_RUN in frame.columns:
        metrics.append(MetricSpec(name=COST_PER_RUN, goal="minimize", unit="price/run"))
    spec = AIAssetSpec(
        command=["imported-table"],
        parameters=parameters,
        metrics=metrics,
        instance_features=[InstanceFeature(name=c.name, description=c.description) for c in mapping.instance],
    )
    annotations = {"hwmatch.dev/imported": "true"}
    if mapping.description:
        annotations["hwmatch.dev/description"] = mapping.description
    return AIAsset(metadata=ObjectMeta(name=mapping.asset, annotations=annotations), spec=spec)


def _parameter(col: ParameterColumn, series: pd.Series) -> Parameter:
    if col.values is not None or col.range is not None:
        return Parameter(name=col.name, type=col.type, values=col.values, range=col.range)
    distinct = sorted(series.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
    if col.type == "categorical":
        return Parameter(name=col.name, type="categorical", values=[str(v) for v in distinct])
    if len(distinct) <= MAX_LISTED_VALUES:
        return Parameter(name=col.name, type=col.type, values=[_scalar(v) for v in distinct])
    lo, hi = float(min(distinct)), float(max(distinct))
    step = 1.0 if col.type == "int" else None
    return Parameter(name=col.name, type=col.type, range=Range(min=lo, max=hi, step=step))


def sweep_of(imported: Imported) -> BenchmarkSweep:
    """The sweep imported trials are recorded under: the table's platforms, prices and features, a grid."""
    return BenchmarkSweep(
        metadata=ObjectMeta(name=imported.mapping.sweep, annotations={"hwmatch.dev/imported": "true"}),
        spec=BenchmarkSweepSpec(asset_ref=ObjectRef(name=imported.mapping.asset), platforms=imported.platforms),
    )


def trials_of(imported: Imported) -> Iterator[BenchmarkTrial]:
    """Every imported row as a Succeeded BenchmarkTrial (NaN metrics left out), made one at a time.

    A generator: a trial object costs some 6 KiB, so a list of a million-row table's trials took 5.5 GiB;
    :meth:`Store.add_trials` writes each as it comes.
    """
    frame = imported.frame
    params, instance, metrics = (columns(frame, prefix) for prefix in (PARAM, INSTANCE, METRIC))
    for rows in _chunks(len(frame)):
        chunk = frame.iloc[rows]
        p_values, i_values, m_values = (chunk[c].to_numpy(dtype=object) for c in (params, instance, metrics))
        for k, (platform, rep, source) in enumerate(zip(chunk["platform"], chunk["repetition"], imported.sources[rows])):
            trial = make_trial(imported.mapping.asset, imported.mapping.sweep, platform, _as_dict(params, p_values[k]),
                               cast(dict[str, float], _as_dict(instance, i_values[k])), int(rep))
            trial.status = BenchmarkTrialStatus(
                phase="Succeeded",
                metrics={strip(c): float(v) for c, v in zip(metrics, m_values[k]) if not np.isnan(v)},
                host={"importedFrom": str(source)},
            )
            yield trial


def save(imported: Imported, store: Store) -> int:
    """Record the asset, the import sweep and every trial in ``store`` (re-importing replaces them)."""
    store.put_asset(imported.asset)
    store.put_sweep(sweep_of(imported))
    return store.add_trials(trials_of(imported))
