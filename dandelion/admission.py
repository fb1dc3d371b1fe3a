"""How much one client may take: sessions per replica and in all, messages per second, audio
faster than real time, idle and total session time. Pure: every call is given the time (s, any
monotonic clock), so the rules are tested in milliseconds; the gateway applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from dandelion.config import SecuritySettings

CLOSE_NORMAL = 1000
CLOSE_POLICY_VIOLATION = 1008
"""Closed for breaking a limit: too many messages for too long, or not reading its messages."""
CLOSE_TRY_AGAIN_LATER = 1013
"""Refused at the door: the server holds as many sessions as it may; the reason says when."""
CLOSE_TAKEN_OVER = 4000
"""Another connection resumed this conversation: a client must not reconnect with its own,
now replaced, resume token (it would take the conversation back from the newer connection)."""

BYTES_PER_AUDIO_SECOND = 32_000  # PCM16 mono at 16 kHz


class TokenBucket:
    """`rate` units a second, up to `burst` saved up; starts full."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._level = burst
        self._at = now

    def take(self, now: float, amount: float = 1.0) -> bool:
        """Spend `amount` if the bucket holds it; False (nothing spent) if not."""
        self._level = min(self.burst, self._level + max(0.0, now - self._at) * self.rate)
        self._at = max(self._at, now)
        if self._level >= amount:
            self._level -= amount
            return True
        return False


class Verdict(Enum):
    ACCEPT = "accept"
    WARN = "warn"
    """Dropped, and the first drop of a spell: tell the client (`rate_limited`)."""
    DROP = "drop"
    """Dropped, already told."""
    CLOSE = "close"
    """Over the limit for too long: close the session."""


class Overuse:
    """Refusals group into spells (no gap over `gap_s`); the first refusal of a spell warns, and
    one `close_after_s` into a spell closes (None: never)."""

    def __init__(self, close_after_s: float | None, gap_s: float = 1.0) -> None:
        self._close_after_s = close_after_s
        self._gap_s = gap_s
        self._since: float | None = None
        self._last = 0.0

    def refused(self, now: float) -> Verdict:
        if self._since is None or now - self._last > self._gap_s:
            self._since = now
            self._last = now
            return Verdict.WARN
        self._last = now
        if self._close_after_s is not None and now - self._since >= self._close_after_s:
            return Verdict.CLOSE
        return Verdict.DROP


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """One session's limits (SecuritySettings' fields of the same names)."""

    max_session_s: float = 7_200.0
    idle_timeout_s: float = 300.0
    max_messages_per_s: float = 500.0
    message_burst: int = 1_000
    rate_limit_close_s: float = 3.0
    max_audio_speed: float = 2.0
    audio_burst_s: float = 30.0

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> SessionLimits:
        return cls(
            max_session_s=security.max_session_s,
            idle_timeout_s=security.idle_timeout_s,
            max_messages_per_s=security.max_messages_per_s,
            message_burst=security.message_burst,
            rate_limit_close_s=security.rate_limit_close_s,
            max_audio_speed=security.max_audio_speed,
            audio_burst_s=security.audio_burst_s,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: str = ""
    """Said to the client with WARN and CLOSE: what was over which limit."""


@dataclass(frozen=True, slots=True)
class Expiry:
    reason: str
    """Why the session ends: `idle` or `max_length`."""
    message: str


class SessionGuard:
    """The per-session limits, applied to each client message as it arrives.

    Messages beyond `max_messages_per_s` (a bucket of `message_burst`) are dropped, the first of
    a spell with a warning; a spell of `rate_limit_close_s` closes the session. Audio beyond
    `max_audio_speed` times real time (a bucket of `audio_burst_s` seconds) is dropped with a
    warning but never closes it: the clock of the conversation is the audio, and a client that
    sends it too fast is one to slow down, not to drop. A session ends `idle_timeout_s` after its
    last message, and `max_session_s` after it began.
    """

    def __init__(self, limits: SessionLimits, now: float) -> None:
        self.limits = limits
        self._started = now
        self._last_message = now
        self._messages = TokenBucket(limits.max_messages_per_s, limits.message_burst, now)
        self._message_overuse = Overuse(limits.rate_limit_close_s)
        self._audio = TokenBucket(limits.max_audio_speed, limits.audio_burst_s, now)
        self._audio_overuse = Overuse(None)

    def on_message(self, now: float, audio_bytes: int = 0) -> Decision:
        """Judge one client message; `audio_bytes`: its PCM16 audio (0 for a text message, or a
        binary one the codec will refuse anyway)."""
        self._last_message = now
        if not self._messages.take(now):
            verdict = self._message_overuse.refused(now)
            rate = self.limits.max_messages_per_s
            if verdict is Verdict.CLOSE:
                return Decision(verdict, f"over {rate:g} messages a second for too long")
            return Decision(verdict, f"over {rate:g} messages a second: messages dropped")
        if audio_bytes and not self._audio.take(now, audio_bytes / BYTES_PER_AUDIO_SECOND):
            verdict = self._audio_overuse.refused(now)
            speed = self.limits.max_audio_speed
            return Decision(verdict, f"audio over {speed:g}x real time: audio dropped")
        return Decision(Verdict.ACCEPT)

    def seconds_left(self, now: float) -> float:
        """Until the session expires if no message comes (> 0 while it has not)."""
        idle = self._last_message + self.limits.idle_timeout_s
        end = self._started + self.limits.max_session_s
        return min(idle, end) - now

    def expiry(self, now: float) -> Expiry | None:
        """Why the session is over at `now`, or None."""
        if now - self._started >= self.limits.max_session_s:
            return Expiry(
                "max_length", f"session longer than {self.limits.max_session_s:g} s: reconnect"
            )
        if now - self._last_message >= self.limits.idle_timeout_s:
            return Expiry("idle", f"no message for {self.limits.idle_timeout_s:g} s")
        return None


class SessionLedger:
    """Open sessions per gateway replica, for a limit across replicas (`max_sessions_total`).

    Each replica reports its own count at least every `lease_s` / 3; a count not reported for
    `lease_s` lapses, so a replica that died cannot hold its sessions' places for ever.
    """

    def __init__(self, lease_s: float = 30.0) -> None:
        self.lease_s = lease_s
        self._counts: dict[str, tuple[int, float]] = {}  # replica -> (sessions, reported at)

    def total(self, now: float) -> int:
        self._counts = {
            replica: (count, at)
            for replica, (count, at) in self._counts.items()
            if now - at < self.lease_s
        }
        return sum(count for count, _ in self._counts.values())

    def acquire(self, replica: str, limit: int, now: float) -> bool:
        """One more session on `replica`, if the total stays within `limit`."""
        if self.total(now) >= limit:
            return False
        count, _ = self._counts.get(replica, (0, now))
        self._counts[replica] = (count + 1, now)
        return True

    def release(self, replica: str, now: float) -> None:
        count, _ = self._counts.get(replica, (0, now))
        self._counts[replica] = (max(0, count - 1), now)

    def report(self, replica: str, count: int, now: float) -> None:
        """`replica` holds `count` sessions (its own count wins over the ledger's)."""
        self._counts[replica] = (count, now)
