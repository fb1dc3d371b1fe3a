"""End of turn by meaning on the real bundled SmolLM2-135M: the LLM's P(the user's message ends
here), read on the reply's own prompt so the reply after it reuses the KV cache."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Generator, Sequence

import pytest

from dandelion.actors.llm import LLMActor
from dandelion.backends.llm.llama_cpp import LlamaCppChat
from dandelion.config import SMOLLM2_INSTRUCTIONS, LLMSettings

SETTINGS = LLMSettings(model="smollm2-135m", temperature=0.0, max_tokens=24)
CONTEXT = "[Monday, 30 November 2026, 3:05 PM UTC]"  # the line each user turn opens with
HISTORY = [
    {"role": "system", "content": SMOLLM2_INSTRUCTIONS},
    {"role": "user", "content": f"{CONTEXT}\nHi, my name is Maria."},
    {"role": "assistant", "content": "Nice to meet you, Maria!"},
]


def said(transcript: str) -> list[dict[str, str]]:
    return [*HISTORY, {"role": "user", "content": f"{CONTEXT}\n{transcript}"}]


@pytest.fixture(scope="module")
def chat() -> LlamaCppChat:
    return LlamaCppChat(SETTINGS)


def reply(chat: LlamaCppChat, messages: list[dict[str, str]]) -> str:
    return "".join(chat.stream_chat(messages, threading.Event()))


def test_a_complete_question_scores_above_a_cut_off_request(chat: LlamaCppChat) -> None:
    # As Whisper writes them: it ends the cut-off phrase with a period too.
    complete = chat.end_of_turn_probability(said("What is the capital of France?"))
    cut_off = chat.end_of_turn_probability(said("I would like to book a table for."))
    assert complete is not None and cut_off is not None
    assert 0.0 <= cut_off < 0.05 < 0.5 < complete <= 1.0


@pytest.mark.parametrize(
    ("complete", "unfinished"),
    [
        ("Can you tell me the way to the nearest train station?", "Can you tell me the way to?"),
        ("I need eggs, flour and sugar.", "I need eggs, flour,"),
        ("Please set an alarm for six thirty.", "Please set an alarm for."),
    ],
)
def test_the_whole_sentence_scores_above_its_prefix(
    chat: LlamaCppChat, complete: str, unfinished: str
) -> None:
    whole = chat.end_of_turn_probability(said(complete))
    prefix = chat.end_of_turn_probability(said(unfinished))
    assert whole is not None and prefix is not None
    assert whole > 5 * prefix


def test_the_reply_after_scoring_reads_only_the_last_few_tokens(
    chat: LlamaCppChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = said("What is the capital of France?")
    prompt = chat.scoring_prompt(messages)
    assert prompt is not None
    # The reply's prompt begins with the scored tokens, token for token.
    assert prompt.shared == len(prompt.tokens)
    llama = chat._llama
    evaluated: list[int] = []
    real_eval = llama.eval

    def counting_eval(tokens: Sequence[int]) -> None:
        evaluated.append(len(tokens))
        real_eval(tokens)

    chat.end_of_turn_probability(said("Something else first."))  # the cache holds another turn
    monkeypatch.setattr(llama, "eval", counting_eval)
    chat.end_of_turn_probability(messages)
    scored = evaluated[:]
    assert list(llama.input_ids[: llama.n_tokens]) == prompt.tokens
    evaluated.clear()
    text = reply(chat, messages)
    # "?<|im_end|>\n<|im_start|>assistant\n": the question mark and the template's suffix.
    assert evaluated[0] <= 8 < len(prompt.tokens)
    assert 0 < scored[0] < len(prompt.tokens)  # the scoring read only the new turn, too
    assert "Paris" in text


def test_the_reply_after_scoring_is_a_normal_reply(chat: LlamaCppChat) -> None:
    messages = said("How many days are there in a week?")
    assert chat.end_of_turn_probability(messages) is not None
    text = reply(chat, messages)
    assert "7" in text or "seven" in text
    assert "<|im_end|>" not in text and "<|im_start|>" not in text


def test_scoring_waits_for_a_reply_being_generated(chat: LlamaCppChat) -> None:
    stream = chat.stream_chat(said("Tell me a long story about a dragon."), threading.Event())
    assert isinstance(stream, Generator)
    next(stream)  # the reply holds the model
    done = threading.Event()
    result: list[float | None] = []

    def score() -> None:
        result.append(chat.end_of_turn_probability(said("Yes.")))
        done.set()

    worker = threading.Thread(target=score)
    worker.start()
    assert not done.wait(0.3)
    started = time.monotonic()
    stream.close()  # an interrupted reply lets it go
    assert done.wait(30)
    worker.join()
    assert time.monotonic() - started < 30 and result[0] is not None


def test_no_score_without_a_user_message_last(chat: LlamaCppChat) -> None:
    assert chat.end_of_turn_probability(HISTORY) is None
    assert chat.end_of_turn_probability([]) is None


def test_the_actor_scores_off_the_event_loop() -> None:
    actor = LLMActor(SETTINGS.model_dump())
    complete = asyncio.run(actor.end_of_turn_probability(said("Who wrote Romeo and Juliet?")))
    cut_off = asyncio.run(actor.end_of_turn_probability(said("Who was the first person to.")))
    assert complete is not None and cut_off is not None
    assert complete > cut_off
