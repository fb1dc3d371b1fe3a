"""Split streamed LLM text into chunks a TTS can speak well, as early as possible.

The first chunk may end at a clause (comma, colon) so the first audio starts sooner; later chunks
end at sentences, which gives better prosody. A newline always ends a chunk (markdown list items
and headings are spoken one by one); a line of markup only ("---", a table rule, a code fence)
is no chunk. Abbreviations, initialisms ("U.S."), a list item's number ("2. ") and dots inside
numbers, URLs and e-mail addresses end no sentence. A chunk that reaches `max_chars` with no
such end is cut at whitespace when there is any, else inside its one long token at a point that
splits no run of digits where there is one. Pure: text in, chunks out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "no", "approx"}
    | {"mt", "fig", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov"}
    | {"dec"}
)
_BREAK_BEFORE = frozenset(
    {
        "and", "but", "or", "so", "because", "which", "who", "that", "when", "while", "where",
        "if", "than", "in", "on", "at", "of", "to", "for", "with", "from", "by", "as", "about",
    }
)  # fmt: skip
# A sentence or clause mark may be followed by closing quotes, brackets or markdown emphasis.
_SENTENCE_END = re.compile(r"[.!?;]+[\"')\]*_]*(?=\s)")
_CLAUSE_END = re.compile(r"[,:\u2014]+[*_]*(?=\s)")
_WORD = re.compile(r"\S+")
_SPOKEN_WORD = re.compile(r"\S*[^\W_]\S*")  # markup alone ("##", "-", "**") is no word
_INITIALISM = re.compile(r"(?:[a-z]\.)+[a-z]")  # "u.s", "p.m" before their last dot
_LIST_NUMBER = re.compile(r"\s*\d{1,9}")  # "2" before "2. " at the start of a line
# A line that says nothing: rules, table rules, emphasis or heading marks alone, code fences.
_MARKUP_ONLY = re.compile(r"[\s*_#>|`~=+:-]*|\s*(?:`{3,}|~{3,})[\w+#.-]*\s*")


@dataclass(frozen=True, slots=True)
class ChunkerConfig:
    first_chunk_min_words: int = 3
    # With no punctuation after this many words, the first chunk ends before the latest function
    # word ("in", "and", "which"...), a natural phrase break, so the voice starts while the LLM
    # finishes the sentence; with no such word, after twice this many (0 waits for punctuation).
    first_chunk_max_words: int = 6
    min_words: int = 4
    max_chars: int = 220


class SentenceChunker:
    def __init__(self, config: ChunkerConfig | None = None) -> None:
        self.config = config or ChunkerConfig()
        self._buffer = ""
        self._emitted = 0

    def push(self, delta: str) -> list[str]:
        """Add streamed text; return the chunks that are now complete."""
        self._buffer += delta
        chunks: list[str] = []
        while (cut := self._find_cut()) is not None:
            chunk, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:].lstrip()
            if chunk and not _MARKUP_ONLY.fullmatch(chunk):
                chunks.append(chunk)
                self._emitted += 1
        return chunks

    def flush(self) -> list[str]:
        """The stream ended: whatever is left is the last chunk."""
        rest, self._buffer = self._buffer.strip(), ""
        if not any(ch.isalnum() for ch in rest) or _MARKUP_ONLY.fullmatch(rest):
            return []
        self._emitted += 1
        return [rest]

    def _find_cut(self) -> int | None:
        buffer, limit = self._buffer, self.config.max_chars
        cut = self._boundary(buffer)
        if len(buffer) > limit and (cut is None or cut > limit):
            return _forced_cut(buffer[: limit + 1])
        return cut

    def _boundary(self, buffer: str) -> int | None:
        newline = buffer.find("\n")
        line = buffer if newline < 0 else buffer[: newline + 1]
        for match in _SENTENCE_END.finditer(line):
            end = match.end()
            if self._is_abbreviation(line, match.start()) or self._is_list_number(line, match):
                continue
            if self._words(line[:end]) >= self._min_words() or self._emitted == 0:
                return end
        if self._emitted == 0:
            for match in _CLAUSE_END.finditer(line):
                if self._words(line[: match.end()]) >= self.config.first_chunk_min_words:
                    return match.end()
            if self.config.first_chunk_max_words and (cut := self._phrase_break(line)):
                return cut
        return newline if newline >= 0 else None

    def _phrase_break(self, buffer: str) -> int | None:
        limit = self.config.first_chunk_max_words
        # A word is complete only once whitespace follows it.
        words = [w for w in _WORD.finditer(buffer) if w.end() < len(buffer)]
        if len(words) < limit:
            return None
        for word in reversed(words[self.config.first_chunk_min_words :]):
            if word.group().lower() in _BREAK_BEFORE:
                return word.start()
        if len(words) >= 2 * limit:
            return words[limit - 1].end()
        return None

    def _min_words(self) -> int:
        return self.config.first_chunk_min_words if self._emitted == 0 else self.config.min_words

    @staticmethod
    def _words(text: str) -> int:
        return len(_SPOKEN_WORD.findall(text))

    @staticmethod
    def _is_abbreviation(text: str, dot: int) -> bool:
        if text[dot] != ".":
            return False
        word = text[:dot].rsplit(None, 1)[-1].lower() if text[:dot].strip() else ""
        word = word.lstrip("*_([{\"'")
        return (
            word in _ABBREVIATIONS
            or (len(word) == 1 and word.isalpha())
            or _INITIALISM.fullmatch(word) is not None
        )

    @staticmethod
    def _is_list_number(text: str, match: re.Match[str]) -> bool:
        """A list item's number at the start of a line ("2. Sleep") ends no sentence."""
        line_start = text.rfind("\n", 0, match.start()) + 1
        return match.group() == "." and bool(
            _LIST_NUMBER.fullmatch(text, line_start, match.start())
        )


def _forced_cut(window: str) -> int:
    """Where to cut a chunk at its length limit; `window` is its first `max_chars` + 1 characters.

    At the last whitespace; with none (one long token: a URL, a number), after the last mark
    that is not inside a number ("/" in a URL, not "," in "1,234"); else at the last change
    between digit and not digit; else at the last point not between two digits; else (only
    digits) at the limit.
    """
    limit = len(window) - 1
    points = range(limit, 0, -1)
    for point in points:
        if window[point].isspace():
            return point
    for point in points:
        mark, before, after = window[point - 1], window[point - 2 : point - 1], window[point]
        if not mark.isalnum() and not (before.isdigit() and after.isdigit()):
            return point
    for point in points:
        if window[point - 1].isdigit() != window[point].isdigit():
            return point
    for point in points:
        if not (window[point - 1].isdigit() and window[point].isdigit()):
            return point
    return limit
