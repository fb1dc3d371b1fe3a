"""API keys, session tokens, origins, the bind-address rule, and what an error may tell a client."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dandelion.auth import (
    API_KEYS_ENV,
    TOKEN_SECRET_ENV,
    Authenticator,
    Credential,
    env_key_hashes,
    exposure_error,
    hash_key,
    host_allowed,
    is_loopback,
    origin_allowed,
    presented_credential,
    secret_from_keys,
    token_subprotocol,
)
from dandelion.config import AppSettings, SecuritySettings
from dandelion.errors import SettingsError
from dandelion.profiles import profile_settings
from dandelion.protocol import ErrorCode, encode_server_event
from dandelion.protocol import events as ev
from dandelion.protocol.errors import RETRYABLE_CODES, public_message

KEY = "correct horse battery staple"
NOW = 1_800_000_000.0


def _auth(*keys: str, ttl: float = 60.0, secret: bytes | None = None) -> Authenticator:
    """Keys given plain (as in $DANDELION_API_KEYS): tokens signed with a secret from them."""
    return Authenticator([hash_key(k) for k in keys], secret or secret_from_keys(keys), ttl)


def test_key_hashes_alone_sign_no_token() -> None:
    # Hashes are safe to commit: a secret derived from them would let their readers mint.
    from_hashes = Authenticator.from_settings(SecuritySettings(api_key_hashes=(hash_key(KEY),)), {})
    with pytest.raises(ValueError, match="DANDELION_TOKEN_SECRET"):
        from_hashes.mint(NOW)
    forged = Authenticator([hash_key(KEY)], secret_from_keys([hash_key(KEY)])).mint(NOW).token
    assert not from_hashes.is_session_token(forged, NOW)
    assert not _auth(KEY).is_session_token(forged, NOW)


# ---------------------------------------------------------------- API keys


def test_keys_are_checked_against_their_hashes() -> None:
    auth = _auth(KEY, "another key")
    assert auth.required
    assert auth.is_api_key(KEY)
    assert auth.is_api_key("another key")
    assert not auth.is_api_key("wrong")
    assert not auth.is_api_key(KEY + " ")
    assert not auth.is_api_key("")
    assert not auth.is_api_key("caf\udce9")  # undecodable header bytes do not raise


def test_no_keys_means_open_and_nothing_to_sign_with() -> None:
    auth = Authenticator([])
    assert not auth.required
    assert auth.allows(None, NOW)
    with pytest.raises(ValueError, match="no API keys"):
        auth.mint(NOW)
    assert not auth.is_session_token("dt1.1.a.b", NOW)


def test_keys_come_from_settings_and_the_environment() -> None:
    security = SecuritySettings(api_key_hashes=(hash_key("from settings").upper(),))
    auth = Authenticator.from_settings(security, {API_KEYS_ENV: " from env , second,, "})
    assert all(auth.is_api_key(k) for k in ("from settings", "from env", "second"))
    assert not auth.is_api_key("")
    assert env_key_hashes(None) == ()
    assert env_key_hashes(" , ") == ()


def test_a_settings_file_with_a_plain_key_is_refused_without_repeating_it(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("security: {api_key_hashes: [sk-live-SECRET]}\n")
    with pytest.raises(SettingsError, match="SHA-256") as refused:
        profile_settings("cpu", path)
    assert "SECRET" not in str(refused.value)
    path.write_text(f"security: {{api_key_hashes: [{hash_key(KEY)}]}}\n")
    assert profile_settings("cpu", path).security.api_key_hashes == (hash_key(KEY),)


def test_settings_check_origins() -> None:
    assert SecuritySettings(allowed_origins=("https://Talk.Example.com/",)).allowed_origins == (
        "https://talk.example.com",
    )
    with pytest.raises(ValueError, match="not an origin"):
        SecuritySettings(allowed_origins=("talk.example.com/page",))


# ---------------------------------------------------------------- session tokens


def test_a_minted_token_opens_sessions_until_it_expires() -> None:
    auth = _auth(KEY, ttl=60)
    token = auth.mint(NOW)
    assert token.expires_at == NOW + 60
    assert auth.is_session_token(token.token, NOW + 59.9)
    assert not auth.is_session_token(token.token, NOW + 60)
    assert auth.allows(Credential(token.token, "query"), NOW)
    assert not auth.allows(Credential(token.token, "query"), NOW, tokens=False)
    assert not auth.is_api_key(token.token)


def test_a_token_is_safe_in_a_subprotocol_and_a_url() -> None:
    # RFC 7230 token characters only: a browser sends it as `dandelion.token.<token>`.
    token = _auth(KEY).mint(NOW).token
    assert re.fullmatch(r"[A-Za-z0-9._-]+", token), token


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature
        lambda t: t.replace(".", ".9", 1),  # expiry pushed later
        lambda t: "dt2" + t[3:],  # version
        lambda t: t + ".x",
        lambda t: t.rsplit(".", 1)[0],
        lambda t: "",
        lambda t: "dt1.é.x.y",
    ],
)
def test_a_tampered_token_is_refused(tamper: object) -> None:
    auth = _auth(KEY)
    token = auth.mint(NOW).token
    assert callable(tamper)
    assert not auth.is_session_token(tamper(token), NOW)


def test_replicas_with_the_same_keys_or_secret_accept_each_others_tokens() -> None:
    token = _auth(KEY, "k2").mint(NOW).token
    assert _auth("k2", KEY).is_session_token(token, NOW)  # derived from the same keys
    assert not _auth("k2").is_session_token(token, NOW)  # other keys, other secret
    signed = _auth(KEY, secret=b"s3cret").mint(NOW).token
    assert _auth("other", secret=b"s3cret").is_session_token(signed, NOW)
    assert not _auth(KEY).is_session_token(signed, NOW)


def test_the_secret_comes_from_the_environment_first() -> None:
    security = SecuritySettings(token_secret="from-settings")
    by_env = Authenticator.from_settings(security, {API_KEYS_ENV: KEY, TOKEN_SECRET_ENV: "env"})
    by_settings = Authenticator.from_settings(security, {API_KEYS_ENV: KEY})
    token = by_env.mint(NOW).token
    assert _auth(KEY, secret=b"env").is_session_token(token, NOW)
    assert not by_settings.is_session_token(token, NOW)
    assert _auth(KEY, secret=b"from-settings").is_session_token(by_settings.mint(NOW).token, NOW)


# ---------------------------------------------------------------- where a credential comes from


def test_credentials_from_header_subprotocol_and_query() -> None:
    assert presented_credential({"authorization": f"Bearer {KEY}"}, {}) == Credential(KEY, "header")
    assert presented_credential({"authorization": "bearer  abc "}, {}) == Credential(
        "abc", "header"
    )
    offered = {"sec-websocket-protocol": "chat, dandelion.token.dt1.5.n.s"}
    assert presented_credential(offered, {}) == Credential(
        "dt1.5.n.s", "subprotocol", "dandelion.token.dt1.5.n.s"
    )
    assert token_subprotocol(offered) == "dandelion.token.dt1.5.n.s"
    assert presented_credential({}, {"token": "abc"}) == Credential("abc", "query")
    # The header wins; nothing usable is no credential.
    both = {"authorization": "Bearer h", **offered}
    assert presented_credential(both, {"token": "q"}) == Credential("h", "header")
    for headers in ({"authorization": "Basic abc"}, {"authorization": "Bearer "}, {}):
        assert presented_credential(headers, {"token": ""}) is None
    assert token_subprotocol({"sec-websocket-protocol": "dandelion.token."}) is None


def test_a_request_without_a_valid_credential_is_refused() -> None:
    auth = _auth(KEY)
    assert not auth.allows(None, NOW)
    assert not auth.allows(Credential("wrong", "header"), NOW)
    assert auth.allows(Credential(KEY, "header"), NOW)


# ---------------------------------------------------------------- origins


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "127.0.0.1:8000", (), True),  # a native client sends no Origin
        ("http://127.0.0.1:8000", "127.0.0.1:8000", (), True),
        ("https://talk.example.com", "talk.example.com", (), True),
        ("https://talk.example.com:443", "talk.example.com", (), True),
        ("https://talk.example.com", "talk.example.com:443", (), True),
        ("HTTP://LOCALHOST:8000/", "localhost:8000", (), True),
        ("https://evil.example", "127.0.0.1:8000", (), False),
        ("http://127.0.0.1:8001", "127.0.0.1:8000", (), False),
        ("http://localhost:8000", "127.0.0.1:8000", (), False),
        ("null", "127.0.0.1:8000", (), False),
        ("http://127.0.0.1:8000", None, (), False),
        ("https://app.example.com", "api.example.com", ("https://app.example.com",), True),
        ("https://evil.example", "api.example.com", ("https://app.example.com",), False),
        ("https://evil.example", "api.example.com", ("*",), True),
    ],
)
def test_origins(origin: str | None, host: str | None, allowed: tuple[str, ...], ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


# ---------------------------------------------------------------- the bind address


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("myhost.example", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_off_loopback_without_keys_says_exactly_what_to_set() -> None:
    assert exposure_error("127.0.0.1", keys_required=False, behind_auth_proxy=False) is None
    assert exposure_error("0.0.0.0", keys_required=True, behind_auth_proxy=False) is None
    assert exposure_error("0.0.0.0", keys_required=False, behind_auth_proxy=True) is None
    problem = exposure_error("0.0.0.0", keys_required=False, behind_auth_proxy=False)
    assert problem is not None
    for what in (API_KEYS_ENV, "security.api_key_hashes", "security.behind_auth_proxy: true"):
        assert what in problem


def test_the_session_limit_per_replica() -> None:
    settings = AppSettings()
    assert settings.security.sessions_per_replica(settings.deployments.gateway) == 2
    autoscaled = AppSettings.model_validate(
        {"deployments": {"gateway": {"autoscaling": {"target_ongoing_requests": 50}}}}
    )
    assert autoscaled.security.sessions_per_replica(autoscaled.deployments.gateway) == 100
    own = SecuritySettings(max_sessions_per_replica=7)
    assert own.sessions_per_replica(autoscaled.deployments.gateway) == 7


# ---------------------------------------------------------------- errors that reveal nothing

RAY_FAILURE = (
    "llm_failed: ray::ServeReplica:dandelion:LLM.stream() (pid=48213, ip=10.0.3.17, "
    "actor_id=9f1c2e7a3b4d5e6f7a8b9c0d01000000, repr=<dandelion.actors.llm.LLMActor object at "
    "0x7f3a>)\n"
    "Traceback (most recent call last):\n"
    '  File "/home/ray/anaconda3/lib/python3.11/site-packages/ray/serve/_private/replica.py", '
    "line 1234, in handle_request\n"
    "ValueError: Requested tokens (5000) exceed context window of 4096\n"
    "The actor died unexpectedly. ActorID: 9f1c2e7a3b4d5e6f7a8b9c0d01000000 on node "
    "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071829 at 10.0.3.17:6379 (pid 48213) "
    "/tmp/ray/session_2026-11-30/logs/worker.err"
)
INTERNALS = ("ActorID", "actor_id", "10.0.3.17", "48213", "/home/", "/tmp/", "Traceback", "File ")


@pytest.mark.parametrize("code", [c.value for c in ErrorCode])
def test_no_internals_reach_a_client_whatever_the_code(code: str) -> None:
    message = public_message(code, RAY_FAILURE)
    assert message
    assert len(message) <= 300
    for internal in INTERNALS:
        assert internal not in message, (code, message)
    assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", message), message
    assert not re.search(r"[0-9a-f]{16,}", message), message


def test_server_side_failures_get_a_fixed_sentence() -> None:
    assert public_message("llm_failed", RAY_FAILURE) == "the language model failed on this turn"
    assert public_message("internal_error", "KeyError: 'x' at /srv/app.py") == (
        "internal server error"
    )
    assert public_message("no_such_code", RAY_FAILURE) == "error"


def test_messages_about_the_clients_input_stay_useful() -> None:
    assert public_message("invalid_event", "session.update: unknown fields ['x']") == (
        "session.update: unknown fields ['x']"
    )
    not_json = "message is not JSON: Expecting value: line 1 column 1 (char 0)"
    assert public_message("invalid_json", not_json) == not_json
    for plain in (
        "unknown event type 'response.audio.resumd'",
        "audio frames: and/or 10/20 of them at 12:30",
    ):
        assert public_message("unknown_event", plain) == plain
    # An LLM server's refusal keeps what to check, not where the server is.
    message = public_message(
        "llm_unauthorized",
        "the LLM server at http://10.0.0.5:11434/v1 (model 'llama3') refused the request "
        "(HTTP 401): check the key in $GROQ_API_KEY.",
    )
    assert "10.0.0.5" not in message and "GROQ_API_KEY" in message and "HTTP 401" in message


@pytest.mark.parametrize(
    ("said", "hidden"),
    [
        ("Cannot connect to host llm.internal:8000 ssl:default", "llm.internal"),
        ("Cannot connect to host redis:6379", "redis:6379"),
        ("connect to llm.prod.svc.cluster.local failed", "svc.cluster"),
        ("api.openai.com timed out", "openai.com"),
        ("refused at localhost", "localhost"),
        ("refused at [::1]:8000", "::1"),
        ("no route to fe80::1%eth0", "fe80"),
        ("no route to 2001:db8::ff00:42:8329", "db8"),
        ("model not found in /models", "/models"),
    ],
)
def test_hosts_ips_and_paths_in_any_form_are_hidden(said: str, hidden: str) -> None:
    message = public_message("llm_unavailable", said)
    assert hidden not in message and "[" in message, message


def test_an_error_event_on_the_wire_carries_its_id_and_retry_hint() -> None:
    event = ev.ErrorEvent(code="server_busy", message="busy", retryable=True)
    assert "error_id" not in event.to_dict()  # not yet stamped by the gateway
    stamped = ev.ErrorEvent(
        code="server_busy", message="busy", retryable=True, error_id="ab" * 16, retry_after_s=5.0
    )
    assert encode_server_event(stamped) == (
        '{"type":"error","code":"server_busy","message":"busy","retryable":true,'
        '"turn_id":null,"error_id":"abababababababababababababababab","retry_after_s":5.0}'
    )
    for code in (ErrorCode.SERVER_BUSY, ErrorCode.RATE_LIMITED, ErrorCode.SESSION_EXPIRED):
        assert code in RETRYABLE_CODES


def test_a_server_without_keys_answers_only_requests_addressed_to_loopback() -> None:
    for host in ("127.0.0.1:8000", "localhost:8000", "localhost", "[::1]:8000", "127.0.0.2"):
        assert host_allowed(host, keys_required=False, behind_auth_proxy=False), host
    # DNS rebinding: a page's own name, resolved to 127.0.0.1, arrives as Host.
    for host in ("attacker.example:8000", "attacker.example", "192.0.2.1:8000", "", None):
        assert not host_allowed(host, keys_required=False, behind_auth_proxy=False), host
    assert host_allowed("talk.example.com", keys_required=True, behind_auth_proxy=False)
    assert host_allowed("talk.example.com", keys_required=False, behind_auth_proxy=True)
