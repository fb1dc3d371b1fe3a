"""Where conversations are kept between connections: embedded SQLite, or Redis for a cluster.

A gateway replica saves a session's `SessionState` after every change (a reply done, a
settings change), so a dropped connection or a lost replica loses at most the turn in flight.
A client that reconnects with the resume token from `session.created` gets the same
conversation from whichever replica it reaches: SQLite when all gateway replicas share a disk
(one node), Redis when they do not.

Calls block (a file or a socket): the gateway runs them in a thread. Records expire `ttl_s` after
their last save.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from dandelion.config import SessionStoreSettings
from dandelion.errors import BackendUnavailableError
from dandelion.session_state import ResumeError, SessionState, secret_matches, split_resume_token


class SessionStore(Protocol):
    def save(self, state: SessionState, token_digest: str, replaces: str | None = None) -> bool:
        """Keep `state`, resumable by the token of `token_digest`, if this connection still owns
        its conversation: no record yet, or one saved under `token_digest` or under `replaces`
        (the token this connection resumed with). False, saving nothing, when another
        connection has resumed the conversation since (its saves win)."""

    def owns(self, session_id: str, token_digest: str, replaces: str | None = None) -> bool:
        """Whether `save` would still keep this connection's state: False once another
        connection has resumed the conversation (read only: nothing is written)."""

    def load(self, token: str) -> SessionState:
        """The state a resume token names; ResumeError when unknown, expired or wrong."""

    def close(self) -> None: ...


def default_sqlite_path() -> Path:
    """`$XDG_STATE_HOME/dandelion/sessions.sqlite3` (~/.local/state when unset)."""
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "dandelion" / "sessions.sqlite3"


def open_store(settings: SessionStoreSettings) -> SessionStore | None:
    """The configured store, or None when `backend` is "off" (no resume)."""
    if settings.backend == "off":
        return None
    if settings.backend == "redis":
        return RedisSessionStore(settings.redis_url, settings.ttl_s)
    path = Path(settings.sqlite_path) if settings.sqlite_path else default_sqlite_path()
    return SQLiteSessionStore(path, settings.ttl_s)


def _owner(current: str | None, token_digest: str, replaces: str | None) -> bool:
    """Whether a connection saving under `token_digest` (having resumed `replaces`) still owns
    a conversation saved under `current`: nobody saved it yet, or it or its predecessor did.
    (Redis runs the same rule in _SAVE_IF_OWNER, atomically with the write.)"""
    return current is None or current in (token_digest, replaces)


def _unknown() -> ResumeError:
    # One message for unknown, expired and wrong tokens: a guesser learns nothing.
    return ResumeError("unknown or expired resume token")


class SQLiteSessionStore:
    """One file, shared by the gateway replicas of one machine (WAL: readers never block)."""

    def __init__(self, path: Path, ttl_s: float, clock: Any = time.time) -> None:
        # What was said is in there: only the server's user may read it.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        # Autocommit; each save is its own BEGIN IMMEDIATE transaction, so the owner check and
        # the write are one step for every process sharing the file.
        self._db = sqlite3.connect(
            str(path), timeout=10, check_same_thread=False, isolation_level=None
        )
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, "
                "digest TEXT NOT NULL, state TEXT NOT NULL, saved_at REAL NOT NULL)"
            )

    def save(self, state: SessionState, token_digest: str, replaces: str | None = None) -> bool:
        now = self._clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                owner = _owner(self._digest_of(state.session_id), token_digest, replaces)
                if owner:
                    self._db.execute(
                        "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)",
                        (state.session_id, token_digest, state.to_json(), now),
                    )
                self._db.execute("DELETE FROM sessions WHERE saved_at < ?", (now - self._ttl_s,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return owner

    def owns(self, session_id: str, token_digest: str, replaces: str | None = None) -> bool:
        with self._lock:
            return _owner(self._digest_of(session_id), token_digest, replaces)

    def _digest_of(self, session_id: str) -> str | None:
        """The token digest the conversation is saved under (None: no record). Lock held."""
        row = self._db.execute(
            "SELECT digest FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def load(self, token: str) -> SessionState:
        session_id, secret = split_resume_token(token)
        with self._lock:
            row = self._db.execute(
                "SELECT digest, state, saved_at FROM sessions WHERE session_id = ?",
                (session_id,),
            ).fetchone()
        if row is None or row[2] < self._clock() - self._ttl_s:
            raise _unknown()
        if not secret_matches(secret, row[0]):
            raise _unknown()
        return SessionState.from_json(row[1])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RedisSessionStore:
    """A hash per session (`dandelion:session:<id>`: digest, state), expiring after `ttl_s`."""

    def __init__(self, url: str, ttl_s: float) -> None:
        try:
            import redis
        except ImportError as exc:
            raise BackendUnavailableError(
                "session_store.backend redis needs the redis package: "
                "pip install 'dandelion[redis]'"
            ) from exc
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        # The owner check and the write in one step on the server (a Lua script is atomic).
        self._save = self._redis.register_script(_SAVE_IF_OWNER)

    @staticmethod
    def _key(session_id: str) -> str:
        return f"dandelion:session:{session_id}"

    def save(self, state: SessionState, token_digest: str, replaces: str | None = None) -> bool:
        owner = self._save(
            keys=[self._key(state.session_id)],
            args=[token_digest, replaces or "", state.to_json(), self._ttl_ms],
        )
        return bool(owner)

    def owns(self, session_id: str, token_digest: str, replaces: str | None = None) -> bool:
        current: Any = self._redis.hget(self._key(session_id), "digest")
        return _owner(None if current is None else bytes(current).decode(), token_digest, replaces)

    def load(self, token: str) -> SessionState:
        session_id, secret = split_resume_token(token)
        record: dict[Any, Any] = self._redis.hgetall(self._key(session_id))
        if not record or not secret_matches(secret, bytes(record[b"digest"]).decode()):
            raise _unknown()
        return SessionState.from_json(bytes(record[b"state"]))

    def close(self) -> None:
        self._redis.close()


_SAVE_IF_OWNER = """
local current = redis.call('HGET', KEYS[1], 'digest')
if current and current ~= ARGV[1] and current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'digest', ARGV[1], 'state', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
