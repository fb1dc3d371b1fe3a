"""A session's conversation history, and what part of an interrupted reply was actually heard."""

from __future__ import annotations

from dataclasses import dataclass, field

Message = dict[str, str]


@dataclass(frozen=True, slots=True)
class SpokenChunk:
    """A piece of reply text and where its audio sits in the turn's output timeline."""

    text: str
    start_sample: int
    num_samples: int


def heard_text(chunks: list[SpokenChunk], played_samples: int) -> str:
    """The reply text up to what the listener had heard after `played_samples` of audio.

    Whole chunks that finished playing count in full; in the chunk that was cut, words count in
    proportion to the audio played (speech rate is close to even within one clause).
    """
    words: list[str] = []
    for chunk in chunks:
        played = played_samples - chunk.start_sample
        if played <= 0:
            break
        chunk_words = chunk.text.split()
        if played >= chunk.num_samples:
            words.extend(chunk_words)
            continue
        words.extend(chunk_words[: int(len(chunk_words) * played / chunk.num_samples)])
        break
    return " ".join(words)


@dataclass
class Conversation:
    """System instructions plus alternating user/assistant messages, bounded in length."""

    instructions: str
    max_messages: int = 40
    messages: list[Message] = field(default_factory=list)

    def add_user(self, text: str, context: str | None = None) -> None:
        """Add what the user said; `context` is the date-and-time line its prompt carried."""
        # Two user messages in a row (the user spoke again before hearing any reply) are one turn.
        if self.messages and self.messages[-1]["role"] == "user":
            self.messages[-1] = {
                **self.messages[-1],
                "content": f"{self.messages[-1]['content']} {text}",
            }
        else:
            message = {"role": "user", "content": text}
            if context:
                message["context"] = context
            self.messages.append(message)
        self._trim()

    def add_assistant(self, text: str) -> None:
        if text:
            self.messages.append({"role": "assistant", "content": text})
            self._trim()

    def replace_last_assistant(self, text: str) -> None:
        """An already finished reply was cut off while playing: keep what was heard."""
        if self.messages and self.messages[-1]["role"] == "assistant":
            if text:
                self.messages[-1] = {"role": "assistant", "content": text}
            else:
                self.messages.pop()

    def retract_user(self, text: str) -> None:
        """Take back the user's last words `text` (repair: they are said again, in full)."""
        if not self.messages or self.messages[-1]["role"] != "user":
            return
        content = self.messages[-1]["content"]
        if content == text:
            self.messages.pop()
        elif content.endswith(f" {text}"):
            self.messages[-1] = {**self.messages[-1], "content": content[: -len(text) - 1]}

    def prompt(self, pending_user: str | None = None, context: str | None = None) -> list[Message]:
        """The LLM prompt; `pending_user` is a user turn not committed yet (a speculative reply).

        Each user message opens with the date-and-time line it was first sent with (`context`
        for a new one), so every earlier token of the prompt is the same as last turn's and the
        LLM's prompt cache covers the whole history; only the LLM sees these lines.
        """
        messages = [{"role": "system", "content": self.instructions}]
        for message in self.messages:
            content = message["content"]
            if message["role"] == "user" and message.get("context"):
                content = f"{message['context']}\n{content}"
            messages.append({"role": message["role"], "content": content})
        if pending_user is not None:
            if self.messages and self.messages[-1]["role"] == "user":
                merged = f"{messages[-1]['content']} {pending_user}"
                messages[-1] = {"role": "user", "content": merged}
            else:
                text = f"{context}\n{pending_user}" if context else pending_user
                messages.append({"role": "user", "content": text})
        return messages

    def _trim(self) -> None:
        # Drop the oldest exchanges, keeping the history starting with a user message.
        while len(self.messages) > self.max_messages:
            del self.messages[:2]
