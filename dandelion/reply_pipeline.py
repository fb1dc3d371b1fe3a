"""One reply, made: transcript, LLM stream, chunks, TTS, audio and avatar frames. No Ray here.

Transcript → LLM stream → sentence chunks → TTS → audio frames, the avatar's frames beside
them (face and voice start together), and the events that finish the reply.

`ReplyPipeline.run(reply)` is an async iterator of typed outputs; it knows nothing of turn-taking,
of the conversation or of the WebSocket. The session consumes it: it sends each `Emit` (or holds
it while the reply is speculative), answers `Transcribed` by setting `reply.messages` (the LLM
prompt) before asking for the next output, judges the end of the user's turn on `Scored`, and
closes the reply on `Finished`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from dandelion.backends.asr.base import Transcript
from dandelion.backends.tts.base import SpeechChunk
from dandelion.chunking import SentenceChunker
from dandelion.config import SpeechGateSettings
from dandelion.conversation import SpokenChunk
from dandelion.end_of_turn import Completeness
from dandelion.errors import LLMServiceError
from dandelion.protocol import ErrorCode, MediaFrame, MediaKind
from dandelion.protocol import events as ev
from dandelion.protocol.errors import RETRYABLE_CODES
from dandelion.reply import Outgoing, Reply, ReplyState
from dandelion.reply_length import ReplyLengthCap
from dandelion.speech_gate import ACCEPTED, judge, spoken_reply
from dandelion.spoken_form import to_spoken
from dandelion.stages import Stages
from dandelion.telemetry import Telemetry

log = logging.getLogger(__name__)

_AUDIO_FRAME_MS = 200  # response audio goes out in frames of this length
_FACE_WAIT_S = 0.15  # the longest the first audio of a reply waits for the avatar's first frame
_FACE_GRACE_S = 2.0  # once the voice is made, the avatar has its length and this long to finish


@dataclass(frozen=True, slots=True)
class Transcribed:
    """The user's words are known; the session sets `reply.messages` before the next output."""

    text: str


@dataclass(frozen=True, slots=True)
class Emit:
    """Something for the client, with the number of reply audio samples it carries."""

    item: Outgoing
    samples: int = 0


@dataclass(frozen=True, slots=True)
class Finished:
    """The pipeline is over: `status` is completed, failed or ignored (not speech to answer:
    speech_gate.py). Nothing follows."""

    status: str


@dataclass(frozen=True, slots=True)
class Scored:
    """The LLM's end-of-turn probability for the transcript (None: no score), while the reply
    is still speculative: the session's turn detector uses it."""

    probability: float | None


PipelineOutput = Transcribed | Scored | Emit | Finished

_Out = asyncio.Queue[PipelineOutput | None]
_Speech = asyncio.Queue[tuple[SpeechChunk, float] | None]  # speech pieces and their start (s)


class _StageFailure(Exception):
    def __init__(self, code: ErrorCode, cause: BaseException) -> None:
        super().__init__(f"{code.value}: {cause}")
        self.code = code


