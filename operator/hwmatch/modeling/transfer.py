"""Transfer across platforms: predictions for a platform with few (k) or no trials of this asset.

A new platform has k trials, the others many. The ordinary surrogate, which
reads the platform's name and features, learns little from k rows among
hundreds, and its intervals are calibrated on residuals of the well-measured
platforms. :class:`PlatformTransfer` instead predicts a *target* platform
``P`` in three steps, per metric, in the metric's model space (logs for a
positive metric, so a correction is a ratio):

1. **Base**: a :class:`~hwmatch.modeling.Surrogates` fitted on the *source*
   platforms only (every platform but the targets). ``b(x)`` is its
   prediction at configuration ``x`` on ``P`` (``P``'s features, a platform
   name it never saw), and ``S_d(x)`` its prediction of ``x`` as if run on
   each source ``d``: how ``x`` behaves on the platforms measured.
2. **Correction from P's k trials**: a ridge regression of ``z − b`` on
   ``[1, S_d − b (each source), one-hot parameters]`` — an offset (the
   platform is uniformly faster), a mixture of the sources' profiles (it
   behaves like that device, HELP's idea of describing a device by how
   known configurations run on it), and per-level offsets (its GPU is slow).
   With k = 0 there is no correction and the prediction is ``b``.
3. **Strength and intervals by rehearsal on the sources**: each source
   ``d`` is held out in turn, a base is fitted on the remaining sources,
   ``k`` of ``d``'s configurations are drawn (several times, seeded) as if
   they were its only trials, the correction is fitted, and ``d``'s other
   configurations are predicted. The ridge penalty with the lowest rehearsal
   error is chosen (no constant fitted to a table), and the rehearsal's
   absolute residuals, each source platform weighing the same, calibrate the
   interval: split-conformal over those residuals, with the same k, so the
   intervals are as wide as a k-trial transfer was wrong on platforms where
   the truth is known. Fewer target trials, wider intervals.

What the intervals assume: that the target platform is like a source
platform drawn at random (exchangeable *platforms*). With few sources (three
on HADA's tables) that is a weak assumption; the coverage is measured
(``hwmatch evaluate --target-platform``, ``docs/transfer.md``), not promised.
The rehearsal needs two source platforms with trials of the metric;
with fewer, the interval is unbounded.

**Prior assets** (``prior=``): trials of *other* assets on the same
platforms say how fast, hungry or power-hungry each platform is. Per metric
name shared with the prior, the prior's platform effect (a two-way additive
fit, configuration + platform, of its model-space values) becomes a platform
feature ``feature.prior.<metric>`` of every row and candidate, so the base
can place a platform no trial of *this* asset measured
(:func:`prior_effects`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from hwmatch.api import ModelScore
from hwmatch.api.errors import InputError
from hwmatch.data.frame import FEATURE, INSTANCE, METRIC, PARAM, columns, strip, succeeded
from hwmatch.modeling.features import FeatureEncoder
from hwmatch.modeling.intervals import rows_needed
from hwmatch.modeling.metric_model import Prediction
from hwmatch.modeling.surrogates import Forecast, Surrogates

#: Ridge penalties the rehearsal chooses from (per unit of the k trials' squared error); inf: offset only.
PENALTIES = (0.3, 1.0, 3.0, 10.0, 30.0, np.inf)
#: Penalty on the offset itself: weak, a platform's speed is what k trials tell best.
OFFSET_PENALTY = 0.3
#: Draws of k configurations per held-out source in the rehearsal.
REHEARSALS = 5
#: Source platforms (with trials of a metric) the rehearsal needs to say anything.
MIN_SOURCES = 2
#: Prefix of the prior asset's platform-effect features.
PRIOR_FEATURE = FEATURE + "prior."


def _model_space(y: np.ndarray) -> bool:
    """Whether a metric is corrected in logs: every value positive (latencies, powers, memories)."""
    finite = y[np.isfinite(y)]
    return bool(finite.size) and bool(np.all(finite > 0))


def prior_effects(prior: pd.DataFrame) -> pd.DataFrame:
    """Per platform (rows) and metric (columns ``feature.prior.<metric>``): the prior's platform effect.

    A two-way additive fit of the prior's values (logs for a positive
    metric), ``value = configuration + platform``, by alternating means over
    the configurations measured (10 sweeps; an unbalanced design converges
    to the least-squares fit), the platform effects centred at 0. A platform
    faster than the others by a factor 2 on the prior's configurations gets
    ``−log 2``. Platforms the prior never measured are absent (their feature
    is missing: the encoder fills it).
    """
    rows = succeeded(prior)
    keys = _keys(rows)
    out: dict[str, pd.Series] = {}
    for col in columns(rows, METRIC):
        known = rows[rows[col].notna()]
        if known["platform"].nunique() < 2:
            continue
        y = known[col].to_numpy(dtype=float)
        z = np.log(y) if _model_space(y) else y
        config = (known.groupby(keys, sort=False, dropna=False).ngroup().to_numpy() if keys
                  else np.zeros(len(known), dtype=int))
        platform = pd.factorize(known["platform"].astype(str))[0]
        names = pd.unique(known["platform"].astype(str))
        effect = np.zeros(len(names))
        for _ in range(10):
            base = pd.Series(z - effect[platform]).groupby(config).transform("mean").to_numpy()
            effect = pd.Series(z - base).groupby(platform).mean().reindex(range(len(names))).to_numpy(dtype=float, copy=True)
            effect -= effect.mean()
        out[PRIOR_FEATURE + strip(col)] = pd.Series(effect, index=names)
    return pd.DataFrame(out)


def with_prior(frame: pd.DataFrame, effects: pd.DataFrame | None) -> pd.DataFrame:
    """``frame`` with the prior's platform effects as feature columns (by the row's platform)."""
    if effects is None or effects.empty:
        return frame
    out = frame.copy()
    for col in effects.columns:
        out[col] = out["platform"].astype(str).map(effects[col]).astype(float)
    return out


@dataclass
class _Correction:
    """One target platform's correction of one metric: ridge coefficients and calibration scores."""

    log: bool
    coef: np.ndarray | None  # None: no correction (k = 0)
    penalty: float
    scores: np.ndarray  # rehearsal |residuals|, sorted (model space)
    weights: np.ndarray  # their weights (each source platform sums to 1), in the order of ``scores``
    trials: int  # the target's trials of this metric


