"""Fuzzing: thousands of generated client messages over real WebSockets to the live gateway.

Hypothesis builds the messages with `@given` (not a hand-rolled random loop): one example is one
to three groups of frames sent back to back (a message, or a burst of the same event), each frame
paired with what docs/protocol.md says the server answers to it: `pong`, `conversation.history`,
`session.updated`, an `error` of a given code, or nothing. A ping follows each example; the
server handles a session's messages in order, so its pong closes the example's answers and each
example is checked on its own (and shrunk by Hypothesis if it fails). One Hypothesis run drives
one connection (120 examples, ~400 frames); runs repeat on new connections until
`DANDELION_FUZZ_MESSAGES` frames (default 2,000) have been sent. Every other connection first
speaks a real question, so much of its fuzz lands while a reply is being made. Messages are paced
inside the server's per-session rate limits: the fuzz is about what messages say.

Every frame the server sends must be well formed (a known event with all its fields, a known
error code, no internals; media frames that decode), no connection may be closed by the server,
and afterwards the server must be healthy and answer a new session's spoken question.

Full run (docs/benchmarks.md, "Fuzzing and fault injection"):
DANDELION_FUZZ_MESSAGES=10000 python -m pytest -q -s -m integration tests/integration/test_fuzz.py
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import random
import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dandelion_client.audio import load_audio, to_pcm16
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dandelion.config import AppSettings
from dandelion.protocol import (
    MAX_AUDIO_FRAME_BYTES,
    MAX_TEXT_MESSAGE_BYTES,
    MediaKind,
    decode_media_frame,
)
from dandelion.protocol import events as ev
from dandelion.protocol.codec import is_unicode
from dandelion.protocol.errors import RETRYABLE_CODES, ErrorCode
from tests.integration.conftest import events_of, read_events, run_client

pytestmark = pytest.mark.integration

TARGET_MESSAGES = int(os.environ.get("DANDELION_FUZZ_MESSAGES", "2000"))
EXAMPLES_PER_CONNECTION = 120
ANSWER_TIMEOUT_S = 60.0
MAX_INSTRUCTIONS = 8_000
SESSION_FIELDS = frozenset(
    {"instructions", "end_of_turn_silence_ms", "video", "turn_detection", "eagerness"}
)
CLIENT_EVENTS = {
    "ping": "pong",
    "conversation.get": "conversation.history",
    "response.cancel": None,
}
# What the server sends, by type: the fields each event always carries (docs/protocol.md §5).
SERVER_EVENTS = {
    cls.type: {f.name for f in dataclasses.fields(cls)} for cls in ev.ServerEvent.__subclasses__()
}
# Answers to a message, as opposed to a reply's events: these carry no turn.
ANSWER_TYPES = {"pong", "conversation.history", "session.updated"}


# ---------------------------------------------------------------- frames and their answers


class Frame:
    """One WebSocket message and the protocol's answer to it (None: no answer).

    A plain class: Hypothesis prints falsifying examples with this short repr (a dataclass would
    be printed field by field, megabyte frames whole)."""

    __slots__ = ("answer", "data", "kind")

    def __init__(self, data: str | bytes, answer: str | None, kind: str) -> None:
        self.data = data
        self.answer = answer  # "pong", "conversation.history", "session.updated", "error:<code>"
        self.kind = kind  # for the run's statistics

    def __repr__(self) -> str:
        size = f"{len(self.data)} {type(self.data).__name__}"
        return f"Frame({self.kind}, {size}: {self.data[:100]!r}..., answer={self.answer})"


def _text_frame(text: str, answer: str | None, kind: str) -> Frame:
    if len(text) > MAX_TEXT_MESSAGE_BYTES:  # refused before it is read (§11)
        answer = "error:message_too_large"
    return Frame(text, answer, kind)


def _dumps(value: object, ascii_only: bool) -> str:
    # A lone surrogate can only travel escaped ("\ud800"): a text frame is UTF-8.
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text if is_unicode(text) else json.dumps(value)


def _audio_answer(size: int) -> str | None:
    if size > MAX_AUDIO_FRAME_BYTES:
        return "error:message_too_large"
    if size == 0 or size % 2:
        return "error:invalid_audio_frame"
    return None


def _audio_bytes(size: int, shape: str, seed: int) -> bytes:
    if shape == "zeros":
        return bytes(size)
    if shape == "noise":
        return random.Random(seed).randbytes(size)
    if shape == "clipped":  # full scale square wave: +32767, -32768
        return (b"\xff\x7f" * 8 + b"\x00\x80" * 8) * (size // 32) + b"\xff" * (size % 32)
    # Invalid UTF-8 throughout: a text message sent as binary is audio to the server.
    return (b"\xff\xfe\xc3\x28\xa0\xa1\xe2\x28" * (size // 8 + 1))[:size]


def _update_answer(session: object, has_avatar: bool) -> str:
    """session.update's answer by §4's rules, written from the spec, not from the codec."""
    invalid = "error:invalid_event"
    if not isinstance(session, dict):
        return invalid
    if set(session) - SESSION_FIELDS:
        return invalid
    instructions = session.get("instructions")
    if instructions is not None and not (
        isinstance(instructions, str)
        and len(instructions) <= MAX_INSTRUCTIONS
        and is_unicode(instructions)
    ):
        return invalid
    silence = session.get("end_of_turn_silence_ms")
    if silence is not None and not (type(silence) is int and 100 <= silence <= 5000):
        return invalid
    choices = {
        "video": ("off", "jpeg", "h264"),
        "turn_detection": ("semantic", "silence"),
        "eagerness": ("low", "medium", "high"),
    }
    for name, allowed in choices.items():
        value = session.get(name)
        if value is not None and not (isinstance(value, str) and value in allowed):
            return invalid
    if session.get("video") not in (None, "off") and not has_avatar:
        return invalid
    return "session.updated"


# ---------------------------------------------------------------- strategies

_UNICODE = st.text(max_size=16)  # any Unicode scalar value: CJK, emoji, controls, NUL
_TEXT = st.one_of(
    _UNICODE,
    st.text(st.characters(categories=["Cc", "Cf", "Zs"]), max_size=8),  # controls, spaces
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2),  # lone surrogates
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=6,
)
_ABSENT = object()
_PAD_START = '{"type":"ping","pad":"'
# Numbers JSON allows and Python finds hard (thousands of digits, huge exponents), and the
# constants Python reads though JSON has none.
_NUMBERS = st.one_of(
    st.integers(1, 20_000).map(lambda n: "9" * n),
    st.integers(1, 5_000).map(lambda n: "-1" + "0" * n),
    st.sampled_from(["1e999", "-1e999", "1e-999", "5e3", "100.0", "12345678901234567890123.5"]),
    st.sampled_from(["NaN", "Infinity", "-Infinity"]),
)


def _extras(reserved: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Fields a client may add; the server ignores them (§4)."""
    keys = _TEXT.filter(lambda key: key not in reserved)
    return st.dictionaries(keys, _JSON, max_size=3)


