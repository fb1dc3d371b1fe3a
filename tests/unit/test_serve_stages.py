"""`ServeStages` over fake Serve handles: a deployment that never answers ends the turn.

The fakes stand in for Ray's handles only (`.remote()`, `.options(stream=True)`, `cancel()`); a
response that never comes is what Serve's router gives while no replica is up. Time-outs are a
few milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Generator
from typing import Any

import pytest

from dandelion.backends.asr.base import Transcript
from dandelion.backends.tts.base import SpeechChunk
from dandelion.conversation import SpokenChunk
from dandelion.playback import PlaybackClock
from dandelion.protocol import events as ev
from dandelion.reply import Reply
from dandelion.reply_pipeline import Emit, Finished, PipelineOutput, ReplyPipeline, Transcribed
from dandelion.serve.stages import ServeStages, StageTimeout
from dandelion.stages import VideoFormat, VideoFrame
from dandelion.telemetry import NoTelemetry

TIMEOUT_S = 0.02
RATE = 16_000
PCM = b"\x00\x01" * 1600  # 0.1 s


async def _forever() -> None:
    await asyncio.get_running_loop().create_future()


class Response:
    """A Serve response: `items` streamed (or, awaited, the first), then `stuck` forever."""

    def __init__(self, items: list[Any], stuck: bool) -> None:
        self._items = list(items)
        self._stuck = stuck
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __await__(self) -> Generator[Any, None, Any]:
        if self._stuck:
            yield from _forever().__await__()
        return self._items[0]

    def __aiter__(self) -> Response:
        return self

    async def __anext__(self) -> Any:
        if self._items:
            return self._items.pop(0)
        if self._stuck:
            await _forever()
        raise StopAsyncIteration


class Handle:
    """A deployment handle whose every method answers `items`, then hangs if `stuck`."""

    def __init__(self, *items: Any, stuck: bool = False) -> None:
        self._items = items
        self._stuck = stuck
        self.responses: list[Response] = []

    def options(self, stream: bool = False) -> Handle:
        return self

    def __getattr__(self, method: str) -> Handle:
        return self

    def remote(self, *args: Any) -> Response:
        self.responses.append(Response(list(self._items), self._stuck))
        return self.responses[-1]


def stages(
    asr: Handle | None = None,
    llm: Handle | None = None,
    tts: Handle | None = None,
    avatar: Handle | None = None,
) -> ServeStages:
    return ServeStages(
        asr or Handle({"text": "What is the capital of France?"}),
        llm or Handle("Paris. "),
        tts or Handle(SpeechChunk(PCM)),
        RATE,
        avatar=avatar,
        video=VideoFormat(25.0, 64, 64) if avatar is not None else None,
        timeout_s=TIMEOUT_S,
    )


async def _drain(stream: AsyncGenerator[Any, None], into: list[Any]) -> None:
    async for item in stream:
        into.append(item)


def test_a_call_with_no_replica_to_answer_times_out_and_is_cancelled() -> None:
    asr = Handle(stuck=True)
    with pytest.raises(StageTimeout, match="ASR"):
        asyncio.run(stages(asr=asr).transcribe(PCM))
    assert asr.responses[0].cancelled


def test_a_stream_that_stalls_after_its_first_items_times_out_and_is_cancelled() -> None:
    llm = Handle("Bread ", "is ", stuck=True)
    got: list[str] = []
    with pytest.raises(StageTimeout, match="LLM"):
        asyncio.run(_drain(stages(llm=llm).chat([]), got))
    assert got == ["Bread ", "is "]
    assert llm.responses[0].cancelled


def test_the_wait_is_per_item_not_for_the_whole_stream() -> None:
    class Slow(Response):
        async def __anext__(self) -> Any:
            await asyncio.sleep(0.04)  # each item well in time, all of them over the limit
            return await super().__anext__()

    class SlowHandle(Handle):
        def remote(self, *args: Any) -> Response:
            return Slow([f"{i} " for i in range(8)], stuck=False)

    llm = ServeStages(Handle(), SlowHandle(), Handle(), RATE, timeout_s=0.2)
    got: list[str] = []
    asyncio.run(_drain(llm.chat([]), got))
    assert len(got) == 8


def test_healthy_stages_answer_through_the_bounds() -> None:
    async def run() -> tuple[Transcript, list[str], list[SpeechChunk], float | None]:
        s = stages(llm=Handle("Paris", "."))
        deltas: list[str] = []
        chunks: list[SpeechChunk] = []
        await _drain(s.chat([]), deltas)
        await _drain(s.speak("Paris."), chunks)
        probability = await stages(llm=Handle(0.9)).end_of_turn_probability([])
        return await s.transcribe(PCM), deltas, chunks, probability

    transcript, deltas, chunks, probability = asyncio.run(run())
    assert transcript.text == "What is the capital of France?"
    assert deltas == ["Paris", "."] and [c.pcm for c in chunks] == [PCM] and probability == 0.9


def test_a_stages_own_timeout_error_is_a_failure_not_a_stall() -> None:
    class Refusing(Response):
        def __await__(self) -> Generator[Any, None, Any]:
            raise TimeoutError("the backend's own")
            yield  # a generator

    class RefusingHandle(Handle):
        def remote(self, *args: Any) -> Response:
            return Refusing([], stuck=False)

    with pytest.raises(TimeoutError, match="the backend's own") as raised:
        asyncio.run(stages(asr=RefusingHandle()).transcribe(PCM))
    assert not isinstance(raised.value, StageTimeout)


# ---------------------------------------------------------------- the turn it ends


def _run(pipeline: ReplyPipeline, reply: Reply) -> list[PipelineOutput]:
    async def run() -> list[PipelineOutput]:
        outputs: list[PipelineOutput] = []
        async for output in pipeline.run(reply):
            if isinstance(output, Transcribed):
                reply.messages = [{"role": "user", "content": output.text}]
            outputs.append(output)
        return outputs

    return asyncio.run(asyncio.wait_for(run(), 10))  # a hang fails the test, not the suite


def _reply(video: str = "off") -> Reply:
    return Reply(1, 0, PCM, time.monotonic(), PlaybackClock(RATE), video_codec=video)


@pytest.mark.parametrize(
    ("stuck", "code"),
    [("asr", "asr_failed"), ("llm", "llm_failed"), ("tts", "tts_failed")],
)
def test_a_deployment_that_does_not_come_back_fails_the_turn_retryably(
    stuck: str, code: str
) -> None:
    healthy = {"asr": None, "llm": None, "tts": None}
    s = stages(**{**healthy, stuck: Handle(stuck=True)})
    outputs = _run(ReplyPipeline(s, clock=time.monotonic, telemetry=NoTelemetry()), _reply())
    errors = [o.item for o in outputs if isinstance(o, Emit) and isinstance(o.item, ev.ErrorEvent)]
    assert [(e.code, e.retryable) for e in errors] == [(code, True)]
    assert outputs[-1] == Finished("failed")


class FacelessStages:
    """In-process stages whose avatar never renders a frame (no bound of its own)."""

    output_sample_rate = RATE
    video = VideoFormat(25.0, 64, 64)

    async def transcribe(self, pcm16: bytes) -> Transcript:
        return Transcript("What is the capital of France?")

    async def chat(self, messages: list[dict[str, str]]) -> AsyncGenerator[str, None]:
        yield "Paris."

    async def end_of_turn_probability(self, messages: list[dict[str, str]]) -> float | None:
        return None

    async def speak(self, text: str) -> AsyncGenerator[SpeechChunk, None]:
        yield SpeechChunk(PCM)

    async def animate(
        self, chunk: SpeechChunk, start_s: float, codec: str, face_s: float = 0.0
    ) -> AsyncGenerator[list[VideoFrame], None]:
        await _forever()
        yield []

    async def idle(self, start_s: float, count: int, codec: str) -> list[VideoFrame]:
        return []


def test_a_dead_avatar_does_not_hold_the_turn_open_once_the_voice_is_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("dandelion.reply_pipeline._FACE_GRACE_S", TIMEOUT_S)
    reply = _reply(video="jpeg")
    pipeline = ReplyPipeline(FacelessStages(), clock=time.monotonic, telemetry=NoTelemetry())
    outputs = _run(pipeline, reply)
    assert outputs[-1] == Finished("completed")  # the voice went out without a face
    assert reply.chunks == [SpokenChunk("Paris.", 0, len(PCM) // 2)]
