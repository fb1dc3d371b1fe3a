"""Coqui TTS (MPL-2.0, in the `coqui` extra, its own environment: it pins torch 2.9).

XTTS-v2 folders stream chunk by chunk (`Xtts.inference_stream`, `stream_chunk_size` GPT tokens
per chunk); any other Coqui model (VITS, ...) runs through Coqui's own `Synthesizer`, one sentence
at a time. Audio is resampled to `output_sample_rate` with a streaming resampler and yielded as
PCM16 as soon as each piece is ready. Closing the generator (a barge-in) closes Coqui's stream
at the next chunk boundary, which ends its GPT generation: nothing more is computed.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np
import numpy.typing as npt

from dandelion.backends.tts.base import SpeechChunk
from dandelion.config import CoquiSettings, TTSSettings
from dandelion.errors import BackendUnavailableError, ModelNotFoundError

Audio = npt.NDArray[np.float32]
_CHECKPOINT_NAMES = ("model.pth", "model_file.pth", "model_file.pth.tar", "checkpoint.pth")
_REFERENCE_RATE = 22_050  # XTTS reads its speaker reference at this rate
_PROBE_TIMEOUT_S = 5.0


class _Engine(Protocol):
    sample_rate: int
    model: Any

    def chunks(self, sentence: str) -> Generator[Audio, None, None]: ...


class CoquiSynthesizer:
    def __init__(self, settings: TTSSettings) -> None:
        coqui = settings.coqui
        try:
            import pysbd
            import torch  # noqa: F401
            from TTS.tts.models.xtts import Xtts  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailableError(
                "coqui-tts is not installed: pip install 'dandelion[coqui]' in an environment of "
                "its own (it pins torch 2.9; scripts/test-coqui builds one in .venv-coqui)."
            ) from exc
        if not coqui.model:
            raise ModelNotFoundError(
                "tts.backend is 'coqui' but tts.coqui.model is not set: give a Coqui model folder "
                "(config.json + model.pth; XTTS also vocab.json) or a Coqui model name such as "
                "tts_models/multilingual/multi-dataset/xtts_v2."
            )
        folder, vocoder = resolve_model(coqui.model)
        kind = json.loads((folder / "config.json").read_text()).get("model")
        self._engine: _Engine = (
            _XttsEngine(folder, coqui)
            if kind == "xtts"
            else _SynthesizerEngine(folder, coqui, vocoder)
        )
        language = coqui.language.split("-")[0]
        if language not in pysbd.languages.LANGUAGE_CODES:
            language = "en"
        self._segmenter = pysbd.Segmenter(language=language, clean=False)
        self._lock = threading.Lock()
        self.sample_rate: int = coqui.output_sample_rate
        self.native_sample_rate: int = self._engine.sample_rate
        # The loaded Coqui model (Xtts, or the Synthesizer's tts_model), for inspection.
        self.model: Any = self._engine.model

    def native_chunks(self, text: str) -> Generator[Audio, None, None]:
        """Float32 mono audio at `native_sample_rate`, sentence by sentence, chunk by chunk."""
        for sentence in self._segmenter.segment(text):
            if not sentence.strip():
                continue
            # One sentence at a time per model: XTTS keeps the request's prompt in the model
            # itself (`gpt_inference.cached_prefix_emb`), so overlapping streams would mix up
            # their text. Replies take turns sentence by sentence; more replicas add parallelism.
            with self._lock:
                chunks = self._engine.chunks(sentence.strip())
                try:
                    yield from chunks
                finally:
                    chunks.close()

    def synthesize(self, text: str) -> Iterator[SpeechChunk]:
        resampler = _PCM16Resampler(self.native_sample_rate, self.sample_rate)
        chunks = self.native_chunks(text)
        try:
            for audio in chunks:
                pcm = resampler.push(audio)
                if pcm:
                    yield SpeechChunk(pcm)
            tail = resampler.flush()
            if tail:
                yield SpeechChunk(tail)
        finally:
            chunks.close()  # on a barge-in: ends Coqui's stream (and its GPT generation) now


class _PCM16Resampler:
    """Streaming float32 -> PCM16LE at another rate, without clicks at chunk boundaries."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        import soxr

        self._stream = None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1)

    def push(self, audio: Audio, last: bool = False) -> bytes:
        if self._stream is not None:
            audio = self._stream.resample_chunk(audio, last=last)
        clean = np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0)
        return (np.clip(clean, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()

    def flush(self) -> bytes:
        return self.push(np.zeros(0, dtype=np.float32), last=True)


def _load_reference(path: str, rate: int) -> Audio:
    import soundfile
    import soxr

    audio, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    mono: Audio = audio.mean(axis=1)
    return mono if file_rate == rate else soxr.resample(mono, file_rate, rate).astype(np.float32)


class _XttsEngine:
    def __init__(self, folder: Path, coqui: CoquiSettings) -> None:
        import torch
        from TTS.tts.configs.xtts_config import XttsConfig
        from TTS.tts.models.xtts import Xtts

        if coqui.speaker_wav is not None and not Path(coqui.speaker_wav).is_file():
            raise ModelNotFoundError(f"XTTS speaker_wav not found at {coqui.speaker_wav!r}.")
        config = XttsConfig()
        config.load_json(str(folder / "config.json"))
        self.model: Any = Xtts(config)
        self.model.load_checkpoint(config, checkpoint_dir=str(folder), eval=True)
        self.model.to(coqui.device)
        self.sample_rate = int(config.model_args.output_sample_rate)
        self._language = coqui.language
        self._chunk_tokens = coqui.stream_chunk_size
        with torch.inference_mode():
            self._latents = self._conditioning(config, coqui.speaker_wav)

    def _conditioning(self, config: Any, speaker_wav: str | None) -> tuple[Any, Any]:
        import torch

        if speaker_wav is None:
            speakers = self.model.speaker_manager.speakers if self.model.speaker_manager else {}
            if not speakers:
                raise ModelNotFoundError(
                    "XTTS clones a voice: set tts.coqui.speaker_wav to a few seconds of clean "
                    "speech (this model folder has no speakers_xtts.pth to fall back on)."
                )
            first = speakers[next(iter(speakers))]  # a studio voice shipped with the model
            return first["gpt_cond_latent"], first["speaker_embedding"]
        audio = _load_reference(speaker_wav, _REFERENCE_RATE)[
            : _REFERENCE_RATE * config.max_ref_len
        ]
        if config.sound_norm_refs:
            audio = audio / max(float(np.abs(audio).max()), 1e-9) * 0.75
        reference = torch.from_numpy(audio)[None, :].to(self.model.device)
        speaker_embedding = self.model.get_speaker_embedding(reference, _REFERENCE_RATE)
        gpt_cond_latent = self.model.get_gpt_cond_latents(
            reference,
            _REFERENCE_RATE,
            length=config.gpt_cond_len,
            chunk_length=config.gpt_cond_chunk_len,
        )
        return gpt_cond_latent, speaker_embedding

    def chunks(self, sentence: str) -> Generator[Audio, None, None]:
        gpt_cond_latent, speaker_embedding = self._latents
        stream = self.model.inference_stream(
            sentence,
            self._language,
            gpt_cond_latent,
            speaker_embedding,
            stream_chunk_size=self._chunk_tokens,
            enable_text_splitting=False,  # sentences are split already
        )
        try:
            for wav in stream:
                yield wav.detach().float().cpu().numpy()
        finally:
            stream.close()


class _SynthesizerEngine:
    """Any other Coqui model, through Coqui's own loading; one whole sentence per chunk."""

    def __init__(self, folder: Path, coqui: CoquiSettings, vocoder: Path | None) -> None:
        from TTS.utils.synthesizer import Synthesizer

        vocoder_files = (_checkpoint(vocoder), vocoder / "config.json") if vocoder else (None, None)
        self._synth: Any = Synthesizer(
            tts_checkpoint=_checkpoint(folder),
            tts_config_path=folder / "config.json",
            vocoder_checkpoint=vocoder_files[0],
            vocoder_config=vocoder_files[1],
            use_cuda=coqui.device.startswith("cuda"),
        )
        self.model: Any = self._synth.tts_model
        self.sample_rate = int(self._synth.output_sample_rate)
        languages = (
            self.model.language_manager.language_names if self.model.language_manager else []
        )
        self._language = coqui.language if len(languages) > 1 else None
        speakers = self.model.speaker_manager.speaker_names if self.model.speaker_manager else []
        self._speaker_wav = (
            coqui.speaker_wav if getattr(self.model, "use_d_vector_file", False) else None
        )
        if self._speaker_wav and not Path(self._speaker_wav).is_file():
            raise ModelNotFoundError(f"Coqui speaker_wav not found at {self._speaker_wav!r}.")
        self._speaker = speakers[0] if len(speakers) > 1 and not self._speaker_wav else None

    def chunks(self, sentence: str) -> Generator[Audio, None, None]:
        wav = self._synth.tts(
            sentence,
            speaker_name=self._speaker,
            language_name=self._language,
            speaker_wav=self._speaker_wav,
            split_sentences=False,
        )
        yield np.asarray(wav, dtype=np.float32)


def _checkpoint(folder: Path) -> Path:
    for name in _CHECKPOINT_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise ModelNotFoundError(
        f"No Coqui checkpoint in {str(folder)!r}: expected one of {', '.join(_CHECKPOINT_NAMES)}."
    )


def resolve_model(model: str) -> tuple[Path, Path | None]:
    """A model folder, or a Coqui model name resolved to its local folder (and its vocoder's).

    A name that is not downloaded yet is downloaded only when the host answers within a few
    seconds; offline it fails at once with ModelNotFoundError instead of hanging in a download.
    """
    if model.startswith(("tts_models/", "vocoder_models/")) and not Path(model).exists():
        return _resolve_name(model)
    folder = Path(model).expanduser()
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            f"Coqui model folder not found or incomplete: {model!r} needs config.json and "
            "model.pth (XTTS also vocab.json). Set tts.coqui.model to such a folder or to a Coqui "
            "model name (tts_models/...)."
        )
    _checkpoint(folder)
    return folder, None


def _resolve_name(name: str) -> tuple[Path, Path | None]:
    from TTS.utils.manage import ModelManager

    manager = ModelManager(progress_bar=False)
    parts = name.split("/")
    try:
        kind, lang, dataset, short = parts
        item: dict[str, Any] = manager.models_dict[kind][lang][dataset][short]
    except (ValueError, KeyError):
        raise ModelNotFoundError(
            f"Unknown Coqui model name {name!r} (see `tts --list_models`)."
        ) from None
    folder = _downloaded(manager, name, item)
    if folder is None:
        _check_downloadable(manager, name, item)
        _model_path, config_path, _item = manager.download_model(name)
        folder = Path(config_path).parent if config_path else Path(_model_path)
    vocoder = item.get("default_vocoder")
    return folder, (_resolve_name(vocoder)[0] if vocoder else None)


def _downloaded(manager: Any, name: str, item: dict[str, Any]) -> Path | None:
    if "repo_id" in item:
        from huggingface_hub import snapshot_download

        try:
            path = snapshot_download(
                item["repo_id"],
                allow_patterns=item.get("allow"),
                ignore_patterns=item.get("ignore"),
                local_files_only=True,
            )
        except Exception:  # not in the Hugging Face cache
            return None
        return Path(path)
    folder = Path(manager.output_prefix) / name.replace("/", "--")
    return folder if (folder / "config.json").is_file() else None


def _check_downloadable(manager: Any, name: str, item: dict[str, Any]) -> None:
    where = "the Hugging Face cache" if "repo_id" in item else str(manager.output_prefix)
    hint = (
        f"Download it where the network allows (`tts --model_name {name} --text hi "
        "--out_path /dev/null`) or set tts.coqui.model to a local model folder."
    )
    if item.get("tos_required") and os.environ.get("COQUI_TOS_AGREED") != "1":
        raise ModelNotFoundError(
            f"Coqui model {name!r} is not in {where}, and downloading it needs you to accept "
            f"the Coqui Public Model License (set COQUI_TOS_AGREED=1 if you do). {hint}"
        )
    url = item.get("github_rls_url") or item.get("hf_url")
    if isinstance(url, list):
        url = url[0]
    if "repo_id" in item:
        url = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", ""):
            raise ModelNotFoundError(
                f"Coqui model {name!r} is not in {where} (HF_HUB_OFFLINE). {hint}"
            )
    host = urlparse(str(url)).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=_PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise ModelNotFoundError(
            f"Coqui model {name!r} is not in {where} and {host or url!r} is unreachable "
            f"({exc}). {hint}"
        ) from None
