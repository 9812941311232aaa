"""The kopf handlers: thin adapters from watch events to the reconcilers.

- ``AIAsset``: every watch event re-validates it (Ready condition); a new
  generation wakes the sweeps and recommendations of that asset.
- ``BenchmarkSweep`` and ``HWRecommendation``: one loop per object
  (:class:`~hwmatch.controller.workers.Workers`, started by its watch events,
  stopped by its deletion) runs its reconcile pass in a worker thread, then sleeps until something it
  depends on changes (:class:`~hwmatch.controller.signals.Signals`) or the
  resync interval passes. Nothing polls in a tight loop: a sweep wakes on its
  Jobs' watch events (and every 10 s while trials run, for unschedulable
  pods), a recommendation when its sweep records results (and every 10 s
  while its verification runs), resting after a solve as long as the solve
  took, so that a sweep's stream of results costs at most half a core of
  solving (the last results are solved for at most one solve's time later).
- ``Job`` (labelled by hwmatch): a watch event wakes the Job's sweep, or for a
  verification run (``spec.verify``) its recommendation.

kopf keeps no state in the objects and puts no finalizer on them (only
event handlers: an object can be deleted while the operator is down); all
progress lives in the objects' statuses, which is why a restarted operator
carries on where the last one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Callable

import kopf

from hwmatch.api import GROUP, VERSION
from hwmatch.api.vocabulary import LABEL_RECOMMENDATION, LABEL_SWEEP
from hwmatch.controller import metrics
from hwmatch.controller.context import Context
from hwmatch.controller.kube import ASSETS, RECOMMENDATIONS, SWEEPS
from hwmatch.controller.workers import Loop
from hwmatch.execution.kubernetes import MANAGED_BY

registry = kopf.OperatorRegistry()
#: The finalizer earlier versions of the operator (kopf daemons) put on objects; kopf takes it off them.
LEGACY_FINALIZER = "hwmatch.dev/operator"
#: Seconds before a pass that raised (an API error) is tried again.
ERROR_BACKOFF = 10.0
#: Seconds a stopping operator lets a reconcile pass in flight finish before cancelling its loop.
STOP_GRACE = 20.0


def settings() -> kopf.OperatorSettings:
    """kopf's settings: Events only for warnings of its own, and the finalizer earlier versions put on objects.

    No handler here needs a finalizer (see :mod:`~hwmatch.controller.workers`),
    and kopf removes the one it is told is its own from any object that
    carries it: sweeps and recommendations made under an earlier operator
    lose ``hwmatch.dev/operator`` on their first event.
    """
    s = kopf.OperatorSettings()
    s.persistence.finalizer = LEGACY_FINALIZER
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


async def _loop(ctx: Context, stopped: asyncio.Event, logger: logging.Logger, kind: str,
                keys: Callable[[], list[tuple[str, ...]]], step: Callable[[], float],
                pause: Callable[[], float] = lambda: 0.0) -> None:
    """Reconcile, then wait for a wake-up, the resync or the stop; a pass that raises is retried after a back-off.

    ``pause()``: seconds to rest after a pass before a wake-up counts (what
    woke it meanwhile is kept, and runs the pass after the rest).
    """
    while not stopped.is_set():
        mark = ctx.signals.seen(keys())
        try:
            delay = await asyncio.to_thread(step)
        except Exception:
            metrics.RECONCILE_ERRORS.labels(kind).inc()
            logger.exception(f"reconcile of this {kind} failed; retrying in {ERROR_BACKOFF:g}s")
            delay = ERROR_BACKOFF
        rest = pause()
        if rest > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopped.wait(), rest)
            delay = max(0.0, delay - rest)
        waits = {asyncio.ensure_future(ctx.signals.wait(keys(), mark, delay)), asyncio.ensure_future(stopped.wait())}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()


@kopf.on.event(GROUP, VERSION, ASSETS, registry=registry)
async def asset_event(type: str | None, body: kopf.Body, namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    ctx: Context = memo.context
    if type == "DELETED" or await asyncio.to_thread(ctx.assets.reconcile, dict(body)):
        ctx.signals.bump(("asset", namespace, name))


def _asset_of(ctx: Context, key: tuple[str, str, str]) -> str:
    """The asset a sweep or a recommendation names now (its latest watch event's)."""
    return str(ctx.workers.body(key).get("spec", {}).get("assetRef", {}).get("name", ""))


def _follow(ctx: Context, key: tuple[str, str, str], type: str | None, body: kopf.Body, loop: Loop) -> bool:
    """Start the object's loop, or stop it when the object goes; True while it lives."""
    if type == "DELETED" or body.get("metadata", {}).get("deletionTimestamp"):
        ctx.workers.stop(key)
        return False
    ctx.workers.ensure(key, loop, body)
    return True


@kopf.on.event(GROUP, VERSION, SWEEPS, registry=registry)
async def sweep_event(type: str | None, body: kopf.Body, namespace: str, name: str, meta: kopf.Meta,
                      status: kopf.Status, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    ctx: Context = memo.context
    key = ("sweep", namespace, name)

    def step() -> float:
        done = ctx.sweeps.reconcile(namespace, name)
        if done.succeeded and done.asset:
            ctx.signals.bump(("trials", namespace, done.asset))
        return done.requeue_after

    async def loop(stopped: asyncio.Event) -> None:
        await _loop(ctx, stopped, logger, "BenchmarkSweep", lambda: [key, ("asset", namespace, _asset_of(ctx, key))],
                    step)

    if _follow(ctx, key, type, body, loop) and _spec_changed(meta, status):
        ctx.signals.bump(key)


@kopf.on.event(GROUP, VERSION, RECOMMENDATIONS, registry=registry)
async def recommendation_event(type: str | None, body: kopf.Body, namespace: str, name: str, meta: kopf.Meta,
                               status: kopf.Status, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    ctx: Context = memo.context
    key = ("recommendation", namespace, name)

    def keys() -> list[tuple[str, ...]]:
        asset = _asset_of(ctx, key)
        return [key, ("asset", namespace, asset), ("trials", namespace, asset)]

    async def loop(stopped: asyncio.Event) -> None:
        await _loop(ctx, stopped, logger, "HWRecommendation", keys, lambda: ctx.recommendations.reconcile(namespace, name),
                    lambda: ctx.recommendations.pause(namespace, name))

    if _follow(ctx, key, type, body, loop) and _spec_changed(meta, status):
        ctx.signals.bump(key)


@kopf.on.cleanup(registry=registry)
async def stop_loops(memo: kopf.Memo, **_: Any) -> None:
    """The operator stops: passes in flight finish (up to :data:`STOP_GRACE` seconds), then the loops end."""
    await memo.context.workers.stop_all(STOP_GRACE)


def _spec_changed(meta: kopf.Meta, status: kopf.Status) -> bool:
    return meta.get("generation") != status.get("observedGeneration")


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_SWEEP: kopf.PRESENT, **MANAGED_BY}, registry=registry)
async def job_event(namespace: str, labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
    if LABEL_RECOMMENDATION in labels:  # a verification run (spec.verify): its recommendation follows it
        memo.context.signals.bump(("recommendation", namespace, labels[LABEL_RECOMMENDATION]))
    else:
        memo.context.signals.bump(("sweep", namespace, labels[LABEL_SWEEP]))
