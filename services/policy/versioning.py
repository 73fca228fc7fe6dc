"""The served weights version and the gate that makes weight swaps atomic.

Every generation or scoring call runs under a read hold taken on one version;
an update takes the write hold: new calls wait from that moment, calls in
flight finish on the old weights, then the weights swap and the version bumps.
So every response is produced by exactly the version it reports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class VersionGate:
    """A writer-preferring async readers/writer lock that carries the version."""

    def __init__(self, version: int = 0):
        self.version = version
        self._readers = 0
        self._writing = False
        self._changed = asyncio.Condition()

    @property
    def updating(self) -> bool:
        return self._writing

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[int]:
        """Hold the current weights; yields their version."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._writing)
            self._readers += 1
            version = self.version
        try:
            yield version
        finally:
            async with self._changed:
                self._readers -= 1
                self._changed.notify_all()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Exclusive hold: waits for in-flight readers; new readers wait behind it."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._writing)
            self._writing = True
            try:
                await self._changed.wait_for(lambda: self._readers == 0)
            except BaseException:
                self._writing = False
                self._changed.notify_all()
                raise
        try:
            yield
        finally:
            async with self._changed:
                self._writing = False
                self._changed.notify_all()
