"""The current date and time as the LLM is told it with each user turn. Pure.

A model has no clock: without this, "what day is it" gets a made-up answer. Each user turn opens
with the line for the moment it was said, in the LLM's prompt only (the history shown to clients
keeps what was said). The line is stored with its turn (`Conversation.add_user(text, context)`)
and rendered the same way in every later prompt, so each prompt begins with the last one's
tokens and llama.cpp's prompt cache covers the whole history; and a line inside a user message
suits every chat template (a second system message mid-conversation is refused by some,
Mistral's among them).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo


def zone(name: str | None) -> tzinfo | None:
    """The IANA zone `name`, or None for the machine's local zone."""
    return ZoneInfo(name) if name else None


def now_line(now: datetime) -> str:
    """`now` (timezone-aware) as "[Monday, 30 November 2026, 3:05 PM UTC]".

    Day before month and a 12-hour clock: read aloud by the model, these come out the way
    people say them ("Monday, 30 November", "3:05 PM").
    """
    hour = now.hour % 12 or 12
    half = "AM" if now.hour < 12 else "PM"
    name = now.tzname() or ""
    return (
        f"[{now:%A}, {now.day} {now:%B} {now.year}, {hour}:{now.minute:02d} {half}"
        f"{' ' + name if name else ''}]"
    )


def current_line(time_zone: str | None) -> str:
    """The line for this moment in `time_zone` (None: the server's local zone)."""
    return now_line(datetime.now(zone(time_zone)).astimezone(zone(time_zone)))
