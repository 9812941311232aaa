"""Running the operator: connect, serve its metrics, and hand the handlers to kopf until stopped.

With leader election (``OperatorConfig.lease``, the chart's default) the process first waits as a standby
for the Lease (:mod:`~hwmatch.controller.leader`), serving its /metrics and a /healthz of its own, so a
standby replica is live and Ready; kopf starts only once the Lease is held, and stops when it is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import aiohttp.web
import kopf
from kubernetes import client

from hwmatch.controller import metrics
from hwmatch.controller.config import OperatorConfig
from hwmatch.controller.context import Context
from hwmatch.controller.handlers import registry, settings
from hwmatch.controller.leader import LeaderElector, until_set

#: Threads for reconcile passes (one per sweep or recommendation while it reconciles).
PASS_THREADS = 32


async def _standby_health(port: int) -> aiohttp.web.AppRunner:
    """/healthz while waiting for the Lease: 200 (a standby is healthy and Ready); kopf serves it once leading."""
    async def healthz(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"leader": False, "standby": True})

    app = aiohttp.web.Application()
    app.add_routes([aiohttp.web.get("/healthz", healthz)])
    runner = aiohttp.web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, "0.0.0.0", port).start()
    return runner


def _stop_on_signals(stopping: asyncio.Event) -> Callable[[], None]:
    """While standing by (kopf, which handles SIGINT/SIGTERM itself, has not started): a signal ends the wait, so a
    standby stops with status 0 rather than a traceback. Only in the main thread (``hwmatch operator``); returns
    the undo, called before kopf installs its own."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)

    def undo() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    return undo


async def _kopf(config: OperatorConfig, ctx: Context, stop_flag: threading.Event | asyncio.Event | None,
                ready_flag: threading.Event | asyncio.Event | None) -> None:
    await kopf.operator(
        registry=registry, settings=settings(), memo=kopf.Memo(context=ctx), standalone=True,
        clusterwide=config.all_namespaces, namespaces=list(config.namespaces),
        liveness_endpoint=f"http://0.0.0.0:{config.liveness_port}/healthz" if config.liveness_port else None,
        stop_flag=stop_flag, ready_flag=ready_flag,
    )


async def _lead(config: OperatorConfig, ctx: Context, stop_flag: threading.Event | asyncio.Event | None,
                ready_flag: threading.Event | asyncio.Event | None) -> None:
    """Stand by until the Lease is ours, then run kopf while renewing it.

    Raises :class:`~hwmatch.controller.leader.LeadershipLost` when the Lease lapses or another replica holds it.
    """
    assert config.lease is not None
    elector = LeaderElector(client.CoordinationV1Api(ctx.kube.api_client), config.lease)
    stopping = asyncio.Event()  # the caller's stop, or the lost Lease: kopf stops on it
    watcher = asyncio.ensure_future(until_set(stop_flag, stopping))
    health = await _standby_health(config.liveness_port) if config.liveness_port else None
    undo_signals = _stop_on_signals(stopping)
    try:
        try:
            acquired = await elector.acquire(stopping)
        finally:
            undo_signals()
            if health is not None:
                await health.cleanup()
        if not acquired:
            return
        metrics.LEADER.set(1)
        holder = asyncio.ensure_future(elector.hold(stopping))
        operator = asyncio.ensure_future(_kopf(config, ctx, stopping, ready_flag))
        await asyncio.wait({holder, operator}, return_when=asyncio.FIRST_COMPLETED)
        stopping.set()  # the Lease lapsed (kopf stops), or kopf ended (a signal): stop renewing
        await asyncio.gather(operator, return_exceptions=True)
        lost = holder.exception() if holder.done() else None  # LeadershipLost (or a bug: surfaced, not swallowed)
        if lost is not None:
            raise lost
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
        operator.result()
    finally:
        metrics.LEADER.set(0)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await asyncio.to_thread(elector.release)


async def operate(config: OperatorConfig, stop_flag: threading.Event | asyncio.Event | None = None,
                  ready_flag: threading.Event | asyncio.Event | None = None) -> None:
    """Run the operator in the current event loop until ``stop_flag`` is set (or it is cancelled / signalled).

    Raises :class:`~hwmatch.controller.leader.LeadershipLost` when, with leader election, the Lease lapses.
    """
    loop = asyncio.get_running_loop()
    # Each sweep's and recommendation's pass runs in the loop's default executor (asyncio.to_thread), and a pass
    # mostly waits on the API server: the default of cores + 4 threads would queue the loops of a dozen sweeps.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=PASS_THREADS, thread_name_prefix="hwmatch-pass"))
    ctx = Context.build(config, loop)
    server = metrics.serve(config.metrics_port) if config.metrics_port is not None else None
    try:
        if config.lease is None:
            metrics.LEADER.set(1)
            await _kopf(config, ctx, stop_flag, ready_flag)
        else:
            await _lead(config, ctx, stop_flag, ready_flag)
    finally:
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
        ctx.close()


def run(config: OperatorConfig, stop_flag: threading.Event | None = None, ready_flag: threading.Event | None = None) -> None:
    """Run the operator in a new event loop (this thread) until stopped: ``hwmatch operator``, or a test's thread."""
    asyncio.run(operate(config, stop_flag, ready_flag))
