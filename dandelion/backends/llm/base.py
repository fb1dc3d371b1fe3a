"""Chat LLM: a message list in, streamed text deltas out, stoppable from another thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol


class ChatModel(Protocol):
    def stream_chat(self, messages: list[dict[str, str]], stop: threading.Event) -> Iterator[str]:
        """Yield text deltas; stop soon after `stop` is set (an interrupted turn)."""
        ...
