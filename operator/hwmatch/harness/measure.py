"""Timing of a repeated workload: warm-up, timed iterations, latency statistics.

The measurement is separated from any asset so that it can be checked on a
fake clock (unit tests) and its own cost measured on an empty workload
(``bench/harness_overhead.py``). Only the call itself is inside the timed
window: the loop's bookkeeping runs between two clock reads, never inside one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Clock = Callable[[], int]
"""A monotonic clock in nanoseconds, ``time.perf_counter_ns`` unless a test injects one."""

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class Timing:
    """The latencies of one measured run and when it happened.

    ``started`` and ``finished`` are Unix times (seconds) of the timed phase, so
    that telemetry (power, energy) can be queried for exactly that window.
    """

    latencies_ns: np.ndarray
    warmup: int
    started: float
    finished: float

    @property
    def samples(self) -> int:
        return int(self.latencies_ns.size)

    def metrics(self, batch_size: int) -> dict[str, float]:
        """Latency percentiles, mean and standard deviation in ms, and items per second.

        Throughput is ``batch_size`` items per call over the mean call latency,
        i.e. the rate of a single caller issuing calls back to back.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        ms = self.latencies_ns.astype(np.float64) / 1e6
        out = {f"latency_p{q}_ms": float(v) for q, v in zip(PERCENTILES, np.percentile(ms, PERCENTILES))}
        mean = float(ms.mean())
        out["latency_mean_ms"] = mean
        out["latency_std_ms"] = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
        out["throughput_per_s"] = batch_size / (mean / 1e3) if mean > 0 else float("inf")
        return out


@dataclass(frozen=True)
class Measurer:
    """Runs a workload ``warmup`` times untimed, then times it until ``samples`` or ``time_budget_s``.

    Whichever limit comes first stops the timed phase, but at least one timed
    call is always made so that every run yields a result. The budget covers
    the timed phase only; warm-up is bounded by its count.
    """

    warmup: int = 5
    samples: int = 200
    time_budget_s: float = 10.0
    clock: Clock = time.perf_counter_ns

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if not self.time_budget_s > 0:
            raise ValueError(f"time_budget_s must be > 0, got {self.time_budget_s}")

    def measure(self, workload: Callable[[], object]) -> Timing:
        clock = self.clock
        for _ in range(self.warmup):
            workload()
        latencies = np.empty(self.samples, dtype=np.int64)
        budget_ns = int(self.time_budget_s * 1e9)
        started = time.time()
        begin = clock()
        n = 0
        while True:
            t0 = clock()
            workload()
            t1 = clock()
            latencies[n] = t1 - t0
            n += 1
            if n >= self.samples or t1 - begin >= budget_ns:
                break
        finished = time.time()
        return Timing(latencies_ns=latencies[:n], warmup=self.warmup, started=started, finished=finished)
