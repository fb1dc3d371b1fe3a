"""A session's tasks stop when its connection ends, whatever they were doing at that moment
(a task that drops a cancel keeps the connection's teardown waiting for ever)."""

from __future__ import annotations

import asyncio

from dandelion.send_queue import SendQueue
from dandelion.serve.gateway import _drain


async def _stops_when_cancelled_as_woken(task: asyncio.Task[object], wake: asyncio.Event) -> bool:
    """Wake the task and cancel it in the same moment: it must end."""
    await asyncio.sleep(0.05)  # it is waiting now
    wake.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=3)
    task.cancel()
    return task in done


def test_the_sender_stops_when_cancelled_as_it_is_woken() -> None:
    async def main() -> bool:
        ready = asyncio.Event()
        queue = SendQueue(max_bytes=1_000, stall_s=5)
        sender = asyncio.create_task(_drain(None, queue, ready))  # type: ignore[arg-type]
        return await _stops_when_cancelled_as_woken(sender, ready)  # type: ignore[arg-type]

    assert asyncio.run(main()), "the sender went on after it was cancelled"
