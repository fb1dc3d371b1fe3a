"""A server safe on a network, shown on a real Serve app on loopback: API keys and session tokens
on the WebSocket and the HTTP routes, a foreign Origin refused, the page in Chromium with its
token, a session over the limit turned away while the others answer, a message flood cut off, a
client that never reads, error events without internals, and no start off loopback without keys.

The app here (`/secure`, SmolLM2) has its own keys and limits; it runs beside the shared app when
that one is up in this process (one Ray cluster per process), else in a cluster of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dandelion.auth import hash_key
from dandelion.config import AppSettings
from dandelion.eval.server import free_port

pytestmark = pytest.mark.integration

KEY = f"test-key-{secrets.token_hex(8)}"
APP = "dandelion-security"
PREFIX = "/secure"
MAX_SESSIONS = 2
SEND_QUEUE_BYTES = 256 * 1024
HEX_ID = re.compile(r"[0-9a-f]{32}")
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SecureApp:
    http: str  # http://127.0.0.1:PORT/secure
    ws: str  # ws://127.0.0.1:PORT/secure/v1/session
    port: int

    def gateway(self) -> dict[str, Any]:
        """The gateway replica's own figures (its pid, sessions, send queues)."""
        from ray import serve

        handle = serve.get_deployment_handle("Gateway", app_name=APP)
        stats: dict[str, Any] = handle.stats.remote().result(timeout_s=30)
        return stats

    def sessions_counted_in_all(self) -> int:
        """The sessions the ledger actor counts across gateway replicas (max_sessions_total)."""
        import ray

        from dandelion.serve.gateway import LEDGER_NAMESPACE, ledger_name

        ledger = ray.get_actor(ledger_name(APP), namespace=LEDGER_NAMESPACE)
        total: int = ray.get(ledger.total.remote(), timeout=30)
        return total

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Until the gateway holds no session (a closed one is released a moment later)."""
        deadline = time.monotonic() + timeout_s
        while self.gateway()["admitted"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.gateway()["admitted"] == 0, self.gateway()


@pytest.fixture(scope="module")
def app() -> Iterator[SecureApp]:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve
    from ray.serve.context import _get_global_client

    from dandelion.serve.app import build_app
    from dandelion.serve.gateway import LEDGER_NAMESPACE, ledger_name

    started = not ray.is_initialized()
    if started:
        port = free_port()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
    else:  # the shared app's cluster: its proxy, its port
        client = _get_global_client()
        assert client is not None
        port = int(client.http_config.port)
    small = {"num_cpus": 0.1}
    settings = AppSettings.model_validate(
        {
            # n_ctx 512: a long system prompt makes the LLM fail for real (an error to read).
            "llm": {"model": "smollm2-135m", "n_ctx": 512},
            "deployments": {name: small for name in ("asr", "llm", "tts", "avatar")}
            | {"gateway": {"num_cpus": 0.1, "max_ongoing_requests": 1000}},
            "security": {
                "api_key_hashes": [hash_key(KEY)],
                # Hashes alone sign no token (they are safe to commit): a secret of its own.
                "token_secret": "test-token-secret",
                "max_sessions_per_replica": MAX_SESSIONS,
                # Not reached with one replica: its count in the ledger actor is checked.
                "max_sessions_total": MAX_SESSIONS + 1,
                "max_messages_per_s": 100,
                "message_burst": 200,
                "rate_limit_close_s": 2.0,
                "send_queue_bytes": SEND_QUEUE_BYTES,
                "send_stall_s": 2.0,
            },
        }
    )
    serve.run(build_app(settings), name=APP, route_prefix=PREFIX)
    try:
        yield SecureApp(
            f"http://127.0.0.1:{port}{PREFIX}", f"ws://127.0.0.1:{port}{PREFIX}/v1/session", port
        )
    finally:
        serve.delete(APP)
        with contextlib.suppress(ValueError):  # detached: it outlives the app otherwise
            ray.kill(ray.get_actor(ledger_name(APP), namespace=LEDGER_NAMESPACE))
        if started:
            serve.shutdown()
            ray.shutdown()


# ---------------------------------------------------------------- helpers


def _http(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def _bearer(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _mint(app: SecureApp) -> dict[str, Any]:
    status, body = _http(f"{app.http}/v1/session-tokens", "POST", _bearer())
    assert status == 200, body
    token: dict[str, Any] = json.loads(body)
    return token


def _connect(url: str, **options: Any) -> Any:
    from websockets.sync.client import connect

    return connect(url, max_size=None, open_timeout=30, **options)


def _refused_status(url: str, **options: Any) -> int:
    """The HTTP status a WebSocket upgrade was refused with."""
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        _connect(url, **options).close()
    return int(refused.value.response.status_code)


def _created(ws: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(ws.recv(timeout=60))
    assert event["type"] == "session.created", event
    return event


def _next_event(ws: Any, kind: str, timeout_s: float = 30) -> dict[str, Any]:
    """The next JSON event of `kind` (media and other events skipped)."""
    deadline = time.monotonic() + timeout_s
    while True:
        message = ws.recv(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(message, str):
            event: dict[str, Any] = json.loads(message)
            if event["type"] == kind:
                return event


def _answers(ws: Any) -> bool:
    """A session.update gets its session.updated: the session is being served."""
    update = {"type": "session.update", "session": {"instructions": "Be brief."}}
    ws.send(json.dumps(update))
    return _next_event(ws, "session.updated")["instructions"] == "Be brief."


# ---------------------------------------------------------------- keys and tokens


def test_http_routes_need_a_key_or_token_except_health(app: SecureApp) -> None:
    assert _http(f"{app.http}/healthz")[0] == 200
    assert _http(f"{app.http}/web/app.js")[0] == 200  # the page's code is public
    status, body = _http(f"{app.http}/")
    assert status == 401 and json.loads(body)["error"] == "unauthorized"
    assert _http(f"{app.http}/?token=wrong")[0] == 401
    assert _http(f"{app.http}/", headers=_bearer("wrong"))[0] == 401
    assert _http(f"{app.http}/", headers=_bearer())[0] == 200
    still = urllib.request.Request(f"{app.http}/avatar.jpg", headers=_bearer())
    with urllib.request.urlopen(still, timeout=30) as response:
        assert response.status == 200
        # Behind a key: no shared cache (a proxy, a CDN) may keep it for others.
        assert response.headers["Cache-Control"].startswith("private"), response.headers
    # Tokens: minted with a key only (not with a token, not from the URL).
    assert _http(f"{app.http}/v1/session-tokens", "POST")[0] == 401
    assert _http(f"{app.http}/v1/session-tokens", "POST", _bearer("wrong"))[0] == 401
    assert _http(f"{app.http}/v1/session-tokens?token={KEY}", "POST")[0] == 401
    minted = _mint(app)
    assert minted["expires_at"] == pytest.approx(time.time() + 60, abs=5)
    token = minted["token"]
    assert _http(f"{app.http}/v1/session-tokens", "POST", _bearer(token))[0] == 401
    page = _http(f"{app.http}/?token={token}")
    assert page[0] == 200 and b"<title>Dandelion</title>" in page[1]
    assert _http(f"{app.http}/avatar.jpg?token={token}")[0] == 200


def test_the_websocket_needs_a_key_or_token(app: SecureApp) -> None:
    app.wait_idle()
    assert _refused_status(app.ws) == 401
    assert _refused_status(app.ws, additional_headers=_bearer("wrong")) == 401
    token = _mint(app)["token"]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert _refused_status(f"{app.ws}?token={forged}") == 401
    assert _refused_status(app.ws, subprotocols=[f"dandelion.token.{forged}"]) == 401
    with _connect(app.ws, additional_headers=_bearer()) as ws:
        _created(ws)
    with _connect(f"{app.ws}?token={token}") as ws:
        _created(ws)
    entry = f"dandelion.token.{token}"
    with _connect(app.ws, subprotocols=[entry]) as ws:
        assert ws.subprotocol == entry  # echoed, as a browser requires
        _created(ws)


def test_the_python_client_sends_its_api_key(app: SecureApp) -> None:
    import asyncio

    from dandelion_client.file_mode import run_file_session
    from websockets.exceptions import InvalidStatus

    app.wait_idle()
    recorder = asyncio.run(run_file_session(app.ws, [], api_key=KEY))
    assert recorder.first("session.created") and recorder.first("conversation.history")
    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(run_file_session(app.ws, []))
    assert refused.value.response.status_code == 401


def test_a_foreign_origin_is_refused(app: SecureApp) -> None:
    app.wait_idle()
    assert _refused_status(app.ws, additional_headers=_bearer(), origin="https://evil.example") == (
        403
    )
    own = f"http://127.0.0.1:{app.port}"
    with _connect(app.ws, additional_headers=_bearer(), origin=own) as ws:
        _created(ws)


def test_the_page_opens_its_session_with_its_token_in_chromium(app: SecureApp) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: apt-get install chromium (scripts/test does)")
    app.wait_idle()
    token = _mint(app)["token"]
    args = [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        "--autoplay-policy=no-user-gesture-required",
    ]  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=False, args=args)
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.goto(f"{app.http}/?token={token}&autostart=1")
            page.wait_for_function(
                "window.dandelion && window.dandelion.events.some("
                "e => e.type === 'session.created')",
                timeout=60_000,
            )
            assert page.evaluate("window.dandelion.connected"), console
            assert page.evaluate("window.dandelion.closes") == [], console
            # Its session answers (the page asked for the avatar's video).
            page.wait_for_function(
                "window.dandelion.events.some(e => e.type === 'session.updated')", timeout=30_000
            )
        finally:
            browser.close()
    # Without a token, the page is not served.
    assert _http(f"{app.http}/?autostart=1")[0] == 401


# ---------------------------------------------------------------- limits


def test_a_session_over_the_limit_is_turned_away_while_the_others_answer(app: SecureApp) -> None:
    from websockets.exceptions import ConnectionClosed

    app.wait_idle()
    with contextlib.ExitStack() as stack:
        sessions = [
            stack.enter_context(_connect(app.ws, additional_headers=_bearer()))
            for _ in range(MAX_SESSIONS)
        ]
        for ws in sessions:
            _created(ws)
        with _connect(app.ws, additional_headers=_bearer()) as extra:
            busy = json.loads(extra.recv(timeout=30))
            with pytest.raises(ConnectionClosed):
                extra.recv(timeout=30)
            assert extra.close_code == 1013
            assert extra.close_reason == "server busy: retry after 5 s"
        assert busy["type"] == "error" and busy["code"] == "server_busy", busy
        assert busy["retryable"] is True and busy["retry_after_s"] == 5.0
        assert HEX_ID.fullmatch(busy["error_id"]), busy
        # An operator finds the refusal in the gateway replica's own log file, by its id.
        assert _logged(busy["error_id"], f"serve/replica_{APP}_Gateway_*.log")
        for ws in sessions:  # sessions 1..N are unaffected
            assert _answers(ws)
        assert app.sessions_counted_in_all() == MAX_SESSIONS
        sessions[0].close()
        deadline = time.monotonic() + 10
        while app.gateway()["admitted"] >= MAX_SESSIONS and time.monotonic() < deadline:
            time.sleep(0.1)
        with _connect(app.ws, additional_headers=_bearer()) as again:  # its place is free again
            _created(again)
            assert _answers(again)
        assert _answers(sessions[1])


def test_a_message_flood_is_warned_then_cut_off(app: SecureApp) -> None:
    from websockets.exceptions import ConnectionClosed

    app.wait_idle()
    events: list[dict[str, Any]] = []
    with _connect(app.ws, additional_headers=_bearer()) as ws:
        _created(ws)
        deadline = time.monotonic() + 20
        with pytest.raises(ConnectionClosed):
            while time.monotonic() < deadline:  # ~500 pings a second, answers read between
                for _ in range(10):
                    ws.send('{"type":"ping"}')
                time.sleep(0.02)
                while True:
                    try:
                        message = ws.recv(timeout=0)
                    except TimeoutError:
                        break
                    if isinstance(message, str):
                        events.append(json.loads(message))
        assert ws.close_code == 1008, (ws.close_code, ws.close_reason)
        assert ws.close_reason == "over 100 messages a second for too long"
    errors = [e for e in events if e["type"] == "error"]
    assert [e["code"] for e in errors] == ["rate_limited", "rate_limited"], errors
    assert all(e["retryable"] and e["retry_after_s"] == 1.0 for e in errors)
    assert errors[0]["message"] == "over 100 messages a second: messages dropped"


def test_a_client_that_never_reads_is_cut_off_with_bounded_memory(app: SecureApp) -> None:
    """A client that asks for the avatar's video (~0.5 MB/s), keeps sending audio, never reads.

    Behind Ray Serve the gateway's sends never wait (Serve's HTTP proxy queues for the client
    without bound), so its queue stays near empty; what tells is the kernel's send queue of the
    proxy's connection to this client, which the gateway reads (the proxy runs on this machine).
    Once that is full for `send_stall_s`, the session is closed and stops making output. The
    gateway's memory, and the proxy's, are measured; the proxy keeps what it holds until the
    client goes (docs/security.md, "A client that stops reading").
    """
    import psutil

    app.wait_idle()
    before = app.gateway()
    gateway = psutil.Process(before["pid"])
    # This cluster's HTTP proxy (Ray started it under this process), not another test run's.
    proxies = [
        p
        for p in psutil.Process().children(recursive=True)
        if "ProxyActor" in p.name() + " ".join(p.cmdline())
    ]
    assert proxies, "Serve's HTTP proxy process not found"

    def proxy_rss() -> int:
        return sum(p.memory_info().rss for p in proxies)

    proxy_before, rss_before = proxy_rss(), gateway.memory_info().rss
    sock = socket.create_connection(("127.0.0.1", app.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # max_queue=1: the client library stops reading the socket once a message waits unread.
    options = {"max_queue": 1, "ping_interval": None, "close_timeout": 1}
    with _connect(app.ws, sock=sock, additional_headers=_bearer(), **options) as ws:
        ws.send(json.dumps({"type": "session.update", "session": {"video": "jpeg"}}))
        started = time.monotonic()
        samples, cut_after = [], None
        while time.monotonic() - started < 60:
            for _ in range(50):  # 1 s of 20 ms silence frames: not an idle client
                ws.send(bytes(640))
                time.sleep(0.02)
            samples.append(gateway.memory_info().rss)
            stats = app.gateway()
            if stats["closed_not_reading"] > before["closed_not_reading"]:
                cut_after = time.monotonic() - started
                break
        assert cut_after is not None, f"not cut off in 60 s: {app.gateway()}"
        made = stats["bytes_sent"] - before["bytes_sent"]
        at_cut = proxy_rss()
        time.sleep(5)  # nothing more is made for it
        after_cut = proxy_rss()
        sock.close()  # the client goes away as it came: without reading
    growth = max(samples) - rss_before
    print(
        f"\nnever-reading client with video: cut off after {cut_after:.0f} s, the gateway having "
        f"made {made / 2**20:.1f} MiB for it; gateway RSS +{growth / 2**20:.1f} MiB (peak), its "
        f"send queues at most {stats['send_queue_peak_bytes'] / 1024:.0f} KiB, "
        f"{stats['video_frames_dropped'] - before['video_frames_dropped']} video frames dropped; "
        f"Serve's proxy RSS +{(at_cut - proxy_before) / 2**20:.1f} MiB at the cut, "
        f"+{(after_cut - proxy_before) / 2**20:.1f} MiB 5 s later"
    )
    assert app.gateway()["sessions"] == 0  # the session is gone, and with it its output
    assert stats["send_queue_peak_bytes"] <= 2 * SEND_QUEUE_BYTES
    assert growth < 64 * 2**20, f"the gateway grew {growth / 2**20:.0f} MiB"
    assert after_cut - at_cut < 4 * 2**20, "the proxy kept growing after the cut"


# ---------------------------------------------------------------- errors


def test_an_error_event_reveals_no_internals(app: SecureApp, speech: dict[str, Path]) -> None:
    """A real failure in the LLM replica (its prompt is over n_ctx): Ray hands the gateway a
    traceback with actor ids, hosts, pids and paths; the client gets a code, a sentence and an
    id that the gateway's log holds the traceback under."""
    from dandelion_client.audio import load_audio, to_pcm16

    app.wait_idle()
    pcm = to_pcm16(load_audio(speech["capital"])) + bytes(32_000 * 3)
    with _connect(app.ws, additional_headers=_bearer()) as ws:
        _created(ws)
        long = {"type": "session.update", "session": {"instructions": "Say yes. " * 800}}
        ws.send(json.dumps(long))
        _next_event(ws, "session.updated")
        for offset in range(0, len(pcm), 640):  # in real time: the server's clock is the audio
            ws.send(pcm[offset : offset + 640])
            time.sleep(0.02)
        error = _next_event(ws, "error", timeout_s=120)
    raw = json.dumps(error)
    assert error["code"] == "llm_failed" and error["turn_id"] is not None, error
    assert error["message"] == "the language model failed on this turn"
    assert HEX_ID.fullmatch(error["error_id"]), error
    for internal in ("Traceback", "ActorID", "actor_id", "pid", "ray::", "/", "File "):
        assert internal not in raw, raw
    assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", raw), raw
    # The gateway replica's log file has the full story under that id.
    logged = _logged(error["error_id"], f"serve/replica_{APP}_Gateway_*.log")
    assert any("exceed context window" in path.read_text(errors="replace") for path in logged)