@dataclass
class PlatformTransfer:
    """Surrogates for the source platforms, and a transferred model for each target platform.

    ``fit(frame, targets)``: every platform in ``targets`` is predicted by
    transfer (its rows in ``frame`` are its k trials, possibly none); the
    others by an ordinary :class:`Surrogates` on all rows. ``prior``: other
    assets' trials (a dataset frame), whose platform effects become
    features. The interface of :class:`Surrogates` that recommending needs
    (``forecast``, ``predict``, ``unbounded``, ``scores``, ``dataset_hash``)
    is kept, so the optimiser takes either.
    """

    seed: int = 0
    categorical: frozenset[str] = frozenset()
    goals: Mapping[str, str] = field(default_factory=dict)
    prior: pd.DataFrame | None = None
    penalties: Sequence[float] = PENALTIES
    rehearsals: int = REHEARSALS
    targets: list[str] = field(default_factory=list, init=False)
    full: Surrogates | None = field(default=None, init=False)
    base: Surrogates | None = field(default=None, init=False)
    corrections: dict[tuple[str, str], _Correction] = field(default_factory=dict, init=False)
    effects: pd.DataFrame | None = field(default=None, init=False)
    sources: list[str] = field(default_factory=list, init=False)
    #: Per metric: corrected in logs (every source value positive) or as is.
    logs: dict[str, bool] = field(default_factory=dict, init=False)
    _platforms: pd.DataFrame | None = field(default=None, init=False, repr=False)
    _encoder: FeatureEncoder | None = field(default=None, init=False, repr=False)
    _source_key: tuple | None = field(default=None, init=False, repr=False)
    #: Per metric: the sources' measured values (model space, median of repetitions), by configuration × source.
    _measured: dict[str, pd.DataFrame] = field(default_factory=dict, init=False, repr=False)
    _rehearsal: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = field(
        default_factory=dict, init=False, repr=False)

    def _surrogates(self) -> Surrogates:
        return Surrogates(seed=self.seed, categorical=self.categorical, goals=self.goals)

    def fit(self, frame: pd.DataFrame, targets: Iterable[str]) -> "PlatformTransfer":
        """Learn the sources, and each target's correction from its rows in ``frame``."""
        rows = succeeded(frame)
        self.targets = list(dict.fromkeys(str(t) for t in targets))
        self.effects = None if self.prior is None else prior_effects(self.prior)
        rows = with_prior(rows, self.effects)
        is_target = rows["platform"].astype(str).isin(self.targets).to_numpy()
        source = rows[~is_target]
        self.sources = sorted(source["platform"].astype(str).unique())
        if len(self.sources) < 2:
            raise InputError(
                f"transfer to {self.targets} needs trials on at least two other platforms (has {self.sources or 'none'}); "
                "benchmark the asset on more platforms, or give prior assets' trials (spec.priorFrom)")
        self.full = self._surrogates().fit(rows)
        self._platforms = rows.groupby("platform", sort=True)[["cost_per_hour", *columns(rows, FEATURE)]].first()
        key = (tuple(self.targets), int(pd.util.hash_pandas_object(source, index=False).sum()), tuple(source.columns))
        if key != self._source_key:  # the sources' part (base, rehearsal) depends on the source rows alone
            self.base = self._surrogates().fit(source)
            self._encoder = FeatureEncoder(categorical=self.categorical).fit(source[_keys(source)])
            self.logs = {m: _model_space(source[METRIC + m].to_numpy(dtype=float)) for m in self.base.models}
            self._measured = {m: self._table(source, m) for m in self.base.models}
            self._rehearse(source)
            self._source_key = key
        assert self.base is not None
        self.corrections = {}
        for target in self.targets:
            mine = rows[rows["platform"].astype(str) == target]
            for metric in self.base.models:
                self.corrections[(target, metric)] = self._correct(target, metric, mine)
        return self

    # -- the design of a correction ------------------------------------------------------------

    def _design(self, base: Surrogates, sources: Sequence[str], rows: pd.DataFrame, metric: str,
                log: bool) -> tuple[np.ndarray, np.ndarray]:
        """``b`` (the base at the rows as they are) and the correction's inputs ``[1, S_d − b, one-hot]``."""
        b = self._z(base.predict(rows, 0.5, metrics=[metric])[metric].value, log)
        profiles = []
        for d, profile in zip(sources, self._lookup(metric, rows, sources).T):
            missing = np.isnan(profile)  # the base is asked only where the source measured nothing
            if missing.any():
                guess = base.predict(self._as(rows[missing], d), 0.5, metrics=[metric])[metric].value
                profile[missing] = self._z(guess, log)
            profiles.append(profile - b)
        assert self._encoder is not None
        onehot = self._encoder.transform(rows)
        return b, np.column_stack([np.ones(len(rows)), *profiles, onehot])

    def _table(self, source: pd.DataFrame, metric: str) -> pd.DataFrame:
        """The sources' measured ``metric`` per configuration (rows) and source (columns), model space."""
        col, keys = METRIC + metric, _keys(source)
        known = source[source[col].notna()]
        if known.empty or not keys:
            return pd.DataFrame()
        z = pd.Series(self._z(known[col].to_numpy(dtype=float), self.logs[metric]), index=known.index)
        return z.groupby([known[k] for k in keys] + [known["platform"].astype(str)], dropna=False).median().unstack()

    def _lookup(self, metric: str, rows: pd.DataFrame, sources: Sequence[str]) -> np.ndarray:
        """Rows × ``sources``: each source's own measurement of the row's configuration, NaN where it has none.

        Where a source measured the configuration, its profile is the
        measurement, not the base's smoothed guess of it: the sources'
        columns of one configuration are the evidence a transfer rests on.
        """
        table = self._measured.get(metric)
        out = np.full((len(rows), len(sources)), np.nan)
        if table is None or table.empty or rows.empty:
            return out
        keys = _keys(rows)
        index = pd.MultiIndex.from_frame(rows[keys]) if table.index.nlevels > 1 else pd.Index(rows[keys[0]])
        return table.reindex(index=index, columns=list(sources)).to_numpy(dtype=float, copy=True)

    def _as(self, rows: pd.DataFrame, platform: str) -> pd.DataFrame:
        """``rows`` as if measured on ``platform`` (its name, price and features)."""
        assert self._platforms is not None
        out = rows.copy()
        out["platform"] = platform
        for col, value in self._platforms.loc[platform].items():
            out[col] = value
        return out

    @staticmethod
    def _z(values: np.ndarray, log: bool) -> np.ndarray:
        return np.log(np.maximum(values, 1e-300)) if log else values

    @staticmethod
    def _solve(A: np.ndarray, r: np.ndarray, penalty: float) -> np.ndarray:
        """Ridge coefficients; the offset weakly penalised, the rest by ``penalty`` (inf: offset only)."""
        coef = np.zeros(A.shape[1])
        if not np.isfinite(penalty):
            coef[0] = r.sum() / (r.size + OFFSET_PENALTY)
            return coef
        pen = np.full(A.shape[1], penalty)
        pen[0] = OFFSET_PENALTY
        return np.linalg.solve(A.T @ A + np.diag(pen), A.T @ r)

    # -- rehearsal on the sources --------------------------------------------------------------

    def _rehearse(self, source: pd.DataFrame) -> None:
        """Per metric and held-out source: its base-from-the-others design, for :meth:`_correct` to rehearse on."""
        self._rehearsal = {}
        if len(self.sources) < MIN_SOURCES:
            return
        for held in self.sources:
            others = source[source["platform"].astype(str) != held]
            mine = source[source["platform"].astype(str) == held]
            base = self._surrogates().fit(others)
            rest = [d for d in self.sources if d != held]
            for metric in base.models:
                col = METRIC + metric
                known = mine[mine[col].notna()] if col in mine else mine.iloc[:0]
                if len(known) < 2:
                    continue
                y = known[col].to_numpy(dtype=float)
                log = self.logs.get(metric, False)
                b, A = self._design(base, rest, known, metric, log)
                self._rehearsal.setdefault(metric, {})[held] = (self._z(y, log), b, A, _config_ids(known))

    def _correct(self, target: str, metric: str, mine: pd.DataFrame) -> _Correction:
        """The target's correction of ``metric`` from its trials, with penalty and scores from the rehearsal."""
        assert self.base is not None
        col = METRIC + metric
        log = self.logs[metric]
        known = mine[mine[col].notna()] if col in mine else mine.iloc[:0]
        configs = _config_ids(known)
        k = int(np.unique(configs).size)
        rng = np.random.default_rng([self.seed, k])
        rehearsal = self._rehearsal.get(metric, {})
        errors: dict[float, list[np.ndarray]] = {p: [] for p in self.penalties}
        held_of: list[str] = []
        if len(rehearsal) >= MIN_SOURCES:
            for held, (z, b, A, ids) in sorted(rehearsal.items()):
                distinct = np.unique(ids)
                for _ in range(self.rehearsals if k else 1):
                    shots = rng.choice(distinct, size=min(k, distinct.size - 1), replace=False)
                    train = np.isin(ids, shots)
                    test = ~train
                    for p in self.penalties:
                        if train.any():
                            fitted = self._solve(A[train], (z - b)[train], p)
                            guess = b[test] + A[test] @ fitted
                        else:
                            guess = b[test]
                        errors[p].append(np.abs(z[test] - guess))
                    held_of.append(held)
        if held_of and k:
            penalty = min(self.penalties, key=lambda p: float(np.mean(np.concatenate(errors[p]) ** 2)))
        else:  # no trials (nothing to correct), or too few sources to choose by rehearsal: an offset at most
            penalty = np.inf
        flat, w = np.array([]), np.array([])
        if held_of:  # else too few sources to rehearse: the interval cannot be calibrated (unbounded)
            draws = pd.Series(held_of).value_counts()
            weights = [np.full(s.size, 1.0 / (max(s.size, 1) * draws[h])) for s, h in zip(errors[penalty], held_of)]
            flat, w = np.concatenate(errors[penalty]), np.concatenate(weights)
            order = np.argsort(flat, kind="stable")
            flat, w = flat[order], w[order]
        coef: np.ndarray | None = None
        if k:
            b, A = self._design(self.base, self.sources, known, metric, log)
            z = self._z(known[col].to_numpy(dtype=float), log)
            coef = self._solve(A, z - b, penalty)
        return _Correction(log, coef, penalty, flat, w, k)

    # -- predicting ----------------------------------------------------------------------------

    def forecast(self, candidates: pd.DataFrame, level: float = 0.9, metrics: Iterable[str] | None = None,
                 capped: bool = False) -> Forecast:
        """Every metric for each candidate, transferred on target platforms, ordinary elsewhere, and the novelty.

        The novelty is the ordinary one, and 1 on a target platform: its
        widening is the rehearsal's, already in the interval.
        """
        assert self.full is not None and self.base is not None, "fit first"
        rows = with_prior(candidates, self.effects)
        ordinary = self.full.forecast(rows, level, metrics, capped)
        out, novelty = ordinary.predictions, ordinary.novelty
        platforms = rows["platform"].astype(str).to_numpy()
        for target in self.targets:
            where = np.flatnonzero(platforms == target)
            if where.size == 0:
                continue
            novelty[where] = 1.0
            sub = rows.iloc[where]
            for metric in out:
                fix = self.corrections.get((target, metric))
                if fix is None:
                    continue
                b, A = self._design(self.base, self.sources, sub, metric, fix.log)
                z = b if fix.coef is None else b + A @ fix.coef
                half = _weighted_quantile(fix.scores, fix.weights, level)
                value, lower, upper = (np.exp(v) if fix.log else v for v in (z, z - half, z + half))
                if not np.isfinite(half):
                    lower, upper = np.full(where.size, -np.inf), np.full(where.size, np.inf)
                out[metric].value[where], out[metric].lower[where], out[metric].upper[where] = value, lower, upper
        return Forecast(out, novelty)

    def predict(self, candidates: pd.DataFrame, level: float = 0.9, metrics: Iterable[str] | None = None,
                capped: bool = False) -> dict[str, Prediction]:
        """The predictions of :meth:`forecast` alone."""
        return self.forecast(candidates, level, metrics, capped).predictions

    def unbounded(self, level: float) -> dict[str, tuple[int, int]]:
        assert self.full is not None
        return self.full.unbounded(level)

    def scores(self) -> dict[str, ModelScore]:
        assert self.full is not None
        return self.full.scores()

    @property
    def dataset_hash(self) -> str | None:
        return None if self.full is None else self.full.dataset_hash

    def trials(self, platform: str, metric: str | None = None) -> int:
        """Configurations of ``platform`` a transferred prediction rests on (of ``metric``, or the most of any)."""
        found = [c.trials for (p, m), c in self.corrections.items() if p == platform and metric in (None, m)]
        return max(found, default=0)


def _keys(rows: pd.DataFrame) -> list[str]:
    """The columns that tell configurations apart: parameters and instance."""
    return [*columns(rows, PARAM), *columns(rows, INSTANCE)]


def _config_ids(rows: pd.DataFrame) -> np.ndarray:
    """One id per distinct configuration (parameters and instance) of ``rows``."""
    keys = _keys(rows)
    if rows.empty or not keys:
        return np.arange(len(rows))
    return rows.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()


def _weighted_quantile(sorted_scores: np.ndarray, weights: np.ndarray, level: float) -> float:
    """Split-conformal quantile of weighted scores: the smallest score whose weight share reaches ``level``.

    The rank is ``⌈(n+1)·level⌉`` in effective rows ``n = (Σw)²/Σw²``, read
    on the weights' cumulative share; too few effective rows: ``inf``.
    """
    if sorted_scores.size == 0:
        return float("inf")
    n = float(weights.sum() ** 2 / np.sum(weights**2))
    if n < rows_needed(level):
        return float("inf")
    share = np.cumsum(weights) / weights.sum()
    at = int(np.searchsorted(share, min(1.0, level * (n + 1) / n) - 1e-12))
    return float(sorted_scores[min(at, sorted_scores.size - 1)])
