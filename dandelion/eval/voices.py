"""Text spoken in a named voice, for `say` turns and babble: float32 mono at 16 kHz.

Voices: `piper` (the bundled joe voice), `piper:/path/voice.onnx` (any Piper voice), and
`espeak:<voice>` (the espeak-ng program: `espeak:en-us`, `espeak:en-gb+f3`, `espeak:es`).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np

from dandelion.backends.tts.piper import PiperSynthesizer
from dandelion.config import TTSSettings
from dandelion.eval.edits import RATE, Audio, find_spans
from dandelion.eval.scenario import VOICE_FORMS, SuiteError

_KEEP_S = 0.03
"""Silence kept before and after trimmed speech, so the first and last phonemes stay whole."""
_ESPEAK_WPM = 175
"""espeak-ng's default speaking rate (words per minute), scaled by `speed`."""


def espeak_installed() -> bool:
    return shutil.which("espeak-ng") is not None


class VoiceBank:
    """Speaks text in the voices a suite names. Each result is kept, by (voice, speed, text),
    and returned read-only; each Piper voice is loaded once per speed (its length scale is
    fixed when loaded)."""

    def __init__(self) -> None:
        self._spoken: dict[tuple[str, float, str], Audio] = {}
        self._piper: dict[tuple[str | None, float], PiperSynthesizer] = {}
        self._espeak_variants: frozenset[str] | None = None

    def speak(self, text: str, voice: str, speed: float = 1.0) -> Audio:
        """`text` spoken in `voice` (VOICE_FORMS), silence trimmed to 30 ms at each end."""
        key = (voice, speed, text)
        if key not in self._spoken:
            audio = _trimmed(self._synthesize(text, voice, speed))
            audio.setflags(write=False)  # shared by every caller: copy before changing it
            self._spoken[key] = audio
        return self._spoken[key]

    def _synthesize(self, text: str, voice: str, speed: float) -> Audio:
        kind, _, name = voice.partition(":")
        if voice == "piper":
            return self._piper_speak(text, None, speed)
        if kind == "piper" and name:
            return self._piper_speak(text, name, speed)
        if kind == "espeak" and name:
            return self._espeak_speak(text, name, speed)
        raise SuiteError(f"unknown voice {voice!r}: use {VOICE_FORMS}")

    def _piper_speak(self, text: str, path: str | None, speed: float) -> Audio:
        import soxr

        synthesizer = self._piper.get((path, speed))
        if synthesizer is None:
            if path is not None and not (Path(path).is_file() and Path(f"{path}.json").is_file()):
                raise SuiteError(
                    f"voice 'piper:{path}': no Piper voice there (need {path} and {path}.json)"
                )
            settings = TTSSettings(
                voice_path=path, threads=2, alignments=False, length_scale=1 / speed
            )
            synthesizer = self._piper[(path, speed)] = PiperSynthesizer(settings)
        pcm = b"".join(chunk.pcm for chunk in synthesizer.synthesize(text))
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        return np.ascontiguousarray(soxr.resample(audio, synthesizer.sample_rate, RATE), np.float32)

    def _espeak_speak(self, text: str, name: str, speed: float) -> Audio:
        import soundfile as sf
        import soxr

        program = shutil.which("espeak-ng")
        if program is None:
            raise SuiteError(
                f"voice 'espeak:{name}' needs the espeak-ng program: apt-get install espeak-ng"
            )
        self._check_variant(program, name)
        # Text on stdin: a sentence that starts with '-' is not taken for an option.
        command = [program, "-v", name, "-s", str(round(_ESPEAK_WPM * speed)), "--stdout"]
        done = subprocess.run(
            [*command, "--stdin"], input=text.encode(), capture_output=True, check=False
        )
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip()
            raise SuiteError(
                f"voice 'espeak:{name}': espeak-ng refused it ({said}); "
                "`espeak-ng --voices` lists its voices, `--voices=variant` the +variants"
            )
        audio, rate = sf.read(io.BytesIO(done.stdout), dtype="float32", always_2d=True)
        return np.ascontiguousarray(soxr.resample(audio.mean(axis=1), rate, RATE), np.float32)

    def _check_variant(self, program: str, name: str) -> None:
        """espeak-ng quietly speaks in its default variant when `+variant` names none."""
        _, plus, variant = name.partition("+")
        if not plus:
            return
        if self._espeak_variants is None:
            listing = subprocess.run(
                [program, "--voices=variant"], capture_output=True, text=True, check=False
            ).stdout
            # Columns: Pty Language Age/Gender VoiceName File; a variant's file is `!v/<name>`.
            files = (line.split()[4] for line in listing.splitlines() if len(line.split()) > 4)
            self._espeak_variants = frozenset(f[3:] for f in files if f.startswith("!v/"))
        if variant not in self._espeak_variants:
            known = ", ".join(sorted(self._espeak_variants)[:12])
            raise SuiteError(
                f"voice 'espeak:{name}': espeak-ng has no variant {variant!r} "
                f"(some it has: {known}...; `espeak-ng --voices=variant` lists them)"
            )


def _trimmed(audio: Audio) -> Audio:
    """Leading and trailing silence cut to 30 ms (sound: within 50 dB of the loudest 10 ms)."""
    spans = find_spans(audio, floor_db=50.0, min_s=0.0)
    if not spans:
        return audio[:0].copy()
    keep = round(_KEEP_S * RATE)
    return audio[max(0, spans[0][0] - keep) : spans[-1][1] + keep].copy()
