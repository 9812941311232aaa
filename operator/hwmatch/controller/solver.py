"""A recommendation's solve, in a worker process: read the asset's trials, learn, optimise.

The control loops and the solve want different things from a process. The
loops are many short passes that must answer within a second and hold
little; a solve reads every trial of an asset (10,000 objects are about 30 MB
of JSON), trains surrogates with scikit-learn and solves with OR-Tools, for
seconds, holding hundreds of megabytes while it does. In the operator's own
process the solve would hold the interpreter's lock the sweeps' passes wait
for, and its peak would be the operator's. So :class:`ProcessSolver` runs it
in one spawned worker process that lives as long as the operator: the worker
has its own API client (the operator's credentials) to list the trials, and
keeps the surrogates' cache between solves, so a re-solve after a few new
trials refits only what changed. The worker reads; every write (status,
annotation, Events, verification Jobs) stays with the reconciler in the
operator (:mod:`~hwmatch.controller.recommendations`). pandas, scikit-learn
and OR-Tools are imported where a solve runs: the operator's own process
never loads them (pandas alone is some 70 MB of its memory) unless it solves
inline or plans an adaptive sweep's next round.

:func:`solve` is the whole computation; :class:`InlineSolver` runs it in the
calling thread (the unit tests, and ``--solver-processes 0``).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import multiprocessing
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, Sequence

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrial, HWRecommendation
from hwmatch.api.vocabulary import LABEL_ASSET, canonical
from hwmatch.controller.kube import ASSETS, SWEEPS, TRIALS, CountingApiClient, Kube, load_configuration
from hwmatch.controller.objects import InvalidObject, parse

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class SolveRequest:
    """What a solve needs from the reconciler's pass (wire dicts: they cross a process boundary)."""

    namespace: str
    recommendation: dict[str, Any]  # with the judged verification, if any
    asset: dict[str, Any]
    sweeps: list[dict[str, Any]]
    solved_for: str | None  # the fingerprint of the last answer (annotation hwmatch.dev/solved-for)
    has_answer: bool
    seed: int = 0


@dataclass
class SolveAnswer:
    """``unchanged``: the inputs are those of the last answer; ``waiting``: no succeeded trial yet; ``invalid``:
    a prior asset's objects cannot be read; ``solved``: ``status`` is the new answer."""

    outcome: Literal["unchanged", "waiting", "invalid", "solved"]
    key: str = ""
    status: dict[str, Any] | None = None
    message: str = ""
    seconds: float = 0.0
    trials: int = 0  # succeeded trials of the asset the answer learnt from
    requests: dict[tuple[str, str], float] = field(default_factory=dict)  # the worker's API requests, by verb, resource


class Solver(Protocol):
    def __call__(self, request: SolveRequest) -> SolveAnswer: ...


def solve(kube: Kube, request: SolveRequest) -> SolveAnswer:
    """Read the asset's trials (and ``spec.priorFrom``'s), fingerprint them, and answer if that is new."""
    from hwmatch.data.cluster import TrialObjects  # pandas, scikit-learn and OR-Tools: loaded where solves run
    from hwmatch.data.frame import succeeded
    from hwmatch.engine import answer

    ns = request.namespace
    asset = AIAsset.model_validate(request.asset)
    sweeps = [BenchmarkSweep.model_validate(s) for s in request.sweeps]
    rec = HWRecommendation.model_validate(request.recommendation)
    trials = [BenchmarkTrial.model_validate(o) for o in kube.list(TRIALS, ns, {LABEL_ASSET: asset.metadata.name})]
    wanted = [r.name for r in rec.spec.sweep_refs]
    known = {s.metadata.name for s in sweeps}
    data = TrialObjects(asset, sweeps, trials)
    rows = succeeded(data.frame(wanted))
    try:
        priors = {r.name: _prior(kube, ns, r.name) for r in asset.spec.prior_from}
    except InvalidObject as exc:
        return SolveAnswer("invalid", message=str(exc))
    key = fingerprint(rec, [s for s in sweeps if not wanted or s.metadata.name in wanted], rows,
                      [succeeded(f) for f in priors.values() if f is not None])
    if request.solved_for == key and request.has_answer:
        return SolveAnswer("unchanged", key=key, trials=len(rows))
    if rows.empty and all(w in known for w in wanted):
        scope = ", ".join(wanted or sorted(known)) or "none yet"
        return SolveAnswer("waiting", key=key,
                           message=f"no succeeded trials of AIAsset {asset.metadata.name} yet (sweeps: {scope})")
    started = time.perf_counter()
    solved = answer(rec, asset, sweeps, data.frame, seed=request.seed, where=f"in namespace {ns}", prior=priors.get)
    assert solved.status is not None
    return SolveAnswer("solved", key=key, status=solved.status.to_wire(), seconds=time.perf_counter() - started,
                       trials=len(rows))


