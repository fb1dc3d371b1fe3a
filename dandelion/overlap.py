"""Speech over the assistant's reply: an interruption, a backchannel, or the reply's own echo. Pure.

While the assistant speaks, the microphone may hear the user say "uh-huh" (a backchannel: go
on), the user cutting in ("wait, what about Tuesday?"), or the reply itself coming back from a
loudspeaker (echo). `judge_overlap` tells them apart from the words heard over the reply and the
words the reply was playing then.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import Enum

DEFAULT_BACKCHANNELS = (
    "uh-huh",
    "uh huh",
    "mm-hmm",
    "mm hmm",
    "mhm",
    "hmm",
    "mm",
    "yeah",
    "yes",
    "yep",
    "right",
    "okay",
    "ok",
    "sure",
    "i see",
    "got it",
    "aha",
    "ah",
    "oh",
    "uh",
    "um",
    "wow",
    "cool",
    "great",
    "nice",
    "alright",
    "all right",
)


class Overlap(Enum):
    INTERRUPTION = "interruption"  # cut the reply: the user takes the turn
    BACKCHANNEL = "backchannel"  # the reply goes on; no turn
    ECHO = "echo"  # the reply's own audio coming back; no turn
    NOTHING = "nothing"  # no words (a cough, a noise): the reply goes on


_WORD = re.compile(r"[a-z0-9']+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("-", " "))


def judge_overlap(
    heard: str, playing: str, backchannels: Iterable[str] = DEFAULT_BACKCHANNELS
) -> Overlap:
    """Judge the transcript `heard` of speech over a reply whose recent words were `playing`.

    ECHO when most of the heard words are among the words being played (the microphone picked
    up the loudspeaker); BACKCHANNEL when every heard word belongs to the backchannel phrases
    (at most four words: "yeah, right, okay"); NOTHING for no words; INTERRUPTION otherwise.
    """
    words = _words(heard)
    if not words:
        return Overlap.NOTHING
    played = set(_words(playing))
    if played and sum(w in played for w in words) >= max(1, 0.6 * len(words)) and len(words) > 1:
        return Overlap.ECHO
    allowed = {w for phrase in backchannels for w in _words(phrase)}
    if len(words) <= 4 and all(w in allowed for w in words):
        return Overlap.BACKCHANNEL
    if played and len(words) == 1 and words[0] in played and words[0] not in allowed:
        return Overlap.ECHO
    return Overlap.INTERRUPTION
