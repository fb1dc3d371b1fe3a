"""Locust load test: simulated people talking to Dandelion over its WebSocket protocol.

Each simulated user (`VoiceUser`) opens a session, and for up to `--turns-per-session` turns
speaks a question in real time (20 ms PCM16 16 kHz frames, then silence, as a live microphone
sends), waits for the reply, stops its playback (`response.cancel`) if the reply would still be
playing, thinks for `--think-time` seconds (still sending silence) and asks the next question.
After the last turn it closes the session and opens a new one.

Reported to locust (request type `voice`; times in ms):

- `voice_to_voice`: end of the speech in the file to the first reply audio frame;
- `first_transcript`: end of the speech to `transcript.final`;
- `turn`: end of the speech to `response.done`; it fails if the transcript differs from the text
  that was spoken (normalized letters compared, `--min-transcript-similarity`), if no reply audio
  came, on an `error` event, on a status other than `completed`, on a closed connection, or if
  the reply is not done within `--turn-timeout` seconds; its size is the reply audio in bytes;
- `connect`: opening the socket to `session.created` (a failure if that does not happen).

`voice_to_voice` and `first_transcript` are recorded only when measured; a turn that went wrong
shows up as a failed `turn`.

Speech: by default a few questions spoken by the Piper voice (`dandelion.tools.say.Speaker`),
generated once at locust start into a temporary folder (needs `dandelion[piper]`). With
`--speech-dir DIR`: every audio file in DIR (`*.wav`, `*.flac`, `*.ogg`; any rate or channel
count); the expected text of `NAME.wav` is in `NAME.txt` beside it (without it the transcript is
only required to be non-empty).

Needs `pip install 'dandelion[load]'` (locust, websocket-client) plus the client extra. Always give
a run time (`-t`); each session also has a bounded number of turns and each turn a timeout.

Headless, 3 users for a minute, summary and CSV files at the end:

    locust -f loadtests/locustfile.py --headless -u 3 -r 1 -t 60s \\
        --dandelion-url ws://127.0.0.1:8000/v1/session --only-summary --csv /tmp/dandelion

Web UI (http://127.0.0.1:8089; the Dandelion options are under "Custom parameters"), starting at
once and stopping after 5 minutes:

    locust -f loadtests/locustfile.py --web-host 127.0.0.1 --autostart -u 3 -r 1 -t 5m \\
        --dandelion-url ws://127.0.0.1:8000/v1/session

(Without `--autostart`, set the users and the run time in the web form before starting.)
"""

from __future__ import annotations

import difflib
import json
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import websocket
from gevent.event import Event
from gevent.lock import Semaphore
from locust import User, between, events, task
from locust.env import Environment
from locust.runners import MasterRunner

DEFAULT_URL = "ws://127.0.0.1:8000/v1/session"
PROTOCOL = "dandelion.v1"
INPUT_RATE = 16_000
FRAME_MS = 20
FRAME_BYTES = INPUT_RATE * FRAME_MS // 1000 * 2  # 640 bytes of PCM16
SILENCE = bytes(FRAME_BYTES)
# Questions the embedded Whisper tiny.en transcribes well when spoken by the Piper voice.
QUESTIONS = [
    "What is the capital of France?",
    "What is the largest ocean on Earth?",
    "Why is the sky blue?",
    "What do bees make?",
    "Can you name a famous painter?",
    "How far away is the moon?",
]
_AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}
_HEADER_BYTES = 24  # media frame header: magic, version, kind, reserved, turn, seq, pts


class TurnFailed(Exception):
    """Why a turn counts as failed (locust groups failures by this message)."""


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    # On the parser itself (not a group): only those show in the web UI's custom parameters.
    parser.add_argument(
        "--dandelion-url",
        default=DEFAULT_URL,
        help=f"session WebSocket URL (default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--turns-per-session", type=int, default=5, help="questions per session (default 5)"
    )
    parser.add_argument(
        "--turn-timeout",
        type=float,
        default=30.0,
        help="seconds from the end of the speech to response.done before a turn fails (30)",
    )
    parser.add_argument(
        "--think-time",
        type=float,
        default=1.0,
        help="seconds of silence after a reply before the next question (default 1)",
    )
    parser.add_argument(
        "--speech-dir",
        default="",
        help="audio files to speak, NAME.txt beside each with its text (default: Piper voice);"
        " read at start-up",
        include_in_web_ui=False,
    )
    parser.add_argument(
        "--min-transcript-similarity",
        type=float,
        default=0.8,
        help="letters of transcript vs expected text, difflib ratio (default 0.8)",
    )