def _frames(has_avatar: bool) -> st.SearchStrategy[list[Frame]]:
    audio = st.builds(
        lambda size, shape, seed: Frame(
            _audio_bytes(size, shape, seed), _audio_answer(size), f"audio:{shape}"
        ),
        st.one_of(
            st.integers(0, 4_096),
            st.integers(0, MAX_AUDIO_FRAME_BYTES + 2),
            st.sampled_from(
                [0, 1, 3, 65_535, 65_536, 65_537, 1 << 20, (1 << 20) + 1, 3_000_001, 4 << 20]
            ),
        ),
        st.sampled_from(["zeros", "noise", "clipped", "invalid-utf8"]),
        st.integers(0, 2**32),
    )
    control = st.builds(
        lambda kind, extras, ascii_only: _text_frame(
            _dumps({**extras, "type": kind}, ascii_only), CLIENT_EVENTS[kind], kind
        ),
        st.sampled_from(sorted(CLIENT_EVENTS)),
        _extras({"type"}),
        st.booleans(),
    )
    fields = st.fixed_dictionaries(
        {},
        optional={
            "instructions": st.one_of(
                _TEXT,
                st.integers(7_990, 8_010).map(lambda n: "x" * n),
                st.none(),
                _JSON,
            ),
            "end_of_turn_silence_ms": st.one_of(
                st.integers(-(10**6), 10**6),
                st.sampled_from([99, 100, 5_000, 5_001, 2**63, True, 700.0]),
                _JSON,
            ),
            "video": st.sampled_from(["off", "jpeg", "h264", "JPEG", "", None]) | _JSON,
            "turn_detection": st.sampled_from(["semantic", "silence", "vad", None]) | _JSON,
            "eagerness": st.sampled_from(["low", "medium", "high", "max", None]) | _JSON,
        },
    )
    unknown = st.dictionaries(_TEXT.filter(lambda k: k not in SESSION_FIELDS), _JSON, max_size=2)
    sessions = st.one_of(
        st.just(_ABSENT),
        _JSON,  # null, a list, a number...: not an object (or one with unknown fields)
        fields,
        st.builds(lambda known, extra: {**known, **extra}, fields, unknown),
    )

    def session_update(session: object, extras: dict[str, Any], ascii_only: bool) -> Frame:
        body = {**extras, "type": "session.update"}
        if session is not _ABSENT:
            body["session"] = session
        answer = "session.updated" if session is _ABSENT else _update_answer(session, has_avatar)
        return _text_frame(_dumps(body, ascii_only), answer, "session.update")

    update = st.builds(session_update, sessions, _extras({"type", "session"}), st.booleans())
    unknown_type = st.builds(
        lambda kind, extras: _text_frame(
            _dumps({**extras, "type": kind}, False), "error:unknown_event", "unknown-type"
        ),
        st.one_of(
            _TEXT.filter(lambda t: t not in CLIENT_EVENTS and t != "session.update"),
            st.integers(1, 70_000).map(lambda n: "t" * n),  # long names, some too large
        ),
        _extras({"type"}),
    )
    bad_type = st.builds(
        lambda body: _text_frame(_dumps(body, True), "error:invalid_event", "bad-type"),
        st.one_of(
            st.builds(lambda kind: {"type": kind}, _JSON.filter(lambda t: not isinstance(t, str))),
            _extras({"type"}),  # no type at all
        ),
    )
    not_object = st.builds(
        lambda value: _text_frame(_dumps(value, False), "error:invalid_event", "not-object"),
        _JSON.filter(lambda v: not isinstance(v, dict)),
    )
    valid = st.sampled_from(['{"type": "ping"}', '{"type":"session.update","session":{}}'])
    invalid_json = st.builds(
        lambda text: _text_frame(text, "error:invalid_json", "invalid-json"),
        st.one_of(
            st.just(""),  # an empty text frame
            st.builds(lambda text, cut: text[: cut % len(text)], valid, st.integers(0, 100)),
            st.builds(lambda text, tail: f"{text} x{tail}", valid, st.text(max_size=8)),
            st.builds(lambda tail: "x" + tail, _UNICODE),
            st.sampled_from(["{'type': 'ping'}", '{"type": "ping",}', "[1, 2", '{"type"}']),
        ),
    )
    # Nesting: shallow parses; thousands of levels are refused as invalid_json (a parser limit
    # RFC 8259 §9 allows), never an internal error.
    deep = st.builds(
        lambda depth, inside: _text_frame(
            '{"type":"ping","x":' + "[" * depth + "]" * depth + "}"
            if inside
            else "[" * depth + "]" * depth,
            "error:invalid_json"
            if depth >= 5_000
            else ("pong" if inside else "error:invalid_event"),
            "deep-json",
        ),
        st.one_of(st.integers(1, 200), st.integers(5_000, 32_000)),
        st.booleans(),
    )

    def number_frame(number: str, in_update: bool) -> Frame:
        if in_update:
            text = '{"type":"session.update","session":{"end_of_turn_silence_ms":' + number + "}}"
        else:
            text = '{"type":"ping","n":' + number + "}"
        if number.lstrip("-") in ("NaN", "Infinity"):  # Python's json reads them; JSON has none
            answer = "error:invalid_json"
        elif not in_update:
            answer = "pong"
        elif len(number) < 8:
            answer = _update_answer({"end_of_turn_silence_ms": json.loads(number)}, has_avatar)
        else:
            answer = "error:invalid_event"  # no number this long is an integer in range
        return _text_frame(text, answer, "huge-number")

    numbers = st.builds(number_frame, _NUMBERS, st.booleans())
    # Long strings around the 65,536-character limit, counted in characters, not bytes.
    long_text = st.builds(
        lambda size, char: _text_frame(
            _PAD_START + char * max(0, size - len(_PAD_START) - 2) + '"}', "pong", "long-text"
        ),
        st.one_of(st.integers(65_530, 65_540), st.integers(22, 200_000)),
        st.sampled_from(["a", "é", "😀"]),
    )
    single = st.one_of(
        audio,
        control,
        update,
        unknown_type,
        bad_type,
        not_object,
        invalid_json,
        deep,
        numbers,
        long_text,
    ).map(lambda frame: [frame])
    spam = st.builds(
        lambda kind, count: [Frame(json.dumps({"type": kind}), CLIENT_EVENTS[kind], kind)] * count,
        st.sampled_from(sorted(CLIENT_EVENTS)),
        st.integers(2, 20),
    )
    return st.lists(single | spam, min_size=1, max_size=3).map(
        lambda groups: [frame for group in groups for frame in group]
    )


