"""Cluster manifests (KubeRay RayService, Ray cluster launcher) rendered from the GPU profile.

The node shapes are the constants below (a GPU worker holds one replica of every deployment);
the GPU worker counts come from the settings: enough workers for every deployment at
min_replicas, and at max_replicas. `dandelion render-config --all` rewrites every generated
file under cluster/; tests/unit/test_cluster_config.py fails if a committed one differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from dandelion import __version__
from dandelion.config import AppSettings, DeploymentSettings
from dandelion.profiles import COQUI_PYTHON, PROFILES, VLLM_PYTHON
from dandelion.serve.config_render import applications, profile_path, render_profile

# Pinned in pyproject.toml's `server` extra; the image and the launcher's nodes must run the same.
RAY_VERSION = "2.60.0"
LLAMA_CPP_VERSION = "0.3.36"
DEFAULT_IMAGE = f"rayproject/ray:{RAY_VERSION}-py311-gpu"
METRICS_PORT = 8080
SERVE_PORT = 8000
KUBERAY_PATH = "cluster/kuberay-rayservice.yaml"
LAUNCHER_PATH = "cluster/ray-cluster-gpu.yaml"


@dataclass(frozen=True)
class NodeShape:
    cpus: int
    gpus: int
    memory_gib: int
    aws_instance_type: str


# The head runs Ray's control plane, Serve's controller and a proxy; no replicas (num-cpus 0).
HEAD = NodeShape(cpus=4, gpus=0, memory_gib=16, aws_instance_type="m5.xlarge")
# One GPU worker hosts one replica of each deployment: 0.95 of the GPU, 6 of the 8 CPUs.
# g6e.2xlarge: 8 vCPU, 64 GiB, one L40S (48 GB): the gpu profile's vLLM share is sized for it.
# memory_gib is what a pod requests (vLLM reads 15 GB of weights through host memory).
GPU_WORKER = NodeShape(cpus=8, gpus=1, memory_gib=48, aws_instance_type="g6e.2xlarge")
# What the server's environment installs (the gateway, VAD, faster-whisper, the avatar); vLLM
# and Coqui TTS get environments of their own at the profile's `py_executable` paths.
SERVER_EXTRAS = "server,avatar"


def _venv(python: str) -> str:
    """The virtual environment folder of a `.../bin/python`."""
    return python.removesuffix("/bin/python")


def _venv_commands(python: str, extra: str) -> list[str]:
    """Create the environment a deployment's runtime_env names: same Ray, same Dandelion."""
    venv = _venv(python)
    return [
        f"python -m venv {venv}",
        f"{venv}/bin/pip install --no-cache-dir 'ray[serve]=={RAY_VERSION}' "
        f"'dandelion[{extra}]=={__version__}'",
    ]


# Both extra environments, as shell commands (the launcher's worker setup, the Dockerfile).
VENV_ROOT = _venv(VLLM_PYTHON).rsplit("/", 1)[0]
EXTRA_ENV_COMMANDS = [
    f'sudo mkdir -p {VENV_ROOT} && sudo chown "$(id -u)" {VENV_ROOT}',
    *_venv_commands(VLLM_PYTHON, "vllm"),
    *_venv_commands(COQUI_PYTHON, "coqui"),
]


def _deployments(settings: AppSettings) -> list[DeploymentSettings]:
    d = settings.deployments
    return [d.gateway, d.asr, d.llm, d.tts]


def _min_replicas(options: DeploymentSettings) -> int:
    return options.autoscaling.min_replicas if options.autoscaling else options.num_replicas


def _max_replicas(options: DeploymentSettings) -> int:
    return options.autoscaling.max_replicas if options.autoscaling else options.num_replicas


def gpu_workers(settings: AppSettings, replicas: Callable[[DeploymentSettings], int]) -> int:
    """GPU workers that hold every deployment at `replicas` each (by CPU and GPU totals)."""
    deployments = _deployments(settings)
    gpus = sum(replicas(d) * d.num_gpus for d in deployments)
    cpus = sum(replicas(d) * d.num_cpus for d in deployments)
    return max(
        1,
        math.ceil(round(gpus / GPU_WORKER.gpus, 6)),
        math.ceil(round(cpus / GPU_WORKER.cpus, 6)),
    )


