"""Wake-ups for the per-object reconcile loops: "something this loop cares about changed".

Each loop waits on a few keys (its own object, its asset, the asset's
trials). Every key is a counter; a waiter remembers the counts it saw before
its reconcile pass and returns as soon as any of them moved — so a change that
arrives during a pass is never lost, and many changes collapse into one pass.
Bumps may come from the event loop (watch events) or from worker threads
(reconcile passes that record results).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Hashable, Iterable

Key = tuple[Hashable, ...]


class Signals:
    """Counters per key, bumped thread-safely, awaited on the event loop they were made on."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._counts: Counter[Key] = Counter()
        self._changed = asyncio.Event()

    def seen(self, keys: Iterable[Key]) -> int:
        """A mark of the keys' state, to pass to :meth:`wait` after a reconcile pass."""
        return sum(self._counts[k] for k in keys)

    def bump(self, *keys: Key) -> None:
        """Mark ``keys`` changed (from any thread)."""
        self._loop.call_soon_threadsafe(self._bump, keys)

    def _bump(self, keys: tuple[Key, ...]) -> None:
        for key in keys:
            self._counts[key] += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, keys: list[Key], since: int, timeout: float) -> None:
        """Return when a key moved past ``since`` or after ``timeout`` seconds (the resync)."""
        deadline = self._loop.time() + timeout
        while self.seen(keys) == since:
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return
