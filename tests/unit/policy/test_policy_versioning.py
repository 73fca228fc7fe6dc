"""The version gate: updates wait for in-flight calls; calls arriving during an update wait for it."""

from __future__ import annotations

import asyncio

from outrider.services.policy.versioning import VersionGate


async def test_update_waits_for_readers_and_blocks_new_ones():
    gate = VersionGate()
    events: list[str] = []
    reader_in = asyncio.Event()
    release_reader = asyncio.Event()

    async def long_reader():
        async with gate.reading() as version:
            events.append(f"read-start v{version}")
            reader_in.set()
            await release_reader.wait()
            events.append(f"read-end v{version}")

    async def update():
        async with gate.writing():
            events.append("swap")
            gate.version = 1

    async def late_reader():
        async with gate.reading() as version:
            events.append(f"late v{version}")

    first = asyncio.create_task(long_reader())
    await reader_in.wait()
    writer = asyncio.create_task(update())
    await asyncio.sleep(0.01)
    assert gate.updating and events == ["read-start v0"]  # the swap waits for the reader
    late = asyncio.create_task(late_reader())
    await asyncio.sleep(0.01)
    assert events == ["read-start v0"]  # the late reader waits behind the swap
    release_reader.set()
    await asyncio.gather(first, writer, late)
    assert events == ["read-start v0", "read-end v0", "swap", "late v1"]
    assert not gate.updating


async def test_a_cancelled_update_releases_waiting_readers():
    gate = VersionGate()
    release = asyncio.Event()

    async def reader():
        async with gate.reading():
            await release.wait()

    holder = asyncio.create_task(reader())
    await asyncio.sleep(0)
    writer = asyncio.create_task(gate.writing().__aenter__())
    await asyncio.sleep(0.01)
    assert gate.updating
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    assert not gate.updating
    async with gate.reading() as version:  # would hang if the cancelled writer kept the gate
        assert version == 0
    release.set()
    await holder


async def test_concurrent_readers_share_the_version():
    gate = VersionGate(version=7)
    seen = []

    async def reader():
        async with gate.reading() as version:
            await asyncio.sleep(0.01)
            seen.append(version)

    await asyncio.gather(*(reader() for _ in range(10)))
    assert seen == [7] * 10
