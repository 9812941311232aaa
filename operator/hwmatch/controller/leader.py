"""Leader election through a ``coordination.k8s.io/v1`` Lease: of several operator replicas, one reconciles.

Why a Lease and not kopf's peering: peering pauses the lower-priority
operator, but the replicas of one Deployment share a pod template and so a
priority, and with equal priorities kopf warns and *every* instance freezes
(the cluster goes unserved); peering also pauses only kopf's event handling,
not the reconcile loops this operator runs itself
(:mod:`~hwmatch.controller.workers`), and it needs kopf's own CRDs. A Lease
is what kube-controller-manager and controller-runtime use: built in, one
holder at a time, and a holder that stops renewing loses it after
``lease_duration`` seconds.

The algorithm is client-go's (``k8s.io/client-go/tools/leaderelection``):

- a candidate reads the Lease every ``retry_period``; it takes it when it is
  absent, released (no holder) or not renewed for ``lease_duration`` seconds
  *as timed on the candidate's own clock* from when it last saw the record
  change (so the replicas' clocks need not agree);
- every write is a replace with the read ``resourceVersion``: of two
  candidates racing for an expired Lease, one write wins and the other gets a
  409 and stays a candidate;
- the holder renews every ``retry_period``; when it has not renewed for
  ``renew_deadline`` (< ``lease_duration``) it gives up leadership before
  anyone else can take the Lease, and when it reads another holder in the
  Lease it gives up at once; either way the operator stops
  (:class:`LeadershipLost`);
- a holder that stops cleanly releases the Lease (empty holder), so a rolling
  update hands over at once instead of after ``lease_duration``.

After a SIGKILL of the holder the standby takes over within
``lease_duration + retry_period`` seconds (about 17 s with the defaults).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from kubernetes import client
from kubernetes.client.rest import ApiException

from hwmatch.api.errors import HwmatchError
from hwmatch.controller.config import LeaseSettings

log = logging.getLogger(__name__)

#: The pod's service-account namespace file: the Lease's namespace by default, in a pod.
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class LeadershipLost(HwmatchError):
    """The Lease could not be renewed in time, or another replica holds it: this one stops reconciling.

    Neither permanent nor temporary for the caller: the process exits (non-zero) and is restarted as a
    candidate, as controller-runtime's managers do; a pass in flight is not continued beside the new leader.
    """


def default_identity() -> str:
    """This replica's name in the Lease: the pod's name (its hostname) and a random suffix, unique per process."""
    return f"{os.environ.get('HWMATCH_POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def default_namespace() -> str | None:
    """The namespace of the pod this runs in (its service account's), or None outside a pod."""
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as f:
            return f.read().strip() or None
    except OSError:
        return None


def _now() -> str:
    """A Kubernetes MicroTime: RFC 3339 with exactly six fractional digits (the API server's format)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """One candidate for the Lease. :meth:`try_acquire_or_renew` is one blocking round trip (worker thread);
    :meth:`acquire` and :meth:`hold` are the async loops around it."""

    def __init__(self, api: client.CoordinationV1Api, settings: LeaseSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        #: Any: the calls pass and read raw JSON (dicts, ``_preload_content=False``), not the client's models
        self.api: Any = api
        self.settings = settings
        self._clock = clock  # this process's own clock (a test's), never the Lease's timestamps
        self._observed: tuple[Any, ...] | None = None  # the holder record last read
        self._observed_at = 0.0  # when (monotonic, this process's clock) it last changed
        self._renewed_at = 0.0
        self.leading = False

    def _read(self) -> dict[str, Any] | None:
        s = self.settings
        try:
            resp = self.api.read_namespaced_lease(s.name, s.namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(json.loads(resp.data))

    def _observe(self, spec: dict[str, Any]) -> None:
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._observed:
            self._observed, self._observed_at = record, self._clock()

    def try_acquire_or_renew(self) -> bool:
        """Take or renew the Lease once; True when this candidate holds it afterwards. 409s are lost races (False);
        other API errors propagate (the caller retries)."""
        s, now = self.settings, _now()
        lease = self._read()
        duration = max(1, round(s.lease_duration))
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": s.name, "namespace": s.namespace},
                    "spec": {"holderIdentity": s.identity, "leaseDurationSeconds": duration, "acquireTime": now,
                             "renewTime": now, "leaseTransitions": 0}}
            try:
                self.api.create_namespaced_lease(s.namespace, body)
            except ApiException as exc:
                if exc.status == 409:
                    return False
                raise
            return self._won()
        spec = dict(lease.get("spec") or {})
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        if holder and holder != s.identity:
            held_for = float(spec.get("leaseDurationSeconds") or duration)
            if self._clock() < self._observed_at + held_for:
                return False  # someone else holds it, and renewed it within its duration
        if holder != s.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
        spec.update(holderIdentity=s.identity, renewTime=now, leaseDurationSeconds=duration)
        lease["spec"] = spec  # metadata keeps the resourceVersion read: a concurrent write makes this a 409
        try:
            self.api.replace_namespaced_lease(s.name, s.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return self._won()

    def _won(self) -> bool:
        self._renewed_at = self._clock()
        self._observed = None
        return True

    async def acquire(self, stopping: asyncio.Event) -> bool:
        """Wait until this candidate holds the Lease (True) or ``stopping`` is set (False)."""
        s = self.settings
        log.info("waiting for the Lease %s/%s as %s (standby until it is free or %gs without renewal)",
                 s.namespace, s.name, s.identity, s.lease_duration)
        while not stopping.is_set():
            try:
                if await asyncio.to_thread(self.try_acquire_or_renew):
                    self.leading = True
                    log.info("acquired the Lease %s/%s: this replica reconciles", s.namespace, s.name)
                    return True
            except Exception as exc:  # the API server is unreachable or refuses: a candidate just retries
                log.warning("could not read or take the Lease %s/%s: %s", s.namespace, s.name, exc)
            try:
                await asyncio.wait_for(stopping.wait(), s.retry_period)
            except asyncio.TimeoutError:
                pass
        return False

    async def hold(self, stopping: asyncio.Event) -> None:
        """Renew every ``retry_period`` until ``stopping`` is set; raise :class:`LeadershipLost` when no renewal
        succeeded for ``renew_deadline`` seconds (or another replica took the Lease)."""
        s = self.settings
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), s.retry_period)
                return
            except asyncio.TimeoutError:
                pass
            try:
                renewed = await asyncio.wait_for(asyncio.to_thread(self.try_acquire_or_renew), s.retry_period)
            except Exception as exc:
                log.warning("could not renew the Lease %s/%s: %s", s.namespace, s.name, exc)
                renewed = False
            taken = self._observed is not None and self._observed[0] not in ("", s.identity)
            if taken or (not renewed and self._clock() - self._renewed_at > s.renew_deadline):
                self.leading = False
                why = (f"{self._observed[0]} holds it now" if taken and self._observed else
                       f"it was not renewed for {s.renew_deadline:g}s and another replica may hold it")
                raise LeadershipLost(f"lost the Lease {s.namespace}/{s.name}: {why}; stopping")

    def release(self) -> None:
        """Give the Lease up (empty holder) when this replica holds it, so a standby takes it at once."""
        if not self.leading:
            return
        self.leading = False
        s = self.settings
        try:
            lease = self._read()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != s.identity:
                return
            lease["spec"].update(holderIdentity="", leaseDurationSeconds=1, renewTime=_now())
            self.api.replace_namespaced_lease(s.name, s.namespace, lease)
            log.info("released the Lease %s/%s", s.namespace, s.name)
        except Exception as exc:  # the standby takes it after lease_duration anyway
            log.warning("could not release the Lease %s/%s: %s", s.namespace, s.name, exc)


async def until_set(flag: threading.Event | asyncio.Event | None, into: asyncio.Event, period: float = 0.2) -> None:
    """Set ``into`` once ``flag`` (a thread's or this loop's event, or None: never) is set."""
    if flag is None:
        return
    if isinstance(flag, asyncio.Event):
        await flag.wait()
    else:
        while not flag.is_set():
            await asyncio.sleep(period)
    into.set()
