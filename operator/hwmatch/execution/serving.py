"""A serving trial on this machine: a model server pinned to the platform's CPUs, loaded by vegeta pinned elsewhere.

One trial is one (platform, parameters, rate) point (docs/serving.md):

1. the server (``spec.command``) starts through the launcher, pinned to the
   platform's CPUs, with the parameters less the rate in ``HWMATCH_PARAMS``
   and ``HWMATCH_SERVING_PORT``; the trial waits until its readiness path
   answers 200;
2. vegeta, pinned to the other CPUs, loads it at the trial's rate for
   ``load.warmup`` (not recorded), then — after a pause of 2.5 scrape
   intervals when a Prometheus is configured, so that a scrape separates the
   warm-up's requests from the measured ones — for ``load.duration``;
3. the client side comes from vegeta's JSON report; the server side, when a
   Prometheus URL is configured and the asset names its latency histogram,
   from ``histogram_quantile`` over the bucket increases between that scrape
   and the first scrape after the measured phase. When the two disagree
   beyond the bucket resolution the trial's message says so;
4. the server is stopped, its process group killed, whatever happened.

Every process carries ``HWMATCH_RUNNER`` and is its own process group under
the launcher's ``PR_SET_PDEATHSIG``, as a batch trial is: a killed run leaves
no server or load generator behind (:func:`~hwmatch.execution.local.reap_orphans`).
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Protocol

import requests

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrial, BenchmarkTrialStatus, Platform
from hwmatch.api.asset import ServingSpec
from hwmatch.execution import result
from hwmatch.harness import loadgen
from hwmatch.harness.assets.onnx_server import PORT_VARIABLE
from hwmatch.harness.params import ENV_VAR
from hwmatch.telemetry import PrometheusClient, PrometheusError, trial_metrics
from hwmatch.telemetry.serving import bucket_bounds_ms, disagreements, quantile_metrics

#: Pause between warm-up and measurement, in scrape intervals (see the module docstring).
PAUSE_SCRAPES = 2.5
#: How long to wait for Prometheus's first scrape after the measured phase, in scrape intervals, after the
#: request timeout (a server that was overloaded still works off the requests its clients gave up on).
SCRAPE_WAIT = 4


class Host(Protocol):
    """What a serving trial needs of the executor that runs it (:class:`~hwmatch.execution.local.LocalExecutor`)."""

    prometheus_url: str | None
    scrape_interval: float

    @property
    def cancelled(self) -> bool: ...

    def describe(self, platform: Platform) -> dict[str, Any]: ...

    def load_generator_cpus(self, platform: Platform) -> list[int]: ...

    def environment(self, trial: BenchmarkTrial, asset: AIAsset, platform: Platform) -> dict[str, str]: ...

    def start(self, cpus: list[int] | None, command: list[str], env: dict[str, str], out: IO[bytes],
              err: IO[bytes]) -> subprocess.Popen[bytes] | None: ...

    def stop(self, proc: subprocess.Popen[bytes]) -> None: ...


class _Failed(Exception):
    """The trial ends Failed with ``reason``: a finding about this configuration, or the run's cancellation."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def run_serving_trial(executor: Host, trial: BenchmarkTrial, asset: AIAsset,
                      sweep: BenchmarkSweep) -> BenchmarkTrialStatus:
    """Run one serving trial (see the module docstring); never raises for the trial's own failure."""
    serving = asset.spec.serving
    assert serving is not None
    platform = sweep.spec.platform(trial.spec.platform)
    host = executor.describe(platform)
    host["loadGeneratorCpus"] = executor.load_generator_cpus(platform)
    started = result.now()
    with tempfile.TemporaryDirectory(prefix="hwmatch-serving-") as tmp, \
            tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        env = executor.environment(trial, asset, platform)
        run = _ServingRun(executor, trial, serving, env, Path(tmp), time.monotonic() + sweep.spec.trial_timeout_seconds)
        server = None
        try:
            if _listening(serving.port):
                raise _Failed(result.EXECUTOR_ERROR, f"port {serving.port} (spec.serving.port) is in use before the "
                                                     "server started: stop what listens there, or choose another port")
            rate_parameter = serving.load.rate_parameter
            env[ENV_VAR] = json.dumps({k: v for k, v in json.loads(env[ENV_VAR]).items() if k != rate_parameter})
            env[PORT_VARIABLE] = str(serving.port)
            server = executor.start(platform.cpus, [*asset.spec.command, *asset.spec.args], env, out, err)
            if server is None:
                raise _Failed(result.CANCELLED, "the run was interrupted")
            run.wait_ready(server)
            metrics, measurement, message = run.measure(server, host["loadGeneratorCpus"])
        except _Failed as failure:
            return result.failed(failure.reason, str(failure), started, result.now(), host,
                                 result.log_tail(result.read_end(out), result.read_end(err)))
        finally:
            if server is not None:
                executor.stop(server)
    finished = result.now()
    missing = result.missing_metrics(asset, metrics)
    if missing:
        why = f"; {message}" if message else ""
        return result.failed(result.MISSING_METRICS, f"the serving trial lacks the declared metrics {missing} "
                             f"(it has {sorted(metrics)}){why}", started, finished, host, None)
    status = result.succeeded(result.HarnessResult(metrics, {}, measurement), started, finished, host)
    status.message = message or None
    return status


