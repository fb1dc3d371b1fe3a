"""The scenario format: what loads, what is refused and how clearly, and the defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dandelion.cli import main
from dandelion.eval.scenario import Scenario, SuiteError, Turn, builtin_suites, load_suite


def _suite(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text("suite: mine\nscenarios:\n" + body)
    return path


def test_the_shipped_suites_load_with_their_files() -> None:
    assert {"smoke", "conversation", "answers"} <= set(builtin_suites())
    for name in builtin_suites():
        suite, folder = load_suite(name)
        for scenario in suite.scenarios:
            for turn in scenario.turns:
                if turn.file is not None:
                    assert (folder / turn.file).is_file()


def test_the_conversation_suite_covers_every_kind_of_failure() -> None:
    suite, _ = load_suite("conversation")
    assert len(suite.scenarios) >= 40
    tags = {tag for s in suite.scenarios for tag in s.tags}
    wanted = {
        "short_question", "one_word", "pause", "long", "memory", "interruption", "backchannel",
        "echo", "non_speech", "level", "noise", "channel", "language", "spoken_form", "case",
    }  # fmt: skip
    assert wanted <= tags
    voices = {t.voice or suite.voice for s in suite.scenarios for t in s.turns if t.say}
    assert len(voices - {"espeak:es", "espeak:de"}) >= 3  # three distinct English speakers
    cases = {Path(t.file).stem for s in suite.scenarios for t in s.turns if t.file}
    shared_cases = {"bc_uhhuh", "long_29s", "nonword_sigh", "pause_midsentence_1.3s"}
    assert shared_cases | {"q_price", "q_story", "stereo_antiphase"} <= cases


def test_a_turn_has_exactly_one_source(tmp_path: Path) -> None:
    path = _suite(tmp_path, "  - name: x\n    turns:\n      - {say: hi, file: a.wav}\n")
    with pytest.raises(SuiteError, match="exactly one of say, file, sound"):
        load_suite(str(path))


def test_an_edit_is_one_key(tmp_path: Path) -> None:
    body = (
        "  - name: x\n    turns:\n      - say: hi\n        edits: [{gain_db: -6, reverse: true}]\n"
    )
    with pytest.raises(SuiteError, match="an edit is exactly one of"):
        load_suite(str(_suite(tmp_path, body)))


def test_a_missing_file_names_its_scenario(tmp_path: Path) -> None:
    path = _suite(tmp_path, "  - name: lost\n    turns:\n      - file: nowhere.wav\n")
    with pytest.raises(SuiteError, match=r"scenario 'lost' turn 1: no file 'nowhere\.wav'"):
        load_suite(str(path))


def test_names_are_unique_and_the_first_turn_speaks_first(tmp_path: Path) -> None:
    twice = "  - name: a\n    turns: [{say: hi}]\n  - name: a\n    turns: [{say: ho}]\n"
    with pytest.raises(SuiteError, match="unique"):
        load_suite(str(_suite(tmp_path, twice)))
    over = "  - name: b\n    turns: [{say: hi, over_reply_s: 1.0}]\n"
    with pytest.raises(SuiteError, match="no reply to speak over"):
        load_suite(str(_suite(tmp_path, over)))


def test_unknown_suite_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="give a built-in suite"):
        load_suite("no-such-suite")
    bad = tmp_path / "bad.yaml"
    bad.write_text("suite: [unclosed\n")
    with pytest.raises(SuiteError, match="not valid YAML"):
        load_suite(str(bad))


def test_defaults_follow_the_kind_of_turn() -> None:
    question = Turn(say="Book a table for [pause 1.3] four.")
    assert question.spoken_text == "Book a table for four."
    assert question.reference == "Book a table for four."
    assert question.expects_one_turn and not question.expects_ignored
    uhhuh = Turn(say="Uh-huh.", kind="backchannel", over_reply_s=1.0)
    assert uhhuh.expects_ignored and not uhhuh.expects_one_turn and uhhuh.reference is None
    noise = Turn(sound={"kind": "pink"}, kind="non_speech")  # type: ignore[arg-type]
    assert noise.expects_ignored and noise.reference is None
    scenario = Scenario(name="s", turns=[question])
    assert (scenario.settle_s, scenario.reply_timeout_s) == (3.0, 60.0)


def test_the_cli_refuses_a_broken_suite_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _suite(tmp_path, "  - name: x\n    turns:\n      - {say: hi, voice: piper, file: a}\n")
    assert main(["eval", "--suite", str(path), "--list"]) == 2
    assert "exactly one of say, file, sound" in capsys.readouterr().err


def test_the_cli_lists_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--suite", "smoke", "--list"]) == 0
    listed = capsys.readouterr().out.split("\n")
    assert listed[0].startswith("capital_of_france")


@pytest.mark.parametrize(
    ("turns", "message"),
    [
        ("[{say: '[pause 2]'}]", "`say` has no words to speak"),
        ("[{say: 'hi [pause 900] there'}]", "a [pause] lasts at most 600 s"),
        ("[{say: hi, voice: festival}]", "unknown voice 'festival'"),
        ("[{say: hi, expect: {interrupted: true}}]", "the next turn needs `over_reply_s`"),
        ("[{say: hi, expect: {interrupted: true}}, {say: ho}]", "the next turn needs"),
    ],
)
def test_turns_that_could_never_work_are_refused_at_load(
    tmp_path: Path, turns: str, message: str
) -> None:
    with pytest.raises(SuiteError, match=re.escape(message)):
        load_suite(str(_suite(tmp_path, f"  - name: x\n    turns: {turns}\n")))


def test_session_settings_are_checked_at_load(tmp_path: Path) -> None:
    body = "  - name: x\n    session: {end_of_turn_silence_ms: -5}\n    turns: [{say: hi}]\n"
    with pytest.raises(SuiteError, match="end_of_turn_silence_ms: Input should be greater"):
        load_suite(str(_suite(tmp_path, body)))


def test_a_suite_name_cannot_leave_the_results_folder(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("suite: ../../escaped\nscenarios: [{name: x, turns: [{say: hi}]}]\n")
    with pytest.raises(SuiteError, match="suite: String should match pattern"):
        load_suite(str(path))


def test_a_suite_that_is_not_text_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"suite: \xff\xfe\n")
    with pytest.raises(SuiteError, match="cannot read it as a UTF-8 text file"):
        load_suite(str(path))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--url", "http://127.0.0.1:8000/"], "a WebSocket URL is needed"),
        (["--url", "ws://h:1/v1/session", "--config", "c.yaml"], "configure that server"),
        (["--sessions", "0"], "--sessions must be at least 1"),
        (["--tag", "nope"], "matches --tag nope"),
        (["--config", "/nope.yaml"], "settings file /nope.yaml"),
    ],
)
def test_options_that_cannot_work_fail_before_anything_runs(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "--suite", "smoke", *options]) == 2
    assert message in capsys.readouterr().err


def test_a_baseline_that_is_not_results_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for text, message in (("[1, 2]", "not a results.json"), ("{", "Expecting")):
        (tmp_path / "b.json").write_text(text)
        assert main(["eval", "--compare", str(tmp_path / "b.json")]) == 2
        assert message in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["eval", "--output", str(tmp_path / "file")]) == 2
    assert "a file is there, not a folder" in capsys.readouterr().err


def test_date_placeholders_are_filled_and_unknown_ones_refused(tmp_path: Path) -> None:
    from datetime import date

    from dandelion.eval.scenario import dated

    assert dated("it is {weekday}, {day} {month} {year}", date(2026, 11, 30)) == (
        "it is Monday, 30 November 2026"
    )
    body = (
        "  - name: x\n    turns:\n      - say: what day is it\n"
        "        expect: {reply_contains_any: ['{today}']}\n"
    )
    with pytest.raises(SuiteError, match=r"unknown placeholder \{today\}"):
        load_suite(str(_suite(tmp_path, body)))


def test_the_answers_suite_checks_at_least_thirty_answers_of_each_kind() -> None:
    suite, _ = load_suite("answers")
    checked = [t for s in suite.scenarios for t in s.turns if t.expect.reply_contains_any]
    assert len(checked) >= 30
    tags = {tag for s in suite.scenarios for tag in s.tags}
    assert {"fact", "arithmetic", "memory", "date", "live_data", "spoken_form"} <= tags
    memory = [s for s in suite.scenarios if "memory" in s.tags]
    assert all(len(s.turns) >= 3 for s in memory)