# --- speech ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Utterance:
    name: str
    pcm: bytes  # PCM16LE mono 16 kHz
    speech_end_s: float  # where the speech in the file ends
    text: str | None  # what is said, if known


_speech: list[Utterance] = []
_speech_lock = Semaphore()
_temp_dirs: list[Path] = []


def _option(environment: Environment, name: str, default: Any) -> Any:
    return getattr(environment.parsed_options, name, default)


def speech(environment: Environment) -> list[Utterance]:
    """The utterances, loaded (or spoken by Piper) on first use; once per process."""
    with _speech_lock:
        if not _speech:
            folder = _option(environment, "speech_dir", "")
            _speech.extend(_load_folder(Path(folder) if folder else _generate()))
        return _speech


def _generate() -> Path:
    from dandelion.tools.say import Speaker

    folder = Path(tempfile.mkdtemp(prefix="dandelion-locust-"))
    _temp_dirs.append(folder)
    speaker = Speaker()
    for index, text in enumerate(QUESTIONS):
        speaker.say(text, folder / f"q{index}.wav")
        (folder / f"q{index}.txt").write_text(text + "\n")
    return folder


def _load_folder(folder: Path) -> list[Utterance]:
    from dandelion_client.audio import load_audio, speech_end_seconds, to_pcm16

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _AUDIO_SUFFIXES)
    if not files:
        raise SystemExit(f"--speech-dir {folder}: no .wav/.flac/.ogg files")
    utterances = []
    for path in files:
        audio = load_audio(path)
        text_file = path.with_suffix(".txt")
        text = text_file.read_text().strip() if text_file.exists() else None
        utterances.append(Utterance(path.name, to_pcm16(audio), speech_end_seconds(audio), text))
    return utterances


@events.init.add_listener
def _prepare_speech(environment: Environment, **_kwargs: Any) -> None:
    # Workers and standalone runs speak; a distributed master sends no audio itself.
    if not isinstance(environment.runner, MasterRunner):
        speech(environment)
        # That blocked the event loop for seconds: refresh its clock, or the run-time limit
        # (a timer started on the stale clock) would fire as soon as the test starts.
        gevent.get_hub().loop.update_now()


@events.quitting.add_listener
def _clean_up(**_kwargs: Any) -> None:
    for folder in _temp_dirs:
        shutil.rmtree(folder, ignore_errors=True)


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def similarity(a: str, b: str) -> float:
    """Letters compared, spaces and punctuation ignored (tiny.en hears "France is" as "Francis")."""
    return difflib.SequenceMatcher(None, "".join(words(a)), "".join(words(b))).ratio()


# --- one session ---------------------------------------------------------------------------------


@dataclass
class Reply:
    """What the server said about one turn, with client receive times (time.monotonic)."""

    transcript: str | None = None
    transcript_t: float | None = None
    first_audio_t: float | None = None
    audio_bytes: int = 0
    playback_end: float = 0.0  # when the client would finish playing what it received
    paused_at: float | None = None  # playback held (response.audio.paused) since then
    status: str | None = None
    errors: list[str] = field(default_factory=list)


