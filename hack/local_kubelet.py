"""A tiny stand-in for a kubelet, for tests and development only.

It registers the `local` node(s) of hack/nodepools.yaml (this machine), keeps
them Ready (Lease renewals and node status heartbeats), and runs every pod
bound to them as local processes: each container's command + args, with its
environment, on this host. The image is ignored; there is no isolation, no
volumes, no probes, no resource limits, no `kubectl logs/exec`.

What it writes back is what a kubelet would: phase Pending -> Running ->
Succeeded/Failed, conditions, containerStatuses with state.running and then
state.terminated {exitCode, reason Completed|Error, message, startedAt,
finishedAt}. The termination message comes from the file named by the
environment variable HWMATCH_TERMINATION_LOG (a per-container file, since
/dev/termination-log is the host's); with terminationMessagePolicy
FallbackToLogsOnError an empty message of a failed container becomes the tail
of its log. Deleting a pod kills its processes (SIGTERM, then SIGKILL after the
grace period) and removes the pod.

restartPolicy Never and OnFailure run each container once (OnFailure does not
restart in place); Always restarts exited containers with a back-off.

    python hack/local_kubelet.py --kubeconfig K --state-dir D [--pools hack/nodepools.yaml]

Logs of the containers: D/pods/<namespace>_<pod>_<uid>/<container>.log
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kubernetes import client, config, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

import nodepools  # noqa: E402

log = logging.getLogger("local-kubelet")

LEASE_SECONDS = 40
LEASE_RENEW_EVERY = 10
STATUS_EVERY = 30
MAX_MESSAGE = 4096  # the kubelet's limit on a container's termination message
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048  # the kubelet's FallbackToLogsOnError tail


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def ts(t: dt.datetime | None = None) -> str:
    return (t or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


class Container:
    """One container of a pod, as a local process."""

    def __init__(self, pod: "PodRunner", spec):
        self.pod = pod
        self.spec = spec
        self.name = spec.name
        self.proc: subprocess.Popen | None = None
        self.started: str | None = None
        self.finished: str | None = None
        self.exit_code: int | None = None
        self.reason = ""
        self.message = ""
        self.restarts = 0
        self.log_path = pod.dir / f"{self.name}.log"
        self.term_path = pod.dir / f"{self.name}.termination-log"

    def env(self) -> dict[str, str]:
        pod = self.pod.pod
        env = {
            "PATH": self.pod.kubelet.path,
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOSTNAME": pod.metadata.name,
            "HWMATCH_TERMINATION_LOG": str(self.term_path),
            "HWMATCH_POD_NAME": pod.metadata.name,
            "HWMATCH_POD_NAMESPACE": pod.metadata.namespace,
            "HWMATCH_NODE_NAME": pod.spec.node_name,
        }
        fields = {
            "metadata.name": pod.metadata.name,
            "metadata.namespace": pod.metadata.namespace,
            "metadata.uid": pod.metadata.uid,
            "spec.nodeName": pod.spec.node_name,
            "spec.serviceAccountName": pod.spec.service_account_name or "",
            "status.podIP": "127.0.0.1",
            "status.hostIP": "127.0.0.1",
        }
        for e in self.spec.env or []:
            if e.value is not None:
                env[e.name] = expand(e.value, env)
            elif e.value_from is not None:
                vf = e.value_from
                try:
                    if vf.field_ref is not None:
                        path = vf.field_ref.field_path
                        m = re.match(r"metadata\.(labels|annotations)\['(.+)'\]$", path)
                        if m:
                            src = getattr(pod.metadata, m.group(1)) or {}
                            env[e.name] = src.get(m.group(2), "")
                        else:
                            env[e.name] = fields.get(path, "")
                    elif vf.config_map_key_ref is not None:
                        ref = vf.config_map_key_ref
                        cm = self.pod.kubelet.core.read_namespaced_config_map(ref.name, pod.metadata.namespace)
                        env[e.name] = (cm.data or {})[ref.key]
                    elif vf.secret_key_ref is not None:
                        import base64

                        ref = vf.secret_key_ref
                        sec = self.pod.kubelet.core.read_namespaced_secret(ref.name, pod.metadata.namespace)
                        env[e.name] = base64.b64decode((sec.data or {})[ref.key]).decode()
                except (ApiException, KeyError) as exc:
                    if not getattr(getattr(vf, "config_map_key_ref", None) or getattr(vf, "secret_key_ref", None), "optional", False):
                        raise RuntimeError(f"env {e.name}: {exc}") from exc
        return env

    def start(self) -> None:
        argv = list(self.spec.command or []) + list(self.spec.args or [])
        if not self.spec.command:
            raise RuntimeError(
                "container has no command: the local kubelet runs commands, not images "
                f"(image {self.spec.image!r} is ignored)"
            )
        env = self.env()
        argv = [expand(a, env) for a in argv]
        exe = shutil.which(argv[0], path=env["PATH"])
        if exe is None:
            raise RuntimeError(f"command not found on this host: {argv[0]!r}")
        cwd = self.spec.working_dir if self.spec.working_dir and os.path.isdir(self.spec.working_dir) else str(self.pod.dir)
        self.term_path.write_text("")
        logf = open(self.log_path, "ab")
        self.started = ts()
        self.finished = self.exit_code = None
        log.info("%s/%s: running %s", self.pod.key, self.name, argv)
        self.proc = subprocess.Popen(
            [exe] + argv[1:], env=env, cwd=cwd, stdout=logf, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        logf.close()

    def collect(self, code: int) -> None:
        self.exit_code = code if code >= 0 else 128 - code  # killed by signal N -> 128+N
        self.finished = ts()
        self.reason = "Completed" if self.exit_code == 0 else "Error"
        msg = ""
        try:
            msg = self.term_path.read_text(errors="replace")[:MAX_MESSAGE]
        except OSError:
            pass
        if not msg and self.exit_code != 0 and self.spec.termination_message_policy == "FallbackToLogsOnError":
            msg = log_tail(self.log_path)
        self.message = msg

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def status(self, ready: bool) -> dict:
        st: dict = {
            "name": self.name,
            "image": self.spec.image,
            "imageID": "",
            "restartCount": self.restarts,
            "ready": ready and self.exit_code is None and self.started is not None,
            "started": self.exit_code is None and self.started is not None,
        }
        if self.exit_code is not None:
            term = {
                "exitCode": self.exit_code,
                "reason": self.reason,
                "startedAt": self.started,
                "finishedAt": self.finished,
            }
            if self.message:
                term["message"] = self.message
            st["state"] = {"terminated": term}
            st["containerID"] = f"local://{self.pod.pod.metadata.uid}/{self.name}"
        elif self.started:
            st["state"] = {"running": {"startedAt": self.started}}
            st["containerID"] = f"local://{self.pod.pod.metadata.uid}/{self.name}"
        else:
            st["state"] = {"waiting": {"reason": "ContainerCreating"}}
        return st


def expand(s: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion ($$(VAR) escapes)."""

    def sub(m: re.Match) -> str:
        if m.group(0).startswith("$$"):
            return m.group(0)[1:]
        return env.get(m.group(1), m.group(0))

    return re.sub(r"\$?\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, s)


def log_tail(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    lines = data.splitlines(keepends=True)[-FALLBACK_LINES:]
    return b"".join(lines)[-FALLBACK_BYTES:].decode(errors="replace")


class PodRunner(threading.Thread):
    """Runs one pod's containers and reports its status."""

    def __init__(self, kubelet: "LocalKubelet", pod):
        super().__init__(daemon=True, name=f"pod-{pod.metadata.name}")
        self.kubelet = kubelet
        self.pod = pod
        self.key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        self.uid = pod.metadata.uid
        self.dir = kubelet.state_dir / "pods" / f"{pod.metadata.namespace}_{pod.metadata.name}_{self.uid}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.init = [Container(self, c) for c in pod.spec.init_containers or []]
        self.containers = [Container(self, c) for c in pod.spec.containers]
        self.stopping = threading.Event()
        self.done = threading.Event()
        self.start_time = ts()

    # -- status -----------------------------------------------------------------
    def report(self, phase: str, reason: str | None = None, message: str | None = None) -> None:
        running = phase == "Running" and all(c.started and c.exit_code is None for c in self.containers)
        t = ts()
        initialized = all(c.exit_code == 0 for c in self.init)

        def cond(type_, ok, why=None):
            c = {"type": type_, "status": "True" if ok else "False", "lastTransitionTime": t}
            if why and not ok:
                c["reason"] = why
            return c

        done_reason = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
        status = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "conditions": [
                cond("PodReadyToStartContainers", True),
                cond("Initialized", initialized or phase in ("Succeeded", "Failed"), "ContainersNotInitialized"),
                cond("ContainersReady", running, done_reason),
                cond("Ready", running, done_reason),
            ],
            "containerStatuses": [c.status(running) for c in self.containers],
        }
        if self.init:
            status["initContainerStatuses"] = [c.status(False) for c in self.init]
        if reason:
            status["reason"] = reason
        if message:
            status["message"] = message
        try:
            self.kubelet.core.patch_namespaced_pod_status(
                self.pod.metadata.name, self.pod.metadata.namespace, {"status": status}
            )
        except ApiException as exc:
            if exc.status != 404:
                log.warning("%s: status update failed: %s", self.key, exc.reason)

    # -- lifecycle -----------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a kubelet reports, it does not crash
            if isinstance(exc, RuntimeError):  # expected: bad command, missing env source, ...
                log.warning("%s: cannot start: %s", self.key, exc)
            else:
                log.exception("%s: failed", self.key)
            for c in self.containers:
                if c.exit_code is None:
                    c.exit_code, c.reason, c.message = 128, "StartError", str(exc)[:MAX_MESSAGE]
                    c.started = c.started or ts()
                    c.finished = ts()
            if not self.stopping.is_set():
                self.report("Failed", "StartError", str(exc)[:MAX_MESSAGE])
        finally:
            self.done.set()

    def _run(self) -> None:
        policy = self.pod.spec.restart_policy or "Always"
        self.report("Pending")
        for c in self.init:
            if self.stopping.is_set():
                return
            c.start()
            c.collect(c.proc.wait())
            if c.exit_code != 0:
                self.report("Failed", message=f"init container {c.name} exited with {c.exit_code}")
                return
        for c in self.containers:
            c.start()
        self.report("Running")
        backoff: dict[str, float] = {}
        while True:
            changed = False
            for c in self.containers:
                if c.proc is not None and c.exit_code is None:
                    code = c.proc.poll()
                    if code is not None:
                        c.collect(code)
                        changed = True
                        log.info("%s/%s: exited %s", self.key, c.name, c.exit_code)
                elif c.exit_code is not None and policy == "Always" and not self.stopping.is_set():
                    due = backoff.setdefault(c.name, time.monotonic() + min(2 ** c.restarts, 30))
                    if time.monotonic() >= due:
                        backoff.pop(c.name)
                        c.restarts += 1
                        c.start()
                        changed = True
            if self.stopping.is_set():
                return
            if all(c.exit_code is not None for c in self.containers) and policy != "Always":
                ok = all(c.exit_code == 0 for c in self.containers)
                self.report("Succeeded" if ok else "Failed")
                return
            if changed:
                self.report("Running")
            time.sleep(0.2)

    def stop(self, grace: int) -> None:
        """Kill the pod's processes: SIGTERM, then SIGKILL after `grace` seconds."""
        self.stopping.set()
        for c in self.init + self.containers:
            c.signal(signal.SIGTERM)
        deadline = time.monotonic() + max(0, min(grace, 30))
        while time.monotonic() < deadline and any(
            c.proc and c.proc.poll() is None for c in self.init + self.containers
        ):
            time.sleep(0.1)
        for c in self.init + self.containers:
            c.signal(signal.SIGKILL)
            if c.proc:
                try:
                    c.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass


class LocalKubelet:
    def __init__(self, kubeconfig: str, state_dir: Path, pools: str, node_names: list[str] | None):
        config.load_kube_config(kubeconfig)
        self.api = client.ApiClient()
        self.core = client.CoreV1Api(self.api)
        self.coord = client.CoordinationV1Api(self.api)
        self.state_dir = state_dir
        (state_dir / "pods").mkdir(parents=True, exist_ok=True)
        self.nodes = nodepools.nodes(nodepools.load(pools), "local")
        if node_names:
            self.nodes = [n for n in self.nodes if n["metadata"]["name"] in node_names]
        if not self.nodes:
            raise SystemExit("local_kubelet: no nodes with `kubelet: local` in " + pools)
        self.names = {n["metadata"]["name"] for n in self.nodes}
        # Pod commands resolve against the venv this runs in first (hwmatch-bench, python).
        self.path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")])
        self.runners: dict[str, PodRunner] = {}
        self.deleting: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()

    # -- node ------------------------------------------------------------------------
    def register(self) -> None:
        for node in self.nodes:
            name = node["metadata"]["name"]
            try:
                self.core.create_node(node)
                log.info("registered node %s", name)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                self.core.patch_node(name, {"metadata": {"labels": node["metadata"]["labels"]}})
            self.node_status(node)

    def node_status(self, node: dict) -> None:
        t = ts()
        boot = dt.datetime.fromtimestamp(time.time() - time.monotonic(), dt.timezone.utc)
        conds = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID"),
            ("Ready", "True", "KubeletReady"),
        ]
        status = {
            "capacity": node["status"]["capacity"],
            "allocatable": node["status"]["allocatable"],
            "conditions": [
                {"type": ty, "status": s, "reason": r, "message": "hwmatch local kubelet",
                 "lastHeartbeatTime": t, "lastTransitionTime": ts(boot)}
                for ty, s, r in conds
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": socket.gethostname()},
            ],
            "nodeInfo": {
                "architecture": node["status"]["nodeInfo"]["architecture"],
                "operatingSystem": "linux",
                "osImage": "hwmatch local kubelet (processes on the host)",
                "kernelVersion": os.uname().release,
                "kubeletVersion": "v0.0.0-hwmatch-local",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "local://processes",
                "machineID": "", "systemUUID": "", "bootID": "",
            },
        }
        self.core.patch_node_status(node["metadata"]["name"], {"status": status})

    def renew_leases(self) -> None:
        for name in self.names:
            body = {
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS,
                         "renewTime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
            }
            try:
                self.coord.patch_namespaced_lease(name, "kube-node-lease", body)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self.coord.create_namespaced_lease("kube-node-lease", body)

    def heartbeat_loop(self) -> None:
        last_status = time.monotonic()
        while not self.stop.wait(LEASE_RENEW_EVERY):
            try:
                self.renew_leases()
                if time.monotonic() - last_status >= STATUS_EVERY:
                    for node in self.nodes:
                        self.node_status(node)
                    last_status = time.monotonic()
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)

    # -- pods ------------------------------------------------------------------------
    def sync(self, pod, deleted: bool = False) -> None:
        uid = pod.metadata.uid
        with self.lock:
            runner = self.runners.get(uid)
            if deleted:
                if runner:
                    threading.Thread(target=runner.stop, args=(0,), daemon=True).start()
                    self.runners.pop(uid, None)
                return
            if pod.metadata.deletion_timestamp is not None:
                if uid not in self.deleting:
                    self.deleting.add(uid)
                    threading.Thread(target=self.terminate, args=(pod, runner), daemon=True).start()
                return
            if runner is None:
                phase = pod.status.phase if pod.status else None
                if phase in ("Succeeded", "Failed"):
                    return
                if phase == "Running":
                    # Started by an earlier local kubelet whose processes are gone.
                    self.core.patch_namespaced_pod_status(
                        pod.metadata.name, pod.metadata.namespace,
                        {"status": {"phase": "Failed", "reason": "NodeRestarted",
                                    "message": "the local kubelet restarted; the pod's processes are gone"}},
                    )
                    return
                runner = PodRunner(self, pod)
                self.runners[uid] = runner
                runner.start()

    def terminate(self, pod, runner: PodRunner | None) -> None:
        grace = pod.metadata.deletion_grace_period_seconds or 0
        if runner:
            runner.stop(grace)
        try:
            self.core.delete_namespaced_pod(
                pod.metadata.name, pod.metadata.namespace,
                body=client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=pod.metadata.uid)),
            )
            log.info("%s/%s: deleted", pod.metadata.namespace, pod.metadata.name)
        except ApiException as exc:
            if exc.status not in (404, 409):
                log.warning("deleting %s: %s", pod.metadata.name, exc.reason)
        with self.lock:
            self.runners.pop(pod.metadata.uid, None)
            self.deleting.discard(pod.metadata.uid)

    def watch_pods(self) -> None:
        selector = ",".join(f"spec.nodeName={n}" for n in sorted(self.names)) if len(self.names) == 1 else None
        while not self.stop.is_set():
            try:
                if selector:
                    pods = self.core.list_pod_for_all_namespaces(field_selector=selector)
                else:
                    pods = self.core.list_pod_for_all_namespaces()
                for pod in pods.items:
                    if pod.spec.node_name in self.names:
                        self.sync(pod)
                kw = {"field_selector": selector} if selector else {}
                w = watch.Watch()
                for ev in w.stream(self.core.list_pod_for_all_namespaces, resource_version=pods.metadata.resource_version,
                                   timeout_seconds=300, **kw):
                    pod = ev["object"]
                    if pod.spec.node_name not in self.names:
                        continue
                    self.sync(pod, deleted=ev["type"] == "DELETED")
                    if self.stop.is_set():
                        return
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("pod watch: %s; retrying", exc.reason)
                    time.sleep(1)
            except Exception as exc:
                log.warning("pod watch: %s; retrying", exc)
                time.sleep(1)

    def run(self) -> None:
        self.register()
        self.renew_leases()
        threading.Thread(target=self.heartbeat_loop, daemon=True, name="heartbeat").start()
        log.info("local kubelet ready: nodes %s", ", ".join(sorted(self.names)))
        self.watch_pods()

    def shutdown(self, *_):
        self.stop.set()
        with self.lock:
            runners = list(self.runners.values())
        for r in runners:
            r.stop(2)
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--state-dir", required=True, type=Path)
    p.add_argument("--pools", default=str(nodepools.DEFAULT_FILE))
    p.add_argument("--node", action="append", help="only these local nodes (default: all)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    k = LocalKubelet(a.kubeconfig, a.state_dir, a.pools, a.node)
    signal.signal(signal.SIGTERM, k.shutdown)
    signal.signal(signal.SIGINT, k.shutdown)
    k.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
