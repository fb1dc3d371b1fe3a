"""Deployment profiles: named AppSettings that the CLI renders the serve configs and cluster
manifests under cluster/ from, so what is deployed is what the app builder validates.

- `cpu`: the embedded default (every model on the CPU, shipped in PyPI packages).
- `gpu`: production on GPUs. Whisper large-v3-turbo (CTranslate2, float16), an 8B-class chat
  model on vLLM and XTTS-v2 on Coqui TTS share one 48 GB GPU per node through fractional
  `num_gpus`; vLLM and Coqui run in Python environments of their own (`runtime_env`).
- `gpu-gguf`: the same app on a 24 GB GPU with llama.cpp (any GGUF by path, every layer on the
  GPU) and Piper on ONNX Runtime's CUDA provider, all in the server's own environment.

Every deployment autoscales on the GPU profiles; their weights are supplied by the operator under
/models (docs/deploy.md, "Bringing real weights to a cluster"; the sizes: "GPU sharing").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dandelion.config import (
    AppSettings,
    ASRSettings,
    AutoscalingSettings,
    CoquiSettings,
    DeploymentSettings,
    DeploymentsSettings,
    LLMSettings,
    TTSSettings,
    VLLMSettings,
)
from dandelion.errors import SettingsError, validation_summary

# Where the GPU profiles expect the operator's weights (a path on every GPU node, or baked into
# the image).
GPU_WHISPER_PATH = "/models/whisper-large-v3-turbo-ct2"
# Qwen2.5-7B-Instruct: Apache-2.0 and not gated (downloads without accepting terms), and with
# 4 KV heads its KV cache is 56 KiB per token in bfloat16, less than half of Llama-3.1-8B's or
# Mistral-7B's 128 KiB: more concurrent conversations per GiB (docs/deploy.md, "GPU sharing").
GPU_HF_LLM_PATH = "/models/Qwen2.5-7B-Instruct"
GPU_XTTS_PATH = "/models/XTTS-v2"
# XTTS-v2 clones a voice from a few seconds of clean speech; it ships no default voice.
GPU_SPEAKER_WAV = "/models/voices/speaker.wav"
GPU_GGUF_PATH = "/models/Mistral-7B-Instruct-v0.3.Q4_K_M.gguf"

# The Python environments vLLM and Coqui TTS run in on a GPU node (each with ray[serve] and
# Dandelion at the same versions as the server's): vLLM's GPU wheels and Coqui TTS pin torch
# builds that conflict with each other (the server extra has no torch).
VLLM_PYTHON = "/opt/dandelion/venvs/vllm/bin/python"
COQUI_PYTHON = "/opt/dandelion/venvs/coqui/bin/python"
# The weights are local: a model library that tries the hub fails fast instead of hanging.
_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

# vLLM's share of the GPU's memory (weights + activations + KV cache), sized for a 48 GB card:
# 0.75 of the 45.0 GiB CUDA reports is 33.8 GiB: 14.2 GiB of weights, ~2.5 GiB of vLLM's own
# overhead and 17.1 GiB of KV cache. Whisper (~3 GiB) and XTTS (~4 GiB) fit in the rest
# (docs/deploy.md, "Per card").
GPU_LLM_MEMORY_UTILIZATION = 0.75


def cpu() -> AppSettings:
    """The embedded default: what `dandelion serve` runs and cluster/serve-cpu.yaml holds."""
    return AppSettings()


def _autoscaled(
    num_cpus: float,
    num_gpus: float,
    max_ongoing: int,
    target: float,
    runtime_env: dict[str, Any] | None = None,
) -> DeploymentSettings:
    """A deployment of 1 to 4 replicas that scales out at `target` ongoing requests each."""
    return DeploymentSettings(
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        max_ongoing_requests=max_ongoing,
        autoscaling=AutoscalingSettings(
            min_replicas=1, max_replicas=4, target_ongoing_requests=target
        ),
        runtime_env=runtime_env,
    )


def _gateway() -> DeploymentSettings:
    # VAD runs in the gateway at ~1% of a core per session (0.3 ms per 32 ms frame on our
    # 2-core machine): 50 sessions per replica leaves a core's headroom for the rest.
    return _autoscaled(num_cpus=1, num_gpus=0.0, max_ongoing=100, target=50)


def _avatar() -> DeploymentSettings:
    # The landmark avatar renders on CPU (~10 ms a frame); a neural backend would take a GPU
    # share here.
    return _autoscaled(num_cpus=1, num_gpus=0.0, max_ongoing=8, target=2)


def _whisper_cuda() -> ASRSettings:
    return ASRSettings(
        model_path=GPU_WHISPER_PATH,
        device="cuda",
        compute_type="float16",
        cpu_threads=1,
    )


def _asr_deployment(num_gpus: float) -> DeploymentSettings:
    # One decode at a time per replica (a lock around the model): scale at one ongoing request.
    return _autoscaled(num_cpus=1, num_gpus=num_gpus, max_ongoing=4, target=1)


def gpu() -> AppSettings:
    """ASR, LLM and TTS share one 48 GB GPU per node (0.1 + 0.75 + 0.1 of it); all autoscale.

    The fractions are Ray's scheduling bookkeeping, not memory limits; they are set to each
    model's share of the card's memory, so that Ray never places more replicas on a GPU than
    its memory holds. vLLM takes `gpu_memory_utilization` of the whole card when it starts,
    whatever else runs there, so its fraction and its num_gpus are the same number.
    """
    return AppSettings(
        asr=_whisper_cuda(),
        llm=LLMSettings(
            backend="vllm",
            model_path=GPU_HF_LLM_PATH,
            vllm=VLLMSettings(
                dtype="bfloat16",
                # Enough for a long conversation (the history is capped at 40 messages); each
                # sequence's KV cache is allocated as it grows, not up front.
                max_model_len=4096,
                gpu_memory_utilization=GPU_LLM_MEMORY_UTILIZATION,
            ),
            nice=0,
        ),
        tts=TTSSettings(
            backend="coqui",
            coqui=CoquiSettings(
                model=GPU_XTTS_PATH,
                speaker_wav=GPU_SPEAKER_WAV,
                language="en",
                device="cuda",
            ),
            threads=1,
        ),
        deployments=DeploymentsSettings(
            gateway=_gateway(),
            asr=_asr_deployment(num_gpus=0.1),
            # vLLM batches every ongoing request into each decoding step: one replica serves
            # many conversations. 32 sequences of 4096 tokens take 7 GiB of KV cache, under
            # the 17.1 GiB it has on a 48 GB card; it scales out from 8 ongoing replies.
            llm=_autoscaled(
                num_cpus=2,
                num_gpus=GPU_LLM_MEMORY_UTILIZATION,
                max_ongoing=32,
                target=8,
                runtime_env={"py_executable": VLLM_PYTHON, "env_vars": dict(_OFFLINE)},
            ),
            # XTTS synthesizes one sentence at a time per model (its prompt lives in the model),
            # so a replica's replies take turns sentence by sentence: scale out at one each.
            tts=_autoscaled(
                num_cpus=1,
                num_gpus=0.1,
                max_ongoing=4,
                target=1,
                runtime_env={"py_executable": COQUI_PYTHON, "env_vars": dict(_OFFLINE)},
            ),
            avatar=_avatar(),
        ),
    )


def gpu_gguf() -> AppSettings:
    """llama.cpp and Piper on a 24 GB GPU (0.2 + 0.5 + 0.1 of it), in the server's environment.

    Any GGUF chat model by path (`llm.model_path`), every layer on the GPU. With llama.cpp one
    replica generates one reply at a time, so the LLM scales at one ongoing request.
    """
    return AppSettings(
        asr=_whisper_cuda(),
        llm=LLMSettings(
            model_path=GPU_GGUF_PATH,
            # A 7B model's chat history outgrows 2048 tokens; 4096 costs 0.5 GiB of KV cache.
            n_ctx=4096,
            # Every layer on the GPU: the CPU threads only sample and feed it.
            n_gpu_layers=-1,
            n_threads=2,
            # No CPU contention to arbitrate: generation runs on the GPU.
            nice=0,
        ),
        tts=TTSSettings(use_cuda=True, threads=1),
        deployments=DeploymentsSettings(
            gateway=_gateway(),
            asr=_asr_deployment(num_gpus=0.2),
            llm=_autoscaled(num_cpus=2, num_gpus=0.5, max_ongoing=2, target=1),
            tts=_autoscaled(num_cpus=1, num_gpus=0.1, max_ongoing=8, target=2),
            avatar=_avatar(),
        ),
    )


PROFILES: dict[str, Callable[[], AppSettings]] = {"cpu": cpu, "gpu": gpu, "gpu-gguf": gpu_gguf}


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def profile_settings(profile: str = "cpu", path: str | Path | None = None) -> AppSettings:
    """A profile's settings with a settings YAML (optional) merged on top, key by key.

    Nested sections merge: `{llm: {model_path: X}}` on the gpu profile keeps its other LLM
    settings. Switching to `llm.backend: openai` also gives the LLM deployment CPU-only resources
    (no GPU share, the server's own Python), unless the file sets `deployments.llm` itself. A
    deployment that should run a fixed replica count sets `autoscaling: null`.

    Raises SettingsError for an unknown profile, or a file that cannot be read, is not YAML, or
    holds settings that do not exist or are out of range (naming each one).
    """
    if profile not in PROFILES:
        raise SettingsError(f"unknown profile {profile!r}: one of {', '.join(PROFILES)}")
    settings = PROFILES[profile]()
    if path is None:
        return settings
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"settings file {path}: not valid YAML: {exc}") from exc
    if loaded is not None and not isinstance(loaded, dict):
        raise SettingsError(f"settings file {path}: expected a mapping of settings")
    overlay = loaded or {}
    try:
        merged = AppSettings.model_validate(_merge(settings.model_dump(), overlay))
    except ValidationError as exc:
        raise SettingsError(f"settings file {path}: {validation_summary(exc)}") from exc
    own_llm_deployment = "llm" in (overlay.get("deployments") or {})
    if (
        merged.llm.backend == "openai"
        and settings.llm.backend != "openai"
        and not own_llm_deployment
    ):
        # The model runs elsewhere: the profile's LLM deployment (a GPU share, vLLM's Python)
        # would hold resources for a replica that only streams HTTP.
        deployments = merged.deployments.model_copy(update={"llm": _remote_llm()})
        merged = merged.model_copy(update={"deployments": deployments})
    return merged


def _remote_llm() -> DeploymentSettings:
    """The LLM deployment when the model is an OpenAI-compatible server: no GPU, little CPU,
    many replies at once per replica (each is a waiting HTTP stream)."""
    return DeploymentSettings(num_cpus=0.25, num_gpus=0.0, max_ongoing_requests=64)
