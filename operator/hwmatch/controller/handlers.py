"""The kopf handlers: thin adapters from watch events to the reconcilers.

- ``AIAsset``: every watch event re-validates it (Ready condition); a new
  generation wakes the sweeps and recommendations of that asset.
- ``BenchmarkSweep`` and ``HWRecommendation``: one daemon per object runs
  its reconcile pass in a worker thread, then sleeps until something it
  depends on changes (:class:`~hwmatch.controller.signals.Signals`) or the
  resync interval passes. Nothing polls in a tight loop: a sweep wakes on its
  Jobs' watch events (and every 10 s while trials run, for unschedulable
  pods), a recommendation when its sweep records results (and every 10 s
  while its verification runs).
- ``Job`` (labelled by hwmatch): a watch event wakes the Job's sweep, or for a
  verification run (``spec.verify``) its recommendation.

kopf keeps no state in the objects beyond its finalizer
(``hwmatch.dev/operator``, so daemons stop before an object goes); all
progress lives in the objects' statuses, which is why a restarted operator
carries on where the last one stopped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

import kopf

from hwmatch.api import GROUP, VERSION
from hwmatch.api.vocabulary import LABEL_RECOMMENDATION, LABEL_SWEEP
from hwmatch.controller import metrics
from hwmatch.controller.context import Context
from hwmatch.controller.kube import ASSETS, RECOMMENDATIONS, SWEEPS
from hwmatch.execution.kubernetes import MANAGED_BY

registry = kopf.OperatorRegistry()
#: Seconds before a pass that raised (an API error) is tried again.
ERROR_BACKOFF = 10.0
#: Seconds a stopping operator lets a reconcile pass in flight finish before cancelling its daemon.
CANCELLATION_BACKOFF = 20.0


def settings() -> kopf.OperatorSettings:
    """kopf's settings: its markers under hwmatch.dev, Events only for warnings of its own."""
    s = kopf.OperatorSettings()
    s.persistence.finalizer = "hwmatch.dev/operator"
    s.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="hwmatch.dev")
    s.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="hwmatch.dev")
    s.posting.level = logging.WARNING  # our own Events go through kopf.event, whatever the level
    return s


@kopf.on.login(registry=registry)
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf's connection from the same credentials as the operator's client (kubeconfig or in-cluster)."""
    cfg = memo.context.connection
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
    scheme, _sep, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=cfg.host, ca_path=cfg.ssl_ca_cert, insecure=not cfg.verify_ssl,
        scheme=scheme or ("Bearer" if token else None), token=token or None,
        certificate_path=cfg.cert_file, private_key_path=cfg.key_file,
    )


async def _loop(ctx: Context, stopped: kopf.DaemonStopped, logger: logging.Logger, kind: str,
                keys: Callable[[], list[tuple[str, ...]]], step: Callable[[], float]) -> None:
    """Reconcile, then wait for a wake-up, the resync or the stop; a pass that raises is retried after a back-off."""

    async def until_stopped() -> None:
        await stopped.wait()

    while not stopped:
        mark = ctx.signals.seen(keys())
        try:
            delay = await asyncio.to_thread(step)
        except Exception:
            metrics.RECONCILE_ERRORS.labels(kind).inc()
            logger.exception(f"reconcile of this {kind} failed; retrying in {ERROR_BACKOFF:g}s")
            delay = ERROR_BACKOFF
        waits = {asyncio.ensure_future(ctx.signals.wait(keys(), mark, delay)), asyncio.ensure_future(until_stopped())}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()


@kopf.on.event(GROUP, VERSION, ASSETS, registry=registry)
async def asset_event(type: str | None, body: kopf.Body, namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    ctx: Context = memo.context
    if type == "DELETED" or await asyncio.to_thread(ctx.assets.reconcile, dict(body)):
        ctx.signals.bump(("asset", namespace, name))


@kopf.daemon(GROUP, VERSION, SWEEPS, registry=registry, cancellation_backoff=CANCELLATION_BACKOFF)
async def sweep_daemon(namespace: str, name: str, spec: kopf.Spec, memo: kopf.Memo, stopped: kopf.DaemonStopped,
                       logger: logging.Logger, **_: Any) -> None:
    ctx: Context = memo.context

    def step() -> float:
        done = ctx.sweeps.reconcile(namespace, name)
        if done.succeeded and done.asset:
            ctx.signals.bump(("trials", namespace, done.asset))
        return done.requeue_after

    await _loop(ctx, stopped, logger, "BenchmarkSweep",
                lambda: [("sweep", namespace, name), ("asset", namespace, spec.get("assetRef", {}).get("name", ""))],
                step)


@kopf.daemon(GROUP, VERSION, RECOMMENDATIONS, registry=registry, cancellation_backoff=CANCELLATION_BACKOFF)
async def recommendation_daemon(namespace: str, name: str, spec: kopf.Spec, memo: kopf.Memo,
                                stopped: kopf.DaemonStopped, logger: logging.Logger, **_: Any) -> None:
    ctx: Context = memo.context

    def keys() -> list[tuple[str, ...]]:
        asset = spec.get("assetRef", {}).get("name", "")
        return [("recommendation", namespace, name), ("asset", namespace, asset), ("trials", namespace, asset)]

    def step() -> float:
        return ctx.recommendations.reconcile(namespace, name)

    await _loop(ctx, stopped, logger, "HWRecommendation", keys, step)


def _spec_changed(meta: kopf.Meta, status: kopf.Status) -> bool:
    return meta.get("generation") != status.get("observedGeneration")


@kopf.on.event(GROUP, VERSION, SWEEPS, registry=registry)
async def sweep_event(type: str | None, namespace: str, name: str, meta: kopf.Meta, status: kopf.Status,
                      memo: kopf.Memo, **_: Any) -> None:
    if type != "DELETED" and _spec_changed(meta, status):
        memo.context.signals.bump(("sweep", namespace, name))


@kopf.on.event(GROUP, VERSION, RECOMMENDATIONS, registry=registry)
async def recommendation_event(type: str | None, namespace: str, name: str, meta: kopf.Meta, status: kopf.Status,
                               memo: kopf.Memo, **_: Any) -> None:
    if type != "DELETED" and _spec_changed(meta, status):
        memo.context.signals.bump(("recommendation", namespace, name))


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_SWEEP: kopf.PRESENT, **MANAGED_BY}, registry=registry)
async def job_event(namespace: str, labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
    if LABEL_RECOMMENDATION in labels:  # a verification run (spec.verify): its recommendation follows it
        memo.context.signals.bump(("recommendation", namespace, labels[LABEL_RECOMMENDATION]))
    else:
        memo.context.signals.bump(("sweep", namespace, labels[LABEL_SWEEP]))
