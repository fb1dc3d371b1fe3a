"""The GPU profiles' serve configs: resources per deployment, GPU shares, backends, environments.

Config only: nothing here needs a GPU, vLLM or Coqui TTS, and no Ray is started.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from dandelion.config import AppSettings
from dandelion.profiles import COQUI_PYTHON, PROFILES, VLLM_PYTHON
from dandelion.serve import manifests
from dandelion.serve.config_render import render_profile

MODEL_DEPLOYMENTS = ("asr", "llm", "tts")
GPU_PROFILES = ("gpu", "gpu-gguf")


def _rendered(profile: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(render_profile(profile))
    return loaded


def _deployments(profile: str) -> dict[str, dict[str, Any]]:
    """Each deployment's options as the rendered serve config carries them."""
    (app,) = _rendered(profile)["applications"]
    deployments: dict[str, dict[str, Any]] = app["args"]["deployments"]
    return deployments


def _actor_options(settings: AppSettings) -> dict[str, dict[str, Any]]:
    """The ray_actor_options Serve is given for each deployment (binding only)."""
    from dandelion.serve.app import build_app

    gateway = build_app(settings)._bound_deployment
    found = {"gateway": gateway.ray_actor_options}
    for arg in gateway.init_args:
        bound = getattr(arg, "_bound_deployment", None)
        if bound is not None:
            found[bound.name.lower()] = bound.ray_actor_options
    return found


@pytest.mark.parametrize("profile", GPU_PROFILES)
def test_gpu_profile_imports_the_same_app_as_the_cpu_profile(profile: str) -> None:
    from ray.serve.schema import ServeDeploySchema

    raw = _rendered(profile)
    config = ServeDeploySchema.model_validate(raw)
    (cpu_app,) = _rendered("cpu")["applications"]
    (app,) = config.applications
    assert app.import_path == cpu_app["import_path"] == "dandelion.serve.app:app_builder"
    assert AppSettings.model_validate(app.args) == PROFILES[profile]()
    assert raw["http_options"]["host"] == "0.0.0.0"


@pytest.mark.parametrize("profile", GPU_PROFILES)
def test_model_deployments_share_one_gpu(profile: str) -> None:
    deployments = _deployments(profile)
    for name in ("gateway", "avatar"):
        assert deployments[name]["num_gpus"] == 0, name
        assert deployments[name]["runtime_env"] is None, name
    for name in MODEL_DEPLOYMENTS:
        assert 0 < deployments[name]["num_gpus"] < 1, name
        assert deployments[name]["num_cpus"] >= 1, name
        assert deployments[name]["autoscaling"]["min_replicas"] >= 1, name
    # One replica of every model fits one GPU, and the node's CPUs hold every deployment.
    assert sum(deployments[name]["num_gpus"] for name in MODEL_DEPLOYMENTS) <= 1
    assert sum(d["num_cpus"] for d in deployments.values()) <= manifests.GPU_WORKER.cpus
    # What the builder hands Serve is what the config says.
    for name, options in _actor_options(PROFILES[profile]()).items():
        assert options["num_gpus"] == deployments[name]["num_gpus"], name
        assert options["num_cpus"] == deployments[name]["num_cpus"], name


def test_gpu_profile_resources() -> None:
    deployments = _deployments("gpu")
    expected = {
        "gateway": (1, 0.0),
        "asr": (1, 0.1),
        "llm": (2, 0.75),
        "tts": (1, 0.1),
        "avatar": (1, 0.0),
    }
    for name, (cpus, gpus) in expected.items():
        assert (deployments[name]["num_cpus"], deployments[name]["num_gpus"]) == (cpus, gpus)
    assert sum(gpus for _, gpus in expected.values()) == pytest.approx(0.95)


def test_gpu_profile_backends() -> None:
    settings = PROFILES["gpu"]()
    assert (settings.asr.backend, settings.asr.device) == ("faster_whisper", "cuda")
    assert settings.asr.compute_type == "float16"
    assert settings.asr.model_path is not None
    assert settings.asr.model_path.startswith("/models/")
    assert settings.llm.backend == "vllm"
    assert settings.llm.model_path is not None
    assert settings.llm.model_path.startswith("/models/")
    assert not settings.llm.model_path.endswith(".gguf")  # vLLM takes an HF folder
    assert settings.llm.vllm.tensor_parallel_size == 1
    assert settings.tts.backend == "coqui"
    assert settings.tts.coqui.device == "cuda"
    assert settings.tts.coqui.model is not None
    assert settings.tts.coqui.model.startswith("/models/")
    assert settings.tts.coqui.speaker_wav is not None
    # The protocol's output rate, whatever rate the voice synthesizes at.
    assert settings.tts.coqui.output_sample_rate == 22_050


