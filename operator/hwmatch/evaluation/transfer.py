"""Transfer evaluation: how well a platform with k trials (or none) is predicted and recommended.

``TransferEvaluation(imported, target).run(ks)`` holds one platform ``P`` of
a table out. For each k it trains on the other platforms — a random
``budget`` of each one's configurations, replayed from the table as
:class:`~hwmatch.evaluation.run.Evaluation` does — plus k random
configurations of ``P``, and scores every method on ``P`` alone:

- predictions on ``P``'s configurations *not* among its k trials (scoring
  the trained ones would flatter a method that memorises them): per metric,
  Spearman's rank correlation with the truth, MAPE, and the coverage of the
  two-sided interval at the confidence (the share of true values inside it);
- recommendations restricted to ``P``: random queries drawn from ``P``'s
  truth (:func:`~hwmatch.evaluation.queries.draw_queries`), answered among
  ``P``'s configurations, scored with :func:`~hwmatch.evaluation.scoring.score`
  (feasible, clear false "no solution", regret).

Methods, on the same trials in the same run: ``hwmatch`` (the ordinary
surrogates on every trial: what ``hwmatch recommend`` did before transfer),
``transfer`` (:class:`~hwmatch.modeling.transfer.PlatformTransfer`), and with
prior assets' tables ``transfer+prior`` (the same, with the prior's platform
effects as features). A k larger than ``P``'s configurations minus
:data:`MIN_HELD_OUT` is skipped and said so (nothing would be left to score).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from hwmatch.api.errors import InputError
from hwmatch.data.frame import METRIC, strip
from hwmatch.data.importer import Imported
from hwmatch.evaluation.methods import choose
from hwmatch.evaluation.queries import MIN_CANDIDATES, draw_queries, metrics_read
from hwmatch.evaluation.run import Evaluation
from hwmatch.evaluation.scoring import Summary, score, summarise
from hwmatch.evaluation.truth import GroundTruth
from hwmatch.modeling import Prediction, Surrogates, categorical_columns
from hwmatch.modeling.transfer import PlatformTransfer
from hwmatch.optimize.problem import interval_level

#: Configurations of the target that must remain unseen for its predictions to be scored.
MIN_HELD_OUT = 3


@dataclass(frozen=True)
class TransferResult:
    """One (k, method): per-metric prediction scores on the target's unseen rows, and the recommendations' summary."""

    target: str
    k: int
    method: str
    source_trials: int
    metrics: dict[str, dict[str, float]]
    summary: Summary
    penalties: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        s = self.summary
        return {"target_platform": self.target, "k": self.k, "method": self.method, "source_trials": self.source_trials,
                "metrics": self.metrics, "feasible": s.feasible_rate,
                "false_infeasible_clear": s.clear_false_infeasible_rate, "regret_median": s.regret_median_pct,
                "summary": s.as_dict(), "penalties": self.penalties}


class TransferEvaluation:
    """One target platform of a table; :meth:`run` scores every method at each k (see the module docstring)."""

    def __init__(self, imported: Imported, target: str, queries: int = 60, confidence: float = 0.9, seed: int = 0,
                 budget: float = 1.0, prior: pd.DataFrame | None = None):
        platforms = sorted(imported.frame["platform"].astype(str).unique())
        if target not in platforms:
            raise InputError(f"--target-platform: {target!r} is not a platform of the tables; they have "
                             f"{', '.join(platforms)}")
        if not 0.5 <= confidence < 1:
            raise InputError(f"--confidence must be in [0.5, 1) (got {confidence}); e.g. 0.9")
        self.imported, self.target, self.seed, self.budget = imported, target, seed, budget
        self.confidence, self.prior = confidence, prior
        self.base = Evaluation(imported, 0, (confidence,), seed)  # its pool, truth and replay; no queries of its own
        self.asset = imported.asset
        self.goals = {m.name: m.goal for m in self.asset.spec.metrics if m.goal is not None}
        self.categorical = categorical_columns(self.asset.spec.parameters)
        pool = self.base.pool
        self.mine = np.flatnonzero(pool["platform"].astype(str).to_numpy() == target)
        self.truth = GroundTruth.from_frame(imported.frame[imported.frame["platform"].astype(str) == target])
        n = len(self.truth.table)
        self.queries = draw_queries(self.asset, self.truth, queries, seed, confidence,
                                    min_candidates=min(MIN_CANDIDATES, max(3, n // 2))) if queries else []
        self._candidates = [self.truth.candidates(metrics_read(q), q.instance) for q in self.queries]
        self.index = platforms.index(target)
        self.notes: list[str] = []

    def run(self, ks: Sequence[int]) -> list[TransferResult]:
        rng = np.random.default_rng([self.seed, self.index, int(round(self.budget * 1e6))])
        sizes = self.base.sizes(self.budget)
        pool = self.base.pool
        sources = np.sort(np.concatenate([
            rng.choice(np.flatnonzero(pool["platform"].astype(str) == p), size=n, replace=False)
            for p, n in sizes.items() if p != self.target]))
        source_trials = self.base.trials(sources, rng)
        order = rng.permutation(self.mine)  # the target's configurations in the order they are "benchmarked"
        results: list[TransferResult] = []
        # one of each, refitted per k: their sources' part (base, rehearsal) is fitted once
        transfer = PlatformTransfer(self.seed, self.categorical, self.goals)
        with_prior = None if self.prior is None else PlatformTransfer(self.seed, self.categorical, self.goals,
                                                                      prior=self.prior)
        for k in ks:
            if k > self.mine.size - MIN_HELD_OUT:
                self.notes.append(f"k={k} skipped on {self.target}: it has {self.mine.size} configurations, and "
                                  f"{MIN_HELD_OUT} must stay unseen to be scored")
                continue
            picked = order[:k]
            train = pd.concat([source_trials, self.base.trials(picked, np.random.default_rng([self.seed, k]))],
                              ignore_index=True) if k else source_trials
            held = np.setdiff1d(self.mine, picked)
            plain = transfer.fit(train, [self.target])
            assert plain.full is not None
            methods: list[tuple[str, Surrogates | PlatformTransfer]] = [("hwmatch", plain.full), ("transfer", plain)]
            if with_prior is not None:
                methods.append(("transfer+prior", with_prior.fit(train, [self.target])))
            for name, model in methods:
                results.append(self._score(name, model, k, held, len(sources)))
        return results

    def _score(self, name: str, model: Surrogates | PlatformTransfer, k: int, held: np.ndarray, source_trials: int) -> TransferResult:
        pool = self.base.pool.reset_index(drop=True)
        predict = model.predict
        at_conf = predict(pool.iloc[held], self.confidence)
        metrics = {}
        for metric, p in at_conf.items():
            col = METRIC + metric
            if col not in self.base.truth.table.columns:
                continue
            truth = self.base.truth.table[col].to_numpy(dtype=float)[held]
            keep = np.isfinite(truth) & np.isfinite(p.value)
            if keep.sum() < MIN_HELD_OUT:
                continue
            t, v = truth[keep], p.value[keep]
            rho = float(spearmanr(t, v)[0]) if np.ptp(t) > 0 and np.ptp(v) > 0 else float("nan")
            with np.errstate(divide="ignore", invalid="ignore"):
                mape = float(np.mean(np.abs(v - t) / np.abs(t))) if np.all(t != 0) else float("nan")
            inside = (p.lower[keep] <= t) & (t <= p.upper[keep])
            metrics[metric] = {"spearman": rho, "mape": mape, "coverage": float(inside.mean()), "rows": int(keep.sum())}
        table = self.truth.table
        preds: dict[float, dict[str, Prediction]] = {}
        outcomes = []
        for query, candidates in zip(self.queries, self._candidates):
            level = interval_level(query)
            if level not in preds:
                preds[level] = predict(table, level)
            positions = table.index.get_indexer(candidates.index)
            answer = choose(query, candidates, positions, preds[level], self.goals)
            bounds = None
            if answer is not None:
                at = int(table.index.get_loc(answer))  # type: ignore[arg-type]  # a unique integer index
                bounds = {m: (float(q.lower[at]), float(q.upper[at])) for m, q in preds[level].items()}
            outcomes.append(score(query, answer, self.truth, bounds))
        penalties = {}
        if isinstance(model, PlatformTransfer):
            penalties = {m: c.penalty for (_, m), c in model.corrections.items()}
        return TransferResult(self.target, k, name, source_trials, metrics, summarise(outcomes), penalties)


def metric_names(results: Sequence[TransferResult]) -> list[str]:
    """Metrics scored in any result, in first-seen order."""
    return list(dict.fromkeys(strip(m) for r in results for m in r.metrics))