# ---------------------------------------------------------------- a fuzzed connection


@dataclass
class Stats:
    sent: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    received: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    speech_frames: int = 0
    connections: int = 0
    bytes_sent: int = 0

    @property
    def messages(self) -> int:
        return sum(self.sent.values())


_INTERNALS = re.compile(
    r"Traceback|File \"|\bpid\b|actor_id|ActorDiedError|RayActorError|\b\d{1,3}(\.\d{1,3}){3}\b"
)


def leaks_internals(message: str) -> bool:
    """An error message with a traceback, a Ray actor's identity or an address in it."""
    return len(message) > 500 or _INTERNALS.search(message) is not None


def check_event(event: object) -> dict[str, Any]:
    """A server event as §5 defines it: a known type with all its fields; errors without
    internals, with a known code whose `retryable` is as §10 says."""
    assert isinstance(event, dict), event
    kind = event.get("type")
    assert kind in SERVER_EVENTS, f"unknown server event {kind!r}"
    missing = SERVER_EVENTS[kind] - set(event)
    assert not missing, f"{kind} without {sorted(missing)}: {event}"
    if kind == "error":
        assert event["code"] in {code.value for code in ErrorCode}, event
        assert event["retryable"] is (event["code"] in RETRYABLE_CODES), event
        assert isinstance(event["message"], str) and not leaks_internals(event["message"]), event
    return event


