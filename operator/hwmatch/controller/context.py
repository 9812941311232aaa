"""Everything the handlers share in one operator process (kopf's ``memo.context``)."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any, Mapping, cast

import kopf
from kubernetes import client

from hwmatch.controller import metrics
from hwmatch.controller.assets import AssetReconciler
from hwmatch.controller.config import OperatorConfig, namespace_refusal
from hwmatch.controller.kube import CountingApiClient, Kube, load_configuration
from hwmatch.controller.recommendations import RecommendationReconciler
from hwmatch.controller.signals import Signals
from hwmatch.controller.solver import InlineSolver, ProcessSolver, Solver
from hwmatch.controller.sweeps import SweepReconciler
from hwmatch.controller.telemetry import TrialTelemetry
from hwmatch.controller.workers import Workers

#: Kubernetes caps an Event's message; keep well under it.
EVENT_MESSAGE_LIMIT = 1000


def emit(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Post a Kubernetes Event on ``body`` through kopf (queued; safe from worker threads)."""
    if len(message) > EVENT_MESSAGE_LIMIT:
        message = message[: EVENT_MESSAGE_LIMIT - 1] + "…"
    metrics.EVENTS.labels(type_, reason).inc()
    kopf.event(cast(kopf.Body, dict(body)), type=type_, reason=reason, message=message)  # kopf takes any mapping


@dataclass
class Context:
    config: OperatorConfig
    connection: client.Configuration
    kube: Kube
    signals: Signals
    assets: AssetReconciler
    sweeps: SweepReconciler
    recommendations: RecommendationReconciler
    workers: Workers
    solver: Solver

    @classmethod
    def build(cls, config: OperatorConfig, loop: asyncio.AbstractEventLoop) -> "Context":
        """Connect to the API server (and Prometheus, when configured) and make the reconcilers."""
        connection = load_configuration(config.kubeconfig)
        kube = Kube(CountingApiClient(connection))
        prometheus = None
        if config.prometheus_url:
            from hwmatch.telemetry import PrometheusClient

            prometheus = PrometheusClient(config.prometheus_url)
        telemetry = TrialTelemetry(prometheus, config.scrape_interval, tenancy=config.promql_tenancy)
        refusal = functools.partial(namespace_refusal, config)
        solver = (ProcessSolver(config.kubeconfig, config.solver_processes) if config.solver_processes
                  else InlineSolver(kube))
        return cls(
            config=config, connection=connection, kube=kube, signals=Signals(loop),
            assets=AssetReconciler(kube, emit, prometheus=prometheus is not None),
            sweeps=SweepReconciler(kube, emit, telemetry, config.unschedulable_timeout, config.resync, refusal=refusal),
            recommendations=RecommendationReconciler(kube, emit, telemetry, config.unschedulable_timeout, config.resync,
                                                     refusal=refusal, solver=solver),
            workers=Workers(), solver=solver,
        )

    def close(self) -> None:
        if isinstance(self.solver, ProcessSolver):
            self.solver.close()
        self.kube.api_client.close()
