"""Leader election through a Lease (controller/leader.py) on an in-memory Lease API with the API server's rules:
optimistic concurrency on resourceVersion (a stale replace is a 409), and a create of an existing name is a 409.

Time is the candidates' own monotonic clock, moved by the test: expiry is judged from when a candidate last saw
the Lease's record change, never from the timestamps in it (the replicas' clocks need not agree)."""

from __future__ import annotations

import asyncio
import copy
import json
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from hwmatch.api.errors import InputError
from hwmatch.controller.config import LeaseSettings
from hwmatch.controller.leader import LeaderElector, LeadershipLost


class FakeLeases:
    """One namespace's Leases as the API server keeps them (read returns raw JSON, as with _preload_content=False)."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.fail = False  # the API server is unreachable

    def _check(self) -> None:
        if self.fail:
            raise ApiException(status=503, reason="Service Unavailable")

    def read_namespaced_lease(self, name: str, namespace: str, _preload_content: bool = True) -> Any:
        self._check()
        if name not in self.leases:
            raise ApiException(status=404, reason="Not Found")
        return SimpleNamespace(data=json.dumps(self.leases[name]).encode())

    def _store(self, name: str, body: dict[str, Any]) -> None:
        self.version += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.version)
        self.leases[name] = body

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any]) -> None:
        self._check()
        if body["metadata"]["name"] in self.leases:
            raise ApiException(status=409, reason="AlreadyExists")
        self._store(body["metadata"]["name"], body)

    def replace_namespaced_lease(self, name: str, namespace: str, body: dict[str, Any]) -> None:
        self._check()
        if body["metadata"].get("resourceVersion") != self.leases[name]["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        self._store(name, body)

    def holder(self, name: str = "ops") -> str:
        return str(self.leases[name]["spec"]["holderIdentity"])


#: The candidates' clock, moved by the tests (asyncio keeps its own).
NOW = [1000.0]


@pytest.fixture
def clock() -> list[float]:
    NOW[0] = 1000.0
    return NOW


def _elector(api: FakeLeases, identity: str, duration: float = 15) -> LeaderElector:
    settings = LeaseSettings(name="ops", namespace="hwmatch-system", identity=identity, lease_duration=duration)
    return LeaderElector(api, settings, clock=lambda: NOW[0])  # type: ignore[arg-type]


def test_one_candidate_holds_the_lease_and_another_takes_it_only_after_it_lapses(clock: list[float]) -> None:
    api = FakeLeases()
    a, b = _elector(api, "a"), _elector(api, "b")
    assert a.try_acquire_or_renew() and api.holder() == "a"
    assert api.leases["ops"]["spec"]["leaseDurationSeconds"] == 15
    assert not b.try_acquire_or_renew()  # held, and b just saw it
    clock[0] += 10
    assert a.try_acquire_or_renew()  # renewed: b sees a new record (it reads every 2 s) and restarts its count
    assert not b.try_acquire_or_renew()
    clock[0] += 14
    assert not b.try_acquire_or_renew()
    clock[0] += 2  # 16 s since b saw the last renewal: lapsed
    assert b.try_acquire_or_renew() and api.holder() == "b"
    assert api.leases["ops"]["spec"]["leaseTransitions"] == 1
    assert not a.try_acquire_or_renew()  # a sees b's new record: not lapsed for a


def test_of_two_candidates_racing_for_a_lapsed_lease_one_wins(clock: list[float]) -> None:
    api = FakeLeases()
    a, b, c = _elector(api, "a"), _elector(api, "b"), _elector(api, "c")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew() and not c.try_acquire_or_renew()
    clock[0] += 16
    # b and c both read the lapsed Lease; c's write lands first, so b's replace carries a stale resourceVersion.
    read = api.read_namespaced_lease

    def read_then_c_writes(*args: Any, **kw: Any) -> Any:
        api.read_namespaced_lease = read  # type: ignore[method-assign]
        seen = read(*args, **kw)
        assert c.try_acquire_or_renew()
        return seen

    api.read_namespaced_lease = read_then_c_writes  # type: ignore[method-assign]
    assert not b.try_acquire_or_renew()  # a 409 on the replace: a lost race, not an error
    assert api.holder() == "c"


def test_a_released_lease_is_taken_at_once(clock: list[float]) -> None:
    api = FakeLeases()
    a, b = _elector(api, "a"), _elector(api, "b")
    assert a.try_acquire_or_renew()
    a.leading = True
    assert not b.try_acquire_or_renew()
    a.release()
    assert api.holder() == "" and not a.leading
    assert b.try_acquire_or_renew() and api.holder() == "b"  # no wait for the duration
    a.release()  # not leading: leaves b's Lease alone
    assert api.holder() == "b"


def test_a_leader_that_cannot_renew_gives_up_before_the_lease_lapses(clock: list[float]) -> None:
    api = FakeLeases()
    a = _elector(api, "a", duration=3)
    s = a.settings
    assert (s.renew_deadline, s.retry_period) == pytest.approx((2.0, 0.4))

    async def main() -> None:
        stopping = asyncio.Event()
        assert await a.acquire(stopping)
        api.fail = True  # the API server goes away
        real_sleep = asyncio.sleep

        async def tick() -> None:  # the clock moves with the renewals
            while True:
                await real_sleep(0.01)
                clock[0] += 0.1

        ticking = asyncio.ensure_future(tick())
        try:
            with pytest.raises(LeadershipLost, match="not renewed for 2s"):
                await asyncio.wait_for(a.hold(stopping), 30)
        finally:
            ticking.cancel()
        assert not a.leading

    asyncio.run(main())


def test_a_leader_whose_lease_another_took_stops_at_once(clock: list[float]) -> None:
    api = FakeLeases()
    a = _elector(api, "a", duration=2)

    async def main() -> None:
        stopping = asyncio.Event()
        assert await a.acquire(stopping)
        lease = api.leases["ops"]
        lease["spec"]["holderIdentity"] = "b"  # another replica wrote the Lease (it judged it lapsed)
        with pytest.raises(LeadershipLost, match="b holds it now"):
            await asyncio.wait_for(a.hold(stopping), 10)

    asyncio.run(main())


def test_a_stop_ends_the_wait_and_the_renewals(clock: list[float]) -> None:
    api = FakeLeases()
    a, b = _elector(api, "a"), _elector(api, "b")

    async def main() -> None:
        stopping = asyncio.Event()
        assert await a.acquire(stopping)
        waiting = asyncio.ensure_future(b.acquire(stopping))
        holding = asyncio.ensure_future(a.hold(stopping))
        await asyncio.sleep(0.05)
        stopping.set()
        assert await asyncio.wait_for(waiting, 5) is False
        await asyncio.wait_for(holding, 5)

    asyncio.run(main())


def test_lease_settings_are_checked() -> None:
    with pytest.raises(InputError, match="at least 2 seconds"):
        LeaseSettings(name="ops", namespace="ns", identity="a", lease_duration=1)
    with pytest.raises(InputError, match="--lease-namespace"):
        LeaseSettings(name="ops", namespace="", identity="a")
