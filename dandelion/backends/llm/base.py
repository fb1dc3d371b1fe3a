"""Chat LLM: a message list in, streamed text deltas out, stoppable from another thread."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Protocol, runtime_checkable


class ChatModel(Protocol):
    def stream_chat(self, messages: list[dict[str, str]], stop: threading.Event) -> Iterator[str]:
        """Yield text deltas; stop soon after `stop` is set (an interrupted turn)."""
        ...


@runtime_checkable
class AsyncChatModel(Protocol):
    """A chat LLM on an asyncio engine (vLLM): used from the event loop that serves requests."""

    def astream_chat(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        """Yield text deltas as they are generated.

        Closing the iterator early (`aclose()`, or the consumer's task being cancelled) aborts
        the request in the engine, so an interrupted turn stops using compute at once.
        """
        ...