class Pacer:
    """Keeps a connection well inside the server's per-session limits (messages a second, audio
    ahead of real time: SecuritySettings), so every message is read and the oracle stays exact.
    The fuzz is about what messages say; floods are test_security.py's."""

    def __init__(self) -> None:
        security = getattr(AppSettings(), "security", None)
        self._rate = 0.5 * float(getattr(security, "max_messages_per_s", 200.0))
        self._speed = 0.75 * float(getattr(security, "max_audio_speed", 2.0))
        self._burst_s = 0.5 * float(getattr(security, "audio_burst_s", 30.0))
        self._started = time.monotonic()
        self._messages = 0
        self._audio_s = 0.0

    def before(self, data: str | bytes) -> None:
        """Wait, if need be, before sending `data`."""
        self._messages += 1
        if isinstance(data, bytes) and 0 < len(data) <= MAX_AUDIO_FRAME_BYTES:
            self._audio_s += len(data) / 32_000  # counted as audio, even refused (odd length)
        due = max(self._messages / self._rate, (self._audio_s - self._burst_s) / self._speed)
        wait = self._started + due - time.monotonic()
        if wait > 0:
            time.sleep(wait)


class FuzzConnection:
    """One session: fuzz in, every frame out checked, answers matched to what was sent."""

    def __init__(self, ws: Any, stats: Stats, speech: bytes | None) -> None:
        self._ws = ws
        self._pacer = Pacer()
        self._stats = stats
        self._first = True
        self.stage_errors: list[dict[str, Any]] = []
        stats.connections += 1
        if speech is not None:
            # A real question (100 ms frames, faster than real time: the server's clock is the
            # audio): its reply is made while the fuzz goes on. Sent before session.created,
            # which the server does not wait for: it queues the messages.
            step = 3_200
            for offset in range(0, len(speech), step):
                self._send(speech[offset : offset + step])
                stats.speech_frames += 1

    def _send(self, data: str | bytes) -> None:
        self._pacer.before(data)
        self._ws.send(data)

    def exchange(self, frames: list[Frame]) -> None:
        expected = [frame.answer for frame in frames if frame.answer is not None] + ["pong"]
        for frame in frames:
            self._send(frame.data)
            self._stats.sent[frame.kind] += 1
            self._stats.bytes_sent += len(frame.data)
        self._send('{"type": "ping"}')
        answers: list[str] = []
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while answers.count("pong") < expected.count("pong"):
            answer = self._receive(deadline - time.monotonic())
            if answer is not None:
                answers.append(answer)
        assert answers == expected, f"answers {answers} to {frames}"

    def _receive(self, timeout_s: float) -> str | None:
        """The next frame from the server, checked; the answer it is, if it is one."""
        from websockets.exceptions import ConnectionClosed

        try:
            message = self._ws.recv(timeout=max(timeout_s, 0.0))
        except TimeoutError:
            raise AssertionError("the server stopped answering") from None
        except ConnectionClosed as closed:
            raise AssertionError(f"the server closed the session: {closed}") from None
        if isinstance(message, bytes):
            frame = decode_media_frame(message)
            assert frame.kind in (MediaKind.AUDIO, MediaKind.VIDEO), frame.kind
            assert frame.kind != MediaKind.AUDIO or len(frame.payload) % 2 == 0
            self._stats.received[f"media:{MediaKind(frame.kind).name.lower()}"] += 1
            return None
        event = check_event(json.loads(message))
        kind = event["type"]
        assert (kind == "session.created") is self._first, f"{kind} first, not session.created"
        self._first = False
        if kind == "error":
            kind = f"error:{event['code']}"
        self._stats.received[kind] += 1
        if kind.startswith("error:") and event["turn_id"] is not None:
            self.stage_errors.append(event)  # a model stage failed: none was broken here
            return None
        return kind if kind in ANSWER_TYPES or kind.startswith("error:") else None


