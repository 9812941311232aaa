"""``hwmatch operator``: run the Kubernetes operator (kopf) against the cluster of the kubeconfig or pod."""

from __future__ import annotations

import logging
from enum import Enum
from typing import Optional

import typer

from hwmatch.api.errors import InputError
from hwmatch.cli.app import command, fail
from hwmatch.controller.config import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_RESYNC,
    DEFAULT_SCRAPE_INTERVAL,
    DEFAULT_UNSCHEDULABLE_TIMEOUT,
    PROMQL_TENANCIES,
    SYSTEM_NAMESPACES,
)


class Tenancy(str, Enum):
    """``--promql-tenancy``: what an asset's own PromQL query may read."""

    cluster = "cluster"
    namespace = "namespace"


assert tuple(t.value for t in Tenancy) == PROMQL_TENANCIES, "Tenancy follows hwmatch.controller.config"


@command("operator")
def operator_command(
    namespace: list[str] = typer.Option([], "--namespace", "-n", metavar="NS", help="A namespace to watch (repeatable)."),
    all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A", help="Watch every namespace."),
    deny_namespace: list[str] = typer.Option(
        [], "--deny-namespace", metavar="NS",
        help=f"Never run trials in NS (repeatable); {', '.join(SYSTEM_NAMESPACES)} are always denied."),
    prometheus_url: Optional[str] = typer.Option(
        None, "--prometheus-url", envvar="HWMATCH_PROMETHEUS_URL",
        help="Prometheus to read `source: prometheus` metrics from (without it they are reported missing)."),
    scrape_interval: float = typer.Option(
        DEFAULT_SCRAPE_INTERVAL, "--scrape-interval", metavar="SECONDS",
        help="Prometheus's scrape interval: a trial's window is rounded up to it, and read one interval after its end."),
    promql_tenancy: Tenancy = typer.Option(
        Tenancy.cluster, "--promql-tenancy", case_sensitive=False,
        help="What an asset's own PromQL query may read: cluster (any series), or namespace (presets, and queries "
             "whose every selector has namespace=\"{namespace}\"; others are reported missing)."),
    metrics_port: int = typer.Option(9090, "--metrics-port", help="Port of the operator's own /metrics."),
    liveness_port: int = typer.Option(8080, "--liveness-port", help="Port of the liveness probe /healthz."),
    unschedulable_timeout: float = typer.Option(
        DEFAULT_UNSCHEDULABLE_TIMEOUT, "--unschedulable-timeout", metavar="SECONDS",
        help="A trial whose pod no node takes for this long fails with reason Unschedulable."),
    resync: float = typer.Option(DEFAULT_RESYNC, "--resync", metavar="SECONDS",
                                 help="Reconcile each sweep and recommendation at least this often."),
    leader_elect: bool = typer.Option(
        False, "--leader-elect",
        help="Run as one of several replicas: reconcile only while holding a coordination.k8s.io Lease, stand by "
             "(serving /metrics and /healthz) otherwise."),
    lease_name: str = typer.Option("hwmatch-operator", "--lease-name", help="The leader-election Lease's name."),
    lease_namespace: Optional[str] = typer.Option(
        None, "--lease-namespace", metavar="NS", envvar="HWMATCH_LEASE_NAMESPACE",
        help="The Lease's namespace (default: the pod's own)."),
    lease_duration: float = typer.Option(
        DEFAULT_LEASE_DURATION, "--lease-duration", metavar="SECONDS",
        help="A Lease not renewed for this long is taken over by a standby (renewed every 2/15 of it)."),
    solver_processes: int = typer.Option(
        1, "--solver-processes", min=0, metavar="N",
        help="Worker processes that solve recommendations (read the trials, learn, optimise), so a solve neither "
             "holds up the control loops nor grows the operator's memory; 0 solves in the operator's own process."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging (kopf's and hwmatch's)."),
) -> None:
    """Run the operator: reconcile AIAssets, BenchmarkSweeps (trials as Jobs) and HWRecommendations.

    Credentials: in a pod, its service account; elsewhere $KUBECONFIG or ~/.kube/config.
    Stop with Ctrl-C (SIGINT) or SIGTERM; a restarted operator carries on where it stopped.
    """
    from kubernetes.config import ConfigException

    from hwmatch.controller.config import LeaseSettings, OperatorConfig
    from hwmatch.controller.leader import LeadershipLost, default_identity, default_namespace
    from hwmatch.controller.runner import run

    try:
        lease = None
        if leader_elect:
            namespace_of_lease = lease_namespace or default_namespace()
            if not namespace_of_lease:
                raise InputError("--leader-elect outside a pod needs --lease-namespace NS (where the Lease lives)")
            lease = LeaseSettings(name=lease_name, namespace=namespace_of_lease, identity=default_identity(),
                                  lease_duration=lease_duration)
        config = OperatorConfig(
            lease=lease,
            namespaces=tuple(namespace), all_namespaces=all_namespaces, prometheus_url=prometheus_url,
            metrics_port=metrics_port, liveness_port=liveness_port,
            unschedulable_timeout=unschedulable_timeout, resync=resync, scrape_interval=scrape_interval,
            denied_namespaces=tuple(deny_namespace),
            promql_tenancy=promql_tenancy.value, solver_processes=solver_processes,
        )
    except InputError as exc:
        raise fail(str(exc)) from None
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:  # kopf says "Handler ... succeeded" for every watch event
        for name in ("kopf.objects", "kubernetes", "aiohttp"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        run(config)
    except LeadershipLost as exc:  # exit, to be restarted as a standby (as controller-runtime's managers do)
        raise fail(str(exc)) from None
    except ConfigException as exc:
        raise fail(f"no credentials for the API server: {exc}; set KUBECONFIG, or run in a pod") from None
