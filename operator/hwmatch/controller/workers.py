"""One reconcile loop per sweep and per recommendation, started and stopped by watch events.

kopf's own daemons would do this, but kopf guards each daemon with a
finalizer on its object (so the daemon is stopped before the object goes),
and a finalizer makes ``kubectl delete`` and Argo CD's prune wait for the
operator: with it uninstalled or down, they hang. Nothing here needs that:
owner references delete a sweep's trials and their Jobs, and a pass that
finds its object gone does nothing. So the handlers start a loop on an
object's first watch event (also the initial listing after a restart) and
stop it on its deletion, and the object carries no finalizer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Coroutine, Hashable, Mapping

Key = tuple[Hashable, ...]
#: A loop's body: runs until the event it is given is set.
Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

log = logging.getLogger(__name__)


class Workers:
    """The running loops by object key, on the operator's event loop."""

    def __init__(self) -> None:
        self._running: dict[Key, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._bodies: dict[Key, Mapping[str, Any]] = {}

    def __contains__(self, key: Key) -> bool:
        entry = self._running.get(key)
        return entry is not None and not entry[0].done()

    def ensure(self, key: Key, loop: Loop, body: Mapping[str, Any]) -> None:
        """Start ``loop`` for ``key`` unless one runs; ``body`` is the object as this event saw it."""
        self._bodies[key] = body
        if key in self:
            return
        stopped = asyncio.Event()
        self._running[key] = (asyncio.get_running_loop().create_task(loop(stopped), name=f"reconcile {key}"), stopped)

    def body(self, key: Key) -> Mapping[str, Any]:
        """The object as its latest watch event saw it (what it names now: its asset may change)."""
        return self._bodies.get(key, {})

    def stop(self, key: Key) -> None:
        """Ask ``key``'s loop to stop after the pass in flight (its object is being deleted or is gone)."""
        self._bodies.pop(key, None)
        entry = self._running.pop(key, None)
        if entry is not None:
            entry[1].set()

    async def stop_all(self, grace: float) -> None:
        """Stop every loop: passes in flight get ``grace`` seconds to finish, then their loops are cancelled."""
        entries = list(self._running.values())
        self._running.clear()
        self._bodies.clear()
        for _, stopped in entries:
            stopped.set()
        tasks = [task for task, _ in entries]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace)
        for task in late:
            log.warning("a reconcile pass did not finish within %gs of the stop; cancelling %s", grace, task.get_name())
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
