"""Every file under cluster/ is what the typed settings render, and Ray accepts it."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from dandelion.config import AppSettings, DeploymentSettings
from dandelion.errors import SettingsError
from dandelion.profiles import PROFILES, profile_settings
from dandelion.serve import manifests
from dandelion.serve.config_render import PROFILE_HOSTS, applications, render_serve_config

ROOT = Path(__file__).resolve().parents[2]


def test_cpu_serve_config_is_rendered_from_the_settings() -> None:
    on_disk = (ROOT / "cluster" / "serve-cpu.yaml").read_text()
    assert on_disk == render_serve_config(AppSettings()), (
        "cluster/serve-cpu.yaml is stale: run `dandelion render-config -o cluster/serve-cpu.yaml`"
    )


def test_cpu_serve_config_passes_serves_own_schema() -> None:
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(
        yaml.safe_load((ROOT / "cluster" / "serve-cpu.yaml").read_text())
    )
    app = config.applications[0]
    assert app.import_path == "dandelion.serve.app:app_builder"
    settings = AppSettings.model_validate(app.args)
    for deployment in ("gateway", "asr", "llm", "tts"):
        options = getattr(settings.deployments, deployment).serve_options()
        assert options["ray_actor_options"]["num_gpus"] == 0.0


# Profiles and cluster manifests (dandelion.profiles, dandelion.serve.manifests).

CLUSTER = ROOT / "cluster"
DEPLOYMENTS = ("gateway", "asr", "llm", "tts", "avatar")
MODEL_DEPLOYMENTS = ("asr", "llm", "tts")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _rayservice() -> dict[str, Any]:
    loaded: dict[str, Any] = _load(CLUSTER / "kuberay-rayservice.yaml")
    return loaded


def _launcher() -> dict[str, Any]:
    loaded: dict[str, Any] = _load(CLUSTER / "ray-cluster-gpu.yaml")
    return loaded


def _serve_configs() -> dict[str, tuple[str, dict[str, Any]]]:
    """Every serve config under cluster/: id -> (profile it comes from, the config)."""
    configs = {
        path.name: (path.stem.removeprefix("serve-"), _load(path))
        for path in sorted(CLUSTER.glob("serve-*.yaml"))
    }
    spec = _rayservice()["spec"]
    configs["kuberay-rayservice.yaml:serveConfigV2"] = (
        "gpu",
        yaml.safe_load(spec["serveConfigV2"]),
    )
    return configs


SERVE_CONFIGS = _serve_configs()


def _options(settings: AppSettings) -> dict[str, DeploymentSettings]:
    return {name: getattr(settings.deployments, name) for name in DEPLOYMENTS}


def _serve_deployments(settings: AppSettings) -> dict[str, Any]:
    """The Serve deployments the app builder makes (binding only: no Ray started)."""
    from dandelion.serve.app import build_app

    gateway = build_app(settings)._bound_deployment
    found = {"Gateway": gateway}
    for arg in gateway.init_args:
        bound = getattr(arg, "_bound_deployment", None)
        if bound is not None:
            found[bound.name] = bound
    assert set(found) == {"Gateway", "ASR", "LLM", "TTS", "Avatar"}
    return found


def test_every_generated_file_under_cluster_is_current() -> None:
    for relative, text in manifests.generated_files().items():
        on_disk = (ROOT / relative).read_text()
        assert on_disk == text, f"{relative} is stale: run `dandelion render-config --all`"
    serve_files = {f"cluster/{path.name}" for path in CLUSTER.glob("serve-*.yaml")}
    assert serve_files == {f"cluster/serve-{profile}.yaml" for profile in PROFILES}


def test_cpu_profile_is_the_embedded_default() -> None:
    assert PROFILES["cpu"]() == AppSettings()
    assert PROFILE_HOSTS == {"cpu": "127.0.0.1", "gpu": "0.0.0.0", "gpu-gguf": "0.0.0.0"}


@pytest.mark.parametrize("name", sorted(SERVE_CONFIGS))
def test_serve_config_passes_serve_schema_and_is_the_profile(name: str) -> None:
    from ray.serve.schema import ServeDeploySchema

    profile, raw = SERVE_CONFIGS[name]
    config = ServeDeploySchema.model_validate(raw)
    assert len(config.applications) == 1
    app = config.applications[0]
    assert app.import_path == "dandelion.serve.app:app_builder"
    assert app.route_prefix == "/"
    settings = AppSettings.model_validate(app.args)
    assert settings == PROFILES[profile]()
    # Exactly what the code renders for that profile, not only equivalent settings.
    assert raw["applications"] == applications(PROFILES[profile]())
    if "http_options" in raw:
        assert raw["http_options"] == {"host": PROFILE_HOSTS[profile], "port": 8000}


def test_rayservice_serves_exactly_the_gpu_serve_config() -> None:
    service = _rayservice()
    assert service["apiVersion"] == "ray.io/v1"
    assert service["kind"] == "RayService"
    assert service["spec"]["serveConfigV2"] == manifests.serve_config_v2(PROFILES["gpu"]())
    gpu_file = _load(CLUSTER / "serve-gpu.yaml")
    assert yaml.safe_load(service["spec"]["serveConfigV2"]) == {
        "applications": gpu_file["applications"]
    }


def test_gpu_profile_shares_gpus_and_autoscales_every_deployment() -> None:
    settings = AppSettings.model_validate(
        SERVE_CONFIGS["serve-gpu.yaml"][1]["applications"][0]["args"]
    )
    options = _options(settings)
    assert options["gateway"].num_gpus == 0
    for name in MODEL_DEPLOYMENTS:
        assert 0 < options[name].num_gpus < 1, name
    # One replica of each model fits one GPU.
    assert sum(options[name].num_gpus for name in MODEL_DEPLOYMENTS) <= manifests.GPU_WORKER.gpus
    for name, option in options.items():
        assert option.autoscaling is not None, name
        assert 1 <= option.autoscaling.min_replicas <= option.autoscaling.max_replicas, name
    # And that is what Serve is given.
    for name, deployment in _serve_deployments(settings).items():
        autoscaling = deployment._deployment_config.autoscaling_config
        assert autoscaling is not None, name
        assert autoscaling.min_replicas <= autoscaling.max_replicas, name
        gpus = deployment.ray_actor_options["num_gpus"]
        on_cpu = name in ("Gateway", "Avatar")  # the landmark avatar renders on CPU
        assert (gpus == 0) if on_cpu else (0 < gpus < 1), name
    # The model backends run on the GPU, with no more threads than the CPUs they reserve.
    assert settings.asr.device == "cuda"
    assert settings.asr.compute_type == "float16"
    assert settings.llm.backend == "vllm"
    assert settings.llm.nice == 0
    assert settings.tts.backend == "coqui"
    assert settings.tts.coqui.device == "cuda"
    assert settings.asr.cpu_threads <= options["asr"].num_cpus
    assert settings.tts.threads <= options["tts"].num_cpus


def test_cpu_profile_uses_no_gpu() -> None:
    settings = AppSettings.model_validate(
        SERVE_CONFIGS["serve-cpu.yaml"][1]["applications"][0]["args"]
    )
    for name, deployment in _serve_deployments(settings).items():
        assert deployment.ray_actor_options["num_gpus"] == 0, name
    assert settings.asr.device == "cpu"
    assert settings.llm.n_gpu_layers == 0
    assert not settings.tts.use_cuda


def _first_fit(items: list[tuple[float, float]], nodes: int) -> bool:
    """Do these (cpus, gpus) replicas pack onto `nodes` GPU workers (first fit, largest first)?"""
    free = [
        [float(manifests.GPU_WORKER.cpus), float(manifests.GPU_WORKER.gpus)] for _ in range(nodes)
    ]
    for cpus, gpus in sorted(items, key=lambda item: (item[1], item[0]), reverse=True):
        for node in free:
            if node[0] + 1e-9 >= cpus and node[1] + 1e-9 >= gpus:
                node[0] -= cpus
                node[1] -= gpus
                break
        else:
            return False
    return True


def test_gpu_workers_hold_every_deployment_from_min_to_max_replicas() -> None:
    settings = PROFILES["gpu"]()
    options = _options(settings)
    for which, nodes in (
        ("min_replicas", manifests.min_gpu_workers(settings)),
        ("max_replicas", manifests.max_gpu_workers(settings)),
    ):
        replicas = [
            (option.num_cpus, option.num_gpus)
            for option in options.values()
            for _ in range(getattr(option.autoscaling, which))
        ]
        assert _first_fit(replicas, nodes), f"{which} does not fit {nodes} GPU workers"
    assert manifests.min_gpu_workers(settings) >= 1
    # The manifests scale their GPU workers over exactly that range.
    worker = _launcher()["available_node_types"]["gpu_worker"]
    assert worker["resources"] == {"CPU": 8, "GPU": 1}
    assert worker["min_workers"] == manifests.min_gpu_workers(settings)
    assert worker["max_workers"] == manifests.max_gpu_workers(settings)
    group = _rayservice()["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert group["minReplicas"] == manifests.min_gpu_workers(settings)
    assert group["maxReplicas"] == manifests.max_gpu_workers(settings)


def test_rayservice_head_and_gpu_workers() -> None:
    cluster = _rayservice()["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == manifests.RAY_VERSION
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["metrics-export-port"] == "8080"
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    head_container = head["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head_container["resources"]["limits"]
    (group,) = cluster["workerGroupSpecs"]
    assert group["rayStartParams"]["num-gpus"] == "1"
    assert group["rayStartParams"]["metrics-export-port"] == "8080"
    (container,) = group["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    for spec in (head["template"]["spec"], group["template"]["spec"]):
        assert spec["containers"][0]["image"] == "rayproject/ray:2.60.0-py311-gpu"


def test_cluster_launcher_config_passes_rays_validator() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = _launcher()
    validate_config(copy.deepcopy(raw))
    # What `ray up` does: merge the provider's defaults, then validate again.
    validate_config(prepare_config(copy.deepcopy(raw)))
    assert raw["provider"]["type"] == "aws"
    assert raw["provider"]["region"]
    head = raw["available_node_types"][raw["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    for command in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any("--metrics-export-port=8080" in line for line in raw[command]), command
    assert any(f"dandelion[{manifests.SERVER_EXTRAS}]" in line for line in raw["setup_commands"])


def test_cluster_launcher_validator_rejects_a_broken_config() -> None:
    import jsonschema
    from ray.autoscaler._private.util import validate_config

    broken = _launcher()
    broken["available_node_types"]["gpu_worker"]["resourcez"] = {"GPU": 1}
    with pytest.raises(jsonschema.ValidationError, match="resourcez"):
        validate_config(broken)


def test_manifests_pin_the_versions_the_project_pins() -> None:
    import ray

    assert ray.__version__ == manifests.RAY_VERSION
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    server = pins["optional-dependencies"]["server"]
    assert f"ray[serve]=={manifests.RAY_VERSION}" in server
    assert f"llama-cpp-python=={manifests.LLAMA_CPP_VERSION}" in server
    assert f"rayproject/ray:{manifests.RAY_VERSION}-py311-gpu" == manifests.DEFAULT_IMAGE
    server_install = f"dandelion[{manifests.SERVER_EXTRAS}]=={pins['version']}"
    assert server_install in _launcher()["setup_commands"][0]


def test_a_settings_file_merges_over_a_profile(tmp_path: Path) -> None:
    overlay = tmp_path / "settings.yaml"
    overlay.write_text(
        "llm: {model_path: /weights/other.gguf}\n"
        "deployments: {tts: {autoscaling: null, num_replicas: 2}}\n"
    )
    settings = profile_settings("gpu-gguf", overlay)
    assert settings.llm.model_path == "/weights/other.gguf"
    assert settings.llm.n_gpu_layers == -1  # the rest of the profile's LLM section stays
    assert settings.deployments.tts.serve_options()["num_replicas"] == 2
    assert settings.deployments.tts.num_gpus == 0.1
    assert settings.deployments.asr == PROFILES["gpu-gguf"]().deployments.asr
    with pytest.raises(SettingsError, match="unknown profile"):
        profile_settings("tpu")


def test_cli_renders_the_committed_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dandelion.cli import main

    assert main(["render-config", "--profile", "gpu"]) == 0
    assert capsys.readouterr().out == (CLUSTER / "serve-gpu.yaml").read_text()
    assert main(["render-config"]) == 0
    assert capsys.readouterr().out == (CLUSTER / "serve-cpu.yaml").read_text()
    for flag, name in (
        ("--kuberay", "kuberay-rayservice.yaml"),
        ("--cluster-launcher", "ray-cluster-gpu.yaml"),
    ):
        out = tmp_path / name
        assert main(["render-config", flag, "-o", str(out)]) == 0
        assert out.read_text() == (CLUSTER / name).read_text()
    with pytest.raises(SystemExit):
        main(["render-config", "--kuberay", "--profile", "cpu"])


def test_an_openai_llm_on_the_gpu_profile_holds_no_gpu(tmp_path: Path) -> None:
    path = tmp_path / "remote.yaml"
    path.write_text(
        "llm: {backend: openai, openai: {base_url: 'http://10.0.0.5:11434/v1', model: llama3.2,"
        " api_key_env: null}}\n"
    )
    settings = profile_settings("gpu", path)
    assert settings.deployments.llm.num_gpus == 0.0
    assert settings.deployments.llm.runtime_env is None
    assert settings.deployments.tts.num_gpus == 0.1  # the rest of the profile is kept
    own = tmp_path / "own.yaml"
    own.write_text(path.read_text() + "deployments: {llm: {num_cpus: 2}}\n")
    assert profile_settings("gpu", own).deployments.llm.num_cpus == 2


@pytest.mark.parametrize(
    ("openai", "message"),
    [
        ("{base_url: '127.0.0.1:9/v1', model: m}", "not an http"),
        ("{model: '  '}", "empty model name"),
        ("{model: m, api_key_env: 'sk-proj-abc123SECRET'}", "never the key itself"),
    ],
)
def test_openai_settings_are_checked_when_loaded(tmp_path: Path, openai: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"llm: {{backend: openai, openai: {openai}}}\n")
    with pytest.raises(SettingsError, match=message) as refused:
        profile_settings("cpu", path)
    assert "SECRET" not in str(refused.value)
