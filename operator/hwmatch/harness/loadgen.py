"""The load generator of serving trials: vegeta (github.com/tsenart/vegeta), run as a process, its JSON report read.

Why vegeta: its attack is *open loop* at a constant rate — requests leave on
schedule whether or not earlier ones were answered (it adds workers as
needed), so a slow server shows its queueing delay instead of slowing the
load down, as a closed loop of N clients would hide it. It is one static Go
binary (``go install`` from the module proxy; ``hack/vegeta.sh``), and its
``report -type=json`` gives the percentiles, the achieved throughput, the
success ratio and the errors in one document (``-type=hist[...]`` gives a
histogram). Its own overhead is measured by ``bench/loadgen_overhead.py``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwmatch.api.asset import OFFERED_RATE_METRIC, ServingRequest
from hwmatch.api.errors import InputError

#: Where a vegeta binary may be named explicitly (``hack/vegeta.sh`` prints the path of the one it builds).
VEGETA_VARIABLE = "HWMATCH_VEGETA"
#: The load Job's request body (an environment variable: the body is sent as written, whatever its characters).
BODY_VARIABLE = "HWMATCH_SERVING_BODY"
#: vegeta's report names for the percentiles a serving trial reports.
_PERCENTILES = {"latency_p50_ms": "50th", "latency_p90_ms": "90th", "latency_p95_ms": "95th", "latency_p99_ms": "99th",
                "latency_mean_ms": "mean", "latency_max_ms": "max"}


class LoadGeneratorMissing(InputError):
    """No vegeta binary: serving trials cannot run here."""


def find_vegeta() -> str:
    """``$HWMATCH_VEGETA``, else ``vegeta`` on PATH; raises :class:`LoadGeneratorMissing` naming both and the fix."""
    named = os.environ.get(VEGETA_VARIABLE)
    if named:
        if not (Path(named).is_file() and os.access(named, os.X_OK)):
            raise LoadGeneratorMissing(f"${VEGETA_VARIABLE} is {named!r}, which is not an executable file; "
                                       "point it at a vegeta binary (bash hack/vegeta.sh builds one and prints its path)")
        return named
    found = shutil.which("vegeta")
    if found is None:
        raise LoadGeneratorMissing(f"serving trials need the load generator vegeta: none on PATH and ${VEGETA_VARIABLE} "
                                   "is not set; run `bash hack/vegeta.sh` (Go toolchain) and set "
                                   f"{VEGETA_VARIABLE} to the path it prints, or install vegeta v12 on PATH")
    return found


@dataclass(frozen=True)
class LoadReport:
    """vegeta's JSON report of one attack: what was offered, what came back, and how long it took."""

    requests: int
    rate: float
    throughput: float
    success: float
    latencies_ms: dict[str, float]
    status_codes: dict[str, int]
    errors: list[str]

    def metrics(self) -> dict[str, float]:
        """The client side of a serving trial: percentiles (ms), achieved and offered rates (1/s), error rate."""
        return {**self.latencies_ms, "throughput_per_s": self.throughput, OFFERED_RATE_METRIC: self.rate,
                "error_rate": 1.0 - self.success}


