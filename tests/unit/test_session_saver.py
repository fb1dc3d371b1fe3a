"""A live connection's saves, and how it learns that another connection resumed its
conversation (the real SQLite store in a temporary file)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dandelion.serve.resume import SessionSaver
from dandelion.session_state import SessionState, new_resume_token
from dandelion.session_store import SQLiteSessionStore

STATE = SessionState("s1", "Be brief.", [{"role": "user", "content": "Hi."}], turn_id=1)
LATER = SessionState("s1", "Be brief.", [], turn_id=9)


def test_the_left_connection_learns_of_the_resume_and_stops_saving(tmp_path: Path) -> None:
    async def run() -> None:
        store = SQLiteSessionStore(tmp_path / "s.sqlite3", ttl_s=60)
        _, old_digest = new_resume_token("s1")
        left = SessionSaver(store, lambda: STATE, old_digest)
        await left.save()
        watching = asyncio.create_task(left.taken_over(every_s=0.01))
        await asyncio.sleep(0.05)
        assert not watching.done()  # nobody else has it: the connection goes on

        new_token, new_digest = new_resume_token("s1")
        newer = SessionSaver(store, lambda: LATER, new_digest, replaces=old_digest)
        await newer.save()
        await asyncio.wait_for(watching, 1.0)
        assert left.superseded
        await left.close()  # its last save would undo the newer connection's: not written
        assert store.load(new_token).turn_id == 9

    asyncio.run(run())


def test_a_save_that_finds_the_conversation_resumed_ends_the_wait(tmp_path: Path) -> None:
    async def run() -> None:
        store = SQLiteSessionStore(tmp_path / "s.sqlite3", ttl_s=60)
        _, old_digest = new_resume_token("s1")
        left = SessionSaver(store, lambda: STATE, old_digest)
        await left.save()
        watching = asyncio.create_task(left.taken_over(every_s=60))
        _, new_digest = new_resume_token("s1")
        await SessionSaver(store, lambda: LATER, new_digest, replaces=old_digest).save()
        await left.save()  # seen here, long before the next check
        await asyncio.wait_for(watching, 1.0)

    asyncio.run(run())


class _Unreachable(SQLiteSessionStore):
    def owns(self, session_id: str, token_digest: str, replaces: str | None = None) -> bool:
        raise ConnectionError("store down")


def test_an_unreachable_store_ends_no_connection(tmp_path: Path) -> None:
    async def run() -> None:
        store = _Unreachable(tmp_path / "s.sqlite3", ttl_s=60)
        saver = SessionSaver(store, lambda: STATE, new_resume_token("s1")[1])
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(saver.taken_over(every_s=0.01), 0.2)
        assert not saver.superseded

    asyncio.run(run())
