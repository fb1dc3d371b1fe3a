"""Split streamed LLM text into chunks a TTS can speak well, as early as possible.

The first chunk may end at a clause (comma, colon) so the first audio starts sooner; later chunks
end at sentences, which gives better prosody. Pure: text in, chunks out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "no", "approx"}
)
_BREAK_BEFORE = frozenset(
    {
        "and", "but", "or", "so", "because", "which", "who", "that", "when", "while", "where",
        "if", "than", "in", "on", "at", "of", "to", "for", "with", "from", "by", "as", "about",
    }
)  # fmt: skip
_SENTENCE_END = re.compile(r"[.!?;]+[\"')\]]*(?=\s)")
_CLAUSE_END = re.compile(r"[,:\u2014]+(?=\s)")
_WORD = re.compile(r"\S+")


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
            if chunk:
                chunks.append(chunk)
                self._emitted += 1
        return chunks

    def flush(self) -> list[str]:
        """The stream ended: whatever is left is the last chunk."""
        rest, self._buffer = self._buffer.strip(), ""
        if not rest or not any(ch.isalnum() for ch in rest):
            return []
        self._emitted += 1
        return [rest]

    def _find_cut(self) -> int | None:
        buffer = self._buffer
        cut = self._boundary(buffer)
        if len(buffer) > self.config.max_chars and (cut is None or cut > self.config.max_chars):
            space = buffer.rfind(" ", 0, self.config.max_chars)
            return space if space > 0 else self.config.max_chars
        return cut

    def _boundary(self, buffer: str) -> int | None:
        for match in _SENTENCE_END.finditer(buffer):
            end = match.end()
            if self._is_abbreviation(buffer, match.start()):
                continue
            if self._words(buffer[:end]) >= self._min_words() or self._emitted == 0:
                return end
        if self._emitted == 0:
            for match in _CLAUSE_END.finditer(buffer):
                if self._words(buffer[: match.end()]) >= self.config.first_chunk_min_words:
                    return match.end()
            if self.config.first_chunk_max_words:
                return self._phrase_break(buffer)
        return None

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
        return len(_WORD.findall(text))

    @staticmethod
    def _is_abbreviation(text: str, dot: int) -> bool:
        if text[dot] != ".":
            return False
        word = text[:dot].rsplit(None, 1)[-1].lower() if text[:dot].strip() else ""
        return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())