def _logged(text: str, pattern: str) -> list[Path]:
    """The files under this Ray session's logs/ matching `pattern` that hold `text` (waited
    for a moment: a replica's log lines are written as they come, not read back at once)."""
    import ray

    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    deadline = time.monotonic() + 10
    while True:
        found = [p for p in logs.glob(pattern) if text in p.read_text(errors="replace")]
        if found or time.monotonic() > deadline:
            assert found, f"{text!r} is in no {pattern} under {logs}"
            return found
        time.sleep(0.2)


# ---------------------------------------------------------------- off loopback


def test_off_loopback_without_keys_the_cli_refuses_to_start() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANDELION_API_KEY")}
    command = [sys.executable, "-m", "dandelion.cli", "serve", "--host", "0.0.0.0"]
    result = subprocess.run(
        [*command, "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result
    for what in ("DANDELION_API_KEYS", "security.api_key_hashes", "--behind-auth-proxy"):
        assert what in result.stderr, result.stderr
    assert "Starting Ray" not in result.stdout


SERVE_OFF_LOOPBACK = """
import os, sys
os.environ["RAY_AUTH_MODE"] = "disabled"
import ray
from ray import serve
from dandelion.config import AppSettings
from dandelion.serve.app import build_app
ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
serve.start(http_options={"host": "0.0.0.0", "port": int(sys.argv[1])})
small = {"num_cpus": 0.1}
settings = AppSettings.model_validate({
    "llm": {"model": "smollm2-135m"}, "avatar": {"enabled": False},
    "deployments": {name: small for name in ("gateway", "asr", "llm", "tts")},
})
try:
    serve.run(build_app(settings), name="open", route_prefix="/")
except Exception as exc:
    # What `serve status` shows an operator: the gateway's own words.
    gateway = serve.status().applications["open"].deployments["Gateway"]
    print("REFUSED:", exc, gateway.status, gateway.message)
else:
    print("STARTED")
finally:
    ray.shutdown()
"""


def test_off_loopback_without_keys_the_serve_app_refuses_to_start(tmp_path: Path) -> None:
    """`serve run`/`serve deploy` configs pick their own bind address: the gateway checks it."""
    script = tmp_path / "serve_off_loopback.py"
    script.write_text(SERVE_OFF_LOOPBACK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANDELION_API_KEY")}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run(
        [sys.executable, str(script), str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert "STARTED" not in result.stdout, result.stdout
    assert "REFUSED:" in result.stdout, f"{result.stdout}\n{result.stderr[-3000:]}"
    assert "refusing to serve on 0.0.0.0 without API keys" in result.stdout, result.stdout
