"""Trials as processes on this machine, pinned to a platform's CPUs.

A local platform is a CPU set (``cpus: [0]``, ``cpus: [0, 1]``) with an
optional thread cap: the trial process is pinned there (through the launcher,
:mod:`hwmatch.execution.launch`) and OMP_NUM_THREADS, OPENBLAS_NUM_THREADS,
MKL_NUM_THREADS and NUMEXPR_NUM_THREADS are set to ``threads`` (default: the
number of CPUs), so "1 core" and "2 cores" are measured as such. Each trial is
its own process group; on timeout or cancellation the whole group is killed.

``PR_SET_PDEATHSIG`` covers the trial's direct child only: when ``hwmatch
run`` is SIGKILLed, the trial's own children would live on and load the CPUs
the next run measures. So every trial process carries ``HWMATCH_RUNNER``
(the runner's pid and start time) in its environment, which its children
inherit, and :meth:`LocalExecutor.check` — at the start of every run —
kills each process whose runner is gone, with its process group
(:func:`reap_orphans`).
"""

from __future__ import annotations

import math
import os
import platform as pyplatform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from functools import cache
from pathlib import Path
from typing import IO, Any

import psutil

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrial, BenchmarkTrialStatus, Platform
from hwmatch.api.errors import InputError
from hwmatch.execution import launch, result
from hwmatch.execution.environment import trial_variables
from hwmatch.harness.loadgen import find_vegeta

#: The environment variable that names the run a trial process belongs to (``HOST:PID:START``).
RUNNER_VARIABLE = "HWMATCH_RUNNER"
#: Where serving trials read their server's histogram, and how often that Prometheus scrapes (docs/serving.md).
PROMETHEUS_URL_VARIABLE = "HWMATCH_PROMETHEUS_URL"
SCRAPE_INTERVAL_VARIABLE = "HWMATCH_SCRAPE_INTERVAL"


def _me() -> str:
    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{me.create_time():.3f}"


def _alive(runner: str) -> bool:
    """Whether the run named ``runner`` lives; one of another host (a container: another pid space) counts as alive."""
    try:
        host, pid, started = runner.rsplit(":", 2)
        if host != socket.gethostname():
            return True
        return f"{psutil.Process(int(pid)).create_time():.3f}" == started
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def reap_orphans() -> list[int]:
    """Kill every trial process (and its group) left by a run that is gone; returns their pids."""
    killed = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            runner = proc.environ().get(RUNNER_VARIABLE)
        except (psutil.Error, OSError):
            continue
        if not runner or _alive(runner):
            continue
        try:
            pgid = os.getpgid(proc.pid)
            if pgid != os.getpgrp():
                _kill_group(pgid)
            proc.kill()
            killed.append(proc.pid)
        except (psutil.Error, OSError):
            pass
    return killed


