"""Power, energy and any PromQL metric of a trial, from Prometheus or this machine's RAPL sensors.

- :class:`PrometheusClient`: instant and range queries over the HTTP API.
- :mod:`hwmatch.telemetry.promql`: the templates of ``source: prometheus``
  metrics (presets ``dcgm-energy``, ``dcgm-power``, ``kepler-energy``,
  ``rapl-energy``, and user queries) and their placeholders.
- :func:`trial_metrics`: every Prometheus metric of one trial's pod and window.
- :mod:`hwmatch.telemetry.rapl`: energy of a local trial from the powercap sysfs.

See docs/telemetry.md.
"""

from hwmatch.telemetry.prometheus import (
    PrometheusClient,
    PrometheusError,
    PrometheusQueryError,
    PrometheusUnreachable,
    Sample,
    Series,
)
from hwmatch.telemetry.promql import (
    PLACEHOLDERS,
    PRESETS,
    MissingContext,
    Preset,
    QueryContext,
    TemplateError,
    render_metric,
    validate_metrics,
)
from hwmatch.telemetry.rapl import RaplMeter, RaplUnavailable
from hwmatch.telemetry.trial import DEFAULT_RESOLUTION_S, TrialMetrics, trial_metrics

__all__ = [
    "DEFAULT_RESOLUTION_S",
    "PLACEHOLDERS",
    "PRESETS",
    "MissingContext",
    "Preset",
    "PrometheusClient",
    "PrometheusError",
    "PrometheusQueryError",
    "PrometheusUnreachable",
    "QueryContext",
    "RaplMeter",
    "RaplUnavailable",
    "Sample",
    "Series",
    "TemplateError",
    "TrialMetrics",
    "render_metric",
    "trial_metrics",
    "validate_metrics",
]
