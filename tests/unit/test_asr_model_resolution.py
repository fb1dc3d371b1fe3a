"""Where the ASR's Whisper comes from: a folder, a faster-whisper size name, or the bundled one."""

from __future__ import annotations

from pathlib import Path

import pytest

from dandelion.backends.asr.faster_whisper import resolve_whisper_model
from dandelion.errors import ModelNotFoundError


def test_no_setting_means_the_bundled_tiny_en() -> None:
    assert (Path(resolve_whisper_model(None)) / "model.bin").is_file()


def test_a_folder_with_a_model_is_used_as_it_is() -> None:
    bundled = resolve_whisper_model(None)
    assert resolve_whisper_model(bundled) == bundled


def test_a_missing_folder_names_the_setting_and_the_size_names() -> None:
    with pytest.raises(ModelNotFoundError) as error:
        resolve_whisper_model("/models/no-such-whisper")
    message = str(error.value)
    assert "asr.model_path" in message and "large-v3-turbo" in message


def test_a_size_name_not_cached_offline_says_how_to_bring_the_weights(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # An empty cache (the environment variable is read once, at import: patch the constant).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError) as error:
        resolve_whisper_model("large-v3-turbo")
    assert "CTranslate2 Whisper folder" in str(error.value)