def parse_report(text: str) -> LoadReport:
    """A ``vegeta report -type=json`` document (latencies in ns) as a :class:`LoadReport`."""
    try:
        doc: dict[str, Any] = json.loads(text)
        latencies = doc["latencies"]
        return LoadReport(
            requests=int(doc["requests"]), rate=float(doc["rate"]), throughput=float(doc["throughput"]),
            success=float(doc["success"]),
            latencies_ms={name: float(latencies[key]) / 1e6 for name, key in _PERCENTILES.items()},
            status_codes={str(k): int(v) for k, v in (doc.get("status_codes") or {}).items()},
            errors=[str(e) for e in doc.get("errors") or []],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a vegeta JSON report ({type(exc).__name__}: {exc}): {text[:200]!r}") from None


def write_targets(directory: Path, url: str, request: ServingRequest) -> Path:
    """vegeta's http target file for ``request`` at ``url`` (the body in a file of its own, sent as written)."""
    lines = [f"{request.method} {url}", f"Content-Type: {request.content_type}"]
    if request.body is not None:
        body = directory / "body"
        body.write_text(request.body, encoding="utf-8")
        lines.append(f"@{body}")
    targets = directory / "targets"
    targets.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return targets


def attack_argv(vegeta: str, targets: Path, rate: float, duration_s: float, timeout_s: float, output: Path) -> list[str]:
    """An open-loop attack at ``rate`` requests/s for ``duration_s`` (unbounded workers: the rate never waits)."""
    per = "1s" if float(rate).is_integer() else "1000s"
    freq = int(rate) if per == "1s" else round(rate * 1000)
    return [vegeta, "attack", f"-targets={targets}", f"-rate={freq}/{per}", f"-duration={round(duration_s * 1000)}ms",
            f"-timeout={round(timeout_s * 1000)}ms", f"-output={output}"]


def report_argv(vegeta: str, results: Path) -> list[str]:
    return [vegeta, "report", "-type=json", str(results)]


# -- the load Job of a serving trial in a cluster (``hwmatch-bench load``) ----------------------------------------


@dataclass(frozen=True)
class LoadPlan:
    """One serving trial's load, as the operator writes it into the load Job's arguments."""

    url: str  # the request's URL at the server pod's address
    ready_url: str  # the server's readiness path at that address
    request: ServingRequest
    rate: float
    duration_s: float
    warmup_s: float
    pause_s: float  # between warm-up and measurement: a Prometheus scrape falls in it
    timeout_s: float  # per request
    ready_timeout_s: float


def wait_ready(url: str, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200; raise :class:`LoadError` naming it after ``timeout_s``.

    The operator starts the load Job only once the kubelet reports the server
    pod Ready; this is the same check from where the load comes from (the pod
    network, not the kubelet's), so a server the client cannot reach fails here
    with a reason instead of as 100% errors.
    """
    import time
    import urllib.error
    import urllib.request

    until = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
                last = f"HTTP {answer.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            last = str(exc)
        if time.monotonic() > until:
            raise LoadError(f"the server did not answer 200 on {url} from the load generator's pod within "
                            f"{timeout_s:g}s (last: {last}); is the pod network reachable between the two pods "
                            "(spec.serving.hostNetwork)?")
        time.sleep(0.2)


class LoadError(RuntimeError):
    """The load could not be applied: the server was unreachable, or vegeta failed."""


def run_load(plan: LoadPlan, scratch: Path, vegeta: str | None = None) -> dict[str, Any]:
    """Warm up, pause, attack at the plan's rate; the harness result document (client metrics and the window)."""
    import subprocess
    import time

    vegeta = vegeta or find_vegeta()
    wait_ready(plan.ready_url, plan.ready_timeout_s)
    targets = write_targets(scratch, plan.url, plan.request)

    def attack(name: str, duration: float) -> LoadReport:
        results = scratch / f"{name}.bin"
        done = subprocess.run(attack_argv(vegeta, targets, plan.rate, duration, plan.timeout_s, results),
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise LoadError(f"vegeta attack ({name}) exited with code {done.returncode}: {done.stderr.strip()[-500:]}")
        report = subprocess.run(report_argv(vegeta, results), capture_output=True, text=True)
        if report.returncode != 0:
            raise LoadError(f"vegeta report ({name}) exited with code {report.returncode}: {report.stderr.strip()[-500:]}")
        return parse_report(report.stdout)

    warmup = attack("warmup", plan.warmup_s).requests if plan.warmup_s > 0 else 0
    time.sleep(plan.pause_s)
    begin = time.time()
    measured = attack("measured", plan.duration_s)
    end = time.time()
    document: dict[str, Any] = {"metrics": measured.metrics(), "samples": measured.requests, "warmup": warmup,
                                "started": begin, "finished": end}
    if measured.success < 1 and measured.errors:
        document["errors"] = measured.errors[:3]
    return document
