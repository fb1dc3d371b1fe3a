"""Scenarios as data: the YAML format of a suite, validated (docs/evaluation.md, "Scenarios").

A suite is one YAML file of scenarios; a scenario is one session: a dialogue of user turns, each
with its audio (a file, text spoken at build time by a voice, or a non-speech sound), edits to
that audio, when it is spoken (after the previous reply, or over it), and what is expected.
Pure data: nothing here synthesizes, plays or scores.
"""

from __future__ import annotations

import re
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dandelion.errors import SettingsError, validation_summary

PAUSE_MARKER = re.compile(r"\[pause\s+(\d+(?:\.\d+)?)\]", re.IGNORECASE)
"""`[pause 1.3]` inside a `say` text: that many seconds of silence at that word boundary."""
MAX_PAUSE_S = 600.0
VOICE_FORMS = (
    "`piper`, `piper:/path/voice.onnx` or `espeak:<voice>` (espeak:en-us, espeak:en-gb+f3)"
)


def check_voice(voice: str) -> str:
    """`voice` if it has one of the VOICE_FORMS (whether the voice exists is found at build)."""
    kind, colon, name = voice.partition(":")
    if voice == "piper" or (colon and kind in ("piper", "espeak") and name.strip()):
        return voice
    raise ValueError(f"unknown voice {voice!r}: use {VOICE_FORMS}")


TurnKind = Literal["speech", "backchannel", "non_speech"]
SoundKind = Literal["white", "pink", "brown", "babble", "music", "hum", "sigh"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sound(_Model):
    """A non-speech sound made at build time (a turn's audio, or noise mixed into speech)."""

    kind: SoundKind
    seconds: float = Field(default=3.0, gt=0, le=600)
    level_db: float = Field(default=-30.0, le=0)
    """RMS level in dB full scale (used when the sound is a turn's audio)."""
    seed: int = 0


class MixNoise(_Model):
    """Noise or music under the speech, the whole length of the turn's audio."""

    kind: SoundKind
    snr_db: float
    """Speech RMS over noise RMS, in dB (speech measured over its voiced spans)."""
    seed: int = 0


class InsertSilence(_Model):
    """Silence inserted into a file at the quietest point within 0.3 s of `at_s`."""

    at_s: float = Field(ge=0)
    seconds: float = Field(gt=0, le=600)


StereoLayout = Literal["dual_mono", "left_only", "right_only", "antiphase"]
EDIT_NAMES = (
    "gain_db",
    "clip_drive_db",
    "noise",
    "telephone",
    "stereo",
    "sample_rate",
    "lead_silence_s",
    "insert_silence",
    "reverse",
)


class Edit(_Model):
    """One edit, written as a one-key mapping (`- gain_db: -20`); applied in list order."""

    gain_db: float | None = None
    clip_drive_db: float | None = Field(default=None, gt=0)
    """Normalize to full scale, amplify by this much, clip at full scale."""
    noise: MixNoise | None = None
    telephone: bool | None = None
    """Band-limit to 300-3,400 Hz and deliver at 8 kHz (the client resamples it)."""
    stereo: StereoLayout | None = None
    """Deliver as a two-channel file; the client downmixes it as it does any file."""
    sample_rate: int | None = Field(default=None, ge=8000, le=192_000)
    """Deliver the file at this rate (the client resamples it)."""
    lead_silence_s: float | None = Field(default=None, gt=0, le=900)
    insert_silence: InsertSilence | None = None
    reverse: bool | None = None
    """Play the audio backwards: sounds like speech, means nothing."""

    @model_validator(mode="after")
    def _one_key(self) -> Edit:
        given = [name for name in EDIT_NAMES if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"an edit is exactly one of {', '.join(EDIT_NAMES)}; got {given}")
        return self

    @property
    def name(self) -> str:
        return next(name for name in EDIT_NAMES if getattr(self, name) is not None)


DATE_PLACEHOLDERS = ("weekday", "month", "day", "year")
_PLACEHOLDER = re.compile(r"\{(\w*)\}")


def dated(phrase: str, today: date) -> str:
    """`phrase` with its date placeholders filled in for `today`."""
    values = {
        "weekday": f"{today:%A}",
        "month": f"{today:%B}",
        "day": str(today.day),
        "year": str(today.year),
    }
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], phrase)


