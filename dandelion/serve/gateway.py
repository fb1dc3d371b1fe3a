"""The ingress deployment: one WebSocket per conversation, sessions held in this replica.

At the door (docs/security.md): the page's Origin, then an API key or session token, then room
for one more session. Inside, each client message passes the session's limits
(dandelion/admission.py), and everything the session sends goes through a bounded queue that
one task per session drains to the socket (dandelion/send_queue.py). Every error event leaves
with a public message and an error_id; its full text is logged under that id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import ray
from ray import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketState

from dandelion.admission import (
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    CLOSE_TAKEN_OVER,
    CLOSE_TRY_AGAIN_LATER,
    SessionGuard,
    SessionLedger,
    SessionLimits,
    Verdict,
)
from dandelion.auth import (
    Authenticator,
    Credential,
    exposure_error,
    host_allowed,
    origin_allowed,
    presented_credential,
    token_subprotocol,
)
from dandelion.backends.vad.silero import SileroVAD
from dandelion.config import AppSettings
from dandelion.errors import DandelionError
from dandelion.protocol import (
    MAX_AUDIO_FRAME_BYTES,
    PROTOCOL_VERSION,
    SESSION_PATH,
    ErrorCode,
    MediaFrame,
    MediaKind,
    encode_media_frame,
    encode_server_event,
)
from dandelion.protocol.errors import RETRYABLE_CODES, public_message
from dandelion.protocol.events import ErrorEvent
from dandelion.reply import Outgoing
from dandelion.send_queue import Outbound, SendQueue, TcpKey, normal_address, parse_tcp_table
from dandelion.serve.metrics import RayTelemetry
from dandelion.serve.replica_logs import log_to_replica_file
from dandelion.serve.resume import SAVE_AFTER, SessionSaver
from dandelion.serve.stages import ServeStages
from dandelion.session import Session
from dandelion.session_state import (
    ResumeError,
    SessionState,
    digest,
    new_resume_token,
    split_resume_token,
)
from dandelion.session_store import open_store
from dandelion.stages import VideoFormat

log = logging.getLogger(__name__)

NOT_LOOPBACK = "a server without API keys answers only requests addressed to localhost"
RESUME_PARAM = "resume_token"
"""The query parameter a reconnecting client names its conversation with (session.created's)."""
SESSION_TOKENS_PATH = "/v1/session-tokens"
"""POST with an API key: a short-lived token a page opens its session with."""
RATE_LIMITED_RETRY_S = 1.0
LEDGER_LEASE_S = 30.0
CLOSE_TIMEOUT_S = 10.0  # a closing session's tasks must stop within this
TAKE_OVER_WAIT_S = 5.0  # a resume at the limit waits this long for the place it takes over
LEDGER_TIMEOUT_S = 5.0  # the ledger's answer, at most: then this replica's own count decides
LEDGER_NAMESPACE = "dandelion"
_Close = tuple[int, str]  # a WebSocket close code and reason
TAKEN_OVER = "this conversation went on in another connection"


def ledger_name(app: str) -> str:
    """The named actor that counts an app's sessions across its gateway replicas."""
    return f"dandelion-session-ledger-{app}"


class SessionLedgerActor:
    """The SessionLedger of one app's gateway replicas, as a named Ray actor."""

    def __init__(self, lease_s: float) -> None:
        self._ledger = SessionLedger(lease_s)

    def acquire(self, replica: str, limit: int) -> bool:
        return self._ledger.acquire(replica, limit, time.monotonic())

    def release(self, replica: str) -> None:
        self._ledger.release(replica, time.monotonic())

    def report(self, replica: str, count: int) -> None:
        self._ledger.report(replica, count, time.monotonic())

    def total(self) -> int:
        return self._ledger.total(time.monotonic())


@serve.ingress()
class Gateway:
    def __init__(
        self, settings: dict[str, Any], asr: Any, llm: Any, tts: Any, avatar: Any = None
    ) -> None:
        log_to_replica_file()
        self.settings = AppSettings.model_validate(settings)
        security = self.settings.security
        self._auth = Authenticator.from_settings(security, os.environ)
        # Checked here too, not only by `dandelion serve`: `serve run`/`serve deploy` configs
        # choose their own bind address.
        host, self._http_port = _serve_http_address()
        problem = exposure_error(
            host or "an address Serve did not tell",
            self._auth.required,
            security.behind_auth_proxy,
        )
        if problem is not None:
            raise DandelionError(problem)
        self._limits = SessionLimits.from_settings(security)
        self._max_sessions = security.sessions_per_replica(self.settings.deployments.gateway)
        self._admitted = 0  # sessions let in on this replica, counted before their first await
        self._replica = uuid.uuid4().hex
        self._ledger: Any = None  # SessionLedgerActor handle, with max_sessions_total
        self._heartbeat: asyncio.Task[None] | None = None
        # VAD runs here, where the audio arrives: ~0.06 ms a frame, never a remote call per frame.
        self._vad = SileroVAD()
        self._asr, self._llm, self._tts, self._avatar = asr, llm, tts, avatar
        self._stages: ServeStages | None = None
        self._telemetry = RayTelemetry()
        self._sessions: dict[str, Session] = {}
        # Conversations kept for clients that reconnect (docs/protocol.md, "Resuming").
        self._store = open_store(self.settings.session_store)
        if self.settings.session_store.backend == "sqlite" and (nodes := _alive_nodes()) > 1:
            log.warning(
                "session_store.backend is sqlite on a cluster of %d nodes: a client that "
                "reconnects to another node's gateway starts a new conversation "
                "(set session_store.backend: redis; docs/deploy.md)",
                nodes,
            )
        # Last saves and slow closes, held here: the event loop keeps only weak references.
        self._background: set[asyncio.Task[None]] = set()
        self._queues: dict[str, SendQueue] = {}
        # The live connection of each conversation on this replica: a resume ends it at once.
        self._savers: dict[str, SessionSaver] = {}
        self._queue_peak_bytes = 0
        self._tcp: tuple[float, dict[TcpKey, int]] = (0.0, {})  # when read, what it said
        self._video_dropped = 0
        self._bytes_sent = 0
        self._closed_not_reading = 0

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
                self._asr,
                self._llm,
                self._tts,
                int(rate),
                avatar=self._avatar,
                video=video,
                timeout_s=self.settings.stage_timeout_s,
            )
        return self._stages

    def __serve_build_asgi_app__(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self._guarded(self._page)),
                Route("/healthz", self._health),
                Route("/avatar.jpg", self._guarded(self._avatar_still)),
                Route(SESSION_TOKENS_PATH, self._session_token, methods=["POST"]),
                WebSocketRoute(SESSION_PATH, self._session),
                # The page's code: public, as in the package it ships in; the page itself and
                # everything it opens need the token.
                Mount("/web", StaticFiles(packages=[("dandelion_client", "web")]), name="web"),
            ]
        )

    # ------------------------------------------------------------------ HTTP

    def _guarded(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """`handler` behind an API key or session token (header, or `?token=`)."""

        async def guarded(request: Request) -> Response:
            if not self._host_allowed(request.headers.get("host")):
                return JSONResponse({"error": "forbidden", "message": NOT_LOOPBACK}, 403)
            credential = presented_credential(request.headers, request.query_params)
            if not self._auth.allows(credential, time.time()):
                return _unauthorized()
            return await handler(request)

        return guarded

    async def _page(self, request: Request) -> Response:
        page = resources.files("dandelion_client").joinpath("web/index.html").read_text()
        # The URL may carry a token: keep it out of other sites' Referer headers.
        return HTMLResponse(page, headers={"Referrer-Policy": "no-referrer"})

    async def _avatar_still(self, request: Request) -> Response:
        if self._avatar is None:
            return JSONResponse({"error": "this server runs without an avatar"}, status_code=404)
        data = await self._avatar.still.remote()
        # private: behind a key, the portrait is not for a shared cache (a proxy, a CDN) to keep.
        cache = "private, max-age=3600" if self._auth.required else "max-age=3600"
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": cache})

    async def _health(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {"status": "ok", "protocol": PROTOCOL_VERSION, "sessions": len(self._sessions)}
        )

    async def _session_token(self, request: Request) -> JSONResponse:
        """Mint a session token; only an API key in the Authorization header does (a token
        cannot extend itself, and keys stay out of URLs)."""
        if not self._auth.required:
            return JSONResponse(
                {"error": "not_needed", "message": "this server has no API keys: no token needed"},
                status_code=404,
            )
        credential = presented_credential(request.headers, {})
        if credential is None or credential.source != "header":
            return _unauthorized()
        if not self._auth.is_api_key(credential.secret):
            return _unauthorized()
        try:
            token = self._auth.mint(time.time())
        except ValueError as exc:  # keys given as hashes only: nothing secret to sign with
            return JSONResponse({"error": "no_token_secret", "message": str(exc)}, status_code=503)
        return JSONResponse(
            {"token": token.token, "expires_at": token.expires_at},
            headers={"Cache-Control": "no-store"},
        )

    async def stats(self) -> dict[str, Any]:
        """This replica's process and send queues (for tests and operators, over a handle)."""
        return {
            "pid": os.getpid(),
            "sessions": len(self._sessions),
            "admitted": self._admitted,
            "max_sessions": self._max_sessions,
            "send_queue_bytes": sum(queue.bytes for queue in self._queues.values()),
            "send_queue_peak_bytes": max(
                [self._queue_peak_bytes, *(q.peak_bytes for q in self._queues.values())]
            ),
            "video_frames_dropped": self._video_dropped
            + sum(queue.dropped for queue in self._queues.values()),
            "bytes_sent": self._bytes_sent + sum(q.sent_bytes for q in self._queues.values()),
            "closed_not_reading": self._closed_not_reading,
        }

    # ------------------------------------------------------------------ WebSocket

    async def _session(self, websocket: WebSocket) -> None:
        credential = presented_credential(websocket.headers, websocket.query_params)
        resume_token = websocket.query_params.get(RESUME_PARAM)
        restored = await self._restored(resume_token)
        # A resume token stands for a credential only under the keys that admitted it.
        vouched = restored is not None and restored.auth_epoch == self._auth.epoch
        refusal = self._refusal(websocket, credential, resuming=vouched)
        if refusal is not None:
            await _deny(websocket, *refusal)
            return
        # A browser that offered a subprotocol fails the socket unless one is echoed.
        subprotocol = token_subprotocol(websocket.headers)
        # The conversation's earlier connection on this replica (one the client left, still
        # open) ends now, not at its next check of the store, and frees its place for this one.
        taking_over = restored is not None and self._take_over(restored.session_id)
        admitted = await self._admit()
        deadline = time.monotonic() + TAKE_OVER_WAIT_S
        while taking_over and not admitted and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            admitted = await self._admit()
        if not admitted:
            await self._turn_away(websocket, subprotocol)
            return
        released = False

        async def release() -> None:
            # Once, as soon as the conversation is over: a slow teardown keeps no place taken.
            nonlocal released
            if not released:
                released = True
                await self._release()

        try:
            await websocket.accept(subprotocol=subprotocol)
            replaces = (
                digest(split_resume_token(resume_token)[1]) if restored and resume_token else None
            )
            await self._converse(websocket, restored, replaces, release)
        finally:
            await release()

    def _take_over(self, session_id: str) -> bool:
        """End the connection holding `session_id` on this replica, if any (True)."""
        saver = self._savers.get(session_id)
        if saver is None:
            return False
        saver.take_over()
        return True

    async def _restored(self, token: str | None) -> SessionState | None:
        """The conversation a resume token names; None without one, or when it is unknown,
        expired or wrong (the client then starts a new conversation: `resumed` is false)."""
        if not token or self._store is None:
            return None
        try:
            state = await asyncio.to_thread(self._store.load, token)
            age_s = time.time() - state.started_at
            if age_s > self.settings.session_store.max_age_s:
                raise ResumeError(f"conversation begun {age_s:.0f} s ago: past max_age_s")
            return state
        except ResumeError as exc:
            log.info("resume refused: %s", exc)
        except Exception:
            log.warning("session store unavailable: starting a new conversation", exc_info=True)
        return None

    def _host_allowed(self, host: str | None) -> bool:
        security = self.settings.security
        return host_allowed(host, self._auth.required, security.behind_auth_proxy)

    def _refusal(
        self, websocket: WebSocket, credential: Credential | None, resuming: bool
    ) -> _Close | None:
        """(HTTP status, message) when the upgrade may not proceed. A valid resume token is a
        credential too: it was issued to an admitted session (a page's 60 s token has expired
        by the time its connection drops)."""
        origin = websocket.headers.get("origin")
        host = websocket.headers.get("host")
        if not self._host_allowed(host):
            return 403, NOT_LOOPBACK
        if not origin_allowed(origin, host, self.settings.security.allowed_origins):
            log.info("WebSocket from origin %r refused (not %s)", origin, host)
            return 403, "this page's origin may not open sessions here"
        if not resuming and not self._auth.allows(credential, time.time()):
            return 401, "an API key or session token is required (docs/security.md)"
        return None

    async def _admit(self) -> bool:
        """Take a session's place on this replica (and in all, with max_sessions_total)."""
        if self._admitted >= self._max_sessions:
            return False
        self._admitted += 1  # before any await: two upgrades cannot both take the last place
        total = self.settings.security.max_sessions_total
        if total is None:
            return True
        try:
            acquire = self._session_ledger().acquire.remote(self._replica, total)
            async with asyncio.timeout(LEDGER_TIMEOUT_S):
                if await acquire:
                    return True
        except asyncio.CancelledError:  # the client left (Serve cancels its request): no place
            self._admitted -= 1
            raise
        except Exception:  # the count across replicas is lost: this replica's limit still holds
            log.warning(
                "session ledger unavailable; admitting on this replica's count", exc_info=True
            )
            return True
        self._admitted -= 1
        return False

    async def _release(self) -> None:
        self._admitted -= 1
        if self._ledger is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(LEDGER_TIMEOUT_S):
                    await self._ledger.release.remote(self._replica)

    def _session_ledger(self) -> Any:
        if self._ledger is None:
            app = serve.get_replica_context().app_name
            actor = ray.remote(num_cpus=0)(SessionLedgerActor)
            self._ledger = actor.options(
                name=ledger_name(app),
                namespace=LEDGER_NAMESPACE,
                get_if_exists=True,
                lifetime="detached",
            ).remote(LEDGER_LEASE_S)
            self._heartbeat = asyncio.create_task(self._report_sessions())
        return self._ledger

    async def _report_sessions(self) -> None:
        """Renew this replica's count in the ledger before its lease lapses."""
        while True:
            await asyncio.sleep(LEDGER_LEASE_S / 3)
            with contextlib.suppress(Exception):
                await self._ledger.report.remote(self._replica, self._admitted)

    async def _turn_away(self, websocket: WebSocket, subprotocol: str | None) -> None:
        """Over the limit: accepted only to say so (an error event, then close 1013), so a
        client can tell "busy, retry" from a refused key."""
        wait = self.settings.security.busy_retry_after_s
        await websocket.accept(subprotocol=subprotocol)
        busy = ErrorEvent(
            code=ErrorCode.SERVER_BUSY.value,
            message=f"the server is at capacity: try again in {wait:g} s",
            retryable=True,
            retry_after_s=wait,
            error_id=uuid.uuid4().hex,
        )
        log.info("session refused: %d sessions on this replica (%s)", self._admitted, busy.error_id)
        with contextlib.suppress(Exception):
            await websocket.send_text(encode_server_event(busy))
            await websocket.close(CLOSE_TRY_AGAIN_LATER, f"server busy: retry after {wait:g} s")

    async def _converse(
        self,
        websocket: WebSocket,
        restored: SessionState | None,
        replaces: str | None,
        release: Callable[[], Awaitable[None]],
    ) -> None:
        session_id = restored.session_id if restored is not None else uuid.uuid4().hex
        resume_token, token_digest = new_resume_token(session_id) if self._store else (None, "")
        saver: SessionSaver | None = None
        stages = await self._get_stages()
        security = self.settings.security
        queue = SendQueue(security.send_queue_bytes, security.send_stall_s)
        ready = asyncio.Event()

        async def send(item: Outgoing) -> None:
            # The one place a session's typed output is encoded for the wire. Never blocks: a
            # slow client fills its queue, not the session.
            if isinstance(item, MediaFrame):
                out = Outbound(encode_media_frame(item), droppable=item.kind == MediaKind.VIDEO)
            else:
                if isinstance(item, ErrorEvent):
                    item = _public_error(item, session_id)
                out = Outbound(encode_server_event(item))
                if saver is not None and isinstance(item, SAVE_AFTER):
                    saver.changed()
            queue.put(out, time.monotonic())
            ready.set()

        session = Session(
            session_id,
            self.settings,
            self._vad,
            stages,
            send,
            telemetry=self._telemetry,
            restored=restored,
            resume_token=resume_token,
        )
        if self._store is not None:
            started_at = restored.started_at if restored is not None else time.time()
            epoch = self._auth.epoch

            def state() -> SessionState:
                return dataclasses.replace(session.state(), started_at=started_at, auth_epoch=epoch)

            saver = SessionSaver(self._store, state, token_digest, replaces)
        self._sessions[session_id] = session
        self._queues[session_id] = queue
        if saver is not None:
            self._savers[session_id] = saver
        sender = asyncio.create_task(_drain(websocket, queue, ready))
        watcher = asyncio.create_task(self._watch_transport(websocket, queue, ready))
        receiver: asyncio.Task[_Close | None] | None = None
        taken = asyncio.create_task(saver.taken_over()) if saver is not None else None
        close: _Close | None = None
        try:
            await session.start()
            guard = SessionGuard(self._limits, time.monotonic())
            receiver = asyncio.create_task(self._receive(websocket, session, guard, send))
            ends: set[asyncio.Task[Any]] = {sender, receiver} | ({taken} if taken else set())
            done, _ = await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            if taken in done and receiver not in done and sender not in done:
                # Resumed by another connection (the client reconnected; this one it left).
                await send(_limit_error(ErrorCode.SESSION_TAKEN_OVER, TAKEN_OVER))
                close = CLOSE_TAKEN_OVER, TAKEN_OVER
                ready.set()
                await _flushed(queue, sender, timeout_s=1.0)
            elif receiver in done:
                close = receiver.result()
                if close is not None:  # its error event is queued: let it go out first
                    ready.set()
                    await _flushed(queue, sender, timeout_s=1.0)
            else:
                close = sender.result()
                if close is not None:
                    self._closed_not_reading += 1
                    log.warning("session %s: %s", session_id, close[1])
        except Exception:
            log.exception("session %s ended by an error", session_id)
        finally:
            # Only this connection's entries: a resume may have put its successor's there.
            for live, mine in (
                (self._sessions, session),
                (self._queues, queue),
                (self._savers, saver),
            ):
                if live.get(session_id) is mine:
                    del live[session_id]
            await release()
            self._queue_peak_bytes = max(self._queue_peak_bytes, queue.peak_bytes)
            self._video_dropped += queue.dropped
            self._bytes_sent += queue.sent_bytes
            tasks = [t for t in (sender, receiver, watcher, taken) if t is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            closing = asyncio.create_task(session.close())
            if not (await asyncio.wait({closing}, timeout=CLOSE_TIMEOUT_S))[0]:
                # A model call that does not stop when cancelled: logged, left to finish alone.
                log.warning(
                    "session %s: its tasks did not stop in %g s", session_id, CLOSE_TIMEOUT_S
                )
                self._background.add(closing)
                closing.add_done_callback(self._background.discard)
            if saver is not None:
                # The last save runs on its own: the session's place is free at once (a client
                # reconnecting at the limit is not turned away while it writes).
                final = asyncio.create_task(saver.close())
                self._background.add(final)
                final.add_done_callback(self._background.discard)
            if close is not None and websocket.client_state is WebSocketState.CONNECTED:
                # Bounded: the close frame may be stuck behind what the client never read.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2.0):
                        await websocket.close(*close)

    async def _watch_transport(
        self, websocket: WebSocket, queue: SendQueue, ready: asyncio.Event
    ) -> None:
        """Tell the queue, once a second, what the kernel still holds for this client: behind
        Serve's proxy that is the only sign of a client that stopped reading. Only where the
        proxy that holds the connection runs on this machine (always with `dandelion serve`);
        elsewhere the connection is not found and nothing changes."""
        peer = websocket.scope.get("client")
        if self._http_port is None or not peer or not peer[1]:
            return
        try:
            key = (normal_address(str(peer[0])), int(peer[1]))
        except ValueError:
            return
        while True:
            await asyncio.sleep(1.0)
            unsent = [
                count
                for (_, local_port, *remote), count in self._tcp_table().items()
                if local_port == self._http_port and tuple(remote) == key
            ]
            queue.note_transport(max(unsent, default=0), time.monotonic())
            ready.set()  # the sender looks at the queue again

    def _tcp_table(self) -> dict[TcpKey, int]:
        """This machine's TCP connections and their send queues, read at most once a second
        for all sessions of the replica."""
        read_at, table = self._tcp
        now = time.monotonic()
        if now - read_at >= 0.9:
            table = {}
            for name in ("/proc/net/tcp", "/proc/net/tcp6"):
                with contextlib.suppress(OSError), open(name) as listing:
                    table.update(parse_tcp_table(listing.read()))
            self._tcp = (now, table)
        return table

    async def _receive(
        self,
        websocket: WebSocket,
        session: Session,
        guard: SessionGuard,
        send: Callable[[Outgoing], Awaitable[None]],
    ) -> _Close | None:
        """Feed client messages to the session until the client leaves (None) or a limit ends
        the session: (close code, reason), its error event already sent to the queue."""
        while True:
            left = guard.seconds_left(time.monotonic())
            try:
                async with asyncio.timeout(max(left, 0.01)):
                    message = await websocket.receive()
            except TimeoutError:
                expiry = guard.expiry(time.monotonic())
                if expiry is None:
                    continue
                await send(_limit_error(ErrorCode.SESSION_EXPIRED, expiry.message))
                return CLOSE_NORMAL, expiry.message
            if message["type"] == "websocket.disconnect":
                return None
            data = message.get("bytes")
            audio = len(data) if data is not None and len(data) <= MAX_AUDIO_FRAME_BYTES else 0
            decision = guard.on_message(time.monotonic(), audio)
            if decision.verdict is Verdict.ACCEPT:
                try:
                    await session.receive(data if data is not None else message.get("text", ""))
                except Exception as exc:  # a bug must not end the conversation
                    await session.report_internal_error(exc)
            elif decision.verdict is Verdict.WARN:
                await send(_limit_error(ErrorCode.RATE_LIMITED, decision.reason))
            elif decision.verdict is Verdict.CLOSE:
                await send(_limit_error(ErrorCode.RATE_LIMITED, decision.reason))
                return CLOSE_POLICY_VIOLATION, decision.reason


async def _drain(websocket: WebSocket, queue: SendQueue, ready: asyncio.Event) -> _Close | None:
    """Send the queue's messages in order until the socket is gone (None) or the client is not
    reading: (1008, reason)."""
    not_reading = (CLOSE_POLICY_VIOLATION, f"client not reading for {queue.stall_s:g} s")
    while True:
        item = queue.pop()
        if item is None:
            if queue.stalled(time.monotonic()):
                return not_reading
            ready.clear()
            # asyncio.timeout, never wait_for, in these loops: on Python 3.11 wait_for drops a
            # cancel that arrives as the event is set, and the loop (and teardown) ran for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await ready.wait()
            continue
        try:
            async with asyncio.timeout(queue.stall_s):
                if isinstance(item.data, bytes):
                    await websocket.send_bytes(item.data)
                else:
                    await websocket.send_text(item.data)
        except TimeoutError:
            return not_reading
        except Exception:  # the socket is closed
            return None
        if queue.stalled(time.monotonic()):
            return not_reading


def _alive_nodes() -> int:
    """The Ray cluster's live nodes (0 when Ray cannot tell)."""
    try:
        nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        return len([node for node in nodes if node.get("Alive")])
    except Exception:
        return 0


async def _flushed(queue: SendQueue, sender: asyncio.Task[Any], timeout_s: float) -> None:
    """Wait (at most `timeout_s`) until the sender has sent what is queued."""
    deadline = time.monotonic() + timeout_s
    while len(queue) and not sender.done() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def _public_error(event: ErrorEvent, session_id: str) -> ErrorEvent:
    """The error as a client may see it: a public message and an error_id; what was hidden is
    logged under that id."""
    error_id = event.error_id or uuid.uuid4().hex
    message = public_message(event.code, event.message)
    # Every id is findable in the log, with the full text: what the client saw may be less.
    level = logging.WARNING if message != event.message else logging.INFO
    log.log(level, "session %s: error %s (%s): %s", session_id, error_id, event.code, event.message)
    return dataclasses.replace(event, message=message, error_id=error_id)


def _limit_error(code: ErrorCode, message: str) -> ErrorEvent:
    wait = RATE_LIMITED_RETRY_S if code is ErrorCode.RATE_LIMITED else None
    return ErrorEvent(
        code=code.value, message=message, retryable=code in RETRYABLE_CODES, retry_after_s=wait
    )


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {
            "error": "unauthorized",
            "message": "an API key (Authorization: Bearer KEY) or a session token (?token=...) "
            "is required (docs/security.md)",
        },
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def _deny(websocket: WebSocket, status: int, message: str) -> None:
    """Refuse an upgrade before accepting it: an HTTP status with a JSON body where the server
    supports it (uvicorn does, through Serve's proxy), else close 1008 (which is HTTP 403)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        error = "unauthorized" if status == 401 else "forbidden"
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        body = JSONResponse({"error": error, "message": message}, status, headers=headers)
        await websocket.send_denial_response(body)
    else:
        await websocket.close(CLOSE_POLICY_VIOLATION, message[:120])


def _serve_http_address() -> tuple[str | None, int | None]:
    """The address and port Serve's HTTP proxies bind (`http_options`), as its controller has
    them; None where it does not say."""
    try:
        from ray.serve.context import _get_global_client

        client = _get_global_client()
        config = client.http_config if client is not None else None
    except Exception:
        log.warning("could not read Serve's HTTP bind address", exc_info=True)
        return None, None
    if config is None:
        return None, None
    return (str(config.host) if config.host else None), (int(config.port) if config.port else None)
