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


FAILED = "failed"  # a user message's "status" when its reply failed (no answer was heard)


def _failed(message: Message) -> bool:
    return message.get("status") == FAILED


@dataclass
class Conversation:
    """System instructions plus user/assistant messages, bounded in length.

    A user message may carry two keys besides role and content, neither of them sent as it is
    (the client's history and the prompt have role and content only): "context" (the
    date-and-time line its prompt opened with) and "status" FAILED (its reply failed: the
    history keeps the words, the prompt leaves them out). Left out, the prompt's messages
    alternate: a failed message is the only user message with another one right after it.
    """

    instructions: str
    max_messages: int = 40
    messages: list[Message] = field(default_factory=list)

    def add_user(self, text: str, context: str | None = None) -> None:
        """Add what the user said; `context` is the date-and-time line its prompt carried."""
        # Two user messages in a row (the user spoke again before hearing any reply) are one turn;
        # after a failed turn, the next one is a new question, not more of the failed one.
        if self._open_user():
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

    def fail_user(self) -> None:
        """The reply to the last user message failed: keep its words, out of later prompts."""
        if self.messages and self.messages[-1]["role"] == "user":
            self.messages[-1] = {**self.messages[-1], "status": FAILED}

    def add_assistant(self, text: str) -> None:
        if text:
            if self.messages and _failed(self.messages[-1]):
                # Some of a failed reply was heard after all (cut while playing): an exchange.
                self.messages[-1] = {k: v for k, v in self.messages[-1].items() if k != "status"}
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
            if _failed(message):  # left in, the LLM would answer it with the next question
                continue
            content = message["content"]
            if message["role"] == "user" and message.get("context"):
                content = f"{message['context']}\n{content}"
            messages.append({"role": message["role"], "content": content})
        if pending_user is not None:
            if self._open_user():
                merged = f"{messages[-1]['content']} {pending_user}"
                messages[-1] = {"role": "user", "content": merged}
            else:
                text = f"{context}\n{pending_user}" if context else pending_user
                messages.append({"role": "user", "content": text})
        return messages

    def _open_user(self) -> bool:
        """The last message is the user's, still waiting for its reply (not a failed one)."""
        return (
            bool(self.messages)
            and self.messages[-1]["role"] == "user"
            and not _failed(self.messages[-1])
        )

    def _trim(self) -> None:
        # Drop the oldest exchanges, keeping the history starting with a user message (a failed
        # one has no reply after it: an exchange is not always two messages).
        while len(self.messages) > self.max_messages:
            del self.messages[0]
            while self.messages and self.messages[0]["role"] != "user":
                del self.messages[0]
