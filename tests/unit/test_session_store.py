"""Conversations kept between connections: the state, its tokens, SQLite and a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dandelion.config import SessionStoreSettings
from dandelion.protocol import events as ev
from dandelion.session_state import (
    ResumeError,
    SessionState,
    new_resume_token,
    split_resume_token,
)
from dandelion.session_store import (
    RedisSessionStore,
    SessionStore,
    SQLiteSessionStore,
    open_store,
)
from tests.redis_server import redis_server
from tests.unit.session_harness import Harness

SILENCE = {"detection": "silence"}

STATE = SessionState(
    session_id="abc123",
    instructions="Be brief.",
    messages=[
        {"role": "user", "content": "My name is Alice.", "context": "[Mon 30 Nov 2026 10:00]"},
        {"role": "assistant", "content": "Hello Alice."},
    ],
    turn_changes={"eagerness": "high"},
    video="jpeg",
    turn_id=3,
)


def test_state_round_trips_through_json() -> None:
    assert SessionState.from_json(STATE.to_json()) == STATE
    with pytest.raises(ResumeError, match="another version"):
        SessionState.from_json('{"version": 99, "session_id": "x", "instructions": ""}')
    with pytest.raises(ResumeError, match="unreadable"):
        SessionState.from_json("{not json")


def test_tokens_name_their_session_and_only_a_digest_is_kept() -> None:
    token, digest = new_resume_token("abc123")
    session_id, secret = split_resume_token(token)
    assert session_id == "abc123" and secret not in digest and len(digest) == 64
    for bad in ("", "abc123", ".secret", "abc123.", "x" * 300 + ".y"):
        with pytest.raises(ResumeError, match="malformed"):
            split_resume_token(bad)


def check_store(store: SessionStore) -> None:
    token, digest = new_resume_token(STATE.session_id)
    assert store.owns(STATE.session_id, digest)  # nothing saved yet: nobody else has it
    assert store.save(STATE, digest)
    assert store.load(token) == STATE
    moved_on = SessionState(
        STATE.session_id, STATE.instructions, [*STATE.messages], {}, "off", turn_id=5
    )
    assert store.save(moved_on, digest)
    assert store.load(token).turn_id == 5  # the last save wins
    # A client resumed the conversation (a new token replacing the old): from then on the old
    # connection, still saving under the old token, no longer overwrites it.
    resumed_token, resumed_digest = new_resume_token(STATE.session_id)
    assert store.owns(STATE.session_id, digest)
    assert store.owns(STATE.session_id, resumed_digest, replaces=digest)
    assert store.save(moved_on, resumed_digest, replaces=digest)
    assert not store.owns(STATE.session_id, digest)  # what tells the old connection
    assert store.owns(STATE.session_id, resumed_digest, replaces=digest)
    assert not store.save(STATE, digest)
    assert store.load(resumed_token).turn_id == 5
    with pytest.raises(ResumeError):
        store.load(token)  # the old token was replaced
    session_id, _ = split_resume_token(token)
    for wrong in (f"{session_id}.not-the-secret", "unknown.secret"):
        with pytest.raises(ResumeError, match="unknown or expired"):
            store.load(wrong)


def test_sqlite_store_keeps_and_checks(tmp_path: Path) -> None:
    store = SQLiteSessionStore(tmp_path / "deep" / "sessions.sqlite3", ttl_s=60)
    check_store(store)
    store.close()


def test_sqlite_store_is_shared_by_replicas_on_one_disk(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite3"
    first, second = SQLiteSessionStore(path, 60), SQLiteSessionStore(path, 60)
    token, digest = new_resume_token(STATE.session_id)
    first.save(STATE, digest)
    assert second.load(token) == STATE  # the replica a client reconnects to reads it
    first.close()
    second.close()


def test_sqlite_records_expire(tmp_path: Path) -> None:
    now = [1000.0]
    store = SQLiteSessionStore(tmp_path / "s.sqlite3", ttl_s=60, clock=lambda: now[0])
    token, digest = new_resume_token(STATE.session_id)
    store.save(STATE, digest)
    now[0] += 59
    assert store.load(token) == STATE
    now[0] += 2
    with pytest.raises(ResumeError, match="unknown or expired"):
        store.load(token)
    store.close()


def test_open_store_follows_the_settings(tmp_path: Path) -> None:
    assert open_store(SessionStoreSettings(backend="off")) is None
    path = tmp_path / "x.sqlite3"
    store = open_store(SessionStoreSettings(sqlite_path=str(path)))
    assert isinstance(store, SQLiteSessionStore) and path.exists()
    store.close()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def test_redis_store_keeps_checks_and_expires(redis_url: str) -> None:
    store = RedisSessionStore(redis_url, ttl_s=60)
    check_store(store)
    short = RedisSessionStore(redis_url, ttl_s=0.2)
    token, digest = new_resume_token("short-lived")
    short.save(SessionState("short-lived", "Hi."), digest)
    assert short.load(token).session_id == "short-lived"
    time.sleep(0.4)  # Redis expires the key itself
    with pytest.raises(ResumeError, match="unknown or expired"):
        short.load(token)
    store.close()
    short.close()


def test_a_resumed_session_goes_on_with_the_conversation() -> None:
    async def test() -> None:
        first = Harness(turn=SILENCE)
        await first.start()
        await first.session.receive('{"type": "session.update", "session": {"eagerness": "high"}}')
        await first.speak(800)
        await first.silence(1000)
        done = first.events(ev.ResponseDone)[0]
        assert isinstance(done, ev.ResponseDone) and done.status == "completed"
        state = first.session.state()
        await first.close()

        # The same server (its settings), another connection: the client's changes come back.
        again = Harness(restored=SessionState.from_json(state.to_json()), turn=SILENCE)
        await again.start()
        created = again.events(ev.SessionCreated)[0]
        assert isinstance(created, ev.SessionCreated)
        assert created.resumed and created.resume_token == "test.secret"
        assert created.eagerness == "high" and created.turn_detection == "silence"
        assert again.session.conversation.messages == first.session.conversation.messages
        await again.speak(800)
        await again.silence(1000)
        turns = [e.turn_id for e in again.events(ev.ResponseDone) if isinstance(e, ev.ResponseDone)]
        assert turns == [done.turn_id + 1]  # turn ids go on: a client's bookkeeping holds
        roles = [m["role"] for m in again.session.conversation.messages]
        assert roles == ["user", "assistant", "user", "assistant"]
        await again.close()

    asyncio.run(test())


def test_a_question_left_unanswered_at_close_does_not_join_the_next_one() -> None:
    async def test() -> None:
        h = Harness(turn=SILENCE)
        await h.start()
        h.session.conversation.add_user("Describe how bread is made.")  # its reply never came
        await h.close()
        state = h.session.state()
        again = Harness(restored=state, turn=SILENCE)
        again.session.conversation.add_user("What is the capital of France?")
        messages = again.session.conversation.messages
        assert [m["content"] for m in messages] == [
            "Describe how bread is made.",
            "What is the capital of France?",
        ]  # both kept, not merged into one question
        assert [m["content"] for m in again.session.conversation.prompt()[1:]] == [
            "What is the capital of France?"
        ]

    asyncio.run(test())