def min_gpu_workers(settings: AppSettings) -> int:
    return gpu_workers(settings, _min_replicas)


def max_gpu_workers(settings: AppSettings) -> int:
    return gpu_workers(settings, _max_replicas)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (serveConfigV2) as literal blocks, so they stay readable."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump(data: Any, width: int = 100) -> str:
    text: str = yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=width)
    return text


def serve_config_v2(settings: AppSettings) -> str:
    """KubeRay's serveConfigV2: the `applications` of the profile's serve config, as YAML."""
    return _dump({"applications": applications(settings)})


def _container(name: str, image: str, node: NodeShape, ports: dict[str, int]) -> dict[str, Any]:
    resources: dict[str, Any] = {"cpu": str(node.cpus), "memory": f"{node.memory_gib}Gi"}
    if node.gpus:
        resources["nvidia.com/gpu"] = node.gpus
    return {
        "name": name,
        "image": image,
        "resources": {"limits": dict(resources), "requests": dict(resources)},
        "ports": [{"name": port_name, "containerPort": port} for port_name, port in ports.items()],
    }


def rayservice(settings: AppSettings, image: str = DEFAULT_IMAGE) -> dict[str, Any]:
    """A KubeRay RayService (ray.io/v1) serving `settings` on a CPU head and GPU workers."""
    head_ports = {
        "gcs-server": 6379,
        "dashboard": 8265,
        "client": 10001,
        "serve": SERVE_PORT,
        "metrics": METRICS_PORT,
    }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "dandelion"},
        "spec": {
            "serveConfigV2": serve_config_v2(settings),
            "rayClusterConfig": {
                "rayVersion": RAY_VERSION,
                "enableInTreeAutoscaling": True,
                "autoscalerOptions": {"idleTimeoutSeconds": 300},
                "headGroupSpec": {
                    "rayStartParams": {
                        "dashboard-host": "0.0.0.0",
                        "metrics-export-port": str(METRICS_PORT),
                        "num-cpus": "0",
                    },
                    "template": {
                        "spec": {"containers": [_container("ray-head", image, HEAD, head_ports)]}
                    },
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "gpu",
                        "replicas": min_gpu_workers(settings),
                        "minReplicas": min_gpu_workers(settings),
                        "maxReplicas": max_gpu_workers(settings),
                        "rayStartParams": {
                            "num-cpus": str(GPU_WORKER.cpus),
                            "num-gpus": str(GPU_WORKER.gpus),
                            "metrics-export-port": str(METRICS_PORT),
                        },
                        "template": {
                            "spec": {
                                "containers": [
                                    _container(
                                        "ray-worker",
                                        image,
                                        GPU_WORKER,
                                        {"serve": SERVE_PORT, "metrics": METRICS_PORT},
                                    )
                                ],
                                "tolerations": [
                                    {
                                        "key": "nvidia.com/gpu",
                                        "operator": "Exists",
                                        "effect": "NoSchedule",
                                    }
                                ],
                            }
                        },
                    }
                ],
            },
        },
    }


_KUBERAY_HEADER = f"""\
# Generated by `dandelion render-config --kuberay` from dandelion.profiles.gpu; do not edit.
# Apply: kubectl apply -f {KUBERAY_PATH}
# Needs the KubeRay operator (ray.io/v1) and the NVIDIA device plugin. spec.serveConfigV2 is
# the `applications` part of {profile_path("gpu")}.
# The image is stock Ray and does not contain Dandelion, its vLLM and Coqui environments
# ({_venv(VLLM_PYTHON)}, {_venv(COQUI_PYTHON)}) or weights. Build one FROM it and render
# with `--image` (docs/deploy.md, "GPU software"):
#   FROM {DEFAULT_IMAGE}
#   RUN pip install 'dandelion[{SERVER_EXTRAS}]=={__version__}'
#   RUN <the two environments, docs/deploy.md>
#   COPY models/ /models/
"""


