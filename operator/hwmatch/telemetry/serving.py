"""A server's own latency percentiles, from its Prometheus histogram, and whether the client's agree with them.

A serving trial measures latency twice: the load generator times every
request (client side), and the server observes each into a histogram
(server side, ``spec.serving.latencyHistogram``). The server-side quantile is
``histogram_quantile`` over the histogram's bucket increases in the trial's
window, which interpolates linearly inside one bucket: it is exact only to
that bucket. So the two sides *agree* when the client's value lies in the
bucket of the server's estimate or in one next to it (one bucket of slack for
what the client also times: the network, the kernel's queues, the time until
the server's thread runs). Beyond that, the trial says so: the server does
not see part of the latency its clients do.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from hwmatch.api.asset import LATENCY_UNITS_MS, MetricSpec, ServingSpec
from hwmatch.telemetry.prometheus import PrometheusClient

#: The server-side percentiles a serving trial reports, as (metric name, quantile, client metric it is checked against).
SERVER_QUANTILES = (
    ("server_latency_p50_ms", 0.5, "latency_p50_ms"),
    ("server_latency_p90_ms", 0.9, "latency_p90_ms"),
    ("server_latency_p99_ms", 0.99, "latency_p99_ms"),
)


def quantile_metrics(serving: ServingSpec, selector: str) -> list[MetricSpec]:
    """One ``source: prometheus`` metric per server quantile, in ms, for the series ``selector`` picks.

    ``selector`` is a whole label selector: ``{pod_selector}`` for a pod, or the
    scrape target's ``{instance="127.0.0.1:8080"}`` for a local server.
    """
    assert serving.latency_histogram is not None
    scale = LATENCY_UNITS_MS[serving.latency_unit]
    return [
        MetricSpec(name=name, source="prometheus", unit="ms",
                   query=f"histogram_quantile({q}, sum by (le) (increase({serving.latency_histogram}_bucket{selector}"
                         f"[{{window}}]))) * {scale:g}")
        for name, q, _ in SERVER_QUANTILES
    ]


def bucket_bounds_ms(client: PrometheusClient, serving: ServingSpec, selector: str, at: float) -> list[float]:
    """The histogram's finite upper bounds (``le``), in ms, ascending, as Prometheus last scraped them before ``at``."""
    assert serving.latency_histogram is not None
    scale = LATENCY_UNITS_MS[serving.latency_unit]
    samples = client.query(f"count by (le) ({serving.latency_histogram}_bucket{selector})", time=at)
    bounds = {float(s.labels["le"]) * scale for s in samples if "le" in s.labels}
    return sorted(b for b in bounds if math.isfinite(b))


def agree(client_ms: float, server_ms: float, bounds_ms: Sequence[float]) -> bool:
    """Whether ``client_ms`` lies in the bucket holding ``server_ms``, or in a bucket next to it.

    Buckets are ``(bounds[i-1], bounds[i]]`` (the first from 0, one more up to
    infinity), as Prometheus's ``le`` counts them.
    """
    edges = [0.0, *bounds_ms, math.inf]
    at = max(1, bisect.bisect_left(edges, server_ms))  # the server's bucket is (edges[at-1], edges[at]]
    return edges[max(0, at - 2)] <= client_ms <= edges[min(len(edges) - 1, at + 1)]


def disagreements(metrics: dict[str, float], bounds_ms: Sequence[float]) -> list[str]:
    """One phrase per quantile whose client and server values do not agree (see :func:`agree`)."""
    out = []
    for name, q, client_name in SERVER_QUANTILES:
        if name in metrics and client_name in metrics and not agree(metrics[client_name], metrics[name], bounds_ms):
            out.append(f"p{round(q * 100)}: client {metrics[client_name]:.3g} ms, server {metrics[name]:.3g} ms")
    return out
