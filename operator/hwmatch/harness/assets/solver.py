"""``ortools-solver``: CP-SAT on a job-shop instance generated from a seed; quality depends on time and workers.

Each timed call is one complete solve with a different solver seed, so the
latency percentiles describe how long a solve takes and the quality metrics
(averaged over every solve of the trial) how good its schedule is.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from hwmatch.api import MetricSpec, Parameter, Range
from hwmatch.api.asset import Scalar
from hwmatch.harness.assets.base import Asset

INSTANCE_SEED = 0
MAX_DURATION = 20


@dataclass(frozen=True)
class JobShop:
    """``jobs[j]`` is job j's operations in order, each ``(machine, duration)``."""

    jobs: tuple[tuple[tuple[int, int], ...], ...]

    @classmethod
    def generate(cls, size: int, seed: int = INSTANCE_SEED) -> "JobShop":
        """``size`` jobs on ``size`` machines, each job visiting every machine once in a random order."""
        rng = random.Random(seed * 1_000_003 + size)
        jobs = []
        for _ in range(size):
            machines = list(range(size))
            rng.shuffle(machines)
            jobs.append(tuple((m, rng.randint(1, MAX_DURATION)) for m in machines))
        return cls(tuple(jobs))

    @property
    def horizon(self) -> int:
        """Makespan of running every operation one after another: always feasible, an upper bound."""
        return sum(d for job in self.jobs for _, d in job)


def jobshop_model(shop: JobShop) -> Any:
    """The classic CP-SAT formulation: intervals, no overlap per machine, precedence, minimise makespan."""
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    horizon = shop.horizon
    per_machine: dict[int, list[Any]] = {}
    ends = []
    for j, job in enumerate(shop.jobs):
        previous_end: Any = None
        for k, (machine, duration) in enumerate(job):
            start = model.new_int_var(0, horizon, f"s{j}_{k}")
            end = model.new_int_var(0, horizon, f"e{j}_{k}")
            per_machine.setdefault(machine, []).append(model.new_interval_var(start, duration, end, f"i{j}_{k}"))
            if previous_end is not None:
                model.add(start >= previous_end)
            previous_end = end
        ends.append(previous_end)
    for intervals in per_machine.values():
        model.add_no_overlap(intervals)
    makespan = model.new_int_var(0, horizon, "makespan")
    model.add_max_equality(makespan, ends)
    model.minimize(makespan)
    return model


class JobShopAsset(Asset):
    """CP-SAT minimising the makespan of an n×n job shop; one solve per timed call."""

    name = "ortools-solver"
    description = "OR-Tools CP-SAT on a seeded n×n job shop: solve time, makespan and optimality gap"
    parameters = (
        Parameter(name="time_limit_s", type="float", range=Range(min=0.05, max=60, log=True),
                  description="CP-SAT max_time_in_seconds per solve."),
        Parameter(name="workers", type="int", range=Range(min=1, max=8), description="CP-SAT num_workers (threads)."),
        Parameter(name="instance_size", type="int", range=Range(min=3, max=30),
                  description="Jobs and machines of the generated job shop."),
    )
    metrics = (
        MetricSpec(name="objective", goal="minimize"),
        MetricSpec(name="gap", goal="minimize"),
        MetricSpec(name="solve_time_s", goal="minimize", unit="s"),
    )
    defaults: ClassVar[Mapping[str, Scalar]] = {"time_limit_s": 1.0, "workers": 1, "instance_size": 8}
    warmup = 0
    samples = 3
    time_budget_s = 5.0

    def setup(self, params: Mapping[str, Scalar]) -> None:
        self._shop = JobShop.generate(int(params["instance_size"]))
        self._model = jobshop_model(self._shop)
        self._time_limit_s = float(params["time_limit_s"])
        self._workers = int(params["workers"])
        self._solves: list[tuple[float, float, float]] = []  # (objective, bound, wall seconds)

    @property
    def batch_size(self) -> int:
        return 1

    def run_batch(self) -> None:
        from ortools.sat.python import cp_model

        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = self._time_limit_s
        solver.parameters.num_workers = self._workers
        solver.parameters.random_seed = len(self._solves)
        status = solver.solve(self._model)
        found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
        # Without an incumbent, the sequential schedule (the horizon) is the solution one would fall back to.
        objective = solver.objective_value if found else float(self._shop.horizon)
        self._solves.append((objective, solver.best_objective_bound, solver.wall_time))

    def quality(self) -> dict[str, float]:
        n = len(self._solves)
        gaps = [(obj - bound) / obj if obj > 0 else 0.0 for obj, bound, _ in self._solves]
        return {
            "objective": sum(obj for obj, _, _ in self._solves) / n,
            "gap": sum(gaps) / n,
            "solve_time_s": sum(wall for _, _, wall in self._solves) / n,
        }
