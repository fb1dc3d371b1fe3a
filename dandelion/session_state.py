"""What a conversation needs to go on elsewhere: the part of a session that outlives its socket.

Pure: a `SessionState` is plain values (the history, the client's settings, the turn counter)
and JSON either way. What is in flight (a reply being spoken, audio not yet transcribed) is not
kept: a resumed session starts listening, with everything said before it.

Resume tokens: `session_id.secret`. Only the secret's SHA-256 is stored, so a leaked store does
not let anyone resume a conversation; the token is checked in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

STATE_VERSION = 1


class ResumeError(ValueError):
    """A resume token that is malformed, unknown, expired or wrong: the client starts afresh."""


@dataclass(frozen=True, slots=True)
class SessionState:
    session_id: str
    instructions: str
    messages: list[dict[str, str]] = field(default_factory=list)
    # session.update's turn-taking changes (turn_settings fields), as the client made them.
    turn_changes: dict[str, Any] = field(default_factory=dict)
    video: str = "off"
    turn_id: int = 0  # the last turn's id: a resumed session's turns go on from it
    # When the conversation began (unix s): it cannot be resumed past session_store.max_age_s,
    # however often it was resumed since.
    started_at: float = 0.0
    # The API keys in force when it was saved (`Authenticator.epoch`): its resume token is a
    # credential only while they are the same, so revoking a key revokes its conversations.
    auth_epoch: str = ""

    def to_json(self) -> str:
        return json.dumps({"version": STATE_VERSION, **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> SessionState:
        """Raises ResumeError for what this version cannot read."""
        try:
            data = json.loads(text)
            if data.pop("version", None) != STATE_VERSION:
                raise ResumeError("saved by another version of the server")
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise ResumeError(f"unreadable saved session: {exc}") from None


def new_resume_token(session_id: str) -> tuple[str, str]:
    """A fresh token for `session_id` and the digest to store: (token, sha256 hex of secret)."""
    secret = secrets.token_urlsafe(24)
    return f"{session_id}.{secret}", digest(secret)


def split_resume_token(token: str) -> tuple[str, str]:
    """(session_id, secret); ResumeError when the token is not of the form `id.secret`."""
    session_id, dot, secret = token.partition(".")
    if not dot or not session_id or not secret or len(token) > 256:
        raise ResumeError("malformed resume token")
    return session_id, secret


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)
