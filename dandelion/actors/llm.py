"""Holds a chat LLM resident; streams a reply's text deltas, stops when the caller goes away."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from dandelion.actors.streaming import iterate_in_thread
from dandelion.backends.llm.base import ChatModel
from dandelion.config import LLMSettings


def load_chat_model(settings: LLMSettings) -> ChatModel:
    from dandelion.backends.llm.llama_cpp import LlamaCppChat

    return LlamaCppChat(settings)


class LLMActor:
    def __init__(self, settings: dict[str, object]) -> None:
        parsed = LLMSettings.model_validate(settings)
        if parsed.nice:
            os.nice(parsed.nice)
        self._engine = load_chat_model(parsed)

    async def stream(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        async for delta in iterate_in_thread(lambda stop: self._engine.stream_chat(messages, stop)):
            yield delta