class Expect(_Model):
    """What is right for one turn. Every field is optional; unset ones are not checked."""

    transcript: str | None = None
    """The words said, for word error rate. Default: the `say` text without pause markers."""
    max_wer: float = Field(default=0.3, ge=0)
    """The transcript is right enough when its word error rate is at most this."""
    reply_contains_any: list[str] = []
    """The reply's text holds at least one of these words or phrases (case and punctuation
    ignored). `{weekday}`, `{month}`, `{day}` and `{year}` stand for today's date on the machine
    that scores the run ("{weekday}" is "Monday" on a Monday)."""
    reply_contains_none: list[str] = []

    @field_validator("reply_contains_any", "reply_contains_none")
    @classmethod
    def _known_placeholders(cls, phrases: list[str]) -> list[str]:
        for phrase in phrases:
            for name in _PLACEHOLDER.findall(phrase):
                if name not in DATE_PLACEHOLDERS:
                    known = ", ".join(f"{{{n}}}" for n in DATE_PLACEHOLDERS)
                    raise ValueError(f"unknown placeholder {{{name}}} in {phrase!r}: {known}")
        return phrases

    one_turn: bool | None = None
    """The utterance becomes exactly one turn. Default: true for speech, unchecked otherwise."""
    interrupted: bool = False
    """The reply to this turn is cut by the next turn (an interruption meant by the user)."""
    ignored: bool | None = None
    """No reply (a turn the server takes and drops as empty is fine). Default: true for
    backchannels and non-speech."""
    max_reply_s: float | None = Field(default=None, gt=0)
    """The spoken reply lasts at most this long (seconds of audio)."""


class Turn(_Model):
    """One thing the user says (or a sound the microphone picks up), and when."""

    say: str | None = None
    """Text spoken at build time; `[pause S]` inserts S seconds of silence there."""
    file: str | None = None
    """An audio file: relative to the suite file, or absolute. Any rate and channel count."""
    sound: Sound | None = None
    voice: str | None = None
    """For `say`: `piper` (the bundled voice), `piper:/path/voice.onnx`, or `espeak:<voice>`
    (an espeak-ng voice such as `en-us`, `en-gb+f3`, `es`). Default: the suite's voice."""
    speed: float = Field(default=1.0, gt=0.25, le=4.0)
    kind: TurnKind = "speech"
    edits: list[Edit] = []
    over_reply_s: float | None = Field(default=None, ge=0)
    """Speak over the previous turn's reply, this long after its first audio reached the client.
    Unset: speak once the previous reply has finished playing, after `gap_s`."""
    gap_s: float = Field(default=0.6, ge=0, le=60)
    expect: Expect = Expect()

    @model_validator(mode="after")
    def _one_source(self) -> Turn:
        sources = [s for s in ("say", "file", "sound") if getattr(self, s) is not None]
        if len(sources) != 1:
            raise ValueError(f"a turn has exactly one of say, file, sound; got {sources or 'none'}")
        if self.voice is not None and self.say is None:
            raise ValueError("`voice` is for `say` turns")
        if self.voice is not None:
            check_voice(self.voice)
        if self.say is not None:
            if not self.spoken_text:
                raise ValueError("`say` has no words to speak")
            longest = max((float(p) for p in PAUSE_MARKER.findall(self.say)), default=0.0)
            if longest > MAX_PAUSE_S:
                raise ValueError(f"a [pause] lasts at most {MAX_PAUSE_S:g} s (got {longest:g})")
        return self

    @property
    def spoken_text(self) -> str | None:
        """The `say` text as heard: pause markers removed, spaces tidied."""
        if self.say is None:
            return None
        return " ".join(PAUSE_MARKER.sub(" ", self.say).split())

    @property
    def reference(self) -> str | None:
        """The words a perfect transcript holds (None: WER is not measured for this turn)."""
        if self.expect.transcript is not None:
            return self.expect.transcript
        return self.spoken_text if self.kind == "speech" else None

    @property
    def expects_one_turn(self) -> bool:
        if self.expect.one_turn is not None:
            return self.expect.one_turn
        return self.kind == "speech" and not self.expects_ignored

    @property
    def expects_ignored(self) -> bool:
        if self.expect.ignored is not None:
            return self.expect.ignored
        return self.kind != "speech"


