"""Bridge a blocking generator running in a thread to an async generator, stoppably."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


async def iterate_in_thread(
    produce: Callable[[threading.Event], Iterator[T]],
) -> AsyncGenerator[T, None]:
    """Run `produce(stop)` in a worker thread and yield its items as they come.

    If the consumer stops early (a cancelled turn), `stop` is set so the thread ends promptly.
    A consumer that wraps this in another generator should close it explicitly
    (`contextlib.aclosing`): otherwise the thread runs on until the garbage collector closes it.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def run() -> None:
        items = produce(stop)
        try:
            for item in items:
                loop.call_soon_threadsafe(queue.put_nowait, item)
                if stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer, raised there
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # runs the producer's own cleanup (locks, native streams) here
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)

    worker = loop.run_in_executor(None, run)
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        await asyncio.shield(worker)
