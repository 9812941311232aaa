"""What the operator is told at start: where to watch, where Prometheus is, its own ports and timeouts."""

from __future__ import annotations

from dataclasses import dataclass

from hwmatch.api.errors import InputError

#: Seconds a trial's pod may stay unschedulable before the trial fails with reason Unschedulable.
DEFAULT_UNSCHEDULABLE_TIMEOUT = 300.0
#: Seconds between reconciles of an object when no event arrives (controller-runtime's "resync").
DEFAULT_RESYNC = 30.0
#: Prometheus's usual scrape interval (its default is 1 min; most installations, and the DCGM exporter's, use 15 s).
DEFAULT_SCRAPE_INTERVAL = 15.0


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

    def __post_init__(self) -> None:
        if bool(self.namespaces) == self.all_namespaces:
            raise InputError("give the namespaces to watch (--namespace NS, repeatable) or --all-namespaces, not both")
        if self.unschedulable_timeout <= 0 or self.resync <= 0 or self.scrape_interval <= 0:
            raise InputError("unschedulable timeout, resync and scrape interval must be > 0 seconds")
