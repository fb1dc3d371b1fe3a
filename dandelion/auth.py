"""Who may use the server: API keys, short-lived session tokens, page origins, and whether a bind
address may go without keys. Pure: the gateway hands in the headers, the query and the time.

API keys are kept as SHA-256 hashes only (settings `security.api_key_hashes`, or plain keys in
$DANDELION_API_KEYS, hashed as they load) and compared in constant time. A session token lets a
browser page, which cannot set an `Authorization` header on a WebSocket, open one session: it is
HMAC-signed with a server secret and carries its own expiry, so any gateway replica can check it
without shared state. Tokens are minted with an API key (`POST /v1/session-tokens`), never with
another token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import math
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from dandelion.config import SecuritySettings

API_KEYS_ENV = "DANDELION_API_KEYS"
"""Environment variable of plain API keys, comma-separated (hashed as they load)."""
TOKEN_SECRET_ENV = "DANDELION_TOKEN_SECRET"
"""Environment variable of the secret that signs session tokens (wins over the settings')."""
SUBPROTOCOL_PREFIX = "dandelion.token."
"""A `Sec-WebSocket-Protocol` entry `dandelion.token.<token>` carries a credential; the server
accepts the connection with that entry as its subprotocol, as browsers require."""
TOKEN_QUERY_PARAM = "token"
"""A credential in the URL (`?token=...`): for pages and browsers; it ends up in access logs,
so pass a session token there, not an API key."""

_TOKEN_VERSION = "dt1"
NO_KEYS = "this server has no API keys: it needs no session tokens"
NO_TOKEN_SECRET = (
    "session tokens need a secret to sign them: set DANDELION_TOKEN_SECRET (or "
    "security.token_secret), or give the keys in DANDELION_API_KEYS"
)
_DERIVED_SECRET_LABEL = b"dandelion.session-token.v1\x00"
_DEFAULT_PORTS = {"http": "80", "ws": "80", "https": "443", "wss": "443"}


def hash_key(key: str) -> str:
    """The hex SHA-256 of an API key, as `security.api_key_hashes` holds it."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def env_keys(value: str | None) -> tuple[str, ...]:
    """The plain keys in $DANDELION_API_KEYS (comma-separated; blanks ignored)."""
    return tuple(key.strip() for key in (value or "").split(",") if key.strip())


def env_key_hashes(value: str | None) -> tuple[str, ...]:
    """The hashes of the plain keys in $DANDELION_API_KEYS."""
    return tuple(hash_key(key) for key in env_keys(value))


def secret_from_keys(keys: Iterable[str]) -> bytes | None:
    """A token secret derived from plain API keys (None without any)."""
    plain = sorted(set(keys))
    if not plain:
        return None
    return hashlib.sha256(_DERIVED_SECRET_LABEL + "\n".join(plain).encode()).digest()


@dataclass(frozen=True, slots=True)
class SessionToken:
    token: str
    expires_at: int
    """Unix time (s) after which the token opens nothing."""


@dataclass(frozen=True, slots=True)
class Credential:
    """A secret a request presented, and where it was found."""

    secret: str
    source: Literal["header", "subprotocol", "query"]
    subprotocol: str | None = None
    """The `Sec-WebSocket-Protocol` entry it came in, to echo when accepting the socket."""


def presented_credential(headers: Mapping[str, str], query: Mapping[str, str]) -> Credential | None:
    """The credential of a request: `Authorization: Bearer <key>`, else a subprotocol entry
    `dandelion.token.<token>`, else the `token` query parameter. `headers` is looked up by
    lower-case name (Starlette's Headers are case-insensitive)."""
    scheme, _, value = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return Credential(value.strip(), "header")
    entry = token_subprotocol(headers)
    if entry is not None:
        return Credential(entry[len(SUBPROTOCOL_PREFIX) :], "subprotocol", entry)
    token = query.get(TOKEN_QUERY_PARAM, "").strip()
    if token:
        return Credential(token, "query")
    return None


def token_subprotocol(headers: Mapping[str, str]) -> str | None:
    """The `dandelion.token.<token>` entry a client offered in `Sec-WebSocket-Protocol`, which
    the server must echo when it accepts (a browser that offered one fails the socket without
    it)."""
    for entry in headers.get("sec-websocket-protocol", "").split(","):
        entry = entry.strip()
        if entry.startswith(SUBPROTOCOL_PREFIX) and len(entry) > len(SUBPROTOCOL_PREFIX):
            return entry
    return None


class Authenticator:
    """Checks API keys and session tokens. With no key configured, `required` is False and
    every request passes (loopback only: `exposure_error` keeps such a server off networks).

    `key_hashes`: hex SHA-256 of the accepted keys. `token_secret`: the HMAC key of session
    tokens (None: no tokens are minted or accepted). Never derived from the hashes: they are
    safe to commit, so whoever reads them could sign tokens. `token_ttl_s`: how long a minted
    token opens sessions.
    """

    def __init__(
        self, key_hashes: Iterable[str], token_secret: bytes | None = None, token_ttl_s: float = 60
    ) -> None:
        self._hashes = tuple(sorted({digest.lower() for digest in key_hashes}))
        self._secret = token_secret
        self.token_ttl_s = token_ttl_s

    @classmethod
    def from_settings(cls, security: SecuritySettings, environ: Mapping[str, str]) -> Authenticator:
        """Keys from the settings and $DANDELION_API_KEYS; the secret from
        $DANDELION_TOKEN_SECRET, else `security.token_secret`, else derived from the plain keys
        of $DANDELION_API_KEYS (secret like them; every replica given the same keys agrees)."""
        hashes = (*security.api_key_hashes, *env_key_hashes(environ.get(API_KEYS_ENV)))
        secret = environ.get(TOKEN_SECRET_ENV) or security.token_secret
        if secret:
            token_secret: bytes | None = secret.encode()
        else:
            token_secret = secret_from_keys(env_keys(environ.get(API_KEYS_ENV)))
        return cls(hashes, token_secret, security.session_token_ttl_s)

    @property
    def epoch(self) -> str:
        """A fingerprint of the configured keys ("" without keys): changes when a key is
        added or revoked."""
        if not self._hashes:
            return ""
        return hashlib.sha256("\n".join(self._hashes).encode()).hexdigest()[:16]

    @property
    def required(self) -> bool:
        """Whether requests must present a key or token (some key is configured)."""
        return bool(self._hashes)

    def is_api_key(self, presented: str) -> bool:
        """`presented` is one of the configured keys. Every hash is compared, in constant time,
        so neither which key matched nor how much of it shows in the timing."""
        digest = hash_key(presented).encode()
        matched = False
        for known in self._hashes:
            matched |= hmac.compare_digest(digest, known.encode())
        return matched

    def mint(self, now: float) -> SessionToken:
        """A token that opens sessions until `now + token_ttl_s` (unix time, s).
        Raises ValueError on a server without keys (nothing to sign with; nothing needs one)."""
        if self._secret is None:
            raise ValueError(NO_TOKEN_SECRET if self.required else NO_KEYS)
        expires_at = math.ceil(now + self.token_ttl_s)
        body = f"{_TOKEN_VERSION}.{expires_at}.{secrets.token_urlsafe(12)}"
        return SessionToken(f"{body}.{self._signature(body)}", expires_at)

    def is_session_token(self, presented: str, now: float) -> bool:
        """`presented` is a token this server's secret signed, not yet expired at `now`."""
        if self._secret is None:
            return False
        parts = presented.split(".")
        if len(parts) != 4 or parts[0] != _TOKEN_VERSION or not parts[1].isdigit():
            return False
        body, signature = presented.rpartition(".")[::2]
        expected = self._signature(body).encode()
        if not hmac.compare_digest(expected, signature.encode("utf-8", "surrogatepass")):
            return False
        return now < int(parts[1])

    def allows(self, credential: Credential | None, now: float, *, tokens: bool = True) -> bool:
        """Whether a request with this credential may proceed (`tokens`: session tokens count,
        not only API keys). Always True when no key is configured."""
        if not self.required:
            return True
        if credential is None:
            return False
        if self.is_api_key(credential.secret):
            return True
        return tokens and self.is_session_token(credential.secret, now)

    def _signature(self, body: str) -> str:
        assert self._secret is not None
        digest = hmac.new(self._secret, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def is_loopback(host: str) -> bool:
    """`host` (a bind address or name) reaches this machine only: 127.0.0.0/8, ::1, localhost.
    0.0.0.0, :: and any other name count as reachable from elsewhere."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def exposure_error(host: str, keys_required: bool, behind_auth_proxy: bool) -> str | None:
    """Why a server bound to `host` must not start, or None when it may: off loopback, it needs
    API keys unless a proxy in front authenticates every request."""
    if keys_required or behind_auth_proxy or is_loopback(host):
        return None
    return (
        f"refusing to serve on {host} without API keys: anyone who can reach it could use it. "
        f"Set {API_KEYS_ENV}=KEY[,KEY...] in the server's environment, or "
        "security.api_key_hashes in the settings (`dandelion hash-key` prints a key's hash); "
        "or, if a reverse proxy in front authenticates every request, "
        "security.behind_auth_proxy: true (dandelion serve --behind-auth-proxy). "
        "See docs/security.md."
    )


def host_allowed(host: str | None, keys_required: bool, behind_auth_proxy: bool) -> bool:
    """Whether a request addressed to `host` (the Host header) may be answered. A server with no
    keys (loopback only) answers only requests addressed to loopback: a web page that rebinds
    its own name to 127.0.0.1 (DNS rebinding) sends its own name as Host and as Origin, so the
    Origin check alone would let it in."""
    if keys_required or behind_auth_proxy:
        return True
    if not host:
        return False
    name = host.strip()
    if name.startswith("["):  # [::1]:8000
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:  # localhost:8000 (a bare IPv6 address has several colons)
        name = name.rsplit(":", 1)[0]
    return is_loopback(name)


def origin_allowed(origin: str | None, host: str | None, allowed: Sequence[str]) -> bool:
    """Whether a WebSocket upgrade from a page at `origin` (the Origin header) may proceed on a
    server reached as `host` (the Host header): no Origin (a native client), the server's own
    origin (host and port equal, default ports implied), or one listed in `allowed` ("*": any).
    Browsers apply no same-origin rule to WebSockets: without this, any web page could talk to
    the server through a visitor's browser."""
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    if not host or parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
        return False  # "null" (a sandboxed or file: page) included
    return _authority(parts.scheme, parts.netloc) == _authority(parts.scheme, host.strip().lower())


def _authority(scheme: str, netloc: str) -> str:
    """host:port with the scheme's default port left out, as browsers send Host."""
    default = f":{_DEFAULT_PORTS[scheme]}"
    return netloc.removesuffix(default) if netloc.endswith(default) else netloc