# ---------------------------------------------------------------- the tests


@pytest.fixture
def hypothesis_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hypothesis's cache (its Unicode tables) under tmp, not in the checkout."""
    monkeypatch.setenv("HYPOTHESIS_STORAGE_DIRECTORY", str(tmp_path / "hypothesis"))


def _server_has_avatar(url: str) -> bool:
    from websockets.sync.client import connect

    with connect(url, open_timeout=30) as ws:
        created = json.loads(ws.recv(timeout=60))
    return bool(created["output_video"]["width"])


def _health(url: str) -> dict[str, Any]:
    http = url.replace("ws://", "http://", 1).rsplit("/v1/", 1)[0]
    with urllib.request.urlopen(f"{http}/healthz", timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
    return body


def _fuzz(url: str, frames: st.SearchStrategy[list[Frame]], speech: bytes) -> Stats:
    from websockets.sync.client import connect

    stats = Stats()
    while stats.messages < TARGET_MESSAGES:
        # Every other connection speaks first; the others fuzz a session with nothing said.
        said = speech if stats.connections % 2 == 0 else None
        with connect(url, max_size=None, open_timeout=30, close_timeout=10) as ws:
            connection = FuzzConnection(ws, stats, said)
            run_examples(connection.exchange, frames)
        # Closed by the client: 1000 echoed back means the server still held the session.
        assert ws.close_code == 1000, f"the session was closed with {ws.close_code}"
        assert not connection.stage_errors, connection.stage_errors
    return stats


def run_examples(
    exchange: Callable[[list[Frame]], None], frames: st.SearchStrategy[list[Frame]]
) -> None:
    """One Hypothesis run over one connection; explicit examples first: out-of-order events."""

    @settings(
        max_examples=EXAMPLES_PER_CONNECTION,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(frames)
    @example([Frame('{"type": "response.cancel"}', None, "response.cancel")])
    @example(
        [Frame('{"type": "conversation.get"}', "conversation.history", "conversation.get")] * 20
    )
    @example(
        [
            Frame(
                '{"type":"session.update","session":{"instructions":"Be brief."}}',
                "session.updated",
                "session.update",
            ),
            Frame('{"type": "response.cancel"}', None, "response.cancel"),
            Frame(
                '{"type":"session.update","session":{"eagerness":"high"}}',
                "session.updated",
                "session.update",
            ),
        ]
    )
    def one(example_frames: list[Frame]) -> None:
        exchange(example_frames)

    one()


def test_fuzzed_messages_get_protocol_answers_and_the_server_goes_on(
    server_url: str, speech: dict[str, Path], hypothesis_home: None, tmp_path: Path
) -> None:
    frames = _frames(_server_has_avatar(server_url))
    question = to_pcm16(load_audio(speech["capital"]))
    started = time.monotonic()
    stats = _fuzz(server_url, frames, question + bytes(32_000))  # 1 s of silence ends the turn
    elapsed = time.monotonic() - started
    print(
        f"\nfuzz: {stats.messages} messages ({stats.bytes_sent / 1e6:.0f} MB) over "
        f"{stats.connections} connections, plus {stats.speech_frames} speech frames, in "
        f"{elapsed:.0f} s\n  sent: {dict(stats.sent.most_common())}\n"
        f"  received: {dict(stats.received.most_common())}"
    )
    assert stats.messages >= TARGET_MESSAGES
    assert _health(server_url)["status"] == "ok"
    # A new session is answered: a spoken question, as a user's client asks it.
    events_path = tmp_path / "events.jsonl"
    run_client(server_url, "--input", speech["capital"], "--events", events_path)
    events = read_events(events_path)
    assert events[0]["type"] == "session.created"
    done = events_of(events, "response.done")
    assert done and done[-1]["status"] == "completed", done
    assert "paris" in done[-1]["text"].lower()


def test_invalid_utf8_in_a_text_frame_closes_with_1007_and_the_server_goes_on(
    server_url: str,
) -> None:
    """RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection with 1007. The one
    malformed message that ends a session, and it is the WebSocket layer's, not the session's."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(server_url, open_timeout=30) as ws:
        assert json.loads(ws.recv(timeout=60))["type"] == "session.created"
        ws.send(b'{"type": "ping", "x": "\xff\xfe\xc3\x28"}', text=True)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    with connect(server_url, open_timeout=30) as ws:
        assert json.loads(ws.recv(timeout=60))["type"] == "session.created"
        ws.send('{"type": "ping"}')
        assert json.loads(ws.recv(timeout=30)) == {"type": "pong"}
    assert _health(server_url)["status"] == "ok"
