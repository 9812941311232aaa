"""The Prometheus metrics of one finished trial: every ``source: prometheus`` metric, for its pod and window."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timezone

from hwmatch.api.asset import MetricSpec
from hwmatch.telemetry.prometheus import PrometheusClient, PrometheusQueryError
from hwmatch.telemetry.promql import MissingContext, QueryContext, render_metric, validate_metrics

#: Scrape interval assumed when the caller does not say (kube-prometheus-stack scrapes every 30s,
#: DCGM exporter samples every 30s by default; 15s is Prometheus's own example config).
DEFAULT_RESOLUTION_S = 15.0


class TrialMetrics(dict[str, float]):
    """What :func:`trial_metrics` found: metric name → value, plus ``missing``: metric name → why.

    It is the plain ``dict[str, float]`` a caller merges into the trial's
    metrics; the metrics without a value are kept apart in ``missing`` (for the
    trial's status), so a metric is either a key or in ``missing``, never both.
    """

    def __init__(self, values: dict[str, float], missing: dict[str, str]) -> None:
        super().__init__(values)
        self.missing = dict(missing)

    def __repr__(self) -> str:
        return f"TrialMetrics({dict(self)!r}, missing={self.missing!r})"

    def message(self) -> str:
        """One line for a status message or condition: which metrics are missing and why ('' if none)."""
        return "; ".join(f"{name}: {why}" for name, why in self.missing.items())


def trial_metrics(
    client: PrometheusClient,
    metrics: Iterable[MetricSpec],
    namespace: str,
    pod: str,
    start: float,
    end: float,
    *,
    node: str | None = None,
    resolution: float = DEFAULT_RESOLUTION_S,
) -> TrialMetrics:
    """Evaluate every ``source: prometheus`` metric for ``namespace/pod`` over ``[start, end]`` (Unix seconds).

    Each query is an instant query at ``end`` over the window rounded up to
    ``resolution`` (set it to the scrape interval). Call it once Prometheus has
    scraped after ``end`` (one scrape interval later), or the last part of the
    trial is not in the answer yet. ``harness`` metrics are ignored.

    Raises :class:`~hwmatch.telemetry.promql.TemplateError` when a query uses an
    unknown placeholder (the asset is wrong: every trial would fail alike), and
    :class:`~hwmatch.telemetry.prometheus.PrometheusUnreachable` when the server
    does not answer (worth retrying later), and an ``InputError`` when the
    call itself is malformed (empty namespace or pod, ``end`` before ``start``,
    resolution <= 0): check those first. Everything that concerns one metric
    of this trial — no data, several series, NaN, a query Prometheus rejects,
    a node-level metric without ``node`` — lands in ``missing`` with the reason.
    """
    wanted = [m for m in metrics if m.source == "prometheus"]
    validate_metrics(wanted)
    context = QueryContext(namespace=namespace, pod=pod, start=start, end=end, node=node, resolution=resolution)
    values: dict[str, float] = {}
    missing: dict[str, str] = {}
    for metric in wanted:
        try:
            query = render_metric(metric, context)
        except MissingContext as exc:
            missing[metric.name] = str(exc)
            continue
        try:
            samples = client.query(query, time=end)
        except PrometheusQueryError as exc:
            missing[metric.name] = f"Prometheus rejected the query ({exc.error_type}: {exc.message}); query: {query}"
            continue
        except ValueError as exc:  # an answer of the wrong shape (a range vector)
            missing[metric.name] = f"{exc}; query: {query}"
            continue
        if not samples:
            missing[metric.name] = (
                f"no data for pod {namespace}/{pod} in the {context.window} window ending "
                f"{_iso(end)}: the exporter may not attribute this pod, the window may hold fewer than two "
                f"scrapes, or Prometheus had not scraped since the trial ended; query: {query}"
            )
        elif len(samples) > 1:
            labels = ", ".join(str(s.labels) for s in samples[:3])
            missing[metric.name] = (
                f"the query returns {len(samples)} series ({labels}{', ...' if len(samples) > 3 else ''}); "
                f"aggregate it to one value, e.g. sum(...); query: {query}"
            )
        elif not math.isfinite(samples[0].value):
            missing[metric.name] = f"the query's value is {samples[0].value} (e.g. a division by zero); query: {query}"
        else:
            values[metric.name] = samples[0].value
    return TrialMetrics(values, missing)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")
