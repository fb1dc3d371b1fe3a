from dandelion.backends.asr.faster_whisper import drop_repetition, window_frames


def test_whole_utterance_loop_is_collapsed() -> None:
    looped = "Tell me a long story about a dragon. Tell me a long story about a dragon"
    assert drop_repetition(looped) == "Tell me a long story about a dragon."
    three = "What is the capital of France? What is the capital of France? What is the"
    assert drop_repetition(three) == "What is the capital of France?"
    # The copy cut short after more than half of it (the bench's interrupt_late, tiny.en).
    cut = "Tell me a long story about a pirate ship. Tell me a long story about a pirate"
    assert drop_repetition(cut) == "Tell me a long story about a pirate ship."


def test_real_speech_is_left_alone() -> None:
    for text in [
        "And so my fellow Americans ask not what your country can do for you, ask what you "
        "can do for your country.",
        "No, no, no.",
        "I said yes, yes I did.",
        "",
        "Hello.",
    ]:
        assert drop_repetition(text) == text


def test_window_has_at_least_six_seconds_of_padding_and_caps_at_30_s() -> None:
    assert window_frames(16_000) == 800
    assert window_frames(16_000 * 5) == 1100
    assert window_frames(16_000 * 40) == 3000
