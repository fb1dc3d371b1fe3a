"""LLMActor around a fake engine: closing a reply closes the engine's stream at once."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from dandelion.actors import llm as llm_module
from dandelion.actors.llm import LLMActor
from dandelion.config import LLMSettings


class FakeAsyncChat:
    def __init__(self) -> None:
        self.closed = 0

    async def astream_chat(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        try:
            for n in range(1000):
                yield f"word{n} "
                await asyncio.sleep(0)
        finally:
            self.closed += 1  # where VLLMChat aborts the engine's request


@pytest.fixture
def actor(monkeypatch: pytest.MonkeyPatch) -> LLMActor:
    monkeypatch.setattr(llm_module, "load_chat_model", lambda settings: FakeAsyncChat())
    return LLMActor(LLMSettings(backend="vllm", model_path="/models/x").model_dump())


def test_describe_names_backend_model_and_interpreter(actor: LLMActor) -> None:
    assert actor.describe() == {
        "backend": "vllm",
        "model_path": "/models/x",
        "python": sys.executable,
        "prefix": sys.prefix,
        "active_streams": 0,
    }


def test_closing_a_reply_closes_the_engine_stream_now(actor: LLMActor) -> None:
    fake = actor.model
    assert isinstance(fake, FakeAsyncChat)

    async def run() -> None:
        reply = actor.stream([{"role": "user", "content": "hi"}])
        assert isinstance(reply, AsyncGenerator)
        assert await anext(reply) == "word0 "
        assert actor.describe()["active_streams"] == 1
        await reply.aclose()
        assert fake.closed == 1
        assert actor.describe()["active_streams"] == 0

    asyncio.run(run())
