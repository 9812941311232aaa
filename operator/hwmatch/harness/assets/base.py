"""The interface every built-in (or user-written Python) asset implements.

An asset is a class: its parameter space, metrics and defaults are class
attributes, readable without building anything (``hwmatch-bench list``, the
planner); an instance holds the state of one trial. The harness calls
``setup(params)`` once (untimed: data loading, training, model building), then
``run_batch()`` repeatedly (timed: one call processes ``batch_size`` items),
then ``quality()`` once for the quality metrics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from hwmatch.api import MetricSpec, Parameter
from hwmatch.api.asset import OFFERED_RATE_METRIC, Scalar


def _latencies(*names: str, prefix: str = "") -> tuple[MetricSpec, ...]:
    """``latency_<name>_ms`` metrics (to minimise, in ms), e.g. ``p50``, ``mean``."""
    return tuple(MetricSpec(name=f"{prefix}latency_{n}_ms", goal="minimize", unit="ms") for n in names)


#: The latency, throughput and resource metrics the harness reports for every asset.
HARNESS_METRICS: tuple[MetricSpec, ...] = (
    *_latencies("p50", "p90", "p95", "p99", "mean", "std"),
    MetricSpec(name="throughput_per_s", goal="maximize", unit="1/s"),
    MetricSpec(name="peak_rss_mb", goal="minimize", unit="MiB"),
    MetricSpec(name="wall_time_s", goal="minimize", unit="s"),
)


#: The metrics a serving trial reports (``hwmatch.execution.serving``): the client's, from the load generator,
#: and the server's percentiles from its latency histogram (those need a Prometheus).
SERVING_METRICS: tuple[MetricSpec, ...] = (
    *_latencies("p50", "p90", "p95", "p99", "mean", "max"),
    MetricSpec(name="throughput_per_s", goal="maximize", unit="1/s"),
    MetricSpec(name=OFFERED_RATE_METRIC, unit="1/s"),
    MetricSpec(name="error_rate", goal="minimize"),
    *_latencies("p50", "p90", "p99", prefix="server_"),
)


class Asset(ABC):
    """One benchmarkable workload with a declared parameter space and metrics."""

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[tuple[Parameter, ...]]
    #: The asset's own metrics (quality, setup cost); the harness metrics are added by :func:`metric_specs`.
    metrics: ClassVar[tuple[MetricSpec, ...]]
    #: A value for every parameter, inside its space: what a run without parameters uses.
    defaults: ClassVar[Mapping[str, Scalar]]
    #: Measurement defaults sized so that a default run takes a few seconds.
    warmup: ClassVar[int] = 5
    samples: ClassVar[int] = 200
    time_budget_s: ClassVar[float] = 5.0

    @abstractmethod
    def setup(self, params: Mapping[str, Scalar]) -> None:
        """Prepare the workload for ``params`` (already validated); not timed."""

    @property
    @abstractmethod
    def batch_size(self) -> int:
        """Items processed by one :meth:`run_batch` call (the throughput numerator)."""

    @abstractmethod
    def run_batch(self) -> None:
        """Process one batch; this call is what the latency metrics time."""

    @abstractmethod
    def quality(self) -> dict[str, float]:
        """The asset's own metrics (e.g. ``accuracy``), computed after the timed phase."""

    @classmethod
    def metric_specs(cls) -> tuple[MetricSpec, ...]:
        """Every metric a run of this asset reports: the harness's and the asset's own."""
        return HARNESS_METRICS + cls.metrics
