"""Session telemetry as Ray metrics: exported by every replica, aggregated by Prometheus.

Serve adds `application`, `deployment` and `replica` tags to metrics made inside a replica.
Names and labels are documented in docs/metrics.md.
"""

from __future__ import annotations

from ray.util.metrics import Counter, Gauge, Histogram

_LATENCY_S = [0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0]
_VAD_S = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05]
_TOKENS_PER_S = [5.0, 10.0, 20.0, 30.0, 40.0, 60.0, 80.0, 120.0, 200.0]


def _latency(name: str, description: str) -> Histogram:
    return Histogram(name, description=description, boundaries=_LATENCY_S)


class RayTelemetry:
    """Create one per replica process (in the deployment's __init__, not at import)."""

    def __init__(self) -> None:
        self._sessions = Counter("dandelion_sessions_total", description="Sessions opened.")
        self._active = Gauge("dandelion_active_sessions", description="Sessions open now.")
        self._vad = Histogram(
            "dandelion_vad_frame_seconds",
            description="VAD time per 32 ms frame.",
            boundaries=_VAD_S,
        )
        self._eot = _latency(
            "dandelion_end_of_turn_delay_seconds", "Silence from end of speech to end of turn."
        )
        self._asr = _latency("dandelion_asr_seconds", "Final transcription of an utterance.")
        self._ttft = _latency("dandelion_llm_ttft_seconds", "LLM call to its first token.")
        self._tps = Histogram(
            "dandelion_llm_tokens_per_second",
            description="LLM generation speed after the first token.",
            boundaries=_TOKENS_PER_S,
        )
        self._tts = _latency("dandelion_tts_first_audio_seconds", "TTS call to its first audio.")
        self._v2v = _latency(
            "dandelion_voice_to_voice_seconds",
            "End of the user's speech to the first reply audio sent.",
        )
        self._avatar = Histogram(
            "dandelion_avatar_frame_seconds",
            description="Avatar render + encode time per video frame.",
            boundaries=[0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16],
        )
        self._turns = Counter(
            "dandelion_turns_total", description="Replies by final status.", tag_keys=("status",)
        )
        self._interruptions = Counter(
            "dandelion_interruptions_total", description="Replies cut off by barge-in or cancel."
        )
        self._errors = Counter(
            "dandelion_errors_total", description="Error events by code.", tag_keys=("code",)
        )
        self._open = 0

    def session_opened(self) -> None:
        self._open += 1
        self._sessions.inc()
        self._active.set(self._open)

    def session_closed(self) -> None:
        self._open -= 1
        self._active.set(self._open)

    def vad_frame(self, seconds: float) -> None:
        self._vad.observe(seconds)

    def turn_ended(self, end_of_turn_delay_s: float) -> None:
        self._eot.observe(end_of_turn_delay_s)

    def reply_finished(self, status: str, timings_ms: dict[str, float], tokens: int) -> None:
        self._turns.inc(tags={"status": status})
        for histogram, key in (
            (self._asr, "asr_ms"),
            (self._ttft, "llm_ttft_ms"),
            (self._tts, "tts_first_audio_ms"),
            (self._v2v, "first_audio_sent_ms"),
        ):
            if key in timings_ms:
                histogram.observe(timings_ms[key] / 1000)
        first, done = timings_ms.get("llm_first_token_ms"), timings_ms.get("llm_done_ms")
        if first is not None and done is not None and done > first and tokens > 1:
            self._tps.observe((tokens - 1) / ((done - first) / 1000))

    def interruption(self) -> None:
        self._interruptions.inc()

    def avatar_frame(self, seconds: float) -> None:
        self._avatar.observe(seconds)

    def error(self, code: str) -> None:
        self._errors.inc(tags={"code": code})
