"""The operator's own Prometheus metrics (``hwmatch_*``), served on ``--metrics-port``.

Named by the Prometheus conventions: counters end in ``_total``, durations are
``_seconds`` histograms, labels are low-cardinality (namespace, sweep,
platform, outcome — never a trial name). They live in prometheus-client's
default registry, as an exporter's metrics do.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

TRIALS = Counter(
    "hwmatch_trials_total", "Trials that ended, by outcome (status Succeeded or Failed, reason of a failure).",
    ["namespace", "sweep", "platform", "status", "reason"],
)
JOBS_CREATED = Counter("hwmatch_jobs_created_total", "Jobs created for trials.", ["namespace", "sweep", "platform"])
TRIAL_SECONDS = Histogram(
    "hwmatch_trial_duration_seconds", "Run time of ended trials (the container's start to its end).", ["platform"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
SWEEP_TRIALS = Gauge("hwmatch_sweep_trials", "Trials of a sweep by phase, as of its last reconcile.",
                     ["namespace", "sweep", "phase"])
SWEEP_STALLED = Gauge("hwmatch_sweep_stalled", "1 while a sweep is Stalled (it progresses only once its spec or asset "
                      "changes), else 0.", ["namespace", "sweep"])
SOLVE_SECONDS = Histogram(
    "hwmatch_recommendation_solve_seconds", "Time to answer a HWRecommendation: train or reuse surrogates, solve.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
SOLVES = Counter("hwmatch_recommendation_solves_total", "Recommendations answered, by resulting phase.",
                 ["namespace", "phase"])
RECONCILE_SECONDS = Histogram("hwmatch_reconcile_seconds", "Duration of one reconcile pass, by kind.", ["kind"])
#: 1 in the replica that holds the leader-election Lease (or runs without election), 0 in a standby.
LEADER = Gauge("hwmatch_leader", "1 while this replica reconciles (holds the leader-election Lease), 0 on standby.")
KUBE_REQUESTS = Counter("hwmatch_kube_requests_total", "Requests of the operator's Kubernetes client (its watches "
                        "and Events are kopf's), by verb and resource.", ["verb", "resource"])
EVENTS = Counter("hwmatch_events_total", "Kubernetes Events the operator posted, by type and reason.",
                 ["type", "reason"])
RECONCILE_ERRORS = Counter("hwmatch_reconcile_errors_total", "Reconcile passes that raised (retried after a back-off).",
                           ["kind"])


def serve(port: int) -> object:
    """Start the /metrics HTTP server on ``port`` (all interfaces); returns the server, to ``shutdown()``."""
    server, _thread = start_http_server(port)
    return server
