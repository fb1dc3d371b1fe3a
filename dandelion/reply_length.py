"""Where a spoken reply ends when the LLM runs long. Pure: chunks in, a verdict out.

A voice reply that runs on (a "short list" answered by a half-minute numbered essay) loses the
listener. The cap counts the spoken words of the chunks that go to the voice; once past
`max_words` it ends the reply at the next sentence end, so speech never stops mid-sentence, and
at twice `max_words` in any case (a list whose items carry no full stops).
"""

from __future__ import annotations

import re

from dandelion.spoken_form import to_spoken

_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")


class ReplyLengthCap:
    """Counts spoken words; `full` once the reply should end (0 words: no cap)."""

    def __init__(self, max_words: int) -> None:
        self.max_words = max_words
        self.words = 0
        self.full = False
        self._spoken: list[str] = []

    def admit(self, chunk: str) -> bool:
        """Count `chunk` and say whether it is spoken (every chunk until the cap is full)."""
        if self.full:
            return False
        self._spoken.append(chunk)
        if self.max_words <= 0:
            return True
        # Counted as spoken ("$1,234.50" is five words; markup and emoji are none), and a
        # sentence end is looked for past closing markup ("**done.**") and emoji.
        spoken = to_spoken(chunk)
        self.words += len(spoken.split())
        if self.words >= 2 * self.max_words or (
            self.words >= self.max_words and _SENTENCE_END.search(spoken.rstrip())
        ):
            self.full = True
        return True

    @property
    def text(self) -> str:
        """What was admitted, as one text (the reply as spoken, in its written form)."""
        return " ".join(self._spoken)