class _ServingRun:
    """The steps of one serving trial, sharing its server's address, its deadline and its scratch directory."""

    def __init__(self, executor: Host, trial: BenchmarkTrial, serving: ServingSpec, env: dict[str, str],
                 scratch: Path, deadline: float) -> None:
        self.executor, self.trial, self.serving = executor, trial, serving
        # The load generator gets the trial's environment too: HWMATCH_RUNNER makes a killed run's orphan reapable.
        self.env = dict(env)
        self.scratch, self.deadline = scratch, deadline
        self.base = f"http://127.0.0.1:{serving.port}"
        self.rate = float(trial.spec.parameters[serving.load.rate_parameter])
        self.prometheus = (PrometheusClient(executor.prometheus_url)
                           if executor.prometheus_url and serving.latency_histogram else None)

    def _left(self, what: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _Failed(result.TIMEOUT, f"ran longer than the trial timeout while {what}; the server was killed "
                                          "with its process group")
        return left

    def wait_ready(self, server: subprocess.Popen[bytes]) -> None:
        url = self.base + self.serving.readiness_path
        until = time.monotonic() + self.serving.readiness_timeout_seconds
        while True:
            self._left(f"waiting for {url}")
            code = server.poll()
            if self.executor.cancelled:
                raise _Failed(result.CANCELLED, "the run was interrupted")
            if code is not None:
                raise _Failed(result.CRASHED, f"the server exited with code {code} before {url} answered 200")
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > until:
                raise _Failed(result.TIMEOUT, f"the server did not answer 200 on {url} within "
                                              f"spec.serving.readinessTimeout ({self.serving.readiness_timeout})")
            time.sleep(0.1)

    def measure(self, server: subprocess.Popen[bytes],
                cpus: list[int]) -> tuple[dict[str, float], dict[str, float], str]:
        """Warm up, pause, attack; (metrics, measurement for the result, message)."""
        load = self.serving.load
        vegeta = loadgen.find_vegeta()
        targets = loadgen.write_targets(self.scratch, self.base + self.serving.request.path, self.serving.request)
        warmup_requests = 0
        if load.warmup_seconds > 0:
            warmup_requests = self._attack(vegeta, targets, load.warmup_seconds, cpus, "warmup").requests
        warmed = time.time()
        if self.prometheus is not None:
            time.sleep(PAUSE_SCRAPES * self.executor.scrape_interval)
        begin = time.time()
        report = self._attack(vegeta, targets, load.duration_seconds, cpus, "measured")
        end = time.time()
        if server.poll() is not None:
            raise _Failed(result.CRASHED, f"the server exited with code {server.returncode} during the load at "
                                          f"{self.rate:g} requests/s")
        metrics = report.metrics()
        notes = []
        if report.success < 1 and report.errors:
            notes.append(f"{1 - report.success:.1%} of requests failed ({'; '.join(report.errors[:3])})")
        if self.prometheus is not None:
            notes += self._server_side(metrics, warmed + self.executor.scrape_interval, end)
        measurement = {"samples": report.requests, "warmup": warmup_requests, "started": begin, "finished": end}
        return metrics, measurement, "; ".join(notes)

    def _attack(self, vegeta: str, targets: Path, duration: float, cpus: list[int], name: str) -> loadgen.LoadReport:
        results = self.scratch / f"{name}.bin"
        timeout = self.serving.load.request_timeout_seconds
        self._run(loadgen.attack_argv(vegeta, targets, self.rate, duration, timeout, results), cpus,
                  f"loading the server ({name})")
        text = self._run(loadgen.report_argv(vegeta, results), cpus, "reading vegeta's report")
        try:
            return loadgen.parse_report(text)
        except ValueError as exc:
            raise _Failed(result.EXECUTOR_ERROR, str(exc)) from None

    def _run(self, command: list[str], cpus: list[int], what: str) -> str:
        """Run a load generator command pinned to ``cpus``; its stdout, or the trial fails with its stderr."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = self.executor.start(cpus, command, self.env, out, err)
            if proc is None:
                raise _Failed(result.CANCELLED, "the run was interrupted")
            try:
                code = proc.wait(timeout=self._left(what))
            except subprocess.TimeoutExpired:
                code = None
            finally:
                self.executor.stop(proc)
            if self.executor.cancelled:
                raise _Failed(result.CANCELLED, "the run was interrupted")
            if code is None:
                raise _Failed(result.TIMEOUT, f"ran longer than the trial timeout while {what}; killed")
            if code != 0:
                raise _Failed(result.EXECUTOR_ERROR, f"{what}: {Path(command[0]).name} {command[1]} exited with "
                                                     f"code {code}: {_tail(err)}")
            return result.read_end(out)

    def _server_side(self, metrics: dict[str, float], window_start: float, end: float) -> list[str]:
        """Add the server's percentiles to ``metrics``; phrases for the message (what is missing, what disagrees)."""
        assert self.prometheus is not None
        selector = f'{{instance=~"(127.0.0.1|localhost):{self.serving.port}"}}'
        try:
            scraped = self._scrape_after(selector, end)
            if scraped is None:
                return [f"server-side percentiles missing: Prometheus at {self.executor.prometheus_url} did not scrape "
                        f"{self.serving.latency_histogram} of 127.0.0.1:{self.serving.port} within "
                        f"{SCRAPE_WAIT} scrape intervals and the request timeout after the load; is the server a scrape target "
                        f"(path {self.serving.metrics_path})?"]
            found = trial_metrics(self.prometheus, quantile_metrics(self.serving, selector), "local",
                                  self.trial.metadata.name, window_start, scraped, resolution=self.executor.scrape_interval)
            bounds = bucket_bounds_ms(self.prometheus, self.serving, selector, scraped)
        except PrometheusError as exc:
            return [f"server-side percentiles missing: {exc}"]
        metrics.update(found)
        notes = [f"server-side percentiles missing: {found.message()}"] if found.missing else []
        differ = disagreements(metrics, bounds)
        if differ:
            notes.append("client and server percentiles disagree beyond the histogram's bucket resolution "
                         f"({'; '.join(differ)}): the server does not see part of the latency its clients do")
        return notes

    def _scrape_after(self, selector: str, end: float) -> float | None:
        """The time of Prometheus's first scrape of the server after ``end``, waiting for it; ``None`` if none came."""
        assert self.prometheus is not None and self.serving.latency_histogram is not None
        query = f"max(timestamp({self.serving.latency_histogram}_count{selector}))"
        until = time.monotonic() + SCRAPE_WAIT * self.executor.scrape_interval + self.serving.load.request_timeout_seconds
        while time.monotonic() < until:
            samples = self.prometheus.query(query)
            if samples and samples[0].value >= end:
                return samples[0].value
            time.sleep(min(0.25, self.executor.scrape_interval / 4))
        return None


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(stream: IO[bytes]) -> str:
    return result.tail(result.read_end(stream), 5) or "(no output)"
