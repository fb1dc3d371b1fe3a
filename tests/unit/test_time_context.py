"""The date and time the LLM is told, and where it goes in the prompt."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from dandelion.config import DEFAULT_INSTRUCTIONS, SMOLLM2_INSTRUCTIONS, AppSettings
from dandelion.conversation import Conversation
from dandelion.time_context import now_line


@pytest.mark.parametrize(
    ("moment", "line"),
    [
        (datetime(2026, 11, 30, 15, 5, tzinfo=UTC), "[Monday, 30 November 2026, 3:05 PM UTC]"),
        (datetime(2026, 1, 1, 0, 0, tzinfo=UTC), "[Thursday, 1 January 2026, 12:00 AM UTC]"),
        (
            datetime(2026, 7, 4, 12, 30, tzinfo=ZoneInfo("Europe/Lisbon")),
            "[Saturday, 4 July 2026, 12:30 PM WEST]",
        ),
    ],
)
def test_now_line(moment: datetime, line: str) -> None:
    assert now_line(moment) == line


def test_each_user_turn_keeps_the_time_it_was_said() -> None:
    conversation = Conversation("system")
    conversation.add_user("my name is Ann", context="[Monday, 9:00 AM]")
    conversation.add_assistant("Hello Ann.")
    first = conversation.prompt()
    prompt = conversation.prompt(pending_user="what day is it", context="[Monday, 9:01 AM]")
    assert prompt[:3] == first  # earlier turns are rendered as before: the prompt cache holds
    assert prompt[1] == {"role": "user", "content": "[Monday, 9:00 AM]\nmy name is Ann"}
    assert prompt[-1] == {"role": "user", "content": "[Monday, 9:01 AM]\nwhat day is it"}
    assert conversation.messages[0]["content"] == "my name is Ann"  # what was said, as said
    conversation.add_user("what day is it", context="[Monday, 9:01 AM]")
    assert conversation.prompt()[-1] == prompt[-1]


def test_instructions_follow_the_model_and_zones_are_checked() -> None:
    assert AppSettings().system_instructions() == DEFAULT_INSTRUCTIONS
    smol = AppSettings.model_validate({"llm": {"model": "smollm2-135m"}})
    assert smol.system_instructions() == SMOLLM2_INSTRUCTIONS
    for path, expected in (
        ("/models/smollm2-135m-hf", SMOLLM2_INSTRUCTIONS),  # vLLM's folder
        ("/models/SmolLM2-135M-Instruct-Q8_0.gguf", SMOLLM2_INSTRUCTIONS),
        ("/models/qwen2.5-7b-instruct", DEFAULT_INSTRUCTIONS),
    ):
        by_path = AppSettings.model_validate({"llm": {"backend": "vllm", "model_path": path}})
        assert by_path.system_instructions() == expected, path
    own = AppSettings(instructions="Be brief.", llm=smol.llm)
    assert own.system_instructions() == "Be brief."
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        AppSettings(time_zone="Mars/Olympus")