def _prior(kube: Kube, ns: str, name: str) -> "pd.DataFrame | None":
    """The dataset of another asset's trials in ``ns`` (``spec.priorFrom``), as its own recommendations see it;
    None when there is no such AIAsset."""
    from hwmatch.data.cluster import TrialObjects

    other = kube.get(ASSETS, ns, name)
    if other is None:
        return None
    asset = parse(other, AIAsset)
    sweeps = [parse(o, BenchmarkSweep) for o in kube.list(SWEEPS, ns)
              if o.get("spec", {}).get("assetRef", {}).get("name") == name]
    trials = [BenchmarkTrial.model_validate(o) for o in kube.list(TRIALS, ns, {LABEL_ASSET: name})]
    return TrialObjects(asset, sweeps, trials).frame()


def fingerprint(rec: HWRecommendation, sweeps: list[BenchmarkSweep], rows: "pd.DataFrame",
                priors: "Sequence[pd.DataFrame]" = ()) -> str:
    """What an answer depends on: the spec's generation, the sweeps' platforms, the succeeded trials' rows,
    and those of the assets ``spec.priorFrom`` names.

    Failed trials are left out: they change no model, so they trigger no re-solve.
    """
    import pandas as pd

    h = hashlib.sha256(canonical([rec.metadata.generation, [[p.to_wire() for p in s.spec.platforms] for s in sweeps]]).encode())
    for frame in (rows, *priors):
        h.update(pd.util.hash_pandas_object(frame.sort_values("trial_id"), index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


class InlineSolver:
    """:func:`solve` in the calling thread, with the operator's own client."""

    def __init__(self, kube: Kube):
        self.kube = kube

    def __call__(self, request: SolveRequest) -> SolveAnswer:
        return solve(self.kube, request)


# -- the worker process --------------------------------------------------------------------------------

_WORKER_KUBE: Kube | None = None


#: prctl(2)'s PR_SET_PDEATHSIG: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def _start_worker(kubeconfig: str | None) -> None:
    """The worker's API client; on Linux, the worker is killed with the operator (even by a SIGKILL)."""
    global _WORKER_KUBE
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    _WORKER_KUBE = Kube(CountingApiClient(load_configuration(kubeconfig)))


def _solve_in_worker(request: SolveRequest) -> SolveAnswer:
    from hwmatch.controller import metrics

    assert _WORKER_KUBE is not None, "the worker's initializer did not run"
    before = _requests(metrics.KUBE_REQUESTS)
    out = solve(_WORKER_KUBE, request)
    after = _requests(metrics.KUBE_REQUESTS)
    out.requests = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    return out


def _requests(counter: Any) -> dict[tuple[str, str], float]:
    return {(s.labels["verb"], s.labels["resource"]): s.value
            for m in counter.collect() for s in m.samples if s.name.endswith("_total")}


class ProcessSolver:
    """:func:`solve` in ``processes`` spawned worker processes (see the module docstring).

    The worker's API requests are added to the operator's
    ``hwmatch_kube_requests_total``, so that metric counts them all. A worker
    that died (killed for memory, say) is replaced on the next solve.
    """

    def __init__(self, kubeconfig: str | None, processes: int = 1):
        self.kubeconfig, self.processes = kubeconfig, processes
        self.pool = self._pool()

    def _pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(self.kubeconfig,))

    def __call__(self, request: SolveRequest) -> SolveAnswer:
        from concurrent.futures.process import BrokenProcessPool

        from hwmatch.controller import metrics

        try:
            out = self.pool.submit(_solve_in_worker, request).result()
        except BrokenProcessPool:
            self.pool = self._pool()
            raise
        for (verb, resource), n in out.requests.items():
            metrics.KUBE_REQUESTS.labels(verb, resource).inc(n)
        return out

    def close(self) -> None:
        """Stop the workers now: a solve in flight is dropped (its answer would be written by no one; the next
        operator solves again from the objects). A shutdown alone lets a worker finish its solve first, which
        can take longer than a stopping operator (or a replica that lost its Lease) should wait."""
        workers = list(self.pool._processes.values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join(5)