class Echo(_Model):
    """The reply's own sound coming back into the microphone (a loudspeaker without AEC)."""

    level_db: float = Field(default=-35.0, le=0)
    """Gain applied to the played reply before it is added to the microphone signal."""
    delay_ms: float = Field(default=30.0, ge=0, le=2000)


class SessionSettings(_Model):
    """Sent as `session.update` before the first turn."""

    instructions: str | None = Field(default=None, max_length=8000)
    end_of_turn_silence_ms: int | None = Field(default=None, ge=100, le=5000)


class Scenario(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=80)
    """Lower-case letters, digits, _ . - (it names files of the run)."""
    description: str = ""
    tags: list[str] = []
    session: SessionSettings | None = None
    echo: Echo | None = None
    turns: list[Turn] = Field(min_length=1)
    settle_s: float = Field(default=3.0, ge=0.5, le=60)
    """After a turn's audio, how long to wait for a turn to be taken before moving on."""
    reply_timeout_s: float = Field(default=60.0, gt=0, le=600)

    @field_validator("turns")
    @classmethod
    def _replies_to_speak_over(cls, turns: list[Turn]) -> list[Turn]:
        if turns and turns[0].over_reply_s is not None:
            raise ValueError("the first turn has no reply to speak over (over_reply_s)")
        for index, turn in enumerate(turns):
            following = turns[index + 1] if index + 1 < len(turns) else None
            if turn.expect.interrupted and (following is None or following.over_reply_s is None):
                raise ValueError(
                    f"turn {index + 1} expects its reply interrupted: the next turn needs "
                    "`over_reply_s` (when to speak over it)"
                )
        return turns


class Suite(_Model):
    suite: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)
    """The suite's name (letters, digits, _ . -): it names the default results folder."""
    description: str = ""
    voice: str = "piper"
    """The default voice of `say` turns."""
    scenarios: list[Scenario] = Field(min_length=1)

    @field_validator("voice")
    @classmethod
    def _known_voice(cls, voice: str) -> str:
        return check_voice(voice)

    @field_validator("scenarios")
    @classmethod
    def _unique_names(cls, scenarios: list[Scenario]) -> list[Scenario]:
        names = [s.name for s in scenarios]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"scenario names must be unique: {twice}")
        return scenarios


class SuiteError(SettingsError):
    """A suite that cannot be found or read, with what is wrong and where."""


def builtin_suites() -> dict[str, Path]:
    """The suites shipped with Dandelion, by name."""
    folder = Path(str(resources.files("dandelion.eval") / "suites"))
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


def suite_path(name_or_path: str) -> Path:
    """A built-in suite's name (`smoke`, `conversation`) or a YAML file's path."""
    shipped = builtin_suites()
    if name_or_path in shipped:
        return shipped[name_or_path]
    path = Path(name_or_path)
    if path.is_file():
        return path
    raise SuiteError(
        f"no suite {name_or_path!r}: give a built-in suite ({', '.join(shipped)}) or a YAML file"
    )


def load_suite(name_or_path: str) -> tuple[Suite, Path]:
    """The suite and the folder its relative file paths start from.

    Raises SuiteError for a missing file, bad YAML, or a suite that breaks the format (with the
    failing field's location), and for a `file` turn whose file does not exist.
    """
    path = suite_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        suite = Suite.model_validate(data)
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read it as a UTF-8 text file ({exc})") from exc
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        raise SuiteError(f"{path}: {validation_summary(exc)}") from exc
    folder = path.resolve().parent
    for scenario in suite.scenarios:
        for index, turn in enumerate(scenario.turns):
            if turn.file is not None and not resolve_file(folder, turn.file).is_file():
                raise SuiteError(
                    f"{path}: scenario {scenario.name!r} turn {index + 1}: no file {turn.file!r}"
                )
    return suite, folder


def resolve_file(folder: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else folder / path
