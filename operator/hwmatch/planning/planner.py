"""The planner: (sweep, asset) -> the BenchmarkTrials to run, with deterministic names.

A trial's name is a hash of what it measures (:func:`hwmatch.api.trial_id`:
sweep, platform, parameters, instance, repetition), so planning the same
sweep again — after a crash, in a restarted operator, on another machine —
names the same trials, and a store that already holds a result for a name
never runs it again.

Order: repetition outermost, then combination, instance, and platform
innermost, so a sweep stopped half-way has measured every platform on the
same combinations, and repetitions of one combination are spread in time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrial, Platform, canonical, make_trial
from hwmatch.api.errors import InputError
from hwmatch.api.sweep import plan_problems
from hwmatch.api.vocabulary import PARAM
from hwmatch.planning.samplers import Point, RoundSampler, Sampler, get_sampler
from hwmatch.planning.space import Space

if TYPE_CHECKING:  # a round's history is a frame; planning a sweep needs no pandas (the operator starts without it)
    import pandas as pd


class Planner:
    """Turns a sweep into trials: one design for all platforms, or rounds for a :class:`RoundSampler`.

    ``plan()`` is the initial design expanded over platforms × instances ×
    repetitions. When the strategy's sampler is a :class:`RoundSampler`,
    :meth:`next_round` proposes further trials per platform from the finished
    results until each platform has ``budget`` combinations.
    """

    def __init__(self, asset: AIAsset, sweep: BenchmarkSweep, sampler: Sampler | None = None):
        if sweep.spec.asset_ref.name != asset.metadata.name:
            raise InputError(
                f"sweep {sweep.metadata.name!r} refers to asset {sweep.spec.asset_ref.name!r}, "
                f"not {asset.metadata.name!r}"
            )
        problems = plan_problems(asset.spec.parameters, sweep.spec)
        if problems:
            raise InputError(f"sweep {sweep.metadata.name!r}: " + "; ".join(f"{where}: {why}" for where, why in problems))
        self.asset = asset
        self.sweep = sweep
        self.space = Space(asset.spec.parameters)
        self.sampler = sampler if sampler is not None else get_sampler(sweep.spec.sampling.strategy)

    @property
    def in_rounds(self) -> bool:
        return isinstance(self.sampler, RoundSampler)

    @property
    def instances(self) -> list[dict[str, float]]:
        return list(self.sweep.spec.instances) or [{}]

    def initial_size(self) -> int | None:
        """Combinations in the first design: the budget, or the ``initial`` design of a round sampler."""
        sampling = self.sweep.spec.sampling
        if not self.in_rounds or sampling.budget is None:
            return sampling.budget
        return sampling.initial or min(sampling.budget, max(2 * len(self.space), sampling.budget // 4, 1))

    def design(self) -> list[Point]:
        """The initial combinations (duplicates, possible in small discrete spaces, dropped)."""
        rng = np.random.default_rng(self.sweep.spec.sampling.seed)
        return _unique(self.sampler.sample(self.space, self.initial_size(), rng))

    def plan(self) -> list[BenchmarkTrial]:
        """The trials of the initial design on every platform."""
        return self.trials(self.design())

    def trials(self, combinations: Sequence[Point], platforms: Sequence[Platform] | None = None) -> list[BenchmarkTrial]:
        """Expand combinations over platforms × instances × repetitions (see the module's order)."""
        platforms = list(platforms) if platforms is not None else self.sweep.spec.platforms
        out = []
        for repetition in range(self.sweep.spec.sampling.repetitions):
            for params in combinations:
                for instance in self.instances:
                    for platform in platforms:
                        out.append(make_trial(self.asset.metadata.name, self.sweep.metadata.name,
                                              platform.name, dict(params), dict(instance), repetition))
        return out

    def max_trials(self) -> int:
        """The sweep's trial count (its upper bound when sampling in rounds), for progress bars."""
        combinations = self.sweep.spec.sampling.budget if self.in_rounds else len(self.design())
        assert combinations is not None  # a round sampler is never a grid, so it has a budget
        per_combination = len(self.instances) * self.sweep.spec.sampling.repetitions
        return combinations * per_combination * len(self.sweep.spec.platforms)

    def next_round(self, history: pd.DataFrame) -> list[BenchmarkTrial]:
        """Trials of the next round, given the sweep's dataset frame so far; empty when done.

        The random stream of each proposal is seeded by (seed, combinations
        done, platform index), so the proposals are a function of the results.
        """
        if not self.in_rounds:
            return []
        sampler: RoundSampler = self.sampler  # type: ignore[assignment]
        sampling = self.sweep.spec.sampling
        assert sampling.budget is not None
        out: list[BenchmarkTrial] = []
        for index, platform in enumerate(self.sweep.spec.platforms):
            rows = history[history["platform"] == platform.name] if len(history) else history
            done = _count_combinations(rows)
            n = min(sampling.batch_size or 1, sampling.budget - done)
            if n <= 0:
                continue
            rng = np.random.default_rng([sampling.seed, done, index])
            proposed = sampler.propose(self.space, rows, n, rng, asset=self.asset, sweep=self.sweep, platform=platform)
            known = set(rows["trial_id"]) if len(rows) else set()
            fresh = [t for t in self.trials(_unique(proposed)[:n], [platform]) if t.metadata.name not in known]
            out.extend(fresh)
        return out


def _unique(points: Iterable[Point]) -> list[Point]:
    """Points without repeats, first occurrence kept, order kept."""
    seen: dict[str, Point] = {}
    for p in points:
        seen.setdefault(canonical(p), p)
    return list(seen.values())


def _count_combinations(rows: pd.DataFrame) -> int:
    """Distinct parameter combinations in a frame."""
    if not len(rows):
        return 0
    cols = [c for c in rows.columns if c.startswith(PARAM)]
    return len(rows[cols].drop_duplicates()) if cols else 1
