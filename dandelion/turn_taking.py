"""Turn-taking as a pure state machine: VAD probabilities and audio timestamps in, decisions out.

No Ray, no asyncio, no clock reads: time is the position in the input audio stream (ms), so the
same audio always gives the same decisions, whatever the network or the machine load.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from dandelion.end_of_turn import Completeness, Eagerness, required_silence_ms


class TurnConfig(BaseModel):
    """How turns are taken. Also the `turn:` section of the server's settings (config.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    speech_threshold: float = 0.5
    # Hysteresis: once speaking, a frame counts as silence only below this (as silero's own
    # iterator does), so soft word endings do not split a turn.
    silence_threshold: float = 0.35
    # Voiced audio needed before we call it speech (filters clicks and coughs).
    min_speech_ms: int = 96
    # "semantic": the silence that ends a turn depends on whether the words so far make a
    # complete turn (end_of_turn.py), scored on the speculative transcript. "silence": a fixed
    # `end_of_turn_silence_ms`.
    detection: Literal["semantic", "silence"] = "semantic"
    # How soon a semantic turn ends (end_of_turn.py's table), as OpenAI's semantic_vad names it.
    eagerness: Eagerness = "medium"
    # Silence after speech that ends the user's turn, with detection "silence".
    end_of_turn_silence_ms: int = 500
    # Silence after which the reply is prepared speculatively (transcribed, scored, generated,
    # synthesized) but held back until the end of the turn confirms it. 0 turns it off (and
    # with it semantic detection, which scores the speculative transcript).
    speculative_pause_ms: int = 160
    # Speech needed, while the assistant is replying, before its words are judged (overlap.py)
    # or, without backchannels, before it cuts the reply.
    barge_in_min_speech_ms: int = 192
    # A turn this long is ended even without a pause (it is transcribed whole all the same:
    # long_turn.py).
    max_turn_ms: int = 120_000

    @model_validator(mode="after")
    def _check(self) -> TurnConfig:
        if not 0.0 < self.silence_threshold <= self.speech_threshold < 1.0:
            raise ValueError("need 0 < silence_threshold <= speech_threshold < 1")
        if self.end_of_turn_silence_ms <= 0 or self.min_speech_ms < 0:
            raise ValueError("durations must be positive")
        if self.speculative_pause_ms < 0:
            raise ValueError("speculative_pause_ms must be 0 (off) or positive")
        fixed = self.detection == "silence"
        if fixed and self.speculative_pause_ms >= self.end_of_turn_silence_ms:
            raise ValueError(
                "with detection silence, need speculative_pause_ms < end_of_turn_silence_ms"
            )
        return self

    @property
    def semantic(self) -> bool:
        return self.detection == "semantic" and self.speculative_pause_ms > 0


@dataclass(frozen=True, slots=True)
class SpeechStart:
    start_ms: int


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The user has spoken long enough over the assistant's reply to take the turn."""

    start_ms: int


@dataclass(frozen=True, slots=True)
class Pause:
    """The user paused long enough to start preparing a reply; the turn may still go on."""

    start_ms: int
    end_ms: int  # where the last voiced frame ended


