"""Speak a sentence with the configured Piper voice into a 16 kHz WAV, as a person's question."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dandelion.config import TTSSettings
from dandelion.protocol import INPUT_SAMPLE_RATE


class Speaker:
    """Loads the voice once; `say` writes one file per sentence."""

    def __init__(self, settings: TTSSettings | None = None) -> None:
        from dandelion.backends.tts.piper import PiperSynthesizer

        self._tts = PiperSynthesizer(settings or TTSSettings(threads=2, alignments=False))

    def say(self, text: str, path: str | Path, lead_silence_s: float = 0.3) -> Path:
        import soundfile as sf
        import soxr

        pcm = b"".join(chunk.pcm for chunk in self._tts.synthesize(text))
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        audio = soxr.resample(audio, self._tts.sample_rate, INPUT_SAMPLE_RATE)
        lead = np.zeros(int(lead_silence_s * INPUT_SAMPLE_RATE), dtype=np.float32)
        sf.write(str(path), np.concatenate((lead, audio)), INPUT_SAMPLE_RATE, subtype="PCM_16")
        return Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dandelion.tools.say", description=__doc__)
    parser.add_argument("text")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    print(Speaker().say(args.text, args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
