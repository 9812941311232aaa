"""Bringing existing benchmark tables (CSV or Parquet) into hwmatch as trials of an asset.

Published benchmark results are worth as much as trials hwmatch ran itself:
they train the same surrogates and answer the same recommendations, and they
let sampling strategies be compared offline (:mod:`hwmatch.execution.replay`).
A small YAML *mapping* says how a table family reads: which column (or which
part of the file name) is the platform, which columns are parameters,
instance features and metrics, how they are renamed, what each platform
costs and which features it has. Tables as people publish them are covered
too: long tables (one row per result, its unit in a column: ``pivot``), row
filters (``where``), numbers with thousands separators or a decimal comma
(``numbers``), free-text platform names and values spelled many ways
(``rename``, ``normalize``), and names as instance features (``type:
categorical``). A cell that cannot be read is an error naming the file, row
and column, or (a metric's) counted and reported — never dropped silently. From the mapping and the tables this module
derives the :class:`~hwmatch.api.AIAsset` (its parameter space read from the
data), the platforms, and a frame in the shared dataset convention
(:mod:`hwmatch.data.frame`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence, cast

import numpy as np
import pandas as pd
import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from hwmatch.api import (
    AIAsset,
    AIAssetSpec,
    BenchmarkSweep,
    BenchmarkSweepSpec,
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
from hwmatch.api.vocabulary import SUCCEEDED, trial_id
from hwmatch.data.frame import FEATURE, ID_COLUMNS, INSTANCE, METRIC, PARAM, columns, strip
from hwmatch.data.store import Store, TrialRecord

#: A parameter with at most this many distinct values in the data gets ``values``; more gets a ``range``.
MAX_LISTED_VALUES = 64
#: The metric a per-run price becomes (a constant per platform).
COST_PER_RUN = "cost_per_run"
#: Rows turned into Python values at a time (trial ids, trials): a million rows' cells boxed at once cost hundreds of MiB.
CHUNK_ROWS = 10_000


class NumberFormat(ApiModel):
    """How the tables write numbers: published tables group thousands (``4,115.42``) or write a decimal comma."""

    thousands: Literal[",", ".", " ", "'", "_"] | None = Field(
        default=None,
        description="Thousands separator, e.g. ',' for 4,115.42 (' ' also reads no-break spaces); the digits must "
        "come in groups of three, so a misread table gives unreadable cells, not wrong numbers. Default: none.",
    )
    decimal: Literal[".", ","] = Field(default=".", description="Decimal mark; with ',', a '.' in a number is unreadable.")

    @model_validator(mode="after")
    def _distinct(self) -> "NumberFormat":
        if self.thousands == self.decimal:
            raise InputError(f"thousands and decimal are both {self.decimal!r}; they must differ")
        return self


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


class LabelColumn(SourceColumn):
    """A parameter or instance feature: when categorical its values are names, which tables spell many ways."""

    type: str
    rename: dict[str, str] = Field(
        default_factory=dict, description="A value as written (trimmed) -> the name it stands for; applied first."
    )
    normalize: bool = Field(
        default=False,
        description="Fold case and drop spaces, '-' and '_' (after rename): 'Single Stream', 'single-stream' and "
        "'SingleStream' all become 'singlestream'.",
    )

    @model_validator(mode="after")
    def _names_are_categorical(self) -> "LabelColumn":
        if (self.rename or self.normalize) and self.type != "categorical":
            raise InputError(f"{self.name!r}: rename and normalize apply to names; give the column type: categorical")
        return self


class ParameterColumn(LabelColumn):
    type: ParameterType = Field(description="int, float or categorical.")
    values: list[Scalar] | None = Field(default=None, description="The space (default: read from the data).")
    range: Range | None = Field(default=None, description="The space as an interval (default: read from the data).")


class InstanceColumn(LabelColumn):
    type: Literal["numeric", "categorical"] = Field(
        default="numeric",
        description="numeric, or categorical: names (a model, a scenario), which trials hold as the index of the "
        "name in values.",
    )
    values: list[str] | None = Field(
        default=None, min_length=1,
        description="The names of a categorical feature in code order (default: the names in the data, sorted).",
    )
    description: str | None = None

    @model_validator(mode="after")
    def _values_are_names(self) -> "InstanceColumn":
        if self.values is not None and self.type != "categorical":
            raise InputError(f"{self.name!r}: values lists the names of a categorical feature; give type: categorical")
        if self.values is not None and len(set(self.values)) < len(self.values):
            raise InputError(f"{self.name!r}: values lists a name twice")
        return self


class MetricColumn(SourceColumn):
    goal: MetricGoal | None = Field(default=None, description="minimize or maximize.")
    unit: str | None = None
    missing: list[float] = Field(
        default_factory=list,
        description="Values (as written, before any factor) that mean 'not measured', e.g. 0 for an absent power meter.",
    )
    factor: float = Field(
        default=1.0, gt=0, allow_inf_nan=False,
        description="The column times factor is the metric in its unit, e.g. 0.001 for a column in ms and a metric in s.",
    )
    units: dict[str, float] | None = Field(
        default=None, min_length=1,
        description="With pivot: the spellings of pivot.column whose rows are this metric -> the factor to its unit, "
        "e.g. {'J per stream': 1000, 'mJ per stream': 1} for a metric in mJ.",
    )

    @field_validator("units")
    @classmethod
    def _factors(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        bad = [k for k, f in (value or {}).items() if not (np.isfinite(f) and f > 0)]
        if bad:
            raise InputError(f"the factors of {bad} must be positive finite numbers")
        return value


class PlatformSource(ApiModel):
    """Where a row's platform comes from (a column, or a named group of a regex on the file name), and its name."""

    column: str | None = None
    from_file: str | None = Field(
        default=None, description="Regex on the file name with a group named 'platform', e.g. '_(?P<platform>pc|vm)\\.csv$'."
    )
    rename: dict[str, str] = Field(
        default_factory=dict,
        description="A platform as written (trimmed) -> its hwmatch name, e.g. {'Acme Tower 8x H200 (TRT)': acme-h200}.",
    )
    normalize: bool = Field(
        default=False,
        description="Make names DNS labels (after rename): lower-case, each run of other characters one '-', "
        "at most 63 characters: 'Acme Tower (8x H200)' -> 'acme-tower-8x-h200'.",
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
        if not self.normalize:
            for name in self.rename.values():
                check_dns_label(name, "platform.rename: the platform name")
        return self

    def names(self, written: pd.Series) -> pd.Series:
        """The hwmatch names of platforms as written."""
        return _relabel(written, self.rename, _dns_label if self.normalize else None)


class RowFilter(ApiModel):
    """Which rows of a table are read: those whose cell in ``column`` (as text, trimmed) passes."""

    column: str
    keep: list[Scalar] | None = Field(default=None, min_length=1, description="Read only rows with one of these values.")
    drop: list[Scalar] | None = Field(default=None, min_length=1, description="Leave out rows with one of these values.")
    matches: str | None = Field(default=None, description="Read only rows where this regex matches (re.search).")

    @field_validator("matches")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise InputError(f"not a valid regex: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one(self) -> "RowFilter":
        if sum(v is not None for v in (self.keep, self.drop, self.matches)) != 1:
            raise InputError("set exactly one of 'keep', 'drop' or 'matches'")
        return self

    def passes(self, cells: pd.Series) -> pd.Series:
        text = cells.astype("string").str.strip()
        if self.matches is not None:
            return text.str.contains(self.matches, regex=True).fillna(False).astype(bool)
        listed = text.isin([str(v) for v in (self.keep or self.drop or [])]).fillna(False).astype(bool)
        return listed if self.keep is not None else ~listed

    def describe(self) -> str:
        if self.matches is not None:
            return f"{self.column!r} matches {self.matches!r}"
        return f"{self.column!r} {'keep' if self.keep is not None else 'drop'} {self.keep or self.drop}"


class Pivot(ApiModel):
    """A long table: one row per measured result, what it measures (a unit) in one column, the number in another.

    MLPerf-style tables are long: a system's throughput and its power are two rows, told apart by a ``Units``
    column spelled many ways. Rows of one configuration (platform, parameters, instance, ``by``) become one
    trial, each metric read from the rows whose unit is one of the metric's ``units``.
    """

    column: str = Field(description="The column that says what a row measured, e.g. Units.")
    value: str = Field(description="The column with the number, e.g. Result.")
    by: list[str] = Field(
        default_factory=list,
        description="Columns that tell apart results of one configuration, e.g. a submission ID: rows that agree "
        "on the configuration and these are one trial. A configuration's k-th value of a metric is repetition k.",
    )
    normalize: bool = Field(
        default=False,
        description="Match units ignoring case, spaces, '-' and '_' (off by default: 'mJ' is not 'MJ').",
    )
    unknown: Literal["error", "skip"] = Field(
        default="error",
        description="A row whose unit no metric lists: error (naming file, row and value), or skip (counted and "
        "reported).",
    )

    def key(self, unit: str) -> str:
        return _fold(unit) if self.normalize else unit.strip()


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
    numbers: NumberFormat = Field(default_factory=NumberFormat, description="How the tables write numbers.")
    where: list[RowFilter] = Field(default_factory=list, description="Row filters, all applied before anything is read.")
    pivot: Pivot | None = Field(default=None, description="The tables are long: one row per result, pivoted by unit.")

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
            if any(m.units is not None for m in join.metrics):
                raise InputError(f"joins[{i}].metrics: units are for the pivot of the main tables; a join reads columns")
        if any(p.price_per_run is not None for p in self.platforms.values()) and COST_PER_RUN in seen:
            raise InputError(f"a metric is named {COST_PER_RUN!r}, the name pricePerRun produces; rename it")
        self._pivot_units()
        return self

    def _pivot_units(self) -> None:
        """With a pivot every metric names its units (each spelling once) and reads no column; without, none does."""
        if self.pivot is None:
            named = [i for i, m in enumerate(self.metrics) if m.units is not None]
            if named:
                raise InputError(f"metrics[{named[0]}].units reads a long table; add pivot: {{column: ..., value: ...}} "
                                 "or read a column")
            return
        owner: dict[str, str] = {}
        for i, metric in enumerate(self.metrics):
            if metric.units is None or metric.column is not None or metric.factor != 1.0:
                raise InputError(f"metrics[{i}] ({metric.name!r}): with pivot a metric reads the rows of its units "
                                 "(spelling -> factor); give units, and no column or factor")
            for unit in metric.units:
                key = self.pivot.key(unit)
                if key in owner:
                    raise InputError(f"unit {unit!r} is listed by metrics {owner[key]!r} and {metric.name!r}; "
                                     "a row is one metric")
                owner[key] = metric.name

    @property
    def sweep(self) -> str:
        """The name of the sweep imported trials are recorded under."""
        return f"import-{self.asset}"


def _fold(text: str) -> str:
    """A name with case, spaces, '-' and '_' folded away: ``'Single Stream'`` -> ``'singlestream'``."""
    return re.sub(r"[\s_-]+", "", text).lower()


def _dns_label(text: str) -> str:
    """Free text as a DNS-1123 label: ``'Acme Tower (8x H200)'`` -> ``'acme-tower-8x-h200'`` ('' if nothing is left)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].strip("-")


def _relabel(series: pd.Series, rename: dict[str, str], normal: Callable[[str], str] | None) -> pd.Series:
    """``series`` as trimmed text, renamed, then normalised (once per distinct value); empty cells stay missing."""
    if not rename and normal is None:
        return series.astype(str)
    names: dict[object, str] = {}
    for value in pd.unique(series.dropna()):
        name = rename.get(str(value).strip(), str(value).strip())
        names[value] = normal(name) if normal is not None else name
    return series.map(names)


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
    #: Rows the mapping left out on purpose (``where``, ``pivot.unknown: skip``), one line per file and reason.
    left_out: list[str] = field(default_factory=list)


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
    """A CSV or Parquet file as a DataFrame; a :class:`TableError` naming the file if it is not one, or has no rows.

    Rows are labelled by position (a Parquet file's own index is dropped), so that row ``i`` is line ``i + 2`` of a
    CSV file however the rows are filtered later: messages name rows that way.
    """
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
    table.index = pd.RangeIndex(len(table))
    return table


def import_tables(mapping: ImportMapping, paths: Sequence[str | Path]) -> Imported:
    """Read ``paths`` as ``mapping`` says; the result is deterministic for the same files."""
    if not paths:
        raise TableError("no tables given")
    frame, skipped, left_out = _read_tables(mapping, paths)
    levels = _encode_names(mapping, frame)
    frame, sources = _finish(mapping, frame)
    return Imported(_asset(mapping, frame, levels), _platforms(mapping, frame), frame, mapping, sources, skipped,
                    left_out)


def _read_tables(mapping: ImportMapping, paths: Sequence[str | Path]) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The main tables' rows in one frame in a stable order, the joins' metrics attached; skipped cells, rows left out.

    A function of its own so that the tables as read, the per-file parts and the unsorted frame are freed
    before :func:`_finish` adds its columns: at a million rows that lowers the import's peak by ~90 MiB.
    """
    join_tables: dict[int, list[pd.DataFrame]] = {i: [] for i in range(len(mapping.joins))}
    parts: list[pd.DataFrame] = []
    skipped: list[str] = []
    left_out: list[str] = []
    for path in sorted(Path(p) for p in paths):
        join = next((i for i, j in enumerate(mapping.joins) if re.search(j.match, path.name)), None)
        table = read_table(path)
        if join is not None:
            join_tables[join].append(_read_join(mapping, mapping.joins[join], table, path, skipped))
            continue
        table = _filter(mapping, table, path, left_out)
        if len(table):
            parts.append(_read_main(mapping, table, path, skipped, left_out))
    if not parts:
        if left_out:  # there were tables of measurements, and the filters left none of their rows
            raise TableError(f"the row filters (where) leave no row in any table ({'; '.join(left_out)}); "
                             "fix the filters")
        raise TableError("every table matched a join; give at least one table of measurements per platform")
    frame = pd.concat(parts, ignore_index=True)
    for i, spec in enumerate(mapping.joins):
        if join_tables[i]:
            frame = _apply_join(frame, spec, pd.concat(join_tables[i], ignore_index=True))
    for metric in mapping.metrics:
        if not frame[METRIC + metric.name].notna().any():
            raise TableError(f"metric {metric.name!r} has no numeric value in any table "
                             f"({', '.join(sorted({Path(p).name for p in paths}))}); fix the column or the mapping")
    return frame.sort_values(["platform", "source", "row"], kind="stable").reset_index(drop=True), skipped, left_out


def _filter(mapping: ImportMapping, table: pd.DataFrame, path: Path, left_out: list[str]) -> pd.DataFrame:
    """The rows every ``where`` filter passes; each filter that leaves rows out says how many."""
    for i, rule in enumerate(mapping.where):
        if rule.column not in table.columns:
            raise TableError(f"{path}: where[{i}] reads column {rule.column!r}, which the table lacks; its columns "
                             f"are {list(table.columns)}")
        passes = rule.passes(table[rule.column]).to_numpy()
        if not passes.all():
            left_out.append(f"{path.name}: where[{i}] ({rule.describe()}) left out {int((~passes).sum())} of "
                            f"{len(table)} row(s)")
            table = table[passes]
    return table


def _line(series: pd.Series, bad: pd.Series | np.ndarray) -> tuple[int, object]:
    """The file row (as messages count them: the header is row 1) and the cell of the first ``bad`` one."""
    first = int(np.flatnonzero(np.asarray(bad))[0])
    return int(series.index[first]) + 2, series.iloc[first]


def _read_main(mapping: ImportMapping, table: pd.DataFrame, path: Path, skipped: list[str],
               left_out: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=table.index)
    out["platform"] = _platform(mapping.platform, table, path)
    for col in mapping.parameters:
        out[PARAM + col.name] = _column(table, col, path, "parameters", mapping.numbers)
    for feature in mapping.instance:
        out[INSTANCE + feature.name] = _column(table, feature, path, "instance", mapping.numbers)
    if mapping.pivot is not None:
        out = _pivot(mapping, mapping.pivot, table, out, path, skipped, left_out)
    else:
        for metric in mapping.metrics:
            out[METRIC + metric.name] = _metric(table, metric, path, mapping.numbers, skipped) * metric.factor
        out["row"] = table.index.to_numpy()
    out["source"] = path.name
    return out


def _platform(source: PlatformSource, table: pd.DataFrame, path: Path) -> pd.Series | str:
    """Each row's platform name (the file's, with ``fromFile``), renamed and normalised as the mapping says."""
    if source.from_file is not None:
        match = re.search(source.from_file, path.name)
        if not match:
            raise TableError(f"{path}: the file name does not match platform.fromFile {source.from_file!r}; "
                             "rename the file or fix the regex")
        name = str(source.names(pd.Series([match.group("platform")])).iloc[0])
        if not name:
            raise TableError(f"{path}: the platform {match.group('platform')!r} of the file name normalises to "
                             "nothing; give it a name in platform.rename")
        return name
    column = source.column
    if column not in table.columns:
        raise TableError(f"{path}: no platform column {column!r}; columns are {list(table.columns)}")
    written = table[column]
    empty = written.isna() | (written.astype(str).str.strip() == "")
    if empty.any():
        row, _ = _line(written, empty)
        raise TableError(f"{path}: {int(empty.sum())} row(s) have no platform in column {column!r} (the first is "
                         f"row {row} of the file); fill the platform in or remove those rows")
    names = source.names(written)
    nothing = names == ""
    if nothing.any():
        row, cell = _line(written, nothing)
        raise TableError(f"{path}: row {row}: platform {cell!r} (column {column!r}) normalises to nothing; give it a "
                         "name in platform.rename")
    return names


def _read_join(mapping: ImportMapping, join: Join, table: pd.DataFrame, path: Path, skipped: list[str]) -> pd.DataFrame:
    keys = {c.name: c for c in [*mapping.parameters, *mapping.instance]}
    out = pd.DataFrame(index=table.index)
    for name in join.keys:
        prefix = PARAM if name in {p.name for p in mapping.parameters} else INSTANCE
        out[prefix + name] = _column(table, keys[name], path, "joins.keys", mapping.numbers)
    for col in join.metrics:
        out[METRIC + col.name] = _metric(table, col, path, mapping.numbers, skipped) * col.factor
    return out


def _find(table: pd.DataFrame, col: SourceColumn, path: Path, where: str) -> pd.Series:
    found = col.find(table)
    if found is None:
        raise TableError(
            f"{path}: {where} {col.name!r} reads column {' or '.join(map(repr, col.spellings()))}, "
            f"which the table lacks; its columns are {list(table.columns)}"
        )
    return table[found]


def _column(table: pd.DataFrame, col: LabelColumn, path: Path, where: str, numbers: NumberFormat) -> pd.Series:
    """A parameter's or instance feature's values: names renamed and normalised, numbers read (or an error)."""
    raw = _find(table, col, path, where)
    if col.type == "categorical":
        return _relabel(raw, col.rename, _fold if col.normalize else None)
    values, unreadable = _numbers(raw, numbers)
    bad = unreadable | values.isna() if isinstance(col, ParameterColumn) else unreadable  # a parameter is always set
    if bad.any():
        row, cell = _line(raw, bad)
        what = "parameter" if isinstance(col, ParameterColumn) else "instance feature"
        raise TableError(f"{path}: {what} {col.name!r} (column {raw.name!r}) must be numeric, but {int(bad.sum())} "
                         f"cell(s) are not (the first, row {row}: {cell!r}); {_number_hint(cell)}give it "
                         "type: categorical, or fix the cells")
    if isinstance(col, ParameterColumn) and col.type == "int":
        return values.astype(int)
    return values


def _numbers(raw: pd.Series, numbers: NumberFormat) -> tuple[pd.Series, pd.Series]:
    """A column's numbers as the tables write them (floats), and which non-empty cells are not numbers.

    A text column is read digit group by digit group: with ``thousands: ','``, ``4,115.42`` is 4115.42 but
    ``4,11`` is unreadable, so a table read with the wrong separators yields reported cells, not wrong numbers.
    """
    if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        return raw.astype(float), pd.Series(False, index=raw.index)
    text = raw.astype("string").str.strip()
    if numbers.thousands is not None:
        sep = r"[ \u00a0\u202f]" if numbers.thousands == " " else re.escape(numbers.thousands)
        grouped = text.str.fullmatch(rf"[+-]?\d{{1,3}}(?:{sep}\d{{3}})+(?:{re.escape(numbers.decimal)}\d*)?")
        text = text.mask(grouped.fillna(False).astype(bool), text.str.replace(sep, "", regex=True))
    if numbers.decimal == ",":
        text = text.mask(text.str.contains(".", regex=False).fillna(False).astype(bool), "unreadable")
        text = text.str.replace(",", ".", regex=False)
    values = pd.to_numeric(text, errors="coerce").astype(float)
    return values, (values.isna() & text.notna() & (text != "")).astype(bool)


def _number_hint(cell: object) -> str:
    """The fix for a cell that looks like a number written with separators the mapping does not expect."""
    if isinstance(cell, str) and re.search(r"\d[,. '\u00a0\u202f]\d", cell):
        return "if the tables group thousands or write a decimal comma, say so in numbers: {thousands: ..., decimal: ...}; "
    return ""


def _metric(table: pd.DataFrame, col: MetricColumn, path: Path, numbers: NumberFormat, skipped: list[str],
            raw: pd.Series | None = None) -> pd.Series:
    """A metric's values as written (``col.missing`` and ±inf as NaN); unreadable cells are counted in ``skipped``."""
    raw = _find(table, col, path, "metrics") if raw is None else raw
    series, text = _numbers(raw, numbers)
    if col.missing:
        marked = series.isin(col.missing)
        series = series.mask(marked)
        text &= ~marked
    infinite = np.isinf(series.to_numpy())
    series = series.mask(infinite)
    notes = []
    if text.any():
        row, cell = _line(raw, text)
        hint = _number_hint(cell).rstrip("; ")
        notes.append(f"{int(text.sum())} non-numeric cell(s) (the first, row {row}: {cell!r}{'; ' + hint if hint else ''})")
    if infinite.any():
        notes.append(f"{int(infinite.sum())} infinite value(s)")
    if notes:
        skipped.append(f"{path.name}: metric {col.name!r} (column {raw.name!r}): {' and '.join(notes)} skipped "
                       "(stored as missing)")
    return series


def _pivot(mapping: ImportMapping, pivot: Pivot, table: pd.DataFrame, out: pd.DataFrame, path: Path,
           skipped: list[str], left_out: list[str]) -> pd.DataFrame:
    """Long rows (one result each) into trials: one per configuration and ``by``, a column per metric.

    A configuration's k-th row of a metric is its repetition k, so its throughput and its power, two rows of the
    table, are one trial.
    """
    for what, name in [("column", pivot.column), ("value", pivot.value), *(("by", b) for b in pivot.by)]:
        if name not in table.columns:
            raise TableError(f"{path}: pivot.{what} names column {name!r}, which the table lacks; its columns are "
                             f"{list(table.columns)}")
    units = table[pivot.column].astype("string").str.strip()
    owner = {pivot.key(u): (m, factor) for m in mapping.metrics for u, factor in (m.units or {}).items()}
    found = units.map(lambda u: owner.get(pivot.key(u)) if isinstance(u, str) else None)
    unknown = found.isna().to_numpy()
    if unknown.any():
        listed = sorted(set(units[unknown].fillna("<empty>")))
        if pivot.unknown == "error":
            row, cell = _line(units, unknown)
            raise TableError(f"{path}: row {row}: {pivot.column!r} is {cell!r}, which no metric lists in its units "
                             f"({int(unknown.sum())} row(s), units {listed[:8]}); add it to a metric's units, leave "
                             "the rows out with where, or set pivot.unknown: skip")
        left_out.append(f"{path.name}: {int(unknown.sum())} row(s) whose {pivot.column!r} no metric lists "
                        f"({', '.join(map(repr, listed[:8]))}) left out (pivot.unknown: skip)")
        table, out, found = table[~unknown], out[~unknown], found[~unknown]
    metric = found.map(lambda f: f[0].name).to_numpy()
    values = np.full(len(table), np.nan)
    for col in mapping.metrics:
        rows = metric == col.name
        if rows.any():
            factor = found[rows].map(lambda f: f[1]).to_numpy(dtype=float)
            values[rows] = _metric(table, col, path, mapping.numbers, skipped, table[pivot.value][rows]) * factor
    key = [*out.columns, *pivot.by]
    config = pd.concat([out, table[pivot.by]], axis=1).groupby(key, sort=False, dropna=False).ngroup().to_numpy()
    repetition = pd.Series(config).groupby([config, metric]).cumcount().to_numpy()
    trial, _ = pd.factorize(config.astype(np.int64) * len(table) + repetition)
    _, first = np.unique(trial, return_index=True)
    wide = out.iloc[first].reset_index(drop=True)
    for col in mapping.metrics:
        column = np.full(len(wide), np.nan)
        rows = metric == col.name
        column[trial[rows]] = values[rows]
        wide[METRIC + col.name] = column
    wide["row"] = table.index.to_numpy()[first]
    return wide


def _encode_names(mapping: ImportMapping, frame: pd.DataFrame) -> dict[str, list[str]]:
    """Categorical instance features as the index of their name (trials hold numbers); the names of each.

    The names are the mapping's ``values`` in order, or those in the data sorted; a name outside ``values``
    is an error naming the file and row.
    """
    levels: dict[str, list[str]] = {}
    for feature in mapping.instance:
        if feature.type != "categorical":
            continue
        column = INSTANCE + feature.name
        names = frame[column]
        levels[feature.name] = feature.values or sorted(set(names.dropna()))
        codes = names.map({name: float(i) for i, name in enumerate(levels[feature.name])})
        unlisted = (codes.isna() & names.notna()).to_numpy()
        if unlisted.any():
            first = int(np.flatnonzero(unlisted)[0])
            where = frame["source"].iloc[first]
            row = f"row {int(frame['row'].iloc[first]) + 2}" if not where.startswith("join:") else "a joined row"
            raise TableError(f"{where}: {row}: instance feature {feature.name!r} is {names.iloc[first]!r}, which its "
                             f"values {feature.values} do not list ({int(unlisted.sum())} row(s)); add the name to "
                             "values (or rename it to a listed one)")
        frame[column] = codes.astype(float)
    return levels


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
        raise TableError(f"platform names {bad} are not DNS-1123 labels; give them names in platform.rename, or "
                         "set platform.normalize: true (lower-case, other characters as '-')")
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
        out.extend(trial_id(sweep, platform, p, i, rep) for platform, p, i, rep in zip(
            chunk["platform"].tolist(), _dicts(chunk, params), _dicts(chunk, instance), chunk["repetition"].tolist()))
    return out


def _chunks(n: int) -> Iterator[slice]:
    """``n`` rows as slices of :data:`CHUNK_ROWS`, so only one slice at a time is held as Python objects."""
    for start in range(0, n, CHUNK_ROWS):
        yield slice(start, start + CHUNK_ROWS)


def _dicts(chunk: pd.DataFrame, cols: list[str]) -> list[dict[str, Any]]:
    """Each row of ``chunk`` as ``{name: value}`` of the prefixed columns ``cols``, as Python values, NaN left out."""
    names = [strip(c) for c in cols]
    return [{n: v for n, v in zip(names, values) if v == v} for values in zip(*(chunk[c].tolist() for c in cols))] \
        if cols else [{} for _ in range(len(chunk))]


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


def _asset(mapping: ImportMapping, frame: pd.DataFrame, levels: dict[str, list[str]]) -> AIAsset:
    """The asset with its parameter space read from the data (unless the mapping states it), its instance names."""
    parameters = [_parameter(col, frame[PARAM + col.name]) for col in mapping.parameters]
    metric_cols = [*mapping.metrics, *(m for j in mapping.joins for m in j.metrics)]
    metrics = [MetricSpec(name=m.name, goal=m.goal, unit=m.unit) for m in metric_cols]
    if METRIC + COST_PER_RUN in frame.columns:
        metrics.append(MetricSpec(name=COST_PER_RUN, goal="minimize", unit="price/run"))
    spec = AIAssetSpec(
        command=["imported-table"],
        parameters=parameters,
        metrics=metrics,
        instance_features=[InstanceFeature(name=c.name, description=c.description, values=levels.get(c.name))
                           for c in mapping.instance],
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


def records_of(imported: Imported) -> Iterator[TrialRecord]:
    """Every imported row as a Succeeded trial's plain values (NaN metrics left out), made one at a time.

    A generator, so a million-row table is never held as Python objects at once; the names are the
    frame's ``trial_id`` (computed once, as the planner names trials), and no model is built per row:
    the table was checked as it was read (issue 14: the models were two thirds of an import).
    """
    frame = imported.frame
    params, instance, metrics = (columns(frame, prefix) for prefix in (PARAM, INSTANCE, METRIC))
    asset, sweep = imported.mapping.asset, imported.mapping.sweep
    for rows in _chunks(len(frame)):
        chunk = frame.iloc[rows]
        for name, platform, rep, source, p, i, m in zip(
                chunk["trial_id"].tolist(), chunk["platform"].tolist(), chunk["repetition"].tolist(),
                imported.sources[rows], _dicts(chunk, params), _dicts(chunk, instance),
                _dicts(chunk[metrics].astype(float), metrics)):
            yield TrialRecord(name, asset, sweep, platform, p, cast(dict[str, float], i), rep, SUCCEEDED, None, None, m, 0,
                              None, {"importedFrom": str(source)})


def save(imported: Imported, store: Store) -> int:
    """Record the asset, the import sweep and every trial in ``store`` (re-importing replaces them)."""
    store.put_asset(imported.asset)
    store.put_sweep(sweep_of(imported))
    return store.add_records(records_of(imported))