@dataclass(frozen=True, slots=True)
class Resume:
    """Speech came back after a Pause: whatever was prepared for it is void."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class EndOfTurn:
    start_ms: int
    end_ms: int  # where the last voiced frame ended
    decided_ms: int  # where the silence reached the end-of-turn threshold


TurnDecision = SpeechStart | BargeIn | Pause | Resume | EndOfTurn


class _State(Enum):
    IDLE = "idle"
    SPEAKING = "speaking"


class EndpointDetector:
    """Feed one VAD frame at a time with `update`; it returns the decisions that frame caused."""

    def __init__(self, config: TurnConfig) -> None:
        self.config = config
        self._state = _State.IDLE
        self._voiced_since: int | None = None  # start of the current voiced run while idle
        self._speech_start = 0
        self._last_voiced_end = 0
        self._barged_in = False
        self._paused = False  # a Pause was emitted for the current silence
        self._completeness = Completeness.UNKNOWN  # of the words before the current silence
        self._question = False  # ...and whether they ask something
        self._end_after_ms: int | None = None  # `end_after`'s silence, for this speech

    @property
    def speaking(self) -> bool:
        return self._state is _State.SPEAKING

    @property
    def speech_start_ms(self) -> int | None:
        return self._speech_start if self.speaking else None

    def reconfigure(self, config: TurnConfig) -> None:
        self.config = config

    def set_completeness(self, completeness: Completeness, question: bool = False) -> None:
        """What the words before the current pause make (the session's judgement of its
        speculative transcript), and whether they ask a question. Speech resuming resets it to
        UNKNOWN."""
        if self.speaking:
            self._completeness = completeness
            self._question = question
            self._end_after_ms = None

    def end_after(self, silence_ms: int) -> None:
        """End the current speech after `silence_ms` of silence, whatever the detection (speech
        over a reply, judged at its first short pause). Speech resuming or a new segment, or
        `set_completeness`, lifts it."""
        if self.speaking:
            self._end_after_ms = silence_ms

    def end_of_turn_silence_ms(self) -> int:
        """The silence that ends the current turn, as things stand."""
        if self._end_after_ms is not None:
            return self._end_after_ms
        if not self.config.semantic:
            return self.config.end_of_turn_silence_ms
        speech_ms = self._last_voiced_end - self._speech_start
        return required_silence_ms(
            self._completeness, self.config.eagerness, speech_ms, self._question
        )

    def update(
        self, probability: float, frame_end_ms: int, frame_ms: int, responding: bool
    ) -> list[TurnDecision]:
        """One VAD frame [frame_end_ms - frame_ms, frame_end_ms) with its speech probability.

        `responding` says whether the assistant is producing or playing a reply right now.
        """
        frame_start = frame_end_ms - frame_ms
        if self._state is _State.IDLE:
            return self._update_idle(probability, frame_start, frame_end_ms, responding)
        return self._update_speaking(probability, frame_end_ms, frame_ms, responding)

    def _update_idle(
        self, probability: float, frame_start: int, frame_end: int, responding: bool
    ) -> list[TurnDecision]:
        if probability < self.config.speech_threshold:
            self._voiced_since = None
            return []
        if self._voiced_since is None:
            self._voiced_since = frame_start
        if frame_end - self._voiced_since < self.config.min_speech_ms:
            return []
        self._state = _State.SPEAKING
        self._speech_start = self._voiced_since
        self._last_voiced_end = frame_end
        self._voiced_since = None
        self._barged_in = False
        self._paused = False
        self._completeness = Completeness.UNKNOWN
        self._end_after_ms = None
        decisions: list[TurnDecision] = [SpeechStart(self._speech_start)]
        decisions.extend(self._maybe_barge_in(frame_end, responding))
        return decisions

    def _update_speaking(
        self, probability: float, frame_end: int, frame_ms: int, responding: bool
    ) -> list[TurnDecision]:
        decisions: list[TurnDecision] = []
        if probability >= self.config.silence_threshold:
            self._last_voiced_end = frame_end
            if self._paused:
                self._paused = False
                self._completeness = Completeness.UNKNOWN
                decisions.append(Resume(frame_end - frame_ms))
        decisions.extend(self._maybe_barge_in(frame_end, responding))
        silence = frame_end - self._last_voiced_end
        too_long = frame_end - self._speech_start >= self.config.max_turn_ms
        if silence >= self.end_of_turn_silence_ms() or too_long:
            decisions.append(EndOfTurn(self._speech_start, self._last_voiced_end, frame_end))
            self._state = _State.IDLE
        elif (
            self.config.speculative_pause_ms
            and not self._paused
            and silence >= self.config.speculative_pause_ms
        ):
            self._paused = True
            decisions.append(Pause(self._speech_start, self._last_voiced_end))
        return decisions

    def _maybe_barge_in(self, frame_end: int, responding: bool) -> list[TurnDecision]:
        if not responding or self._barged_in:
            return []
        voiced = self._last_voiced_end - self._speech_start
        if voiced < self.config.barge_in_min_speech_ms:
            return []
        self._barged_in = True
        return [BargeIn(self._speech_start)]

    def voiced_ms(self) -> int:
        """How long the current speech segment has lasted, to its last voiced frame."""
        return self._last_voiced_end - self._speech_start if self.speaking else 0

    def silence_ms(self, now_ms: int) -> int:
        """How long the user has been silent within the current speech segment."""
        return now_ms - self._last_voiced_end if self.speaking else 0