def test_vllm_share_leaves_room_for_the_other_models() -> None:
    """vLLM takes gpu_memory_utilization of the whole card: the LLM's num_gpus says so to Ray,
    and Whisper and XTTS must fit in what is left (docs/deploy.md, "GPU sharing")."""
    settings = PROFILES["gpu"]()
    d = settings.deployments
    utilization = settings.llm.vllm.gpu_memory_utilization
    assert d.llm.num_gpus == utilization
    assert d.asr.num_gpus + d.tts.num_gpus <= 1 - utilization
    # The docs' arithmetic for the 48 GB card the manifests use (GiB, computed, not measured).
    card = 45.0  # an L40S as nvidia-smi reports it
    weights = 7.62e9 * 2 / 2**30  # Qwen2.5-7B-Instruct in bfloat16
    overhead = 2.5  # CUDA context, activations, CUDA graphs (estimate)
    kv_per_token = 2 * 28 * 4 * 128 * 2  # layers x KV heads x head dim x bf16, K and V
    kv = utilization * card - weights - overhead
    sequences = kv * 2**30 / (kv_per_token * settings.llm.vllm.max_model_len)
    assert sequences >= d.llm.max_ongoing_requests
    whisper, xtts = 3.0, 4.0  # weights + working memory + CUDA context each (estimates)
    assert (1 - utilization) * card >= whisper + xtts + 1.0


def test_runtime_envs_name_the_environments_the_nodes_build() -> None:
    from ray.runtime_env import RuntimeEnv

    deployments = _deployments("gpu")
    assert deployments["llm"]["runtime_env"]["py_executable"] == VLLM_PYTHON
    assert deployments["tts"]["runtime_env"]["py_executable"] == COQUI_PYTHON
    # Whisper runs in the server's own environment (CTranslate2's wheels support CUDA).
    assert deployments["asr"]["runtime_env"] is None
    options = _actor_options(PROFILES["gpu"]())
    for name in ("llm", "tts"):
        runtime_env = deployments[name]["runtime_env"]
        assert options[name]["runtime_env"] == runtime_env
        assert runtime_env["env_vars"]["HF_HUB_OFFLINE"] == "1"
        RuntimeEnv(**runtime_env)  # Ray's own validation
    for name in ("gateway", "asr", "avatar"):
        assert "runtime_env" not in options[name], name
    # The cluster launcher builds those environments on every GPU worker, with the same Ray.
    setup = "\n".join(manifests.cluster_launcher(PROFILES["gpu"]())["worker_setup_commands"])
    for python, extra in ((VLLM_PYTHON, "vllm"), (COQUI_PYTHON, "coqui")):
        venv = python.removesuffix("/bin/python")
        assert f"python -m venv {venv}" in setup
        assert f"{venv}/bin/pip install" in setup
        assert f"'ray[serve]=={manifests.RAY_VERSION}' 'dandelion[{extra}]==" in setup


def test_gpu_gguf_profile_runs_llama_cpp_and_piper_in_the_server_environment() -> None:
    settings = PROFILES["gpu-gguf"]()
    assert settings.llm.backend == "llama_cpp"
    assert settings.llm.model_path is not None
    assert settings.llm.model_path.endswith(".gguf")
    assert settings.llm.n_gpu_layers == -1
    assert settings.llm.n_threads <= settings.deployments.llm.num_cpus
    assert settings.tts.backend == "piper"
    assert settings.tts.use_cuda
    assert settings.asr.device == "cuda"
    for name, options in _deployments("gpu-gguf").items():
        assert options["runtime_env"] is None, name


def test_cpu_profile_sets_no_runtime_env() -> None:
    for name, options in _deployments("cpu").items():
        assert options["runtime_env"] is None, name
    for name, options in _actor_options(PROFILES["cpu"]()).items():
        assert options == {"num_cpus": options["num_cpus"], "num_gpus": 0.0}, name


def test_a_settings_file_can_drop_a_runtime_env(tmp_path: Any) -> None:
    from dandelion.profiles import profile_settings

    overlay = tmp_path / "settings.yaml"
    overlay.write_text("deployments: {tts: {runtime_env: null}}\n")
    settings = profile_settings("gpu", overlay)
    assert settings.deployments.tts.runtime_env is None
    assert "runtime_env" not in settings.deployments.tts.serve_options()["ray_actor_options"]
    assert settings.deployments.llm.runtime_env == PROFILES["gpu"]().deployments.llm.runtime_env
