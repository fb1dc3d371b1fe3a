"""Build the Serve application from typed settings; the YAML under cluster/ comes from here too."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.deployment import Deployment

from dandelion.actors.asr import ASRActor
from dandelion.actors.avatar import AvatarActor
from dandelion.actors.llm import LLMActor
from dandelion.actors.tts import TTSActor
from dandelion.config import AppSettings, DeploymentSettings
from dandelion.serve.gateway import Gateway

APP_NAME = "dandelion"
IMPORT_PATH = "dandelion.serve.app:app_builder"


def _deployment(cls: type, name: str, options: DeploymentSettings) -> Deployment:
    return serve.deployment(name=name, **options.serve_options())(cls)


def build_app(settings: AppSettings) -> Application:
    deployments = settings.deployments
    asr = _deployment(ASRActor, "ASR", deployments.asr).bind(settings.asr.model_dump())
    llm = _deployment(LLMActor, "LLM", deployments.llm).bind(settings.llm.model_dump())
    tts = _deployment(TTSActor, "TTS", deployments.tts).bind(settings.tts.model_dump())
    avatar = None
    if settings.avatar.enabled:
        avatar = _deployment(AvatarActor, "Avatar", deployments.avatar).bind(
            settings.avatar.model_dump()
        )
    gateway = _deployment(Gateway, "Gateway", deployments.gateway)
    return gateway.bind(settings.model_dump(), asr, llm, tts, avatar)


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point for `serve run` and serve config files: `args` are AppSettings fields."""
    return build_app(AppSettings.model_validate(args or {}))
