"""Chat LLM: a message list in, streamed text deltas out, stoppable from another thread."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Protocol, runtime_checkable


class ChatModel(Protocol):
    def stream_chat(self, messages: list[dict[str, str]], stop: threading.Event) -> Iterator[str]:
        """Yield text deltas; stop soon after `stop` is set (an interrupted turn)."""
        ...

    def end_of_turn_probability(self, messages: list[dict[str, str]]) -> float | None:
        """See `EndOfTurnScorer`."""
        ...


@runtime_checkable
class EndOfTurnScorer(Protocol):
    """A chat LLM that can say how likely the user's turn is over (end of turn by meaning)."""

    def end_of_turn_probability(self, messages: list[dict[str, str]]) -> float | None:
        """The probability, 0..1, that the last message (the user's, maybe unfinished) ends here.

        The model's probability that the chat template's end-of-message token, or a mark that
        ends a sentence, comes right after the user's words (their own final punctuation set
        aside: Whisper ends every segment with one). None when this backend cannot score (vLLM,
        a chat server). Blocking; it reads the prompt prefix a reply to `messages` then reuses.
        """
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
