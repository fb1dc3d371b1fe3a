"""Holds a chat LLM resident; streams a reply's text deltas, stops when the caller goes away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncGenerator, AsyncIterator

from dandelion.actors.streaming import iterate_in_thread
from dandelion.backends.llm.base import AsyncChatModel, ChatModel, EndOfTurnScorer
from dandelion.config import LLMSettings

log = logging.getLogger(__name__)


def load_chat_model(settings: LLMSettings) -> ChatModel | AsyncChatModel:
    if settings.backend == "vllm":
        from dandelion.backends.llm.vllm import VLLMChat

        chat = VLLMChat(settings)
        # vLLM's engine lives on the event loop that creates it. A Serve replica runs its
        # constructor on the loop that serves its requests: load there, before the replica
        # reports ready. Without a running loop, the first request loads it.
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # Said out loud: the first reply would then wait for the whole load (a minute or
            # more), with the replica already reporting healthy.
            log.warning("no running event loop: vLLM's engine will load on the first request")
            return chat
        chat.start()
        return chat
    if settings.backend == "openai":
        from dandelion.backends.llm.openai_compat import OpenAICompatChat

        return OpenAICompatChat(settings)

    from dandelion.backends.llm.llama_cpp import LlamaCppChat

    return LlamaCppChat(settings)


class LLMActor:
    def __init__(self, settings: dict[str, object]) -> None:
        parsed = LLMSettings.model_validate(settings)
        if parsed.nice:
            os.nice(parsed.nice)
        self.settings = parsed
        self.model = load_chat_model(parsed)
        # Replies being generated now: a closed (interrupted) reply leaves this at once.
        self.active_streams = 0

    def describe(self) -> dict[str, object]:
        """What this replica runs, and in which Python environment: a deployment with a
        `runtime_env` py_executable (the gpu profile's vLLM) reports that interpreter here."""
        return {
            "backend": self.settings.backend,
            "model_path": self.settings.model_path,
            "python": sys.executable,
            "prefix": sys.prefix,
            "active_streams": self.active_streams,
        }

    async def stream(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        self.active_streams += 1
        try:
            # aclosing: closing this reply closes the inner one now (the engine's abort included).
            async with contextlib.aclosing(self._stream(messages)) as deltas:
                async for delta in deltas:
                    yield delta
        finally:
            self.active_streams -= 1

    async def end_of_turn_probability(self, messages: list[dict[str, str]]) -> float | None:
        """P(the last, user, message is complete), 0..1; None when this backend cannot score.

        On llama.cpp it waits for a reply being generated (one context, one lock): close a
        speculative reply before scoring the turn that replaces it.
        """
        model = self.model
        if not isinstance(model, EndOfTurnScorer):
            return None
        return await asyncio.to_thread(model.end_of_turn_probability, messages)

    async def _stream(self, messages: list[dict[str, str]]) -> AsyncGenerator[str, None]:
        model = self.model
        if isinstance(model, AsyncChatModel):
            deltas = model.astream_chat(messages)
            try:
                async for delta in deltas:
                    yield delta
            finally:
                # A cancelled or abandoned call closes the reply: the engine aborts the request.
                if isinstance(deltas, AsyncGenerator):
                    await deltas.aclose()
            return
        # aclosing: an abandoned reply stops the generation thread now, not at garbage collection.
        deltas_in_thread = iterate_in_thread(lambda stop: model.stream_chat(messages, stop))
        async with contextlib.aclosing(deltas_in_thread):
            async for delta in deltas_in_thread:
                yield delta
