"""Build random-weight Coqui TTS model folders, offline, for testing the Coqui backend's plumbing.

THESE ARE NOT VOICES. No Coqui voice ships in a package and none is downloadable here, so this
builds the models from Coqui's own configs with *random weights*: they load and run exactly as
trained ones do (same classes, same files, same streaming code paths, same cost per second of
audio), but what they say is noise. Use them to test chunking, sample rates, formats and
stopping, never for listening or for judging quality.

    python -m dandelion.tools.coqui_random_voice FOLDER

writes (idempotently: what exists is kept)

- ``FOLDER/xtts/``: XTTS-v2 (``config.json`` with model "xtts", ``model.pth``, ``vocab.json``,
  a small BPE vocabulary trained with ``tokenizers`` on a few lines of English). The GPT is
  capped at 40 audio tokens per sentence (``gpt_max_audio_tokens=43``) so that random sampling,
  which rarely hits the stop token, ends each sentence after 2 chunks of 20 tokens (+ a short
  tail) instead of ~600 tokens: seconds per sentence on CPU, not minutes.
- ``FOLDER/vits/``: VITS with characters (no phonemizer): ``config.json`` + ``model.pth``.
- ``FOLDER/speaker.wav``: a 4 s synthetic vowel-like sound (a pitch-gliding pulse train through
  three formant resonators), 22,050 Hz PCM16, for XTTS conditioning. Not speech either.

Runs in the environment with the `coqui` extra (scripts/test-coqui builds it). Nothing here is
imported by the server.
"""

from __future__ import annotations

import argparse
import json
import time
import wave
from pathlib import Path

import numpy as np

SPEAKER_RATE = 22_050
# Few lines of English are enough: the BPE merges only need to cover what the tests say.
_VOCAB_TEXT = [
    "the quick brown fox jumps over the lazy dog.",
    "hello there, this is a test of streaming speech synthesis!",
    "how are you today? one two three four five six seven eight nine ten.",
    "abcdefghijklmnopqrstuvwxyz 0123456789 ,.!?;:'\"-()",
]
_XTTS_LANGUAGES = ["en"]
# Bumped whenever what is built changes, so cached folders are rebuilt.
_BUILD = "2"


def build_speaker_wav(path: Path, seconds: float = 4.0) -> None:
    """A deterministic vowel-like test signal (not speech): glottal pulses through formants."""
    n = int(seconds * SPEAKER_RATE)
    t = np.arange(n) / SPEAKER_RATE
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)  # Hz, gliding
    phase = np.cumsum(pitch / SPEAKER_RATE)
    source = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)
    signal = np.zeros(n)
    for formant, bandwidth in ((700.0, 110.0), (1220.0, 120.0), (2600.0, 160.0)):
        # A two-pole resonator per formant, run as a plain IIR filter.
        r = np.exp(-np.pi * bandwidth / SPEAKER_RATE)
        a1, a2 = -2 * r * np.cos(2 * np.pi * formant / SPEAKER_RATE), r * r
        y = np.zeros(n)
        for i in range(n):
            y[i] = source[i] - a1 * (y[i - 1] if i else 0.0) - a2 * (y[i - 2] if i > 1 else 0.0)
        signal += y
    envelope = np.clip(np.minimum(t, seconds - t) / 0.05, 0.0, 1.0) * (
        0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    )
    signal *= envelope
    pcm = (signal / np.abs(signal).max() * 0.5 * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SPEAKER_RATE)
        out.writeframes(pcm.tobytes())


def build_vocab(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[STOP]", "[UNK]", "[SPACE]", "[START]", *(f"[{lang}]" for lang in _XTTS_LANGUAGES)]
    trainer = trainers.BpeTrainer(vocab_size=256, special_tokens=specials, show_progress=False)
    tokenizer.train_from_iterator(_VOCAB_TEXT, trainer=trainer)
    tokenizer.save(str(path))


def build_xtts(folder: Path) -> None:
    import torch
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models.xtts import Xtts

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.json"
    build_vocab(vocab)
    config = XttsConfig()
    config.model_args.tokenizer_file = str(vocab)
    config.model_args.gpt_max_audio_tokens = 43
    config.languages = _XTTS_LANGUAGES
    torch.manual_seed(0)
    model = Xtts(config)
    # Xtts(config) builds no GPT without a tokenizer; load_checkpoint does the same at load time.
    model.tokenizer = VoiceBpeTokenizer(vocab_file=str(vocab))
    model.init_models()
    torch.save({"model": model.state_dict()}, folder / "model.pth.partial")
    config.model_args.tokenizer_file = "vocab.json"  # found beside config.json when loading
    config.save_json(str(folder / "config.json"))
    (folder / "model.pth.partial").rename(folder / "model.pth")  # last: marks it complete


def build_vits(folder: Path) -> None:
    import torch
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits

    folder.mkdir(parents=True, exist_ok=True)
    config = VitsConfig(text_cleaner="basic_cleaners", use_phonemes=False)
    torch.manual_seed(0)
    model = Vits(config)
    torch.save({"model": model.state_dict()}, folder / "model.pth.partial")
    config.save_json(str(folder / "config.json"))
    (folder / "model.pth.partial").rename(folder / "model.pth")


def build_all(folder: Path) -> dict[str, float]:
    """Build what is missing under `folder`; returns seconds spent per part built."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "BUILD"
    if stamp.exists() and stamp.read_text() != _BUILD:  # built by another version: rebuild
        for part in ("speaker.wav", "xtts/model.pth", "vits/model.pth"):
            (folder / part).unlink(missing_ok=True)
    spent: dict[str, float] = {}
    parts = (
        ("speaker.wav", folder / "speaker.wav", build_speaker_wav),
        ("xtts", folder / "xtts" / "model.pth", lambda _p: build_xtts(folder / "xtts")),
        ("vits", folder / "vits" / "model.pth", lambda _p: build_vits(folder / "vits")),
    )
    for name, marker, build in parts:
        if marker.exists():
            continue
        start = time.perf_counter()
        build(marker)
        spent[name] = round(time.perf_counter() - start, 1)
    stamp.write_text(_BUILD)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    spent = build_all(args.folder)
    print(json.dumps({"folder": str(args.folder), "built_seconds": spent}))


if __name__ == "__main__":
    main()
