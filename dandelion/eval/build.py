"""A scenario turn made into the file the client is given, and the audio the client sends.

`say` text is spoken by a voice (voices.py), a `sound` is made from its seed (sounds.py), a
`file` is read; then the turn's edits are applied in order (edits.py) and the result delivered
as a WAV. What the bench sends is that WAV read back the way the thin client reads any file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dandelion.eval.edits import RATE, Audio, Clip, Spans, apply_edit, deliver, find_spans
from dandelion.eval.scenario import PAUSE_MARKER, MixNoise, SuiteError, Turn, resolve_file
from dandelion.eval.sounds import make_sound
from dandelion.eval.voices import VoiceBank

SAY_MARGIN_S = 0.3
"""Silence before and after spoken text, as a person leaves before and after a question."""


@dataclass(frozen=True)
class BuiltTurn:
    audio: Audio
    """float32 mono at 16 kHz: exactly what the thin client sends after loading `path`."""
    spans: Spans
    """Where `audio` sounds, in samples: each spoken part, the sound, or the file's loud parts."""
    path: Path
    """The delivered file (a `file` turn without edits: that file itself)."""


def build_turn(
    turn: Turn, *, folder: Path, default_voice: str, workdir: Path, voices: VoiceBank, name: str
) -> BuiltTurn:
    """Make one turn's audio and deliver it to `workdir / f"{name}.wav"`.

    `folder` is where the suite's relative file paths start; `default_voice` speaks `say` turns
    that name no voice. Raises SuiteError for an unreadable file or voice.
    """
    import soundfile as sf
    from dandelion_client.audio import load_audio

    if turn.file is not None:
        source = resolve_file(folder, turn.file)
        try:
            audio = load_audio(source)
        except (OSError, sf.SoundFileError) as exc:  # missing, not audio, unknown format
            raise SuiteError(f"{source}: not an audio file the client can read ({exc})") from exc
        if not turn.edits:  # the recording itself, untouched, is what the client is given
            return BuiltTurn(audio=audio, spans=find_spans(audio), path=source)
        clip = Clip(audio, find_spans(audio))
    elif turn.say is not None:
        clip = _spoken(turn.say, voices, turn.voice or default_voice, turn.speed)
    else:
        assert turn.sound is not None  # Turn validates exactly one source
        sound = make_sound(
            turn.sound.kind, round(turn.sound.seconds * RATE), seed=turn.sound.seed, voices=voices
        )
        audio = (sound * np.float32(10 ** (turn.sound.level_db / 20))).astype(np.float32)
        clip = Clip(audio, find_spans(audio))

    def noise(mix: MixNoise, samples: int) -> Audio:
        return make_sound(mix.kind, samples, seed=mix.seed, voices=voices)

    for edit in turn.edits:
        clip = apply_edit(clip, edit, noise)
    path = deliver(clip, workdir / f"{name}.wav")
    # Read back as the client reads it: an 8 kHz or antiphase file sends what the client makes
    # of it, and a resampled file may come back a sample shorter.
    heard = load_audio(path)
    end = len(heard)
    spans = tuple((min(a, end), min(b, end)) for a, b in clip.spans if a < end)
    return BuiltTurn(audio=heard, spans=spans, path=path)


def _spoken(text: str, voices: VoiceBank, voice: str, speed: float) -> Clip:
    """`text` spoken with its `[pause S]` silences, 0.3 s of silence around it; a span for each
    spoken part (parts with no pause between them share one)."""
    margin = np.zeros(round(SAY_MARGIN_S * RATE), dtype=np.float32)
    pieces: list[Audio] = [margin]
    spans: list[tuple[int, int]] = []
    at = len(margin)
    # re.split with the marker's group: text, seconds, text, seconds, ..., text.
    for index, part in enumerate(PAUSE_MARKER.split(text)):
        if index % 2:
            piece = np.zeros(round(float(part) * RATE), dtype=np.float32)
        elif part.strip():
            piece = voices.speak(part.strip(), voice, speed)
            if spans and spans[-1][1] == at:
                spans[-1] = (spans[-1][0], at + len(piece))
            elif len(piece):
                spans.append((at, at + len(piece)))
        else:
            continue
        pieces.append(piece)
        at += len(piece)
    pieces.append(margin)
    return Clip(np.concatenate(pieces), tuple(spans))
