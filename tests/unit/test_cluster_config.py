"""The serve config under cluster/ is what the typed settings render, and Serve accepts it."""

from __future__ import annotations

from pathlib import Path

import yaml

from dandelion.config import AppSettings
from dandelion.serve.config_render import render_serve_config

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
