"""Build the Serve application from typed settings; the YAML under cluster/ comes from here too."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from dandelion.actors.asr import ASRActor
from dandelion.actors.llm import LLMActor
from dandelion.actors.tts import TTSActor
from dandelion.config import AppSettings
from dandelion.serve.gateway import Gateway

APP_NAME = "dandelion"
IMPORT_PATH = "dandelion.serve.app:app_builder"


def build_app(settings: AppSettings) -> Application:
    deployments = settings.deployments
    asr = serve.deployment(ASRActor, name="ASR", **deployments.asr.serve_options()).bind(
        settings.asr.model_dump()
    )
    llm = serve.deployment(LLMActor, name="LLM", **deployments.llm.serve_options()).bind(
        settings.llm.model_dump()
    )
    tts = serve.deployment(TTSActor, name="TTS", **deployments.tts.serve_options()).bind(
        settings.tts.model_dump()
    )
    gateway = serve.deployment(Gateway, name="Gateway", **deployments.gateway.serve_options())
    return gateway.bind(settings.model_dump(), asr, llm, tts)


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point for `serve run` and serve config files: `args` are AppSettings fields."""
    return build_app(AppSettings.model_validate(args or {}))