class LocalExecutor:
    """Runs each trial as a subprocess of this machine (see the module docstring)."""

    def __init__(self, cwd: str | Path | None = None, prometheus_url: str | None = None,
                 scrape_interval: float | None = None):
        """``prometheus_url``: where serving trials read their server's latency histogram (none: the client side
        only); ``scrape_interval``: how often that Prometheus scrapes the server, in seconds (the resolution of
        its windows). Unset, they come from ``$HWMATCH_PROMETHEUS_URL`` and ``$HWMATCH_SCRAPE_INTERVAL``
        (default 15), so that ``hwmatch run`` reads them too."""
        self.cwd = Path(cwd) if cwd is not None else None
        self.prometheus_url = prometheus_url or os.environ.get(PROMETHEUS_URL_VARIABLE) or None
        if scrape_interval is None:
            text = os.environ.get(SCRAPE_INTERVAL_VARIABLE, "15")
            try:
                scrape_interval = float(text)
            except ValueError:
                scrape_interval = math.nan
        if not (math.isfinite(scrape_interval) and scrape_interval > 0):
            raise InputError(f"the scrape interval must be a number of seconds > 0 (${SCRAPE_INTERVAL_VARIABLE}), "
                             f"got {scrape_interval}; set it to the scrape interval of your Prometheus")
        self.scrape_interval = scrape_interval
        self._running: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def check(self, asset: AIAsset, sweep: BenchmarkSweep) -> None:
        self._cancelled.clear()
        reap_orphans()
        available = os.sched_getaffinity(0)
        for i, p in enumerate(sweep.spec.platforms):
            where = f"sweep {sweep.metadata.name}: spec.platforms[{i}] ({p.name})"
            if p.node_selector or p.tolerations:
                raise InputError(
                    f"{where} selects cluster nodes (nodeSelector/tolerations) and cannot run on this machine; "
                    "run the sweep on a cluster, or describe a local platform with `cpus`"
                )
            if p.cpus is not None and not set(p.cpus) <= available:
                raise InputError(
                    f"{where}: cpus {p.cpus} are not all available to this process "
                    f"(available: {sorted(available)}); use CPU ids from that list"
                )
            if asset.spec.serving is not None and not self.load_generator_cpus(p):
                raise InputError(
                    f"{where}: a serving trial's load generator runs on CPUs the server does not use, and this "
                    f"platform {'uses every one' if p.cpus is not None else 'names no cpus, so it uses every one'} "
                    f"(available: {sorted(available)}); give the platform `cpus` that leave at least one out"
                )
        if asset.spec.serving is not None:
            find_vegeta()

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            for pid in list(self._running):
                _kill_group(pid)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def load_generator_cpus(self, platform: Platform) -> list[int]:
        """The CPUs a serving trial's load generator is pinned to: those this process may use, less the platform's."""
        if platform.cpus is None:
            return []
        return sorted(os.sched_getaffinity(0) - set(platform.cpus))

    def start(self, cpus: list[int] | None, command: list[str], env: dict[str, str], out: IO[bytes],
              err: IO[bytes]) -> subprocess.Popen[bytes] | None:
        """``command`` through the launcher, pinned to ``cpus`` (all: none), in a process group of its own;
        ``None`` once the run is cancelled. End it with :meth:`stop`: :meth:`cancel` kills it meanwhile."""
        pinned = ",".join(map(str, cpus)) if cpus is not None else "-"
        argv = [sys.executable, "-I", "-S", launch.__file__, str(os.getpid()), pinned, "--", *command]
        with self._lock:
            if self._cancelled.is_set():
                return None
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=self.cwd,
                                    start_new_session=True)
            self._running[proc.pid] = proc
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Kill ``proc``'s process group (whatever it left behind too) and forget it."""
        with self._lock:
            self._running.pop(proc.pid, None)
        _kill_group(proc.pid)
        proc.wait()

    def run(self, trial: BenchmarkTrial, asset: AIAsset, sweep: BenchmarkSweep) -> BenchmarkTrialStatus:
        if asset.spec.serving is not None:
            from hwmatch.execution.serving import run_serving_trial

            return run_serving_trial(self, trial, asset, sweep)
        platform = sweep.spec.platform(trial.spec.platform)
        host = self.describe(platform)
        command = [*asset.spec.command, *asset.spec.args]
        timeout = sweep.spec.trial_timeout_seconds
        started = result.now()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            timed_out = False
            proc = self.start(platform.cpus, command, self.environment(trial, asset, platform), out, err)
            if proc is None:
                return result.failed(result.CANCELLED, "the run was interrupted", started, result.now(), host, None)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc.pid)
                code = proc.wait()
            finally:
                self.stop(proc)
            finished = result.now()
            stdout, stderr = result.read_end(out), result.read_end(err)
        log = result.log_tail(stdout, stderr)
        if timed_out:
            return result.failed(result.TIMEOUT, f"ran longer than the trial timeout ({sweep.spec.trial_timeout}); "
                                 "killed with its process group", started, finished, host, log)
        if self._cancelled.is_set() and code < 0:
            return result.failed(result.CANCELLED, "the run was interrupted", started, finished, host, log)
        if code == -signal.SIGKILL:
            return result.failed(result.OOM_KILLED, "killed by SIGKILL, as the out-of-memory killer does; "
                                 "the configuration likely does not fit in memory", started, finished, host, log)
        if code < 0:
            return result.failed(result.CRASHED, f"killed by signal {signal.Signals(-code).name}",
                                 started, finished, host, log)
        if code == launch.CANNOT_RUN:
            return result.failed(result.COMMAND_NOT_FOUND, f"could not run {command[0]!r} (exit code {code}); "
                                 "check the asset's spec.command", started, finished, host, log)
        if code != 0:
            return result.failed(result.CRASHED, f"exited with code {code}", started, finished, host, log)
        try:
            parsed = result.parse_result(stdout)
        except result.ResultError as exc:
            return result.failed(result.NO_RESULT, str(exc), started, finished, host, log)
        missing = result.missing_metrics(asset, parsed.metrics)
        if missing:
            return result.failed(result.MISSING_METRICS, f"the result lacks the declared metrics {missing} "
                                 f"(it has {sorted(parsed.metrics)})", started, finished, host, log)
        return result.succeeded(parsed, started, finished, host)

    def environment(self, trial: BenchmarkTrial, asset: AIAsset, platform: Platform) -> dict[str, str]:
        """The trial's environment: ours, the asset's ``env``, the trial's inputs, the platform's thread cap.

        ``HWMATCH_PARAMS`` holds the parameters and the instance features (the
        asset needs both to run); ``HWMATCH_INSTANCE`` the instance alone. The
        directory of this Python comes first on PATH, so ``python`` and
        ``hwmatch-bench`` resolve inside the same environment as hwmatch.
        """
        env = dict(os.environ)
        env.update(asset.spec.env)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.update(trial_variables(trial, platform.name, _threads(platform)))
        env[RUNNER_VARIABLE] = _me()
        return env

    @staticmethod
    def describe(platform: Platform) -> dict[str, Any]:
        """Where a trial of ``platform`` runs: this machine, the pinned CPUs and the thread cap."""
        return {
            "executor": "local",
            "hostname": socket.gethostname(),
            "machine": pyplatform.machine(),
            "cpuModel": _cpu_model(),
            "cpus": sorted(platform.cpus) if platform.cpus is not None else sorted(os.sched_getaffinity(0)),
            "threads": _threads(platform),
        }


def _threads(platform: Platform) -> int | None:
    if platform.threads is not None:
        return platform.threads
    return len(platform.cpus) if platform.cpus is not None else None


@cache
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return pyplatform.processor() or "unknown"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
