"""Running the operator: connect, serve its metrics, and hand the handlers to kopf until stopped."""

from __future__ import annotations

import asyncio
import threading

import kopf

from hwmatch.controller import metrics
from hwmatch.controller.config import OperatorConfig
from hwmatch.controller.context import Context
from hwmatch.controller.handlers import registry, settings


async def operate(config: OperatorConfig, stop_flag: threading.Event | asyncio.Event | None = None,
                  ready_flag: threading.Event | asyncio.Event | None = None) -> None:
    """Run the operator in the current event loop until ``stop_flag`` is set (or it is cancelled / signalled)."""
    ctx = Context.build(config, asyncio.get_running_loop())
    server = metrics.serve(config.metrics_port) if config.metrics_port is not None else None
    try:
        await kopf.operator(
            registry=registry, settings=settings(), memo=kopf.Memo(context=ctx), standalone=True,
            clusterwide=config.all_namespaces, namespaces=list(config.namespaces),
            liveness_endpoint=f"http://0.0.0.0:{config.liveness_port}/healthz" if config.liveness_port else None,
            stop_flag=stop_flag, ready_flag=ready_flag,
        )
    finally:
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
        ctx.close()


def run(config: OperatorConfig, stop_flag: threading.Event | None = None, ready_flag: threading.Event | None = None) -> None:
    """Run the operator in a new event loop (this thread) until stopped: ``hwmatch operator``, or a test's thread."""
    asyncio.run(operate(config, stop_flag, ready_flag))