class ReplyPipeline:
    """Makes replies for one session: iterate `run(reply)`; cancel the iteration to cut it.

    `face_s()`: the session's face clock now (s), read as the voice starts, so the avatar's
    blinks and sway carry on from its idle frames. `max_reply_words`: the spoken-length cap
    (reply_length.py; 0: none). `gate`: what transcripts are answered (speech_gate.py).
    """

    def __init__(
        self,
        stages: Stages,
        *,
        clock: Callable[[], float],
        telemetry: Telemetry,
        face_s: Callable[[], float] = lambda: 0.0,
        max_reply_words: int = 0,
        gate: SpeechGateSettings | None = None,
    ) -> None:
        self._stages = stages
        self._clock = clock
        self._telemetry = telemetry
        self._face_s = face_s
        self._max_reply_words = max_reply_words
        self._gate = gate or SpeechGateSettings()

    async def run(self, reply: Reply) -> AsyncIterator[PipelineOutput]:
        try:
            asr_start = self._clock()
            transcript = await self._transcribe(reply.audio)
        except _StageFailure as failure:
            for failed in self._failed(reply, failure):
                yield failed
            return
        reply.timings["asr_ms"] = round((self._clock() - asr_start) * 1000, 1)
        reply.mark("transcript_ms", self._clock())
        text = f"{reply.prefix} {transcript.text.strip()}".strip()
        # A long turn's earlier pieces were speech: the rest may be a breath.
        verdict = judge(transcript, self._gate) if not reply.prefix else ACCEPTED
        if not verdict.accepted:
            # Not speech to answer (a noise, a sigh, another language): the client is told
            # why, the conversation is left as it was, and at most a fixed line is said.
            log.info("turn %d not answered: %s (%s)", reply.turn_id, verdict.reason, verdict.detail)
            assert verdict.reason is not None
            yield Emit(
                ev.InputIgnored(
                    reply.start_ms, reply.end_ms, verdict.reason, text, turn_id=reply.turn_id
                )
            )
            line = spoken_reply(verdict, self._gate)
            if line is not None:
                yield Emit(ev.ResponseStarted(turn_id=reply.turn_id))
                async for output in self._outputs(reply, line):
                    yield output
            yield Finished("ignored")
            return
        yield Transcribed(text)
        # The LLM is asked only when the words' form left it open: a question or a plainly
        # unfinished ending is decided already, and the reply starts ~0.1 s sooner.
        if (
            reply.score_end_of_turn
            and reply.state is ReplyState.SPECULATIVE
            and reply.completeness is Completeness.UNSURE
        ):
            yield Scored(await self._end_of_turn_probability(reply))
        yield Emit(ev.TranscriptFinal(turn_id=reply.turn_id, text=text))
        yield Emit(ev.ResponseStarted(turn_id=reply.turn_id))
        async for output in self._outputs(reply, None):
            yield output

    async def _outputs(self, reply: Reply, line: str | None) -> AsyncIterator[PipelineOutput]:
        """The reply's outputs as `_produce` makes them: the LLM's words, or a fixed `line`."""
        out: _Out = asyncio.Queue()
        producer = asyncio.create_task(self._produce(reply, out, line))
        try:
            while (output := await out.get()) is not None:
                yield output
        finally:
            if not producer.done():
                producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)

    async def _transcribe(self, audio: bytes) -> Transcript:
        try:
            return await self._stages.transcribe(audio)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise _StageFailure(ErrorCode.ASR_FAILED, exc) from exc

    async def _end_of_turn_probability(self, reply: Reply) -> float | None:
        """The LLM's probability that the user's message ends here (None: it cannot say).

        Scored on the reply's own prompt, so the LLM's cache then holds it for the reply.
        """
        assert reply.messages is not None, "the session sets the prompt on Transcribed"
        try:
            return await self._stages.end_of_turn_probability(reply.messages)
        except asyncio.CancelledError:
            raise
        except Exception:  # the turn then ends on the words' form and silence alone
            log.warning("end-of-turn scoring failed for turn %d", reply.turn_id, exc_info=True)
            return None

    async def _produce(self, reply: Reply, out: _Out, line: str | None) -> None:
        """LLM (or a fixed `line`), TTS and avatar: every output into `out`, then None.

        A fixed line ends `Finished` by the caller: only the LLM's reply is "completed".
        """
        speaker: asyncio.Task[None] | None = None
        animator: asyncio.Task[None] | None = None
        try:
            chunks: asyncio.Queue[str | None] = asyncio.Queue()
            speech: _Speech | None = None
            face_ready = asyncio.Event()
            if reply.video_codec != "off":
                speech = asyncio.Queue()
                animator = asyncio.create_task(self._animate(reply, speech, out, face_ready))
            else:
                face_ready.set()
            speaker = asyncio.create_task(self._speak(reply, chunks, speech, out, face_ready))
            if line is None:
                await self._generate(reply, chunks, out)
            else:
                reply.text = line
                chunker = SentenceChunker()
                for chunk in (*chunker.push(line), *chunker.flush()):
                    chunks.put_nowait(chunk)
                chunks.put_nowait(None)
            await speaker
            duration_ms = reply.samples_made * 1000 // self._stages.output_sample_rate
            out.put_nowait(
                Emit(ev.ResponseAudioDone(turn_id=reply.turn_id, duration_ms=duration_ms))
            )
            if animator is not None:
                await self._face_after_voice(reply, animator)
            if line is None:
                out.put_nowait(Finished("completed"))
        except _StageFailure as failure:
            for output in self._failed(reply, failure):
                out.put_nowait(output)
        finally:
            for helper in (speaker, animator):
                if helper is not None and not helper.done():
                    helper.cancel()
                    await asyncio.gather(helper, return_exceptions=True)
            out.put_nowait(None)

    async def _face_after_voice(self, reply: Reply, animator: asyncio.Task[None]) -> None:
        """The avatar's last frames once the voice is made: for as long as that voice takes to
        play, and a little more. A healthy face renders faster than it plays; frames later than
        that come after their audio anyway, and a dead avatar must not hold the turn open."""
        voice_s = reply.samples_made / self._stages.output_sample_rate
        try:
            async with asyncio.timeout(voice_s + _FACE_GRACE_S):
                await animator
        except TimeoutError:  # the timeout cancelled it: the reply ends without the rest
            await asyncio.gather(animator, return_exceptions=True)
            log.warning("avatar too slow for turn %d: its last frames dropped", reply.turn_id)

    def _failed(self, reply: Reply, failure: _StageFailure) -> list[PipelineOutput]:
        self._telemetry.error(failure.code.value)
        error = ev.ErrorEvent(
            code=failure.code.value,
            message=str(failure),
            retryable=failure.code in RETRYABLE_CODES,
            turn_id=reply.turn_id,
        )
        return [Emit(error), Finished("failed")]

    async def _generate(self, reply: Reply, chunks: asyncio.Queue[str | None], out: _Out) -> None:
        chunker = SentenceChunker()
        cap = ReplyLengthCap(self._max_reply_words)
        llm_start = self._clock()
        try:
            assert reply.messages is not None, "the session sets the prompt on Transcribed"
            stream = self._stages.chat(reply.messages)
            try:
                async for delta in stream:
                    if not reply.text:
                        reply.mark("llm_first_token_ms", self._clock())
                        reply.timings["llm_ttft_ms"] = round((self._clock() - llm_start) * 1000, 1)
                    reply.text += delta
                    reply.tokens += 1
                    out.put_nowait(Emit(ev.ResponseTextDelta(turn_id=reply.turn_id, delta=delta)))
                    for chunk in chunker.push(delta):
                        if cap.admit(chunk):
                            chunks.put_nowait(chunk)
                    if cap.full:  # long enough: the LLM stops now, the reply ends with its sentence
                        reply.text = cap.text
                        break
            finally:
                await stream.aclose()
        except (asyncio.CancelledError, _StageFailure):
            raise
        except LLMServiceError as exc:
            # The backend's code (llm_unauthorized, ...). Across Ray the error comes wrapped, still
            # an LLMServiceError with the original's code and message, but its str is a traceback:
            # the client gets the message alone.
            code = ErrorCode(exc.code)
            raise _StageFailure(code, LLMServiceError(code, exc.message)) from exc
        except Exception as exc:
            raise _StageFailure(ErrorCode.LLM_FAILED, exc) from exc
        finally:
            for chunk in chunker.flush():
                if cap.admit(chunk):
                    chunks.put_nowait(chunk)
            chunks.put_nowait(None)
        reply.mark("llm_done_ms", self._clock())
        out.put_nowait(Emit(ev.ResponseTextDone(turn_id=reply.turn_id, text=reply.text.strip())))

    async def _speak(
        self,
        reply: Reply,
        chunks: asyncio.Queue[str | None],
        speech_out: _Speech | None,
        out: _Out,
        face_ready: asyncio.Event,
    ) -> None:
        """Synthesize each chunk and send its audio; hand each piece to the avatar, if any.

        The TTS gets the chunk's spoken form (`to_spoken`: no markdown, numbers as words); the
        reply's chunks keep the written text, as the user saw it, for the conversation history.
        A chunk with nothing to say (markup or emoji only) is skipped.
        """
        rate = self._stages.output_sample_rate
        frame_bytes = rate * _AUDIO_FRAME_MS // 1000 * 2
        seq = 0
        try:
            while (text := await chunks.get()) is not None:
                if not (spoken := to_spoken(text)):
                    continue
                chunk_start = reply.samples_made
                tts_start = self._clock()
                speech = self._stages.speak(spoken)
                try:
                    async for piece in speech:
                        pcm = piece.pcm
                        if speech_out is not None:
                            speech_out.put_nowait((piece, reply.samples_made / rate))
                            if reply.samples_made == 0:
                                # Face and voice start together: the first frame (~10 ms to
                                # render) goes out before the first audio, so a client never
                                # shows a voice ahead of its face. Later frames are rendered
                                # well ahead of time.
                                with contextlib.suppress(TimeoutError):
                                    async with asyncio.timeout(_FACE_WAIT_S):
                                        await face_ready.wait()
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
                            out.put_nowait(Emit(frame, len(payload) // 2))
                except (asyncio.CancelledError, _StageFailure):
                    raise
                except Exception as exc:
                    raise _StageFailure(ErrorCode.TTS_FAILED, exc) from exc
                finally:
                    await speech.aclose()  # cancels the synthesis on its replica now, not at GC
        finally:
            if speech_out is not None:
                speech_out.put_nowait(None)

    async def _animate(
        self, reply: Reply, speech: _Speech, out: _Out, face_ready: asyncio.Event
    ) -> None:
        """The avatar's video for each piece of speech, sent beside (and behind) its audio."""
        seq = 0
        face_s: float | None = None
        while (item := await speech.get()) is not None:
            piece, start_s = item
            if face_s is None:
                # The face clock as the voice starts (its first audio waits for this face), so
                # blinks and sway carry on from the idle frames instead of replaying them.
                face_s = self._face_s()
            frames = self._stages.animate(piece, start_s, reply.video_codec, face_s)
            try:
                async for batch in frames:
                    for video in batch:
                        self._telemetry.avatar_frame(video.seconds)
                        frame = MediaFrame(
                            MediaKind.VIDEO, reply.turn_id, seq, video.pts_us, video.data
                        )
                        seq += 1
                        out.put_nowait(Emit(frame))
                    face_ready.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # the voice goes on without a face rather than failing the turn
                log.warning("avatar failed for turn %d", reply.turn_id, exc_info=True)
            finally:
                face_ready.set()
                await frames.aclose()
