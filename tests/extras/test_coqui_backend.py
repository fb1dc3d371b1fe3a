"""The Coqui TTS backend, for real: Coqui's own XTTS-v2 and VITS, built with random weights.

Runs in the coqui environment (scripts/test-coqui), not in the main suite. The models are the
real architectures with random weights (dandelion/tools/coqui_random_voice.py), so the audio is
noise: these tests check the adapter (chunks, rates, format, stopping), not the voice. What the
model computes is observed with PyTorch's global forward hooks, no mocks.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("TTS", reason="needs the coqui extra: scripts/test-coqui")

from TTS.tts.layers.xtts.gpt_inference import GPT2InferenceModel  # noqa: E402
from TTS.tts.layers.xtts.hifigan_decoder import HifiDecoder  # noqa: E402

from dandelion.actors.tts import TTSActor  # noqa: E402
from dandelion.backends.tts.coqui import CoquiSynthesizer  # noqa: E402
from dandelion.config import CoquiSettings, TTSSettings  # noqa: E402
from dandelion.errors import ModelNotFoundError  # noqa: E402
from dandelion.tools.coqui_random_voice import build_all  # noqa: E402

TWO_SENTENCES = "Hello there, how are you today? This is a test of streaming speech."
LONG_TEXT = " ".join([TWO_SENTENCES] * 3)  # 6 sentences: 240 GPT tokens with these models
CHUNK_TOKENS = 20  # the random XTTS stops each sentence at 40 tokens: 2 chunks + a short tail


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built by scripts/test-coqui into a cache; built here when run on its own."""
    folder = os.environ.get("DANDELION_COQUI_VOICES")
    path = Path(folder) if folder else tmp_path_factory.mktemp("coqui-random")
    build_all(path)
    return path


def xtts_settings(voices: Path) -> TTSSettings:
    coqui = CoquiSettings(
        model=str(voices / "xtts"),
        speaker_wav=str(voices / "speaker.wav"),
        stream_chunk_size=CHUNK_TOKENS,
    )
    return TTSSettings(backend="coqui", coqui=coqui)


@pytest.fixture(scope="module")
def xtts(voices: Path) -> CoquiSynthesizer:
    return CoquiSynthesizer(xtts_settings(voices))


@pytest.fixture()
def computed() -> Iterator[Counter[str]]:
    """How many GPT steps and HiFi-GAN decodes the process runs, counted as they run."""
    counts: Counter[str] = Counter()

    def count(module: torch.nn.Module, _args: object, _output: object) -> None:
        if isinstance(module, GPT2InferenceModel):
            counts["gpt_steps"] += 1
        elif isinstance(module, HifiDecoder):
            counts["decodes"] += 1

    handle = torch.nn.modules.module.register_module_forward_hook(count)
    yield counts
    handle.remove()


def samples(pcm: bytes) -> int:
    assert len(pcm) % 2 == 0  # whole PCM16 samples
    return len(pcm) // 2


def test_xtts_streams_resampled_pcm16_chunks_while_generating(
    xtts: CoquiSynthesizer, computed: Counter[str]
) -> None:
    assert (xtts.native_sample_rate, xtts.sample_rate) == (24_000, 22_050)
    torch.manual_seed(1)
    stream = xtts.synthesize(TWO_SENTENCES)
    first = next(stream)
    decodes_at_first, steps_at_first = computed["decodes"], computed["gpt_steps"]
    chunks = [first, *stream]
    # The first chunk came out after one decode of stream_chunk_size GPT tokens, long before
    # the rest of the text was generated.
    assert decodes_at_first == 1
    assert steps_at_first <= CHUNK_TOKENS + 1
    assert computed["decodes"] > 2 and computed["gpt_steps"] > 2 * CHUNK_TOKENS
    assert len(chunks) > 2
    assert all(chunk.alignments is None and samples(chunk.pcm) > 0 for chunk in chunks)
    out = np.concatenate([np.frombuffer(chunk.pcm, dtype="<i2") for chunk in chunks])
    assert np.abs(out.astype(np.int32)).max() > 0

    # The same draw at the model's own rate: the output is its length x 22,050 / 24,000.
    torch.manual_seed(1)
    native = sum(len(audio) for audio in xtts.native_chunks(TWO_SENTENCES))
    assert abs(len(out) - native * 22_050 / 24_000) <= 2


def test_barge_in_through_the_actor_stops_generation(voices: Path, computed: Counter[str]) -> None:
    actor = TTSActor(xtts_settings(voices).model_dump())

    async def first_chunk_then_barge_in() -> tuple[int, Counter[str], Counter[str]]:
        stream = actor.synthesize(LONG_TEXT)
        first = await anext(stream)
        await stream.aclose()  # what a barge-in does to the reply's audio stream
        at_close = computed.copy()
        await asyncio.sleep(3.0)  # a leaked generation would go on computing meanwhile
        return samples(first.pcm), at_close, computed.copy()

    assert asyncio.run(actor.sample_rate()) == 22_050
    first, at_close, later = asyncio.run(first_chunk_then_barge_in())
    assert first > 0
    # aclose returned once the synthesis thread had stopped: at most the chunk in flight when
    # the consumer left was finished (the whole text is 240 GPT steps, 18 decodes), and nothing
    # was computed after.
    assert at_close["decodes"] <= 2
    assert at_close["gpt_steps"] <= 2 * CHUNK_TOKENS + 2
    assert later == at_close


def test_vits_gives_whole_sentences_at_the_output_rate(voices: Path) -> None:
    coqui = CoquiSettings(model=str(voices / "vits"), output_sample_rate=16_000)
    vits = CoquiSynthesizer(TTSSettings(backend="coqui", coqui=coqui))
    assert (vits.native_sample_rate, vits.sample_rate) == (22_050, 16_000)
    torch.manual_seed(2)
    chunks = list(vits.synthesize(TWO_SENTENCES))
    assert len(chunks) >= 2  # a sentence each (the resampler's tail may add a small one)
    total = sum(samples(chunk.pcm) for chunk in chunks)
    torch.manual_seed(2)
    native = sum(len(audio) for audio in vits.native_chunks(TWO_SENTENCES))
    assert abs(total - native * 16_000 / 22_050) <= 2


def test_missing_or_undownloadable_models_say_what_to_do(
    voices: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def load(model: str | None, speaker_wav: str | None = None) -> None:
        coqui = CoquiSettings(model=model, speaker_wav=speaker_wav)
        CoquiSynthesizer(TTSSettings(backend="coqui", coqui=coqui))

    with pytest.raises(ModelNotFoundError, match=r"no-such-voice.*config\.json"):
        load(str(tmp_path / "no-such-voice"))
    with pytest.raises(ModelNotFoundError, match=r"speaker_wav not found.*nobody\.wav"):
        load(str(voices / "xtts"), speaker_wav=str(tmp_path / "nobody.wav"))
    with pytest.raises(ModelNotFoundError, match=r"tts\.coqui\.model is not set"):
        load(None)
    with pytest.raises(ModelNotFoundError, match="Unknown Coqui model name"):
        load("tts_models/en/nowhere/nothing")
    # XTTS-v2 by name, not downloaded: neither a license prompt nor a hanging download.
    xtts_v2 = "tts_models/multilingual/multi-dataset/xtts_v2"
    monkeypatch.delenv("COQUI_TOS_AGREED", raising=False)
    with pytest.raises(ModelNotFoundError, match="COQUI_TOS_AGREED=1"):
        load(xtts_v2)
    monkeypatch.setenv("COQUI_TOS_AGREED", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="not in the Hugging Face cache"):
        load(xtts_v2)
