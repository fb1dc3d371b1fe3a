"""One conversation: audio in, turn decisions, the reply pipeline, barge-in. No Ray here.

A `Session` is a plain object inside the gateway replica that holds the WebSocket: creating one
costs microseconds, and per-frame work (VAD, turn-taking) never leaves the process. Model stages
are called once per utterance (ASR) or per chunk (LLM stream, TTS) through `Stages`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from dandelion.backends.vad.base import VADModel
from dandelion.chunking import SentenceChunker
from dandelion.config import AppSettings
from dandelion.conversation import Conversation, SpokenChunk, heard_text
from dandelion.playback import PlaybackClock
from dandelion.protocol import (
    INPUT_CHANNELS,
    INPUT_SAMPLE_RATE,
    PROTOCOL_VERSION,
    ErrorCode,
    MediaFrame,
    MediaKind,
    ProtocolError,
    decode_client_message,
    encode_media_frame,
    encode_server_event,
)
from dandelion.protocol import events as ev
from dandelion.stages import Stages
from dandelion.turn_taking import BargeIn, EndOfTurn, EndpointDetector, SpeechStart, TurnDecision

log = logging.getLogger(__name__)

Send = Callable[[str | bytes], Awaitable[None]]
_MS = INPUT_SAMPLE_RATE // 1000  # samples per ms
_AUDIO_FRAME_MS = 200  # response audio is sent in frames of this length
_END_TAIL_MS = 150  # audio kept after the last voiced frame (soft word endings)


class _StageFailure(Exception):
    def __init__(self, code: ErrorCode, cause: BaseException) -> None:
        super().__init__(f"{code.value}: {cause}")
        self.code = code


@dataclass
class _Response:
    turn_id: int
    audio: bytes
    started: float
    clock: PlaybackClock
    task: asyncio.Task[None] | None = None
    text: str = ""
    chunks: list[SpokenChunk] = field(default_factory=list)
    samples_sent: int = 0
    user_added: bool = False
    completed: bool = False
    ended: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str, now: float) -> None:
        self.timings.setdefault(name, round((now - self.started) * 1000, 1))


class Session:
    def __init__(
        self,
        session_id: str,
        settings: AppSettings,
        vad: VADModel,
        stages: Stages,
        send: Send,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session_id = session_id
        self.settings = settings
        self._stages = stages
        self._send_raw = send
        self._send_lock = asyncio.Lock()
        self._clock = clock
        self._vad = vad.new_stream()
        self._frame = vad.frame_samples
        self._frame_ms = self._frame // _MS
        self._eot_silence_ms = settings.turn.end_of_turn_silence_ms
        self._detector = EndpointDetector(settings.turn.turn_config())
        self.conversation = Conversation(settings.instructions, settings.max_history_messages)
        self._pcm = bytearray()  # input audio kept, starting at sample `_pcm_origin`
        self._pcm_origin = 0
        self._pending = np.zeros(0, dtype=np.float32)  # samples not yet in a VAD frame
        self._samples_seen = 0  # samples through the VAD
        self._turn_id = 0
        self._segment = 0  # bumps at each speech start; stale partials compare against it
        self._last_partial_ms = 0
        self._partial_task: asyncio.Task[None] | None = None
        self._carry_audio = b""  # a turn cut off before its transcript joins the next one
        self._response: _Response | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._emit(
            ev.SessionCreated(
                protocol=PROTOCOL_VERSION,
                session_id=self.session_id,
                input_audio=ev.AudioFormat("pcm_s16le", INPUT_SAMPLE_RATE, INPUT_CHANNELS),
                output_audio=ev.AudioFormat("pcm_s16le", self._stages.output_sample_rate, 1),
                end_of_turn_silence_ms=self._eot_silence_ms,
                instructions=self.conversation.instructions,
            )
        )

    async def close(self) -> None:
        tasks = [t for t in self._tasks if not t.done()]
        if self._response and self._response.task and not self._response.task.done():
            tasks.append(self._response.task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def receive(self, message: str | bytes) -> None:
        """Handle one client message. Bad input becomes an error event; the session goes on."""
        try:
            event = decode_client_message(message)
        except ProtocolError as exc:
            await self._error(exc.code, exc.message)
            return
        if isinstance(event, ev.AudioIn):
            await self._on_audio(event.pcm)
        elif isinstance(event, ev.SessionUpdate):
            await self._on_session_update(event)
        elif isinstance(event, ev.ResponseCancel):
            await self._interrupt(status="cancelled")
        elif isinstance(event, ev.ConversationGet):
            items = tuple(
                ev.ConversationItem(m["role"], m["content"]) for m in self.conversation.messages
            )
            await self._emit(ev.ConversationHistory(items=items))
        elif isinstance(event, ev.Ping):
            await self._emit(ev.Pong())

    async def _on_session_update(self, update: ev.SessionUpdate) -> None:
        if update.instructions is not None:
            self.conversation.instructions = update.instructions
        if update.end_of_turn_silence_ms is not None:
            self._eot_silence_ms = update.end_of_turn_silence_ms
            self._detector.reconfigure(self.settings.turn.turn_config(self._eot_silence_ms))
        await self._emit(
            ev.SessionUpdated(
                end_of_turn_silence_ms=self._eot_silence_ms,
                instructions=self.conversation.instructions,
            )
        )

    # ------------------------------------------------------------------ audio in

    async def _on_audio(self, pcm: bytes) -> None:
        self._pcm += pcm
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        pending = np.concatenate((self._pending, samples))
        usable = len(pending) - len(pending) % self._frame
        for offset in range(0, usable, self._frame):
            self._samples_seen += self._frame
            probability = self._vad.probability(pending[offset : offset + self._frame])
            now_ms = self._samples_seen // _MS
            decisions = self._detector.update(
                probability, now_ms, self._frame_ms, responding=self._responding()
            )
            for decision in decisions:
                await self._on_decision(decision)
        self._pending = pending[usable:]
        self._maybe_partial()
        self._trim_input()

    def _trim_input(self) -> None:
        if self._detector.speaking:
            return
        keep = (self.settings.turn.pre_roll_ms + self.settings.turn.min_speech_ms + 200) * _MS
        excess = len(self._pcm) // 2 - keep
        if excess > 0:
            del self._pcm[: excess * 2]
            self._pcm_origin += excess

    def _input_audio(self, start_ms: int, end_ms: int) -> bytes:
        start = max(self._pcm_origin, start_ms * _MS) - self._pcm_origin
        end = max(start, end_ms * _MS - self._pcm_origin)
        return bytes(self._pcm[start * 2 : end * 2])

    async def _on_decision(self, decision: TurnDecision) -> None:
        if isinstance(decision, SpeechStart):
            self._segment += 1
            self._last_partial_ms = decision.start_ms
            await self._emit(ev.SpeechStarted(audio_start_ms=decision.start_ms))
        elif isinstance(decision, BargeIn):
            await self._interrupt(status="interrupted")
        elif isinstance(decision, EndOfTurn):
            await self._on_end_of_turn(decision)

    async def _on_end_of_turn(self, turn: EndOfTurn) -> None:
        self._segment += 1  # partials of the finished segment are stale now
        if self._responding():
            # Speech too short to take the turn while the assistant talks (a cough, "uh"):
            # the reply goes on.
            return
        self._turn_id += 1
        await self._emit(
            ev.SpeechStopped(
                audio_start_ms=turn.start_ms, audio_end_ms=turn.end_ms, turn_id=self._turn_id
            )
        )
        audio = self._carry_audio + self._input_audio(
            turn.start_ms - self.settings.turn.pre_roll_ms, turn.end_ms + _END_TAIL_MS
        )
        self._carry_audio = b""
        now = self._clock()
        response = _Response(
            turn_id=self._turn_id,
            audio=audio,
            started=now,
            clock=PlaybackClock(self._stages.output_sample_rate),
        )
        response.timings["end_of_turn_delay_ms"] = float(turn.decided_ms - turn.end_ms)
        self._response = response
        response.task = asyncio.create_task(self._run_response(response))

    def _maybe_partial(self) -> None:
        interval = self.settings.turn.partial_interval_ms
        speech_start = self._detector.speech_start_ms
        if not interval or speech_start is None:
            return
        now_ms = self._samples_seen // _MS
        if now_ms - self._last_partial_ms < interval:
            return
        if self._partial_task is not None and not self._partial_task.done():
            return
        self._last_partial_ms = now_ms
        audio = self._input_audio(speech_start - self.settings.turn.pre_roll_ms, now_ms)
        self._partial_task = self._spawn(self._partial(self._segment, audio))

    async def _partial(self, segment: int, audio: bytes) -> None:
        try:
            text = await self._stages.transcribe(audio)
        except Exception:  # a partial is best-effort: the final transcript reports failures
            log.warning("partial transcript failed", exc_info=True)
            return
        if segment == self._segment and text:
            await self._emit(ev.TranscriptPartial(text=text))

    # ------------------------------------------------------------------ the reply

    def _responding(self) -> bool:
        response = self._response
        if response is None or response.ended:
            return False
        if response.task is not None and not response.task.done():
            return True
        return response.clock.playing(self._clock())

    async def _run_response(self, response: _Response) -> None:
        speaker: asyncio.Task[None] | None = None
        try:
            text = await self._stage(ErrorCode.ASR_FAILED, self._stages.transcribe(response.audio))
            response.mark("asr_ms", self._clock())
            if not any(ch.isalnum() for ch in text):
                await self._finish(response, "empty")
                return
            await self._emit(ev.TranscriptFinal(turn_id=response.turn_id, text=text))
            self.conversation.add_user(text)
            response.user_added = True
            await self._emit(ev.ResponseStarted(turn_id=response.turn_id))
            chunks: asyncio.Queue[str | None] = asyncio.Queue()
            speaker = asyncio.create_task(self._speak(response, chunks))
            await self._generate(response, chunks)
            await speaker
            await self._emit(
                ev.ResponseAudioDone(
                    turn_id=response.turn_id,
                    duration_ms=response.samples_sent * 1000 // self._stages.output_sample_rate,
                )
            )
            response.completed = True
            self.conversation.add_assistant(response.text.strip())
            await self._finish(response, "completed")
        except _StageFailure as failure:
            await self._error(failure.code, str(failure), turn_id=response.turn_id)
            await self._finish(response, "failed")
        finally:
            if speaker is not None and not speaker.done():
                speaker.cancel()
                await asyncio.gather(speaker, return_exceptions=True)

    async def _generate(self, response: _Response, chunks: asyncio.Queue[str | None]) -> None:
        chunker = SentenceChunker()
        llm_start = self._clock()
        try:
            stream = self._stages.chat(self.conversation.prompt())
            try:
                async for delta in stream:
                    if not response.text:
                        response.mark("llm_first_token_ms", self._clock())
                        response.timings["llm_ttft_ms"] = round(
                            (self._clock() - llm_start) * 1000, 1
                        )
                    response.text += delta
                    await self._emit(ev.ResponseTextDelta(turn_id=response.turn_id, delta=delta))
                    for chunk in chunker.push(delta):
                        chunks.put_nowait(chunk)
            finally:
                await stream.aclose()
        except (asyncio.CancelledError, _StageFailure):
            raise
        except Exception as exc:
            raise _StageFailure(ErrorCode.LLM_FAILED, exc) from exc
        finally:
            for chunk in chunker.flush():
                chunks.put_nowait(chunk)
            chunks.put_nowait(None)
        response.mark("llm_done_ms", self._clock())
        await self._emit(ev.ResponseTextDone(turn_id=response.turn_id, text=response.text.strip()))

    async def _speak(self, response: _Response, chunks: asyncio.Queue[str | None]) -> None:
        rate = self._stages.output_sample_rate
        frame_bytes = rate * _AUDIO_FRAME_MS // 1000 * 2
        seq = 0
        while (text := await chunks.get()) is not None:
            chunk_start = response.samples_sent
            tts_start = self._clock()
            try:
                async for pcm in self._stages.speak(text):
                    now = self._clock()
                    if not response.chunks or response.chunks[-1].start_sample != chunk_start:
                        response.timings.setdefault(
                            "tts_first_audio_ms", round((now - tts_start) * 1000, 1)
                        )
                    response.mark("first_audio_ms", now)
                    samples = len(pcm) // 2
                    if response.chunks and response.chunks[-1].start_sample == chunk_start:
                        samples += response.chunks.pop().num_samples
                    response.chunks.append(SpokenChunk(text, chunk_start, samples))
                    for offset in range(0, len(pcm) - len(pcm) % 2, frame_bytes):
                        payload = pcm[offset : offset + frame_bytes]
                        pts_us = response.samples_sent * 1_000_000 // rate
                        frame = MediaFrame(MediaKind.AUDIO, response.turn_id, seq, pts_us, payload)
                        await self._send(encode_media_frame(frame))
                        seq += 1
                        response.samples_sent += len(payload) // 2
                        response.clock.sent(len(payload) // 2, self._clock())
            except (asyncio.CancelledError, _StageFailure):
                raise
            except Exception as exc:
                raise _StageFailure(ErrorCode.TTS_FAILED, exc) from exc

    async def _finish(self, response: _Response, status: str) -> None:
        response.mark("total_ms", self._clock())
        heard = response.text.strip() if status == "completed" else ""
        await self._emit(
            ev.ResponseDone(
                turn_id=response.turn_id,
                status=status,
                text=response.text.strip(),
                heard_text=heard,
                timings=response.timings,
            )
        )
        if status != "completed":
            response.ended = True

    async def _interrupt(self, status: str) -> None:
        response = self._response
        if response is None or response.ended or not self._responding():
            return
        response.ended = True
        now = self._clock()
        if response.task is not None and not response.task.done():
            response.task.cancel()
            await asyncio.gather(response.task, return_exceptions=True)
        played = response.clock.played_samples(now)
        heard = heard_text(response.chunks, played)
        if not response.user_added:
            self._carry_audio = response.audio
        elif response.completed:
            self.conversation.replace_last_assistant(heard)
        else:
            self.conversation.add_assistant(heard)
        played_ms = played * 1000 // self._stages.output_sample_rate
        await self._emit(
            ev.ResponseInterrupted(turn_id=response.turn_id, played_ms=played_ms, heard_text=heard)
        )
        if not response.completed:
            response.mark("total_ms", now)
            await self._emit(
                ev.ResponseDone(
                    turn_id=response.turn_id,
                    status=status,
                    text=response.text.strip(),
                    heard_text=heard,
                    timings=response.timings,
                )
            )

    # ------------------------------------------------------------------ plumbing

    async def _stage(self, code: ErrorCode, call: Awaitable[str]) -> str:
        try:
            return await call
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise _StageFailure(code, exc) from exc

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _emit(self, event: ev.ServerEvent) -> None:
        await self._send(encode_server_event(event))

    async def _send(self, message: str | bytes) -> None:
        async with self._send_lock:
            await self._send_raw(message)

    async def _error(self, code: ErrorCode, message: str, turn_id: int | None = None) -> None:
        retryable = ProtocolError(code, message).retryable
        await self._emit(
            ev.ErrorEvent(code=code.value, message=message, retryable=retryable, turn_id=turn_id)
        )
