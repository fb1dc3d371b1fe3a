"""Any OpenAI-compatible chat server as the LLM: OpenAI, Groq, vLLM's or llama.cpp's server,
Ollama. Streamed with the official `openai` SDK; an interrupted turn closes the HTTP stream at
once, so the server stops generating.

Every failure becomes an `LLMServiceError` whose code says what to check: the key
(`llm_unauthorized`), the URL or model name (`llm_not_found`), the account's limits
(`llm_rate_limited`), the server or the way to it (`llm_unavailable`), its speed
(`llm_timeout`). The key comes from the environment variable `llm.openai.api_key_env` names and
appears in no message.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, cast

from dandelion.config import LLMSettings
from dandelion.errors import BackendUnavailableError, LLMServiceError, SettingsError
from dandelion.protocol.errors import ErrorCode

try:
    import openai
except ImportError as exc:
    raise BackendUnavailableError(
        "the openai package is not installed: pip install 'dandelion[server]'"
    ) from exc

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

# Sent to servers that want no key (api_key_env: null): the SDK insists on one.
_NO_KEY = "no-key"
_MAX_DETAIL = 200


def _api_key(env: str | None) -> str:
    if env is None:
        return _NO_KEY
    key = os.environ.get(env)
    if not key:
        raise SettingsError(
            f"llm.openai.api_key_env names ${env}, which is not set where the LLM replica runs: "
            "set it (in Ray: deployments.llm.runtime_env env_vars), or set "
            "llm.openai.api_key_env to null for a server that needs no key."
        )
    return key


class OpenAICompatChat:
    """`AsyncChatModel` over `/chat/completions` with `stream: true`."""

    def __init__(self, settings: LLMSettings) -> None:
        s = settings.openai
        if not s.model:
            raise SettingsError(
                "llm.backend is 'openai' but llm.openai.model is not set: the model name the "
                f"server at {s.base_url} serves (OpenAI: gpt-4o-mini; Groq: "
                "llama-3.1-8b-instant; Ollama: a model you pulled)."
            )
        self.settings = settings
        self.model = s.model
        self._key = _api_key(s.api_key_env)
        self._where = f"the LLM server at {s.base_url} (model {s.model!r})"
        # One client, one connection pool: created on the event loop that serves the requests.
        self._client = openai.AsyncOpenAI(
            base_url=s.base_url,
            api_key=self._key,
            timeout=openai.Timeout(s.read_timeout_s, connect=s.connect_timeout_s),
            max_retries=s.max_retries,
        )

    async def astream_chat(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        received = 0
        try:
            stream = await self._client.chat.completions.create(
                model=self.model,
                messages=cast("list[ChatCompletionMessageParam]", messages),
                stream=True,
                temperature=self.settings.temperature,
                max_tokens=self.settings.max_tokens,
            )
            try:
                async for chunk in stream:
                    choice = chunk.choices[0] if chunk.choices else None
                    # Some servers send choices without a delta (a final usage chunk, a role).
                    delta = getattr(getattr(choice, "delta", None), "content", None)
                    if delta:
                        received += len(delta)
                        yield delta
            finally:
                # An interrupted turn (aclose, a cancelled task) or a failure: closing the
                # response drops its connection, and the server stops generating for nobody.
                await stream.close()
        except openai.APIError as exc:
            raise self.service_error(exc, received) from exc
        except ValueError as exc:  # a body that is not OpenAI's stream format (bad JSON)
            raise LLMServiceError(
                ErrorCode.LLM_FAILED,
                f"{self._where} sent a stream this client cannot read ({type(exc).__name__}), "
                f"{received} characters in: is llm.openai.base_url an OpenAI-compatible API?",
            ) from exc

    def end_of_turn_probability(self, messages: list[dict[str, str]]) -> float | None:
        """None: not scored through a chat server's API (no probability of a chosen next token)."""
        return None

    async def aclose(self) -> None:
        """Close the client's connections (on the loop that used them)."""
        await self._client.close()

    def service_error(self, exc: openai.APIError, received: int = 0) -> LLMServiceError:
        """The typed error for a failed request; `received`: characters streamed before it."""
        where, s = self._where, self.settings.openai
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status in (401, 403):
                # The server's own words are left out: some echo part of the key.
                check = (
                    f"check the key in ${s.api_key_env}"
                    if s.api_key_env
                    else "it wants a key: set llm.openai.api_key_env to the variable holding it"
                )
                return LLMServiceError(
                    ErrorCode.LLM_UNAUTHORIZED,
                    f"{where} refused the request (HTTP {status}): {check}.",
                )
            detail = self._detail(exc)
            if status == 404:
                return LLMServiceError(
                    ErrorCode.LLM_NOT_FOUND,
                    f"{where} answered 404 ({detail}): check llm.openai.base_url (on most servers "
                    "it ends in /v1) and llm.openai.model.",
                )
            if status == 429:
                return LLMServiceError(
                    ErrorCode.LLM_RATE_LIMITED,
                    f"{where} is rate limiting this key (HTTP 429: {detail}): wait, or raise "
                    "the account's limits.",
                )
            if status >= 500:
                return LLMServiceError(
                    ErrorCode.LLM_UNAVAILABLE,
                    f"{where} failed (HTTP {status}: {detail}): check the server and its logs.",
                )
            return LLMServiceError(
                ErrorCode.LLM_FAILED, f"{where} rejected the request (HTTP {status}: {detail})."
            )
        if isinstance(exc, openai.APITimeoutError):
            if _connect_timeout(exc):
                return LLMServiceError(
                    ErrorCode.LLM_UNAVAILABLE,
                    f"no connection to {where} within {s.connect_timeout_s} s: check "
                    "llm.openai.base_url, and that the server is up and reachable from here.",
                )
            waited = (
                "the reply's first byte"
                if received == 0
                else f"the reply's next chunk, {received} characters in"
            )
            return LLMServiceError(
                ErrorCode.LLM_TIMEOUT,
                f"{where} sent nothing for {s.read_timeout_s} s, waiting for {waited}: the "
                "server is overloaded or still loading (llm.openai.read_timeout_s sets the wait).",
            )
        if isinstance(exc, openai.APIConnectionError):
            reason = self._redact(str(exc.__cause__ or exc))[:_MAX_DETAIL]
            if received:
                return LLMServiceError(
                    ErrorCode.LLM_UNAVAILABLE,
                    f"the connection to {where} broke mid-reply, {received} characters in "
                    f"({reason}): check the server and its logs.",
                )
            return LLMServiceError(
                ErrorCode.LLM_UNAVAILABLE,
                f"cannot reach {where} ({reason}): check llm.openai.base_url, and that the "
                "server is up.",
            )
        # An error the server reported inside the stream.
        return LLMServiceError(
            ErrorCode.LLM_FAILED, f"{where} reported an error: {self._detail(exc)}."
        )

    def _detail(self, exc: openai.APIError) -> str:
        """The server's own explanation, short and without the key."""
        body = exc.body
        text = exc.message
        if isinstance(body, dict):
            error = body.get("error", body.get("detail"))
            if isinstance(error, dict):
                error = error.get("message")
            if isinstance(error, str) and error:
                text = error
        return self._redact(text)[:_MAX_DETAIL]

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "[key]") if self._key != _NO_KEY else text


def _connect_timeout(exc: BaseException) -> bool:
    """Whether the timeout hit while connecting (httpx's, or httpx2's, `ConnectTimeout`)."""
    cause: BaseException | None = exc
    while cause is not None:
        if type(cause).__name__ == "ConnectTimeout":
            return True
        cause = cause.__cause__ or cause.__context__
    return False
