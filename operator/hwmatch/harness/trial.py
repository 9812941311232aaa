"""One trial of an asset: set it up, measure it, and assemble the result document."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from hwmatch.api.asset import Scalar
from hwmatch.harness.assets.base import Asset
from hwmatch.harness.host import host_info, peak_rss_mb
from hwmatch.harness.measure import Measurer


def run_trial(asset: Asset, params: Mapping[str, Scalar], measurer: Measurer) -> dict[str, Any]:
    """Set up ``asset`` with validated ``params``, time its batches, and return the result document.

    ``wall_time_s`` covers the whole trial (setup included: it is what a trial
    costs); ``started``/``finished`` bound the timed phase only (what the
    latency describes, and the window for power or energy queries).
    """
    begin = time.perf_counter()
    asset.setup(params)
    timing = measurer.measure(asset.run_batch)
    metrics = timing.metrics(asset.batch_size)
    metrics.update(asset.quality())
    metrics["peak_rss_mb"] = peak_rss_mb()
    metrics["wall_time_s"] = time.perf_counter() - begin
    return {
        "metrics": metrics,
        "samples": timing.samples,
        "warmup": timing.warmup,
        "started": timing.started,
        "finished": timing.finished,
        "asset": asset.name,
        "parameters": dict(params),
        "host": host_info(),
    }
