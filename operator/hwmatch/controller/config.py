"""What the operator is told at start: where to watch, where it never runs trials, where Prometheus is and what a
user's PromQL may read, its own ports and timeouts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from hwmatch.api.errors import InputError

#: Seconds a trial's pod may stay unschedulable before the trial fails with reason Unschedulable.
DEFAULT_UNSCHEDULABLE_TIMEOUT = 300.0
#: Seconds between reconciles of an object when no event arrives (controller-runtime's "resync").
DEFAULT_RESYNC = 30.0
#: Seconds a leader-election Lease not renewed stays held (client-go's default, and kube-controller-manager's).
DEFAULT_LEASE_DURATION = 15.0
#: Prometheus's usual scrape interval (its default is 1 min; most installations, and the DCGM exporter's, use 15 s).
DEFAULT_SCRAPE_INTERVAL = 15.0
#: The cluster's own namespaces. A trial is a Job whose image, command and placement the sweep's author chooses;
#: in kube-system it would run beside the control plane's components (and often outside the Pod Security level
#: the tenants' namespaces enforce). No benchmark belongs there, so the operator never runs one in these,
#: whatever its other settings: ``denied_namespaces`` always includes them.
SYSTEM_NAMESPACES: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease")

#: What a ``source: prometheus`` metric's own ``query`` may read: ``cluster``, any series Prometheus holds (the
#: operator's identity, not the asset author's, asks); ``namespace``, only series of the trial's namespace
#: (presets, and queries whose every vector selector matches the namespace: see
#: :func:`hwmatch.telemetry.promql.namespace_confinement`).
PromqlTenancy = Literal["cluster", "namespace"]
PROMQL_TENANCIES: tuple[str, ...] = get_args(PromqlTenancy)


@dataclass(frozen=True)
class LeaseSettings:
    """Where the Lease is and how long it lasts; ``renew_deadline`` and ``retry_period`` follow ``lease_duration``
    in client-go's default proportions (15 s / 10 s / 2 s)."""

    name: str
    namespace: str
    identity: str
    lease_duration: float = DEFAULT_LEASE_DURATION

    def __post_init__(self) -> None:
        if self.lease_duration < 2:
            raise InputError(f"--lease-duration must be at least 2 seconds, not {self.lease_duration:g}")
        if not self.name or not self.namespace:
            raise InputError("leader election needs a Lease name and namespace (--lease-name, --lease-namespace)")

    @property
    def renew_deadline(self) -> float:
        return self.lease_duration * 2 / 3

    @property
    def retry_period(self) -> float:
        return self.lease_duration * 2 / 15


@dataclass(frozen=True)
class OperatorConfig:
    """The operator's settings (the flags of ``hwmatch operator``).

    ``metrics_port`` / ``liveness_port`` of None start no server (tests
    running several operators in one process). ``kubeconfig`` None means
    in-cluster credentials when in a pod, else ``$KUBECONFIG`` or
    ``~/.kube/config``.
    """

    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    prometheus_url: str | None = None
    metrics_port: int | None = 9090
    liveness_port: int | None = 8080
    kubeconfig: str | None = None
    unschedulable_timeout: float = DEFAULT_UNSCHEDULABLE_TIMEOUT
    resync: float = DEFAULT_RESYNC
    #: Prometheus's scrape interval: a trial's window is rounded up to it, and metrics are read one interval after the end.
    scrape_interval: float = DEFAULT_SCRAPE_INTERVAL
    #: Namespaces whose sweeps run no trial (a sweep there is refused: :func:`namespace_refusal`). Always holds
    #: :data:`SYSTEM_NAMESPACES`; whatever is given here is added to them.
    denied_namespaces: tuple[str, ...] = SYSTEM_NAMESPACES
    #: What a user's PromQL may read (:data:`PromqlTenancy`).
    promql_tenancy: PromqlTenancy = "cluster"
    #: Leader election among replicas (``--leader-elect``): the Lease to hold before reconciling; None runs at once.
    lease: LeaseSettings | None = None
    #: Worker processes that solve recommendations (:class:`~hwmatch.controller.solver.ProcessSolver`); 0: inline.
    solver_processes: int = 1

    def __post_init__(self) -> None:
        if bool(self.namespaces) == self.all_namespaces:
            raise InputError("give the namespaces to watch (--namespace NS, repeatable) or --all-namespaces, not both")
        if self.unschedulable_timeout <= 0 or self.resync <= 0 or self.scrape_interval <= 0:
            raise InputError("unschedulable timeout, resync and scrape interval must be > 0 seconds")
        if self.solver_processes < 0:
            raise InputError(f"--solver-processes must be 0 or more, not {self.solver_processes}")
        if self.promql_tenancy not in PROMQL_TENANCIES:
            raise InputError(f"--promql-tenancy must be one of {', '.join(PROMQL_TENANCIES)}, "
                             f"not {self.promql_tenancy!r}")
        from hwmatch.api.base import check_dns_label  # the models' module: `hwmatch --help` reads this one (issue 14)

        for name in self.denied_namespaces:
            try:
                check_dns_label(name, "--deny-namespace")
            except ValueError as exc:
                raise InputError(str(exc)) from None
        denied = tuple(dict.fromkeys((*SYSTEM_NAMESPACES, *self.denied_namespaces)))
        object.__setattr__(self, "denied_namespaces", denied)  # frozen: the one normalisation, at construction
        watched_denied = [ns for ns in self.namespaces if ns in denied]
        if watched_denied:
            raise InputError(
                f"--namespace {', '.join(watched_denied)}: the operator never runs trials there "
                f"(denied: {', '.join(denied)}); watch the namespaces where your sweeps are instead")


def namespace_refusal(config: OperatorConfig, namespace: str) -> str | None:
    """Why no trial of a sweep in ``namespace`` may run, or None when it may.

    A pure check for the sweep reconciler, before it creates any trial or Job: with ``--all-namespaces`` (the
    chart's default) the operator's RBAC lets it create Jobs in every namespace, kube-system included, and the
    Jobs carry the image, command and placement of whoever wrote the sweep and its asset. The message names the
    namespace, why, and what to do.
    """
    if namespace not in config.denied_namespaces:
        return None
    system = namespace in SYSTEM_NAMESPACES
    why = ("it is one of the cluster's system namespaces" if system
           else "the operator's --deny-namespace (chart value operator.deniedNamespaces) names it")
    fix = "" if system else ", or remove it from --deny-namespace"
    return (f"trials never run in namespace {namespace}: {why} ({', '.join(config.denied_namespaces)} are denied); "
            f"create the AIAsset and the BenchmarkSweep in a namespace of your own{fix}")
