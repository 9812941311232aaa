"""One evaluation: sample a budget of a table's configurations, learn, recommend, score against the table.

For each budget (a fraction of each platform's measured configurations) and
each sampling strategy, the trials are *replayed* from the table
(:class:`hwmatch.execution.replay.ReplayTable`, exact mode: a sampled
configuration gets one of its own measured rows, a repetition drawn at
random), every method learns from them, answers the same queries, and is
scored against the truth (:mod:`hwmatch.evaluation.truth`). Models are also
scored per metric (R², MAPE) on the configurations they did not see.

Strategies: ``random`` (uniform over the configurations of each platform)
and ``adaptive`` (:class:`hwmatch.strategies.adaptive.AdaptiveSampler`: a
space-filling start, then rounds chosen where they most improve the
recommendations). The HADA-like baseline learns from the random sample.

With ``verify_budget`` K > 0 (``hwmatch evaluate --verify-budget K``), a
method with intervals answers in a closed loop: each query may spend up to K
measured runs, replayed from the table (one of the configuration's own rows,
so with its own noise; with ``fresh_runs``, the true value moved by a
deviation the table's repetitions show). What to run next is
:func:`hwmatch.engine.verification.next_run`'s decision: the choice at the
confidence is run; a run that breaks a requirement rules that configuration
out and the next choice is run; when the bounds admit no candidate, the most
plausible one is run (the best by point predictions, or the nearest miss in
units of its interval); and once a run has met every requirement, the runs
left go to candidates whose point predictions meet the requirements and beat
the measured answer's objective (the largest predicted gain times the chance
of meeting the requirements first), a better one that holds becoming the
answer, until the budget is spent or nothing is predicted better. A
candidate the bounds do not vouch for (a plausible one, or one predicted
better) is run ``unproven_runs`` times (default two) and holds only if every
run does. A refusal is turned into an answer only by runs that meet the
constraints; with the budget spent before any did, a choice at the bounds is
answered unverified, a point-based one is not (no solution). The models are not refitted per
query (one fit answers every query): a run is learnt at the configuration it
measured, whose predictions become what it measured. ``improve=False`` stops
at the first run that holds (the loop before the improvement runs).

Each fitted method answers the same queries at every requested confidence
(the queries differ only in ``spec.confidence``), which traces the trade-off
between feasible answers and refused ones without refitting. A method
without intervals answers alike at every confidence and is scored once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_percentage_error, r2_score

from hwmatch.api import AIAsset, HWRecommendationSpec
from hwmatch.api.errors import InputError
from hwmatch.data.frame import FEATURE, INSTANCE, METRIC, PARAM, columns, strip
from hwmatch.data.importer import Imported
from hwmatch.engine.verification import UNPROVEN_RUNS, next_run
from hwmatch.evaluation.methods import HadaMethod, Method, SurrogateMethod, at_positions, candidate_set_of, choose
from hwmatch.evaluation.queries import draw_queries, metrics_read
from hwmatch.evaluation.scoring import Summary, score, summarise
from hwmatch.evaluation.truth import GroundTruth
from hwmatch.execution.replay import ReplayTable
from hwmatch.optimize import RecommendationError, build_problem
from hwmatch.optimize.problem import interval_level
from hwmatch.strategies.adaptive import AdaptiveSampler

STRATEGIES = ("random", "adaptive")
#: Share of an adaptive budget spent on the space-filling start.
INITIAL_SHARE = 0.4
#: Adaptive rounds after the start.
ROUNDS = 4


@dataclass(frozen=True)
class Result:
    """The figures of one (budget, strategy, method)."""

    budget: float
    strategy: str
    method: str
    trials: int
    confidence: float | None  # None: a method without intervals (the same answers at every confidence)
    summary: Summary
    models: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> {"r2", "mape"}

    def as_dict(self) -> dict[str, object]:
        return {"budget": self.budget, "strategy": self.strategy, "method": self.method, "trials": self.trials,
                "confidence": self.confidence, **self.summary.as_dict(), "models": self.models}


class Evaluation:
    """A table, its truth and queries; :meth:`run` gives one :class:`Result` per budget, strategy, method and confidence."""

    def __init__(self, imported: Imported, queries: int, confidences: Sequence[float] = (0.95,), seed: int = 0,
                 verify_budget: int = 0, improve: bool = True, fresh_runs: bool = False,
                 unproven_runs: int = UNPROVEN_RUNS):
        if not confidences or not all(0.5 <= c < 1 for c in confidences):
            raise InputError(f"confidences must be in [0.5, 1) (got {list(confidences)}); e.g. 0.9,0.95")
        self.asset: AIAsset = imported.asset
        self.frame = imported.frame
        self.truth = GroundTruth.from_frame(self.frame)
        self.replay = ReplayTable(self.frame, self.asset, mode="exact")
        self.queries: list[HWRecommendationSpec] = draw_queries(self.asset, self.truth, queries, seed, confidences[0])
        self.confidences = list(dict.fromkeys(confidences))
        self.seed = seed
        if verify_budget < 0:
            raise InputError(f"verify_budget is a number of runs per query, at least 0 (got {verify_budget})")
        self.verify_budget = verify_budget
        self.improve = improve
        self.fresh_runs = fresh_runs
        if unproven_runs < 1:
            raise InputError(f"unproven_runs is a number of runs, at least 1 (got {unproven_runs})")
        self.unproven_runs = unproven_runs
        self.pool = self.truth.table.drop(columns=[*columns(self.truth.table, METRIC), "rows"])
        self.goals = {m.name: m.goal for m in self.asset.spec.metrics if m.goal is not None}
        self._candidates = [self.truth.candidates(metrics_read(q), q.instance) for q in self.queries]

    def run(self, budgets: list[float], strategies: tuple[str, ...] = STRATEGIES, hada: bool = True) -> list[Result]:
        results = []
        for budget in budgets:
            for strategy in strategies:
                rng = np.random.default_rng([self.seed, int(round(budget * 1e6)), STRATEGIES.index(strategy)])
                chosen, train = self.sample(strategy, budget, rng)
                methods: list[Method] = [SurrogateMethod()]
                if hada and strategy == "random":
                    methods.append(HadaMethod())
                for method in methods:
                    results.extend(self.score(method.fit(train, self.asset, self.seed), budget, strategy, chosen))
        return results

    def sizes(self, budget: float) -> dict[str, int]:
        """Configurations to sample per platform: ``budget`` of its measured ones, at least 3."""
        if not 0 < budget <= 1:
            raise InputError(f"a budget is a fraction of the table in (0, 1] (got {budget}); e.g. 0.1 for 10%")
        counts = self.pool.groupby("platform").size()
        return {str(p): min(int(n), max(3, math.ceil(budget * n))) for p, n in counts.items()}

    def sample(self, strategy: str, budget: float, rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame]:
        """Positions in :attr:`pool` of the configurations measured, and their replayed trials."""
        sizes = self.sizes(budget)
        if strategy == "random":
            picks = [rng.choice(np.flatnonzero(self.pool["platform"] == p), size=n, replace=False)
                     for p, n in sizes.items()]
            drawn = np.sort(np.concatenate(picks))
            return drawn, self.trials(drawn, rng)
        if strategy != "adaptive":
            raise InputError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
        sampler = AdaptiveSampler()
        chosen: list[int] = []
        empty = self.frame.iloc[:0]
        for platform, n in sizes.items():
            where = np.flatnonzero(self.pool["platform"] == platform)
            start = sampler.select(empty, self.pool.iloc[where], max(1, int(INITIAL_SHARE * n)), rng, asset=self.asset)
            chosen.extend(int(where[i]) for i in start)
        history = self.trials(np.array(chosen), rng)
        total = sum(sizes.values())
        for round_ in range(ROUNDS):
            left = np.setdiff1d(np.arange(len(self.pool)), chosen)
            n = (total - len(chosen)) // (ROUNDS - round_)
            if n <= 0 or left.size == 0:
                continue
            batch = np.array([int(left[i]) for i in sampler.select(history, self.pool.iloc[left], n, rng, asset=self.asset)])
            history = pd.concat([history, self.trials(batch, rng)], ignore_index=True)
            chosen.extend(batch.tolist())
        return np.sort(np.array(chosen)), history

    def trials(self, positions: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """The replayed trials of pool configurations: their key, price and features plus measured metrics."""
        rows = self.pool.iloc[positions]
        params, instance = columns(rows, PARAM), columns(rows, INSTANCE)
        records = []
        for _, row in rows.iterrows():
            n_rows = int(self.truth.table.at[row.name, "rows"])  # type: ignore[arg-type]  # a count column
            match = self.replay.lookup(
                row["platform"], {strip(c): row[c] for c in params}, {strip(c): float(row[c]) for c in instance},
                repetition=int(rng.integers(n_rows)),
            )
            assert match is not None, "pool configurations are measured ones"
            records.append({"trial_id": match.trial_id, **{METRIC + k: v for k, v in match.metrics.items()}})
        measured = pd.DataFrame.from_records(records, index=rows.index)
        train = rows.join(measured)
        train["asset"], train["sweep"], train["repetition"] = self.asset.metadata.name, "evaluation", 0
        train["status"], train["reason"] = "Succeeded", ""
        metric_cols = [c for c in columns(self.frame, METRIC) if c in train.columns]
        ordered = ["trial_id", "asset", "sweep", "platform", "repetition", "status", "reason", "cost_per_hour",
                   *params, *instance, *columns(rows, FEATURE), *metric_cols]
        return train[ordered].reset_index(drop=True)

    def score(self, method: Method, budget: float, strategy: str, chosen: np.ndarray) -> list[Result]:
        """The fitted ``method``'s answers to every query, scored at each confidence (once without intervals)."""
        pool = self.pool.reset_index(drop=True)
        preds: dict[float, dict] = {}  # one prediction per interval level the queries need
        intervals = method.intervals
        scored: list[tuple[float, list]] = []
        for confidence in self.confidences if intervals else self.confidences[:1]:
            outcomes = []
            for q, (query, candidates) in enumerate(zip(self.queries, self._candidates)):
                query = query.model_copy(update={"confidence": confidence})
                level = interval_level(query)
                if level not in preds:
                    preds[level] = method.predict(pool, level)
                positions = self.pool.index.get_indexer(candidates.index)
                runs = 0
                if intervals and self.verify_budget:
                    loop_rng = np.random.default_rng([self.seed, q, int(round(confidence * 1e6))])
                    answer, runs = self.closed_loop(query, candidates, positions, preds[level], loop_rng)
                else:
                    answer = choose(query, candidates, positions, preds[level], self.goals)
                bounds = random = None
                if intervals:  # coverage at the choice, and at a random candidate (the same one at every confidence)
                    bounds = None if answer is None else self._bounds(preds[level], answer)
                    if len(candidates):
                        other = candidates.index[int(np.random.default_rng([self.seed, q]).integers(len(candidates)))]
                        random = (int(other), self._bounds(preds[level], other))
                outcomes.append(replace(score(query, answer, self.truth, bounds, random), verification_runs=runs))
            scored.append((confidence, outcomes))
        models = self.model_scores(next(iter(preds.values())), chosen)  # point predictions: the same at every level
        return [Result(budget, strategy, method.name, int(len(chosen)), confidence if intervals else None,
                       summarise(outcomes), models) for confidence, outcomes in scored]

    def closed_loop(
        self, query: HWRecommendationSpec, candidates: pd.DataFrame, positions: np.ndarray, pred: dict,
        rng: np.random.Generator,
    ) -> tuple[int | None, int]:
        """The answer after up to :attr:`verify_budget` replayed runs (see the module docstring), and the runs spent."""
        candidate_set, sub = candidate_set_of(candidates), at_positions(pred, positions)
        runs: dict[int, list[dict[str, float]]] = {}
        spent = 0
        while True:
            try:
                step = next_run(lambda p: build_problem(candidate_set, p, query, self.goals), sub, runs,
                                self.verify_budget - spent, improve=self.improve, unproven=self.unproven_runs)
            except RecommendationError:  # a metric the query reads has no model (never measured in the sample)
                return None, spent
            if step.run is None:
                return (None if step.answer is None else int(candidates.index[step.answer])), spent
            label = int(candidates.index[step.run])
            runs[step.run] = [self.run_once(label, rng) for _ in range(step.repetitions)]
            spent += step.repetitions

    def run_once(self, label: int, rng: np.random.Generator) -> dict[str, float]:
        """One verification run of a pool configuration (an index label): the metrics it measures.

        By default one of the configuration's own rows (:meth:`trials`). With
        :attr:`fresh_runs`, a run with noise of its own: each metric's true
        value moved up or down, at random, by one of the relative deviations
        of single runs from their configuration's mean that the table's
        repetitions show (:attr:`GroundTruth.deviations`, the platform's own
        where it has enough); a metric the table never repeats has none.
        """
        if not self.fresh_runs:
            run = self.trials(np.array([self.pool.index.get_loc(label)]), rng).iloc[0]
            return {strip(str(c)): float(run[c]) for c in run.index if str(c).startswith(METRIC)}
        row = self.truth.table.loc[label].to_dict()
        platform = str(row["platform"])
        out = {}
        for metric in self.truth.metrics:
            value = float(row[METRIC + metric])
            spread = self.truth.deviations_of(platform, metric)
            if np.isfinite(value) and spread is not None and spread.size:
                moved = value * (1 + float(rng.choice([-1.0, 1.0])) * float(spread[rng.integers(spread.size)]))
                value = moved if moved * value > 0 else 0.0  # a deviation of 100% or more: down to 0, no sign change
            out[metric] = value
        return out

    def _bounds(self, pred: dict, row: object) -> dict[str, tuple[float, float]]:
        """Each metric's predicted (lower, upper) at a truth row (an index label of the pool)."""
        at = int(self.pool.index.get_loc(row))  # type: ignore[arg-type]  # a unique integer index
        return {m: (float(p.lower[at]), float(p.upper[at])) for m, p in pred.items()}

    def model_scores(self, pred: dict, chosen: np.ndarray) -> dict[str, dict[str, float]]:
        """R² and MAPE of each metric's predictions on the configurations not sampled."""
        unseen = np.setdiff1d(np.arange(len(self.pool)), chosen)
        out = {}
        for metric, prediction in pred.items():
            value = prediction.value
            if METRIC + metric not in self.truth.table.columns:
                continue
            truth = self.truth.table[METRIC + metric].to_numpy(dtype=float)[unseen]
            guess = value[unseen]
            keep = np.isfinite(truth) & np.isfinite(guess)
            if keep.sum() < 2:
                continue
            out[metric] = {
                "r2": float(r2_score(truth[keep], guess[keep])),
                "mape": float(mean_absolute_percentage_error(truth[keep], guess[keep])),
            }
        return out