def render_rayservice(settings: AppSettings | None = None, image: str = DEFAULT_IMAGE) -> str:
    return _KUBERAY_HEADER + _dump(rayservice(settings or PROFILES["gpu"](), image))


def cluster_launcher(settings: AppSettings, image: str = DEFAULT_IMAGE) -> dict[str, Any]:
    """A `ray up` config (AWS): a CPU head and autoscaled GPU workers, in `image` containers."""
    start = "ulimit -n 65536; ray start"
    ports = f"--object-manager-port=8076 --metrics-export-port={METRICS_PORT}"
    return {
        "cluster_name": "dandelion-gpu",
        "max_workers": max_gpu_workers(settings),
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 10,
        "provider": {"type": "aws", "region": "us-west-2", "cache_stopped_nodes": False},
        "auth": {"ssh_user": "ubuntu"},
        # Ray adds `--gpus all` on nodes where nvidia-smi works.
        "docker": {
            "image": image,
            "container_name": "ray_container",
            "pull_before_run": True,
            "run_options": ["--ulimit nofile=65536:65536"],
        },
        "available_node_types": {
            "head": {
                # Control plane only: every replica runs on a GPU worker.
                "resources": {"CPU": 0},
                "node_config": {
                    "InstanceType": HEAD.aws_instance_type,
                    "BlockDeviceMappings": [
                        {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 100}}
                    ],
                },
                "min_workers": 0,
                "max_workers": 0,
            },
            "gpu_worker": {
                "resources": {"CPU": GPU_WORKER.cpus, "GPU": GPU_WORKER.gpus},
                "node_config": {
                    "InstanceType": GPU_WORKER.aws_instance_type,
                    "BlockDeviceMappings": [
                        {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 200}}
                    ],
                },
                "min_workers": min_gpu_workers(settings),
                "max_workers": max_gpu_workers(settings),
            },
        },
        "head_node_type": "head",
        # The weights, from ./models where `ray up` runs, at /models in every container. Remove
        # this when the image carries them.
        "file_mounts": {"/models": "./models"},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [f"pip install 'dandelion[{SERVER_EXTRAS}]=={__version__}'"],
        # The head's autoscaler launches EC2 instances.
        "head_setup_commands": ["pip install 'boto3>=1.4.8'"],
        # The LLM and TTS replicas run in these (their runtime_env's py_executable): vLLM's and
        # Coqui's CUDA builds of torch. CTranslate2's PyPI wheels already support CUDA.
        "worker_setup_commands": list(EXTRA_ENV_COMMANDS),
        "head_start_ray_commands": [
            "ray stop",
            f"{start} --head --port=6379 {ports} "
            "--autoscaling-config=~/ray_bootstrap_config.yaml --dashboard-host=0.0.0.0",
        ],
        "worker_start_ray_commands": [
            "ray stop",
            f"{start} --address=$RAY_HEAD_IP:6379 {ports}",
        ],
    }


_LAUNCHER_HEADER = f"""\
# Generated by `dandelion render-config --cluster-launcher` from dandelion.profiles.gpu;
# do not edit. docs/deploy.md has the details.
# Start: ray up {LAUNCHER_PATH}
# Then:  ray dashboard {LAUNCHER_PATH}   (forwards the dashboard to localhost:8265)
#        serve deploy {profile_path("gpu")}
# Weights: ./models, beside where you run `ray up`, is synced to /models on every node.
"""


def render_cluster_launcher(settings: AppSettings | None = None, image: str = DEFAULT_IMAGE) -> str:
    # Wide lines: shell commands stay on one line each.
    launcher = cluster_launcher(settings or PROFILES["gpu"](), image)
    return _LAUNCHER_HEADER + _dump(launcher, width=1000)


def generated_files() -> dict[str, str]:
    """Every generated file under cluster/, by path from the repository root."""
    return {
        profile_path("cpu"): render_profile("cpu"),
        profile_path("gpu"): render_profile("gpu"),
        profile_path("gpu-gguf"): render_profile("gpu-gguf"),
        KUBERAY_PATH: render_rayservice(),
        LAUNCHER_PATH: render_cluster_launcher(),
    }