class Session:
    """One WebSocket session: a microphone greenlet and a reader greenlet around the socket."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: websocket.WebSocket | None = None
        self.output_rate = 0
        self.replies: dict[int, Reply] = {}
        self.protocol_errors: list[str] = []
        self.closed: str | None = None  # why the connection ended, once it has
        self.changed = Event()
        self._greenlets: list[gevent.Greenlet] = []
        self._created = False
        # The microphone: the utterance being spoken (PCM, position) or silence.
        self._speaking: bytes = b""
        self._position = 0
        self._speech_end_byte = 0
        self.speech_end_t: float | None = None
        self.spoken = Event()

    # connection

    def open(self, timeout_s: float = 30.0) -> None:
        self.ws = websocket.create_connection(self.url, timeout=timeout_s, enable_multithread=True)
        # Replies may be far apart: no socket timeout; the waits here have their own.
        self.ws.settimeout(None)
        self._greenlets.append(gevent.spawn(self._read))
        if not self.wait(lambda: self._created or self.closed is not None, timeout_s):
            raise TurnFailed(f"no session.created in {timeout_s:.0f} s")
        if not self._created:
            raise TurnFailed(f"connection closed before session.created: {self.closed}")
        self._greenlets.append(gevent.spawn(self._microphone))

    def close(self) -> None:
        gevent.killall(self._greenlets, timeout=2)
        if self.ws is not None:
            try:
                self.ws.close(timeout=1)
            except Exception:
                self.ws.shutdown()
        self.closed = self.closed or "closed by the client"

    def send_event(self, event: dict[str, Any]) -> None:
        assert self.ws is not None
        self.ws.send(json.dumps(event))

    def wait(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Block this greenlet until `condition()` holds (True) or the timeout (False)."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            self.changed.wait(min(remaining, 0.25))
        return True

    # microphone

    def say(self, utterance: Utterance) -> None:
        """Start speaking `utterance`; `spoken` is set once all of it has been sent."""
        self.spoken.clear()
        self.speech_end_t = None
        end = int(utterance.speech_end_s * INPUT_RATE) * 2
        self._speech_end_byte = max(2, min(end, len(utterance.pcm)))
        self._position = 0
        self._speaking = utterance.pcm

    def _microphone(self) -> None:
        """Send 20 ms every 20 ms for the whole session: the utterance, else silence."""
        assert self.ws is not None
        start, sent = time.monotonic(), 0
        while self.closed is None:
            if self._speaking:
                frame = self._speaking[self._position : self._position + FRAME_BYTES]
                frame += SILENCE[: FRAME_BYTES - len(frame)]
                self._position += FRAME_BYTES
            else:
                frame = SILENCE
            try:
                self.ws.send_binary(frame)
            except Exception as exc:  # the reader reports why the connection ended
                self.closed = self.closed or f"send failed: {exc!r}"
                self.changed.set()
                return
            if self._speaking:
                if self.speech_end_t is None and self._position >= self._speech_end_byte:
                    self.speech_end_t = time.monotonic()
                if self._position >= len(self._speaking):
                    self._speaking = b""
                    self.spoken.set()
            sent += 1
            delay = start + sent * FRAME_MS / 1000 - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            elif delay < -1.0:  # this load generator fell behind: do not burst, carry on
                start, sent = time.monotonic(), 0
                gevent.sleep(0)

    # server messages

    def _read(self) -> None:
        assert self.ws is not None
        try:
            while True:
                message = self.ws.recv()
                now = time.monotonic()
                if isinstance(message, bytes):
                    self._on_frame(message, now)
                elif message:
                    self._on_event(json.loads(message), now)
                self.changed.set()
        except Exception as exc:
            self.closed = self.closed or f"connection closed: {exc!r}"
        self.changed.set()

    def _on_frame(self, message: bytes, now: float) -> None:
        if len(message) < _HEADER_BYTES or message[:4] != b"DNDL" or message[4] != 1:
            self.protocol_errors.append("bad media frame")
            return
        kind, turn_id = message[5], int.from_bytes(message[8:12], "little")
        if kind != 1:  # not audio: ignored, as the protocol asks
            return
        reply = self.replies.setdefault(turn_id, Reply())
        samples = (len(message) - _HEADER_BYTES) // 2
        if reply.first_audio_t is None:
            reply.first_audio_t = now
        reply.audio_bytes += samples * 2
        rate = self.output_rate or 22_050
        # While paused, the frame queues behind what is held (the clock stands at the pause).
        clock = now if reply.paused_at is None else reply.paused_at
        reply.playback_end = max(clock, reply.playback_end) + samples / rate

    def _on_event(self, event: dict[str, Any], now: float) -> None:
        kind = event.get("type")
        turn_id = event.get("turn_id")
        if kind == "session.created":
            if event.get("protocol") != PROTOCOL:
                self.protocol_errors.append(f"protocol {event.get('protocol')!r}")
            self.output_rate = int(event["output_audio"]["sample_rate"])
            self._created = True
        elif kind == "error":
            message = f"error {event.get('code')}: {event.get('message')}"
            if isinstance(turn_id, int):
                self.replies.setdefault(turn_id, Reply()).errors.append(message)
            else:
                self.protocol_errors.append(message)
        elif isinstance(turn_id, int):
            reply = self.replies.setdefault(turn_id, Reply())
            if kind == "transcript.final":
                reply.transcript, reply.transcript_t = str(event.get("text", "")), now
            elif kind == "response.done":
                reply.status = str(event.get("status"))
            elif kind == "response.interrupted":
                reply.playback_end = min(now, reply.paused_at or now)  # playback stopped there
                reply.paused_at = None
            elif kind == "response.audio.paused" and reply.paused_at is None:
                reply.paused_at = now
            elif kind == "response.audio.resumed" and reply.paused_at is not None:
                if reply.playback_end > reply.paused_at:  # what was held plays on from now
                    reply.playback_end += now - reply.paused_at
                reply.paused_at = None
            elif kind == "response.audio.played":
                reply.playback_end = min(reply.playback_end, now)  # the server says it is over
                reply.paused_at = None

    def playing(self) -> bool:
        """A reply would still be playing, or is paused with audio left (it would resume)."""
        now = time.monotonic()
        return any(
            reply.playback_end > (now if reply.paused_at is None else reply.paused_at)
            for reply in self.replies.values()
        )


# --- the locust user -----------------------------------------------------------------------------


class VoiceUser(User):
    """A person who asks a few questions per session, one after the other."""

    wait_time = between(0.5, 1.5)  # between sessions

    def on_start(self) -> None:
        env = self.environment
        self.url = str(_option(env, "dandelion_url", DEFAULT_URL))
        self.turns_per_session = max(1, int(_option(env, "turns_per_session", 5)))
        self.turn_timeout = float(_option(env, "turn_timeout", 30.0))
        self.think_time = float(_option(env, "think_time", 1.0))
        self.min_similarity = float(_option(env, "min_transcript_similarity", 0.8))
        self.utterances = speech(env)
        self.next_utterance = random.randrange(len(self.utterances))

    @task
    def session(self) -> None:
        session = Session(self.url)
        started = time.monotonic()
        try:
            try:
                session.open()
            except Exception as exc:
                self._report("connect", started, exception=exc)
                return
            self._report("connect", started)
            for _ in range(self.turns_per_session):
                utterance = self.utterances[self.next_utterance]
                self.next_utterance = (self.next_utterance + 1) % len(self.utterances)
                if not self._turn(session, utterance):
                    break  # closed, or a reply still pending: start afresh
                if session.playing():  # heard enough: stop the reply, as a person would
                    session.send_event({"type": "response.cancel"})
                session.wait(lambda: session.closed is not None, self.think_time)
        finally:
            session.close()

    def _turn(self, session: Session, utterance: Utterance) -> bool:
        """Speak, wait for the reply, report; False if the session cannot go on."""
        before = max(session.replies, default=0)
        started = time.monotonic()
        session.say(utterance)

        def reply() -> Reply | None:  # the first turn after this question started
            turns = [turn for turn in session.replies if turn > before]
            return session.replies[min(turns)] if turns else None

        def done() -> bool:
            current = reply()
            return session.closed is not None or (current is not None and bool(current.status))

        # Speaking takes as long as the file; then the reply has `turn_timeout` seconds.
        speaking_s = len(utterance.pcm) / 2 / INPUT_RATE
        finished = session.wait(done, speaking_s + self.turn_timeout)
        speech_end = session.speech_end_t or started + utterance.speech_end_s
        result = reply() or Reply()
        problem = self._problem(session, utterance, result, finished)
        if result.transcript_t is not None:
            self._report("first_transcript", speech_end, end=result.transcript_t)
        if result.first_audio_t is not None:
            self._report("voice_to_voice", speech_end, end=result.first_audio_t)
        self._report(
            "turn",
            speech_end,
            length=result.audio_bytes,
            exception=TurnFailed(problem) if problem else None,
        )
        # Finish saying the file (a reply to the first part of a split utterance can come first).
        session.wait(lambda: session.spoken.is_set() or session.closed is not None, speaking_s)
        return finished and session.closed is None

    def _problem(
        self, session: Session, utterance: Utterance, reply: Reply, finished: bool
    ) -> str | None:
        if session.protocol_errors:
            return "; ".join(session.protocol_errors)
        if reply.errors:
            return "; ".join(reply.errors)
        if reply.status is None:
            if not finished:
                return f"no response.done within {self.turn_timeout:.0f} s of the speech"
            return session.closed or "no reply"
        if reply.status != "completed":
            return f"response.done status {reply.status}"
        if reply.transcript is None or not words(reply.transcript):
            return "no transcript"
        if utterance.text is not None:
            score = similarity(reply.transcript, utterance.text)
            if score < self.min_similarity:
                return f"wrong transcript {reply.transcript!r} for {utterance.text!r}"
        if reply.first_audio_t is None or reply.audio_bytes == 0:
            return "no reply audio"
        return None

    def _report(
        self,
        name: str,
        start: float,
        *,
        end: float | None = None,
        length: int = 0,
        exception: Exception | None = None,
    ) -> None:
        elapsed_ms = ((end if end is not None else time.monotonic()) - start) * 1000
        self.environment.events.request.fire(
            request_type="voice",
            name=name,
            response_time=max(0.0, elapsed_ms),
            response_length=length,
            exception=exception,
            context={"url": self.url},
        )
