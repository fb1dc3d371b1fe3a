"""One conversation: audio in, turn decisions, the reply pipeline, barge-in. No Ray here.

A `Session` is a plain object inside the gateway replica that holds the WebSocket: creating one
costs microseconds, and per-frame work (VAD, turn-taking) never leaves the process. Model stages
are called once per utterance (ASR) or per chunk (LLM stream, TTS) through `Stages`.

Replies start speculatively at a short pause and are held back until the end of the turn is
confirmed, so the end-of-turn silence overlaps with transcription, generation and synthesis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np

from dandelion.backends.tts.base import SpeechChunk
from dandelion.backends.vad.base import VADModel
from dandelion.chunking import SentenceChunker
from dandelion.config import AppSettings
from dandelion.conversation import Conversation, SpokenChunk, heard_text
from dandelion.idle_face import IdleFace
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
from dandelion.protocol.errors import RETRYABLE_CODES
from dandelion.reply import Reply
from dandelion.stages import Stages
from dandelion.telemetry import NoTelemetry, Telemetry
from dandelion.turn_taking import (
    BargeIn,
    EndOfTurn,
    EndpointDetector,
    Pause,
    Resume,
    SpeechStart,
    TurnDecision,
)

log = logging.getLogger(__name__)

Send = Callable[[str | bytes], Awaitable[None]]
_MS = INPUT_SAMPLE_RATE // 1000  # samples per ms
_AUDIO_FRAME_MS = 200  # response audio goes out in frames of this length
_END_TAIL_MS = 150  # audio kept after the last voiced frame (soft word endings)
_PARTIAL_MAX_SILENCE_MS = 96  # no partial transcript once the speaker has paused this long
_MAX_CARRY_MS = 10_000  # an untranscribed turn carried into the next one, at most
_FACE_WAIT_S = 0.15  # the longest the first audio of a reply waits for the avatar's first frame


class _StageFailure(Exception):
    def __init__(self, code: ErrorCode, cause: BaseException) -> None:
        super().__init__(f"{code.value}: {cause}")
        self.code = code


class Session:
    def __init__(
        self,
        session_id: str,
        settings: AppSettings,
        vad: VADModel,
        stages: Stages,
        send: Send,
        clock: Callable[[], float] = time.monotonic,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.session_id = session_id
        self.settings = settings
        self._stages = stages
        self._send_raw = send
        self._send_lock = asyncio.Lock()
        self._clock = clock
        self._telemetry = telemetry or NoTelemetry()
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
        self._segment = 0  # bumps at each speech start and end; stale work compares against it
        self._last_partial_ms = 0
        self._partial_task: asyncio.Task[None] | None = None
        self._carry_audio = b""  # a turn cut off before its transcript joins the next one
        self._reply: Reply | None = None
        self._video = "off"  # the avatar's codec for this session, once the client asks
        self._idle: IdleFace | None = None  # the face between replies, while video is on
        self._idle_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._telemetry.session_opened()
        await self._emit(
            ev.SessionCreated(
                protocol=PROTOCOL_VERSION,
                session_id=self.session_id,
                input_audio=ev.AudioFormat("pcm_s16le", INPUT_SAMPLE_RATE, INPUT_CHANNELS),
                output_audio=ev.AudioFormat("pcm_s16le", self._stages.output_sample_rate, 1),
                end_of_turn_silence_ms=self._eot_silence_ms,
                instructions=self.conversation.instructions,
                output_video=self._video_info(),
            )
        )

    def _video_info(self) -> ev.VideoInfo:
        video = self._stages.video
        if video is None:
            return ev.VideoInfo("off", 0.0, 0, 0)
        return ev.VideoInfo(self._video, video.fps, video.width, video.height, video.idle_fps)

    async def close(self) -> None:
        self._telemetry.session_closed()
        tasks = [t for t in (self._partial_task, self._idle_task) if t is not None]
        if self._reply is not None and self._reply.task is not None:
            tasks.append(self._reply.task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def report_internal_error(self, exc: BaseException) -> None:
        await self._error(ErrorCode.INTERNAL_ERROR, f"internal error: {type(exc).__name__}")

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
        if update.video not in (None, "off") and self._stages.video is None:
            await self._error(ErrorCode.INVALID_EVENT, "this server runs without an avatar")
            return
        if update.video is not None and update.video != self._video:
            self._video = update.video
            await self._restart_idle_face()
        if update.instructions is not None:
            self.conversation.instructions = update.instructions
        if update.end_of_turn_silence_ms is not None:
            self._eot_silence_ms = update.end_of_turn_silence_ms
            self._detector.reconfigure(self.settings.turn.turn_config(self._eot_silence_ms))
        await self._emit(
            ev.SessionUpdated(
                end_of_turn_silence_ms=self._eot_silence_ms,
                instructions=self.conversation.instructions,
                video=self._video,
            )
        )

    async def _restart_idle_face(self) -> None:
        """Idle frames in the session's current codec (none when video is off)."""
        if self._idle_task is not None:
            self._idle_task.cancel()
            await asyncio.gather(self._idle_task, return_exceptions=True)
        video = self._stages.video
        if self._video == "off" or video is None or video.idle_fps <= 0:
            self._idle_task = None
            return
        previous = self._idle
        self._idle = IdleFace(
            self._stages,
            self._send_media,
            self._video,
            video.idle_fps,
            busy=self._responding,
            clock=self._clock,
            on_frame=self._telemetry.avatar_frame,
        )
        if previous is not None:
            self._idle.continue_clock(previous)
        self._idle_task = asyncio.create_task(self._idle.run())

    async def _send_media(self, message: bytes) -> None:
        async with self._send_lock:
            await self._send_raw(message)

    # ------------------------------------------------------------------ audio in

    async def _on_audio(self, pcm: bytes) -> None:
        self._pcm += pcm
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        pending = np.concatenate((self._pending, samples))
        usable = len(pending) - len(pending) % self._frame
        for offset in range(0, usable, self._frame):
            self._samples_seen += self._frame
            vad_start = time.perf_counter()
            probability = self._vad.probability(pending[offset : offset + self._frame])
            self._telemetry.vad_frame(time.perf_counter() - vad_start)
            now_ms = self._samples_seen // _MS
            decisions = self._detector.update(
                probability, now_ms, self._frame_ms, responding=self._responding()
            )
            for decision in decisions:
                await self._on_decision(decision, now_ms)
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

    async def _on_decision(self, decision: TurnDecision, now_ms: int) -> None:
        log.debug("session %s at %d ms: %s", self.session_id, now_ms, decision)
        if isinstance(decision, SpeechStart):
            self._segment += 1
            self._last_partial_ms = decision.start_ms
            await self._emit(ev.SpeechStarted(audio_start_ms=decision.start_ms))
        elif isinstance(decision, BargeIn):
            await self._interrupt(status="interrupted")
        elif isinstance(decision, Pause):
            if not self._responding():
                self._start_reply(decision.start_ms, decision.end_ms, now_ms)
        elif isinstance(decision, Resume):
            await self._drop_speculative()
        elif isinstance(decision, EndOfTurn):
            await self._on_end_of_turn(decision, now_ms)

    async def _on_end_of_turn(self, turn: EndOfTurn, now_ms: int) -> None:
        segment = self._segment
        self._segment += 1  # partials of the finished segment are stale now
        if self._responding():
            # Speech too short to take the turn while the assistant talks (a cough, "uh"):
            # the reply goes on.
            return
        reply = self._reply
        if reply is None or reply.confirmed or reply.segment != segment:
            reply = self._start_reply(turn.start_ms, turn.end_ms, now_ms)
        reply.timings["end_of_turn_delay_ms"] = float(turn.decided_ms - turn.end_ms)
        self._telemetry.turn_ended((turn.decided_ms - turn.end_ms) / 1000)
        await self._emit(
            ev.SpeechStopped(
                audio_start_ms=turn.start_ms, audio_end_ms=turn.end_ms, turn_id=reply.turn_id
            )
        )
        await self._confirm(reply)

    def _start_reply(self, start_ms: int, end_ms: int, now_ms: int) -> Reply:
        audio = self._carry_audio + self._input_audio(
            start_ms - self.settings.turn.pre_roll_ms, end_ms + _END_TAIL_MS
        )
        self._turn_id += 1
        now = self._clock()
        reply = Reply(
            turn_id=self._turn_id,
            segment=self._segment,
            audio=audio,
            speech_end=now - (now_ms - end_ms) / 1000,
            clock=PlaybackClock(self._stages.output_sample_rate),
        )
        self._reply = reply
        reply.task = asyncio.create_task(self._run_reply(reply))
        return reply

    async def _drop_speculative(self) -> None:
        reply = self._reply
        if reply is None or reply.confirmed:
            return
        self._reply = None
        if reply.task is not None:
            reply.task.cancel()
            await asyncio.gather(reply.task, return_exceptions=True)

    def _maybe_partial(self) -> None:
        interval = self.settings.turn.partial_interval_ms
        speech_start = self._detector.speech_start_ms
        if not interval or speech_start is None:
            return
        now_ms = self._samples_seen // _MS
        if now_ms - self._last_partial_ms < interval:
            return
        if self._detector.silence_ms(now_ms) >= _PARTIAL_MAX_SILENCE_MS:
            return  # a pause: the speculative reply's transcript is about to start
        if self._partial_task is not None and not self._partial_task.done():
            return
        self._last_partial_ms = now_ms
        audio = self._input_audio(speech_start - self.settings.turn.pre_roll_ms, now_ms)
        self._partial_task = asyncio.create_task(self._partial(self._segment, audio))

    async def _partial(self, segment: int, audio: bytes) -> None:
        try:
            text = await self._stages.transcribe(audio)
        except Exception:  # best effort: the final transcript reports failures
            log.warning("partial transcript failed", exc_info=True)
            return
        if segment == self._segment and text:
            await self._emit(ev.TranscriptPartial(text=text))

    # ------------------------------------------------------------------ the reply

    def _responding(self) -> bool:
        """The assistant holds the floor: a confirmed reply is being made or played."""
        reply = self._reply
        if reply is None or reply.ended or not reply.confirmed:
            return False
        return reply.running() or reply.clock.playing(self._clock())

    async def _run_reply(self, reply: Reply) -> None:
        speaker: asyncio.Task[None] | None = None
        animator: asyncio.Task[None] | None = None
        try:
            asr_start = self._clock()
            text = await self._stage(ErrorCode.ASR_FAILED, self._stages.transcribe(reply.audio))
            reply.timings["asr_ms"] = round((self._clock() - asr_start) * 1000, 1)
            reply.mark("transcript_ms", self._clock())
            if not any(ch.isalnum() for ch in text):
                await self._finish(reply, "empty")
                return
            reply.transcript = text
            self._commit(reply)
            await self._emit_for(reply, ev.TranscriptFinal(turn_id=reply.turn_id, text=text))
            await self._emit_for(reply, ev.ResponseStarted(turn_id=reply.turn_id))
            chunks: asyncio.Queue[str | None] = asyncio.Queue()
            speech: asyncio.Queue[tuple[SpeechChunk, float] | None] | None = None
            if self._video != "off":
                speech = asyncio.Queue()
                animator = asyncio.create_task(self._animate(reply, speech, self._video))
            speaker = asyncio.create_task(self._speak(reply, chunks, speech))
            await self._generate(reply, chunks)
            await speaker
            duration_ms = reply.samples_made * 1000 // self._stages.output_sample_rate
            await self._emit_for(
                reply, ev.ResponseAudioDone(turn_id=reply.turn_id, duration_ms=duration_ms)
            )
            if animator is not None:
                await animator
            reply.completed = True
            self._commit(reply)
            await self._finish(reply, "completed")
        except _StageFailure as failure:
            self._telemetry.error(failure.code.value)
            await self._emit_for(
                reply,
                ev.ErrorEvent(
                    code=failure.code.value,
                    message=str(failure),
                    retryable=failure.code in RETRYABLE_CODES,
                    turn_id=reply.turn_id,
                ),
            )
            await self._finish(reply, "failed")
        finally:
            for helper in (speaker, animator):
                if helper is not None and not helper.done():
                    helper.cancel()
                    await asyncio.gather(helper, return_exceptions=True)

    async def _generate(self, reply: Reply, chunks: asyncio.Queue[str | None]) -> None:
        chunker = SentenceChunker()
        llm_start = self._clock()
        try:
            stream = self._stages.chat(
                self.conversation.prompt(pending_user=self._pending_user(reply))
            )
            try:
                async for delta in stream:
                    if not reply.text:
                        reply.mark("llm_first_token_ms", self._clock())
                        reply.timings["llm_ttft_ms"] = round((self._clock() - llm_start) * 1000, 1)
                    reply.text += delta
                    reply.tokens += 1
                    await self._emit_for(
                        reply, ev.ResponseTextDelta(turn_id=reply.turn_id, delta=delta)
                    )
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
        reply.mark("llm_done_ms", self._clock())
        await self._emit_for(
            reply, ev.ResponseTextDone(turn_id=reply.turn_id, text=reply.text.strip())
        )

    def _pending_user(self, reply: Reply) -> str | None:
        return None if reply.user_added else reply.transcript

    async def _speak(
        self,
        reply: Reply,
        chunks: asyncio.Queue[str | None],
        speech_out: asyncio.Queue[tuple[SpeechChunk, float] | None] | None,
    ) -> None:
        try:
            await self._speak_chunks(reply, chunks, speech_out)
        finally:
            if speech_out is not None:
                speech_out.put_nowait(None)

    async def _speak_chunks(
        self,
        reply: Reply,
        chunks: asyncio.Queue[str | None],
        speech_out: asyncio.Queue[tuple[SpeechChunk, float] | None] | None,
    ) -> None:
        rate = self._stages.output_sample_rate
        frame_bytes = rate * _AUDIO_FRAME_MS // 1000 * 2
        seq = 0
        while (text := await chunks.get()) is not None:
            chunk_start = reply.samples_made
            tts_start = self._clock()
            speech = self._stages.speak(text)
            try:
                async for piece in speech:
                    pcm = piece.pcm
                    if speech_out is not None:
                        speech_out.put_nowait((piece, reply.samples_made / rate))
                        if reply.samples_made == 0:
                            # Face and voice start together: the first frame (~10 ms to render)
                            # goes out before the first audio, so a client never shows a voice
                            # ahead of its face. Later frames are rendered well ahead of time.
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(reply.face_ready.wait(), _FACE_WAIT_S)
                    now = self._clock()
                    reply.timings.setdefault(
                        "tts_first_audio_ms", round((now - tts_start) * 1000, 1)
                    )
                    reply.mark("first_audio_ready_ms", now)
                    samples = len(pcm) // 2
                    if reply.chunks and reply.chunks[-1].start_sample == chunk_start:
                        samples += reply.chunks.pop().num_samples
                    reply.chunks.append(SpokenChunk(text, chunk_start, samples))
                    whole = len(pcm) - len(pcm) % 2  # whole PCM16 samples only
                    for offset in range(0, whole, frame_bytes):
                        payload = pcm[offset : min(offset + frame_bytes, whole)]
                        pts_us = reply.samples_made * 1_000_000 // rate
                        frame = MediaFrame(MediaKind.AUDIO, reply.turn_id, seq, pts_us, payload)
                        seq += 1
                        reply.samples_made += len(payload) // 2
                        await self._send_for(reply, encode_media_frame(frame), len(payload) // 2)
            except (asyncio.CancelledError, _StageFailure):
                raise
            except Exception as exc:
                raise _StageFailure(ErrorCode.TTS_FAILED, exc) from exc
            finally:
                await speech.aclose()  # cancels the synthesis on its replica now, not at GC

    async def _animate(
        self,
        reply: Reply,
        speech: asyncio.Queue[tuple[SpeechChunk, float] | None],
        codec: str,
    ) -> None:
        """The avatar's video for each piece of speech, sent beside (and behind) its audio."""
        seq = 0
        face_s = self._idle.now_s() if self._idle is not None else 0.0
        while (item := await speech.get()) is not None:
            piece, start_s = item
            frames = self._stages.animate(piece, start_s, codec, face_s)
            try:
                async for batch in frames:
                    for video in batch:
                        self._telemetry.avatar_frame(video.seconds)
                        frame = MediaFrame(
                            MediaKind.VIDEO, reply.turn_id, seq, video.pts_us, video.data
                        )
                        seq += 1
                        await self._send_for(reply, encode_media_frame(frame), 0)
                    reply.face_ready.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # the voice goes on without a face rather than failing the turn
                log.warning("avatar failed for turn %d", reply.turn_id, exc_info=True)
            finally:
                reply.face_ready.set()
                await frames.aclose()

    async def _finish(self, reply: Reply, status: str) -> None:
        reply.mark("total_ms", self._clock())
        reply.done_sent = True
        if reply.confirmed:
            self._telemetry.reply_finished(status, reply.timings, reply.tokens)
        heard = reply.text.strip() if status == "completed" else ""
        await self._emit_for(
            reply,
            ev.ResponseDone(
                turn_id=reply.turn_id,
                status=status,
                text=reply.text.strip(),
                heard_text=heard,
                timings=reply.timings,
            ),
        )
        if status != "completed":
            reply.ended = True

    # ------------------------------------------------------------------ confirm, commit, cut

    async def _confirm(self, reply: Reply) -> None:
        """The turn is over: let the reply be heard, sending what it prepared meanwhile."""
        self._carry_audio = b""  # it is part of this reply's audio now
        async with self._send_lock:
            while reply.outbox:
                message, samples = reply.outbox.pop(0)
                await self._deliver(reply, message, samples)
            reply.confirmed = True
        if reply.done_sent:
            status = (
                "completed" if reply.completed else ("empty" if not reply.transcript else "failed")
            )
            self._telemetry.reply_finished(status, reply.timings, reply.tokens)
        self._commit(reply)

    def _commit(self, reply: Reply) -> None:
        """Write the turn into the conversation once it is confirmed, as far as it is known."""
        if not reply.confirmed or reply.ended:
            return
        if reply.transcript is not None and not reply.user_added:
            log.debug(
                "session %s: turn %d user %r", self.session_id, reply.turn_id, reply.transcript
            )
            self.conversation.add_user(reply.transcript)
            reply.user_added = True
        if reply.completed and reply.user_added and not reply.assistant_added:
            self.conversation.add_assistant(reply.text.strip())
            reply.assistant_added = True

    async def _interrupt(self, status: str) -> None:
        reply = self._reply
        if reply is None or not self._responding():
            return
        reply.ended = True
        now = self._clock()
        if reply.running():
            assert reply.task is not None
            reply.task.cancel()
            await asyncio.gather(reply.task, return_exceptions=True)
        played = reply.clock.played_samples(now)
        heard = heard_text(reply.chunks, played)
        log.debug(
            "session %s: turn %d interrupted, heard %r", self.session_id, reply.turn_id, heard
        )
        if not reply.user_added:
            # Never transcribed: it joins the next turn (bounded to fit Whisper's window).
            self._carry_audio = reply.audio[-_MAX_CARRY_MS * _MS * 2 :]
        elif reply.assistant_added:
            self.conversation.replace_last_assistant(heard)
        else:
            self.conversation.add_assistant(heard)
        played_ms = played * 1000 // self._stages.output_sample_rate
        await self._emit(
            ev.ResponseInterrupted(turn_id=reply.turn_id, played_ms=played_ms, heard_text=heard)
        )
        self._telemetry.interruption()
        if not reply.done_sent:
            reply.done_sent = True
            reply.mark("total_ms", now)
            self._telemetry.reply_finished(status, reply.timings, reply.tokens)
            await self._emit(
                ev.ResponseDone(
                    turn_id=reply.turn_id,
                    status=status,
                    text=reply.text.strip(),
                    heard_text=heard,
                    timings=reply.timings,
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

    async def _emit(self, event: ev.ServerEvent) -> None:
        async with self._send_lock:
            await self._send_raw(encode_server_event(event))

    async def _emit_for(self, reply: Reply, event: ev.ServerEvent) -> None:
        await self._send_for(reply, encode_server_event(event), 0)

    async def _send_for(self, reply: Reply, message: str | bytes, samples: int) -> None:
        """Send a message of `reply`, or hold it while the reply is still speculative."""
        async with self._send_lock:
            if not reply.confirmed:
                reply.outbox.append((message, samples))
                return
            await self._deliver(reply, message, samples)

    async def _deliver(self, reply: Reply, message: str | bytes, samples: int) -> None:
        await self._send_raw(message)
        if samples:
            now = self._clock()
            reply.mark("first_audio_sent_ms", now)
            reply.clock.sent(samples, now)

    async def _error(self, code: ErrorCode, message: str, turn_id: int | None = None) -> None:
        self._telemetry.error(code.value)
        retryable = code in RETRYABLE_CODES
        await self._emit(
            ev.ErrorEvent(code=code.value, message=message, retryable=retryable, turn_id=turn_id)
        )
