"""The ``source: prometheus`` metrics of a finished trial, read for its pod and window and merged into its status.

A trial's harness metrics come from its termination message; power, energy
and any PromQL metric of the asset come from Prometheus (through
:func:`hwmatch.telemetry.trial_metrics`) once the Job has ended and
Prometheus has scraped past the end. A metric without data is asked for
again for :data:`LATE_DATA_SCRAPES` scrape intervals after the end (a late
scrape still fills the window). A metric that cannot be had — no
``--prometheus-url``, no data for the pod, a rejected query — leaves the trial
Succeeded with its harness metrics (they are valid data) and says which metric
is missing and why in the trial's ``message`` and its ``Telemetry`` condition.

Queries run under the operator's identity, which reads every namespace's series. With ``tenancy="namespace"``
(``--promql-tenancy=namespace``) a metric whose own query could read beyond the trial's namespace is never
sent: it is reported missing (reason ``QueryRefused``) with the selectors that lack the namespace.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from hwmatch.api import AIAsset, BenchmarkTrialStatus, set_condition
from hwmatch.api.errors import InputError
from hwmatch.controller.config import PromqlTenancy

if TYPE_CHECKING:
    from hwmatch.api.asset import MetricSpec, ServingSpec
    from hwmatch.telemetry import PrometheusClient

#: Seconds after a trial's end during which an unreachable Prometheus is asked again, before giving up.
UNREACHABLE_GRACE = 300.0
#: Scrape intervals after a trial's end during which a metric without data is asked for again before it is
#: reported missing: a scrape that ran late (a loaded target or server) or data that arrives through a
#: remote write or federation lands after the first answer, and one early empty answer must not lose it.
LATE_DATA_SCRAPES = 4
#: Kubernetes writes a container's start and finish times in whole seconds (RFC 3339, no fraction), the
#: finish rounded down: the trial ran within [started, finished + 1 s), and that is the window asked for.
#: Without the second, a short trial's window could end before its last scrape and hold no sample at all.
POD_TIME_RESOLUTION = timedelta(seconds=1)


class TrialTelemetry:
    """Adds the Prometheus metrics to a Succeeded trial's status (the :data:`~hwmatch.controller.sweeps.Telemetry` of a pass)."""

    def __init__(self, client: "PrometheusClient | None", scrape_interval: float, tenancy: PromqlTenancy = "cluster"):
        self.client = client
        self.scrape_interval = scrape_interval
        self.tenancy = tenancy

    def __call__(self, asset: AIAsset, namespace: str, status: BenchmarkTrialStatus,
                 now: datetime) -> BenchmarkTrialStatus | None:
        """The status with the Prometheus metrics, or None when it is too early to ask (call again later)."""
        wanted = [m for m in asset.spec.metrics if m.source == "prometheus"]
        serving = asset.spec.serving
        if serving is not None and serving.latency_histogram is not None:
            from hwmatch.telemetry.serving import quantile_metrics

            declared = {m.name for m in wanted}
            wanted += [m for m in quantile_metrics(serving, "{pod_selector}") if m.name not in declared]
        if not wanted:
            return status
        if self.client is None:
            return _missing(status, "PrometheusNotConfigured", {
                m.name: "not collected: the operator runs without --prometheus-url" for m in wanted})
        from hwmatch.telemetry import PrometheusUnreachable, TemplateError, trial_metrics

        assert status.start_time is not None and status.completion_time is not None
        start, end = status.start_time, status.completion_time + POD_TIME_RESOLUTION
        measured = status.host.get("measurement") or {}
        if serving is not None and {"started", "finished"} <= set(measured):
            # A serving trial's window is its measured phase, as its load Job timed it: not the warm-up before
            # (the load Job pauses 2.5 scrape intervals in between), and one scrape past its end.
            start = datetime.fromtimestamp(float(measured["started"]), timezone.utc)
            end = datetime.fromtimestamp(float(measured["finished"]) + self.scrape_interval, timezone.utc)
        since_end = (now - end).total_seconds()
        if since_end < self.scrape_interval:
            return None  # the trial's last moments are not scraped yet
        pod, node = str(status.host.get("pod", "")), status.host.get("node")
        try:
            refused = self._refused(wanted, namespace, pod, start.timestamp(), end.timestamp(), node)
            allowed = [m for m in wanted if m.name not in refused]
            if not allowed:
                return _missing(status, "QueryRefused", refused)
            found = trial_metrics(self.client, allowed, namespace, pod, start.timestamp(),
                                  end.timestamp(), node=node, resolution=self.scrape_interval)
        except PrometheusUnreachable as exc:
            if since_end < UNREACHABLE_GRACE:
                return None
            return _missing(status, "PrometheusUnreachable", {m.name: str(exc) for m in wanted})
        except TemplateError as exc:
            return _missing(status, "InvalidQuery", {m.name: str(exc) for m in wanted})
        except InputError as exc:  # no pod recorded for the trial, or an empty window: asking again cannot help
            return _missing(status, "CannotQuery", {m.name: str(exc) for m in wanted})
        if found.missing and since_end < LATE_DATA_SCRAPES * self.scrape_interval:
            return None  # the data may still come: ask again on a later pass
        status.metrics.update(found)
        if serving is not None and serving.latency_histogram is not None:
            self._agreement(status, serving, namespace, pod, end)
        if found.missing or refused:
            return _missing(status, "MetricsMissing" if found.missing else "QueryRefused", {**found.missing, **refused})
        status.conditions = set_condition(status.conditions, "Telemetry", "True", "Collected",
                                          f"from Prometheus: {', '.join(sorted(found))}")
        return status

    def _agreement(self, status: BenchmarkTrialStatus, serving: "ServingSpec", namespace: str, pod: str,
                   end: datetime) -> None:
        """Say in the message when the client's and the server's percentiles disagree beyond the buckets."""
        from hwmatch.telemetry import PrometheusError
        from hwmatch.telemetry.serving import bucket_bounds_ms, disagreements

        assert self.client is not None
        try:
            bounds = bucket_bounds_ms(self.client, serving, f'{{namespace="{namespace}",pod="{pod}"}}', end.timestamp())
        except PrometheusError:
            return
        differ = disagreements(status.metrics, bounds)
        if differ:
            note = ("client and server percentiles disagree beyond the histogram's bucket resolution "
                    f"({'; '.join(differ)}): the server does not see part of the latency its clients do")
            status.message = f"{status.message}; {note}" if status.message else note

    def _refused(self, wanted: "list[MetricSpec]", namespace: str, pod: str, start: float, end: float,
                 node: str | None) -> dict[str, str]:
        """The metrics the tenancy setting forbids to query for this trial, and why (none under ``cluster``).

        Checked on the query as rendered for this trial, the same text :func:`trial_metrics` would send. A
        query that cannot be rendered for want of the node is left to :func:`trial_metrics`, which says so.
        """
        if self.tenancy == "cluster":
            return {}
        from hwmatch.telemetry.promql import MissingContext, QueryContext, namespace_confinement

        context = QueryContext(namespace, pod, start, end, node=node, resolution=self.scrape_interval)
        refused = {}
        for metric in wanted:
            try:
                why = namespace_confinement(metric, context)
            except MissingContext:
                continue
            if why is not None:
                refused[metric.name] = why
        return refused


def _missing(status: BenchmarkTrialStatus, reason: str, missing: dict[str, str]) -> BenchmarkTrialStatus:
    message = "Prometheus metrics missing: " + "; ".join(f"{name}: {why}" for name, why in missing.items())
    status.message = message
    status.conditions = set_condition(status.conditions, "Telemetry", "False", reason, message)
    return status
