"""One conversation: audio in, turn decisions, barge-in. No Ray here.

A `Session` is a plain object inside the gateway replica that holds the WebSocket: creating one
costs microseconds, and per-frame work (VAD, turn-taking) never leaves the process. Model stages
are called once per utterance (ASR) or per chunk (LLM stream, TTS) through `Stages`.

Replies start speculatively at a short pause and are held back until the end of the turn is
confirmed, so the end-of-turn silence overlaps with transcription, generation and synthesis.
Making a reply is `ReplyPipeline`'s work (reply_pipeline.py); the session decides when one
starts, holds its messages until it is confirmed, writes the conversation, and cuts it off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np

from dandelion.backends.vad.base import VADModel
from dandelion.config import AppSettings
from dandelion.conversation import Conversation, heard_text
from dandelion.echo import ECHO_LIKENESS, EchoReference
from dandelion.end_of_turn import Completeness, lexical_completeness, required_silence_ms
from dandelion.idle_face import IdleFace
from dandelion.long_turn import TurnPieces, quietest_point_ms
from dandelion.overlap import Overlap, judge_overlap
from dandelion.playback import PlaybackClock
from dandelion.protocol import (
    INPUT_CHANNELS,
    INPUT_SAMPLE_RATE,
    PROTOCOL_VERSION,
    ErrorCode,
    MediaFrame,
    ProtocolError,
    decode_client_message,
)
from dandelion.protocol import events as ev
from dandelion.protocol.errors import RETRYABLE_CODES
from dandelion.reply import Outgoing, Reply, ReplyState
from dandelion.reply_pipeline import Emit, Finished, ReplyPipeline, Scored, Transcribed
from dandelion.session_state import SessionState
from dandelion.speech_gate import judge
from dandelion.stages import Stages
from dandelion.telemetry import NoTelemetry, Telemetry
from dandelion.time_context import current_line
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

Send = Callable[[Outgoing], Awaitable[None]]
"""Deliver one typed event or media frame to the client (the gateway encodes it)."""
_MS = INPUT_SAMPLE_RATE // 1000  # samples per ms
_END_TAIL_MS = 150  # audio kept after the last voiced frame (soft word endings)
_PARTIAL_MAX_SILENCE_MS = 96  # no partial transcript once the speaker has paused this long
_MAX_CARRY_MS = 15_000  # an untranscribed turn carried into the next one, at most
_ECHO_WINDOW_MS = 256  # microphone audio compared with the reply's to recognise its echo
# Speech over a reply is judged at its first short pause, whatever the turn detection.
_OVERLAP_END_SILENCE_MS = required_silence_ms(Completeness.COMPLETE, "medium")
_REJUDGE_MS = 700  # speech over a reply this long is judged again: backchannels are shorter
_RESUME_GRACE_S = 0.25  # a paused reply resumes this long after a backchannel, if all is quiet
_OVERLAP_ASR_S = 1.0  # the longest the audio waits for the words of speech over a reply


def _asks(transcript: str | None) -> bool:
    return (transcript or "").rstrip().endswith("?")


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
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        restored: SessionState | None = None,
        resume_token: str | None = None,
    ) -> None:
        """`restored`: a conversation to go on with (a client resuming it); `resume_token`: the
        token `session.created` gives the client to resume this one (None: not resumable)."""
        self.session_id = session_id
        self.settings = settings
        self._stages = stages
        self._send_raw = send
        self._send_lock = asyncio.Lock()
        self._clock = clock
        self._sleep = sleep  # on `clock`'s time
        self._telemetry = telemetry or NoTelemetry()
        self._vad = vad.new_stream()
        self._frame = vad.frame_samples
        self._frame_ms = self._frame // _MS
        self._detector = EndpointDetector(settings.turn.turn_config())
        self._turn_changes: dict[str, object] = {}  # the client's, by session.update
        self.conversation = Conversation(
            settings.system_instructions(), settings.max_history_messages
        )
        self._pcm = bytearray()  # input audio kept, starting at sample `_pcm_origin`
        self._pcm_origin = 0
        self._pending = np.zeros(0, dtype=np.float32)  # samples not yet in a VAD frame
        self._samples_seen = 0  # samples through the VAD
        self._turn_id = 0
        self._segment = 0  # bumps at each speech start and end; stale work compares against it
        self._last_partial_ms = 0
        self._partial_task: asyncio.Task[None] | None = None
        self._carry_audio = b""  # a turn cut off before its transcript joins the next one
        self._carry_text = ""  # ...with the text of its earlier pieces, if it was long
        self._pieces = TurnPieces(settings.turn.long_turn_piece_ms)  # a long turn's, so far
        self._piece_task: asyncio.Task[None] | None = None
        self._reply: Reply | None = None
        self._reply_task: asyncio.Task[None] | None = None
        self._played_task: asyncio.Task[None] | None = None  # announces response.audio.played
        self._resume_task: asyncio.Task[None] | None = None  # resumes a paused reply, soon
        self._rejudged_segment = -1  # the speech over a reply judged again at _REJUDGE_MS
        self._video = "off"  # the avatar's codec for this session, once the client asks
        self._idle: IdleFace | None = None  # the face between replies, while video is on
        self._idle_task: asyncio.Task[None] | None = None
        self._pipeline = ReplyPipeline(
            stages,
            clock=clock,
            telemetry=self._telemetry,
            face_s=self._face_s,
            max_reply_words=settings.max_reply_words,
            gate=settings.speech_gate,
        )
        self._resume_token = resume_token
        self._resumed = restored is not None
        if restored is not None:
            self._restore(restored)

    def _restore(self, state: SessionState) -> None:
        self.conversation.instructions = state.instructions
        self.conversation.messages = [dict(m) for m in state.messages]
        self._turn_changes = dict(state.turn_changes)
        if self._turn_changes:
            self._detector.reconfigure(self.settings.turn.turn_config(**self._turn_changes))
        if state.video != "off" and self._stages.video is not None:
            self._video = state.video
        self._turn_id = state.turn_id

    def state(self) -> SessionState:
        """What a client resuming this conversation gets back (session_state.py)."""
        return SessionState(
            session_id=self.session_id,
            instructions=self.conversation.instructions,
            messages=[dict(m) for m in self.conversation.messages],
            turn_changes=dict(self._turn_changes),
            video=self._video,
            turn_id=self._turn_id,
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._telemetry.session_opened()
        await self._emit(
            ev.SessionCreated(
                protocol=PROTOCOL_VERSION,
                session_id=self.session_id,
                input_audio=ev.AudioFormat("pcm_s16le", INPUT_SAMPLE_RATE, INPUT_CHANNELS),
                output_audio=ev.AudioFormat("pcm_s16le", self._stages.output_sample_rate, 1),
                end_of_turn_silence_ms=self._detector.config.end_of_turn_silence_ms,
                instructions=self.conversation.instructions,
                output_video=self._video_info(),
                turn_detection=self._detector.config.detection,
                eagerness=self._detector.config.eagerness,
                resume_token=self._resume_token,
                resumed=self._resumed,
            )
        )
        if self._video != "off":  # resumed with the avatar on: its idle face, as before
            await self._restart_idle_face()

    def _video_info(self) -> ev.VideoInfo:
        video = self._stages.video
        if video is None:
            return ev.VideoInfo("off", 0.0, 0, 0)
        return ev.VideoInfo(self._video, video.fps, video.width, video.height, video.idle_fps)

    async def close(self) -> None:
        self._telemetry.session_closed()
        # A question left without its reply (the connection dropped mid-turn) stays in the
        # history, but a resumed conversation's next question must not join it.
        if self.conversation.messages and self.conversation.messages[-1]["role"] == "user":
            self.conversation.fail_user()
        tasks = [
            t
            for t in (
                self._partial_task,
                self._idle_task,
                self._reply_task,
                self._played_task,
                self._piece_task,
                self._resume_task,
            )
            if t is not None
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def report_internal_error(self, exc: BaseException) -> None:
        """A fault while handling a message: the client gets the code and an id; the log, the
        exception under that id."""
        import uuid

        error_id = uuid.uuid4().hex
        log.error("session %s: internal error %s", self.session_id, error_id, exc_info=exc)
        await self._error(ErrorCode.INTERNAL_ERROR, "internal server error", error_id=error_id)

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
        changes: dict[str, object] = {}
        if update.end_of_turn_silence_ms is not None:  # a fixed silence: silence detection
            changes.update(end_of_turn_silence_ms=update.end_of_turn_silence_ms)
            changes.update(detection="silence")
        if update.turn_detection is not None:
            changes.update(detection=update.turn_detection)
        if update.eagerness is not None:
            changes.update(eagerness=update.eagerness)
        if changes:
            # From the server's settings each time, so no derived value (a speculative pause
            # switched off under a short fixed silence) outlives the change that caused it.
            self._turn_changes.update(changes)
            self._detector.reconfigure(self.settings.turn.turn_config(**self._turn_changes))
        config = self._detector.config
        await self._emit(
            ev.SessionUpdated(
                end_of_turn_silence_ms=config.end_of_turn_silence_ms,
                instructions=self.conversation.instructions,
                video=self._video,
                turn_detection=config.detection,
                eagerness=config.eagerness,
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
            self._send_idle,
            self._video,
            video.idle_fps,
            busy=self._responding,
            clock=self._clock,
            on_frame=self._telemetry.avatar_frame,
        )
        if previous is not None:
            self._idle.continue_clock(previous)
        self._idle_task = asyncio.create_task(self._idle.run())

    async def _send_idle(self, message: MediaFrame) -> bool:
        """Send an idle frame unless a reply took the floor while it waited for the lock."""
        async with self._send_lock:
            if self._responding():
                return False
            await self._send_raw(message)
            return True

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
            if probability >= self._detector.config.silence_threshold and self._is_echo(now_ms):
                probability = 0.0  # the reply coming back from a loudspeaker is not the user
            decisions = self._detector.update(
                probability, now_ms, self._frame_ms, responding=self._responding()
            )
            for decision in decisions:
                await self._on_decision(decision, now_ms)
            await self._cut_long_overlap(now_ms)
        self._maybe_transcribe_piece(self._samples_seen // _MS)
        self._pending = pending[usable:]
        self._maybe_partial()
        self._trim_input()

    def _is_echo(self, now_ms: int) -> bool:
        """Is the microphone, over the last `_ECHO_WINDOW_MS`, hearing the reply being played?"""
        reply = self._reply
        now = self._clock()
        if reply is None or reply.echo is None or not reply.clock.playing(now):
            return False
        pcm = self._input_audio(now_ms - _ECHO_WINDOW_MS, now_ms)
        mic = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        played = reply.clock.played_samples(now)
        position = played * INPUT_SAMPLE_RATE // self._stages.output_sample_rate
        return reply.echo.likeness(mic, position) >= ECHO_LIKENESS

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
            self._pieces.reset(decision.start_ms - self.settings.turn.pre_roll_ms)
            await self._emit(ev.SpeechStarted(audio_start_ms=decision.start_ms))
            self._cancel_resume()  # still paused: this speech is judged in its turn
            await self._pause_reply()
        elif isinstance(decision, BargeIn):
            await self._on_overlap(decision.start_ms, now_ms, final=False)
        elif isinstance(decision, Pause):
            if not self._responding():
                self._start_reply(decision.start_ms, decision.end_ms, now_ms)
        elif isinstance(decision, Resume):
            await self._drop_speculative()
        elif isinstance(decision, EndOfTurn):
            await self._on_end_of_turn(decision, now_ms)

    async def _on_overlap(
        self, start_ms: int, end_ms: int, final: bool, any_words: bool = False
    ) -> bool:
        """Judge speech over the reply from its words; cut the reply if it is an interruption.

        Called once the speech has lasted `barge_in_min_speech_ms` (`final` False: only clear
        words cut it now), at `_REJUDGE_MS` (`any_words`: words the speech gate doubts cut it
        too, since a backchannel is over by then), and when it ends (`final` True). True: the
        reply was cut.
        """
        reply = self._reply
        if reply is None or not self._responding():
            return True
        if not self.settings.turn.backchannels or not reply.clock.started:
            # Judging is off, or none of the reply has been played: the user is going on with
            # their turn (repair: the reply is dropped, the two parts become one turn).
            await self._interrupt(status="interrupted")
            return True
        self._detector.end_after(_OVERLAP_END_SILENCE_MS)
        audio = self._input_audio(start_ms, end_ms + _END_TAIL_MS)
        try:
            async with asyncio.timeout(_OVERLAP_ASR_S):
                transcript = await self._stages.transcribe(audio)
            heard = transcript.text.strip()
            real_speech = judge(transcript, self.settings.speech_gate).accepted
        except Exception:  # no words to judge by: speech this long over a reply is meant
            log.warning("transcript of speech over the reply failed", exc_info=True)
            heard = ""
            verdict = Overlap.INTERRUPTION if final else Overlap.NOTHING
        else:
            verdict = judge_overlap(
                heard, self._playing_text(reply), self.settings.turn.backchannels
            )
            if verdict is Overlap.INTERRUPTION and not real_speech and not any_words:
                # Words Whisper was unsure of ("mm-hmm" heard as "and anthem"): only clear
                # words cut a reply; long speech cuts it anyway (backchannel_max_ms).
                verdict = Overlap.NOTHING
        log.debug("session %s: over the reply %r: %s", self.session_id, heard, verdict.value)
        if verdict is Overlap.INTERRUPTION and self._responding():
            self._detector.set_completeness(Completeness.UNKNOWN)
            await self._interrupt(status="interrupted")
            return True
        if final:
            await self._emit(
                ev.InputIgnored(
                    audio_start_ms=start_ms, audio_end_ms=end_ms, reason=verdict.value, text=heard
                )
            )
            self._resume_soon()
        return False

    async def _cut_long_overlap(self, now_ms: int) -> None:
        """Speech over a paused reply that goes on this long is no backchannel: cut it."""
        reply, start = self._reply, self._detector.speech_start_ms
        if reply is None or not reply.clock.paused or start is None:
            return
        voiced = self._detector.voiced_ms()
        if voiced >= self.settings.turn.backchannel_max_ms:
            self._detector.set_completeness(Completeness.UNKNOWN)
            await self._interrupt(status="interrupted")
        elif voiced >= _REJUDGE_MS and self._rejudged_segment != self._segment:
            self._rejudged_segment = self._segment
            await self._on_overlap(start, now_ms, final=False, any_words=True)

    def _playing_text(self, reply: Reply) -> str:
        """The reply's words around what the client is playing now (echo comes back late)."""
        played = reply.clock.played_samples(self._clock())
        rate = self._stages.output_sample_rate
        lo, hi = played - 4 * rate, played + rate
        return " ".join(
            c.text
            for c in reply.chunks
            if c.start_sample < hi and c.start_sample + c.num_samples > lo
        )

    async def _on_end_of_turn(self, turn: EndOfTurn, now_ms: int) -> None:
        segment = self._segment
        self._segment += 1  # partials of the finished segment are stale now
        # Speech over the reply that has not cut it yet: a backchannel, the reply's echo, or a
        # cough goes unanswered; anything else cuts the reply and is this turn.
        if self._responding() and not await self._on_overlap(turn.start_ms, turn.end_ms, True):
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
        self._discard_speculative()
        audio = self._carry_audio + self._input_audio(
            self._pieces.rest_start_ms, end_ms + _END_TAIL_MS
        )
        prefix = " ".join(t for t in (self._carry_text, self._pieces.prefix) if t)
        self._turn_id += 1
        now = self._clock()
        reply = Reply(
            turn_id=self._turn_id,
            segment=self._segment,
            audio=audio,
            speech_end=now - (now_ms - end_ms) / 1000,
            clock=PlaybackClock(self._stages.output_sample_rate),
            start_ms=start_ms,
            end_ms=end_ms,
            prefix=prefix,
            video_codec=self._video,
            score_end_of_turn=self._detector.config.semantic,
            echo=EchoReference(self._stages.output_sample_rate, INPUT_SAMPLE_RATE),
        )
        self._reply = reply
        self._reply_task = asyncio.create_task(self._run_reply(reply))
        return reply

    def _discard_speculative(self) -> asyncio.Task[None] | None:
        """Drop the reply if it is still speculative; its task, cancelled, to await."""
        reply, task = self._reply, self._reply_task
        if reply is None or reply.state is not ReplyState.SPECULATIVE:
            return None
        reply.advance(ReplyState.DROPPED)
        self._reply = self._reply_task = None
        if task is not None:
            task.cancel()
        return task

    async def _drop_speculative(self) -> None:
        task = self._discard_speculative()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

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
        audio = self._input_audio(self._pieces.rest_start_ms, now_ms)
        self._partial_task = asyncio.create_task(
            self._partial(self._segment, audio, self._pieces.prefix)
        )

    async def _partial(self, segment: int, audio: bytes, prefix: str) -> None:
        try:
            text = (await self._stages.transcribe(audio)).text.strip()
        except Exception:  # best effort: the final transcript reports failures
            log.warning("partial transcript failed", exc_info=True)
            return
        if segment == self._segment and text:
            await self._emit(ev.TranscriptPartial(text=f"{prefix} {text}".strip()))

    def _maybe_transcribe_piece(self, now_ms: int) -> None:
        """A long turn: transcribe the next piece of it now (long_turn.py)."""
        if not self._detector.speaking:
            return
        window = self._pieces.search_window(now_ms)
        if window is None:
            return
        pcm = np.frombuffer(self._input_audio(*window), dtype="<i2")
        start, end = self._pieces.start(quietest_point_ms(pcm, window[0], INPUT_SAMPLE_RATE))
        audio = self._input_audio(start, end)
        self._piece_task = asyncio.create_task(self._transcribe_piece(self._segment, audio))

    async def _transcribe_piece(self, segment: int, audio: bytes) -> None:
        try:
            text = (await self._stages.transcribe(audio)).text.strip()
        except Exception:  # its audio stays in the rest, transcribed with the reply
            log.warning("transcript of a long turn's piece failed", exc_info=True)
            if segment == self._segment:
                self._pieces.abandon()
            return
        if segment == self._segment:
            self._pieces.done(text)

    # ------------------------------------------------------------------ the reply's life

    def _responding(self) -> bool:
        """The assistant holds the floor: a confirmed reply is being made or played."""
        reply = self._reply
        if reply is None:
            return False
        if reply.state is ReplyState.CONFIRMED:
            return True
        clock = reply.clock
        return reply.state is ReplyState.DONE and (clock.paused or clock.playing(self._clock()))

    async def _pause_reply(self) -> None:
        """Speech over the reply being played: hold it while its words are judged."""
        reply = self._reply
        now = self._clock()
        if reply is None or not reply.confirmed or not reply.clock.playing(now):
            return
        if not self.settings.turn.backchannels:
            return  # nothing to judge: it is cut once the speech is long enough
        reply.clock.pause(now)
        self._detector.end_after(_OVERLAP_END_SILENCE_MS)
        played_ms = reply.clock.played_samples(now) * 1000 // self._stages.output_sample_rate
        await self._emit(ev.ResponseAudioPaused(turn_id=reply.turn_id, played_ms=played_ms))

    def _resume_soon(self) -> None:
        """Resume the paused reply after `_RESUME_GRACE_S`, unless speech starts again first
        (the judged sound was the first word of more: "Actually, ..."): then that is judged."""
        self._cancel_resume()
        self._resume_task = asyncio.create_task(self._resume_reply(_RESUME_GRACE_S))

    def _cancel_resume(self) -> None:
        if self._resume_task is not None:
            self._resume_task.cancel()
            self._resume_task = None

    async def _resume_reply(self, after_s: float) -> None:
        await self._sleep(after_s)
        self._resume_task = None
        reply = self._reply
        if reply is None or not reply.clock.paused or reply.over or self._detector.speaking:
            return
        reply.clock.resume(self._clock())
        await self._emit(ev.ResponseAudioResumed(turn_id=reply.turn_id))
        self._watch_playback(reply)

    def _watch_playback(self, reply: Reply) -> None:
        """Send `response.audio.played` once a finished reply has played to its end."""
        if self._played_task is not None:
            self._played_task.cancel()
        self._played_task = asyncio.create_task(self._announce_played(reply))

    async def _announce_played(self, reply: Reply) -> None:
        while reply is self._reply and reply.state is ReplyState.DONE:
            if reply.clock.paused:
                return  # its resume watches again
            remaining = reply.clock.end_s() - self._clock()
            if remaining <= 0:
                await self._emit(ev.ResponseAudioPlayed(turn_id=reply.turn_id))
                return
            await self._sleep(remaining)

    def _face_s(self) -> float:
        return self._idle.now_s() if self._idle is not None else 0.0

    async def _run_reply(self, reply: Reply) -> None:
        """The reply's task: consume its pipeline, holding or sending what it makes."""
        async for output in self._pipeline.run(reply):
            if isinstance(output, Emit):
                await self._send_for(reply, output.item, output.samples)
            elif isinstance(output, Transcribed):
                self._on_transcribed(reply, output.text)
            elif isinstance(output, Scored):
                completeness = reply.completeness.combine(output.probability)
                if completeness is Completeness.UNSURE and _asks(reply.transcript):
                    # A question the LLM does not find unfinished ("What was the word?").
                    completeness = Completeness.COMPLETE
                self._judge_turn(reply, completeness)
            elif isinstance(output, Finished):
                reply.outcome = output.status
                reply.mark("total_ms", self._clock())
                if reply.confirmed:
                    await self._finish(reply)

    def _on_transcribed(self, reply: Reply, text: str) -> None:
        reply.transcript = text
        # The same date line for the prompt and for the history, so the LLM's cache holds.
        reply.context = current_line(self.settings.time_zone)
        reply.messages = self.conversation.prompt(pending_user=text, context=reply.context)
        if reply.confirmed:
            self._add_user(reply)
        else:
            self._judge_turn(reply, lexical_completeness(text))

    def _judge_turn(self, reply: Reply, completeness: Completeness) -> None:
        """Tell the detector what the words before this pause make, if they are still current."""
        reply.completeness = completeness
        if reply.state is ReplyState.SPECULATIVE and reply.segment == self._segment:
            self._detector.set_completeness(completeness, _asks(reply.transcript))

    def _add_user(self, reply: Reply) -> None:
        assert reply.transcript is not None
        log.debug("session %s: turn %d user %r", self.session_id, reply.turn_id, reply.transcript)
        self.conversation.add_user(reply.transcript, reply.context)

    async def _confirm(self, reply: Reply) -> None:
        """The turn is over: let the reply be heard, sending what it prepared meanwhile.

        What it already knows goes into the conversation now; what comes later, as it comes.
        """
        self._carry_audio, self._carry_text = b"", ""  # part of this reply now
        async with self._send_lock:
            for item, samples in reply.outbox:
                await self._deliver(reply, item, samples)
            reply.outbox.clear()
            reply.advance(ReplyState.CONFIRMED)
        if reply.transcript is not None:
            self._add_user(reply)
        if reply.outcome is not None:
            await self._finish(reply)

    async def _finish(self, reply: Reply) -> None:
        """A confirmed reply's pipeline is over: record it, and close it with response.done."""
        assert reply.outcome is not None
        reply.advance(ReplyState.DONE)
        if reply.clock.started:
            self._watch_playback(reply)
        heard = ""
        if reply.outcome == "completed":
            heard = reply.text.strip()
            self.conversation.add_assistant(heard)
        elif reply.outcome == "failed" and reply.transcript is not None:
            # Its words stay in the history (docs/protocol.md §10), but the next turn is a new
            # message and its prompt leaves them out: the user says them again if they meant them.
            self.conversation.fail_user()
        await self._send_done(reply, reply.outcome, heard)

    async def _interrupt(self, status: str) -> None:
        """Cut the reply the user is hearing (barge-in, or `response.cancel`)."""
        reply = self._reply
        if reply is None or not self._responding():
            return
        now = self._clock()
        finished = reply.state is ReplyState.DONE
        reply.advance(ReplyState.INTERRUPTED)
        task = self._reply_task
        if task is not None and not task.done():
            if not finished:  # a finished reply's task is only sending its response.done
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        played = reply.clock.played_samples(now)
        heard = heard_text(reply.chunks, played)
        log.debug(
            "session %s: turn %d interrupted, heard %r", self.session_id, reply.turn_id, heard
        )
        repair = status == "interrupted" and not heard and reply.transcript is not None
        if reply.transcript is None or repair:
            # Never transcribed, or none of its reply heard (the user went on with the same
            # turn: repair): it joins the next turn, transcribed again with it as one.
            self._carry_audio = reply.audio[-_MAX_CARRY_MS * _MS * 2 :]
            self._carry_text = reply.prefix
        if repair:
            if finished and reply.outcome == "completed":
                self.conversation.replace_last_assistant("")
            assert reply.transcript is not None
            self.conversation.retract_user(reply.transcript)
        elif reply.transcript is None:
            pass
        elif finished and reply.outcome == "completed":
            self.conversation.replace_last_assistant(heard)
        else:
            self.conversation.add_assistant(heard)
        played_ms = played * 1000 // self._stages.output_sample_rate
        await self._emit(
            ev.ResponseInterrupted(turn_id=reply.turn_id, played_ms=played_ms, heard_text=heard)
        )
        self._telemetry.interruption()
        if not finished:
            reply.mark("total_ms", now)
            await self._send_done(reply, status, heard)

    async def _send_done(self, reply: Reply, status: str, heard: str) -> None:
        """`response.done`, however the reply ended: the one place it is built."""
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

    async def _emit(self, event: ev.ServerEvent) -> None:
        async with self._send_lock:
            await self._send_raw(event)

    async def _send_for(self, reply: Reply, item: Outgoing, samples: int) -> None:
        """Send an output of `reply`, or hold it while the reply is still speculative."""
        async with self._send_lock:
            if reply.over:
                return
            if not reply.confirmed:
                reply.outbox.append((item, samples))
                return
            await self._deliver(reply, item, samples)

    async def _deliver(self, reply: Reply, item: Outgoing, samples: int) -> None:
        await self._send_raw(item)
        if samples:
            if reply.echo is not None and isinstance(item, MediaFrame):
                reply.echo.add(item.payload)
            now = self._clock()
            reply.mark("first_audio_sent_ms", now)
            reply.clock.sent(samples, now)

    async def _error(
        self,
        code: ErrorCode,
        message: str,
        turn_id: int | None = None,
        error_id: str | None = None,
    ) -> None:
        self._telemetry.error(code.value)
        retryable = code in RETRYABLE_CODES
        await self._emit(
            ev.ErrorEvent(
                code=code.value,
                message=message,
                retryable=retryable,
                turn_id=turn_id,
                error_id=error_id,
            )
        )
