"""The ingress deployment: one WebSocket per conversation, sessions held in this replica."""

from __future__ import annotations

import logging
import os
import uuid
from importlib import resources
from typing import Any

from ray import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from dandelion.backends.vad.silero import SileroVAD
from dandelion.config import AppSettings
from dandelion.protocol import (
    PROTOCOL_VERSION,
    SESSION_PATH,
    MediaFrame,
    encode_media_frame,
    encode_server_event,
)
from dandelion.reply import Outgoing
from dandelion.serve.metrics import RayTelemetry
from dandelion.serve.stages import ServeStages
from dandelion.session import Session
from dandelion.stages import VideoFormat

log = logging.getLogger(__name__)
logging.getLogger("dandelion").setLevel(
    logging.DEBUG if os.environ.get("DANDELION_DEBUG") else logging.INFO
)


@serve.ingress()
class Gateway:
    def __init__(
        self, settings: dict[str, Any], asr: Any, llm: Any, tts: Any, avatar: Any = None
    ) -> None:
        self.settings = AppSettings.model_validate(settings)
        # VAD runs here, where the audio arrives: ~0.06 ms a frame, never a remote call per frame.
        self._vad = SileroVAD()
        self._asr, self._llm, self._tts, self._avatar = asr, llm, tts, avatar
        self._stages: ServeStages | None = None
        self._telemetry = RayTelemetry()
        self._sessions: dict[str, Session] = {}

    async def _get_stages(self) -> ServeStages:
        if self._stages is None:
            rate = await self._tts.sample_rate.remote()
            video = None
            if self._avatar is not None:
                info = await self._avatar.video_format.remote()
                video = VideoFormat(
                    float(info["fps"]),
                    int(info["width"]),
                    int(info["height"]),
                    float(info.get("idle_fps", 0.0)),
                )
            self._stages = ServeStages(
                self._asr, self._llm, self._tts, int(rate), avatar=self._avatar, video=video
            )
        return self._stages

    def __serve_build_asgi_app__(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self._page),
                Route("/healthz", self._health),
                Route("/avatar.jpg", self._avatar_still),
                WebSocketRoute(SESSION_PATH, self._session),
                Mount("/web", StaticFiles(packages=[("dandelion_client", "web")]), name="web"),
            ]
        )

    async def _page(self, request: Request) -> Response:
        page = resources.files("dandelion_client").joinpath("web/index.html").read_text()
        return HTMLResponse(page)

    async def _avatar_still(self, request: Request) -> Response:
        if self._avatar is None:
            return JSONResponse({"error": "this server runs without an avatar"}, status_code=404)
        data = await self._avatar.still.remote()
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    async def _health(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {"status": "ok", "protocol": PROTOCOL_VERSION, "sessions": len(self._sessions)}
        )

    async def _session(self, websocket: WebSocket) -> None:
        await websocket.accept()
        session_id = uuid.uuid4().hex
        stages = await self._get_stages()

        async def send(item: Outgoing) -> None:
            # The one place a session's typed output is encoded for the wire.
            if isinstance(item, MediaFrame):
                await websocket.send_bytes(encode_media_frame(item))
            else:
                await websocket.send_text(encode_server_event(item))

        session = Session(
            session_id, self.settings, self._vad, stages, send, telemetry=self._telemetry
        )
        self._sessions[session_id] = session
        try:
            await session.start()
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                try:
                    await session.receive(data if data is not None else message.get("text", ""))
                except Exception as exc:  # a bug must not end the conversation
                    log.exception("session %s: message failed", session_id)
                    await session.report_internal_error(exc)
        except Exception:
            log.exception("session %s ended by an error", session_id)
        finally:
            self._sessions.pop(session_id, None)
            await session.close()
