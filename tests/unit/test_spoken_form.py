"""to_spoken: written reply text to what the voice says; and the chunker and pipeline around it."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Callable

import pytest

from dandelion.backends.asr.base import Transcript
from dandelion.backends.tts.base import SpeechChunk
from dandelion.chunking import SentenceChunker
from dandelion.playback import PlaybackClock
from dandelion.protocol import events as ev
from dandelion.reply import Outgoing, Reply
from dandelion.reply_pipeline import Emit, ReplyPipeline, Transcribed
from dandelion.spoken_form import number_words, to_spoken, year_words
from dandelion.stages import VideoFormat, VideoFrame
from dandelion.telemetry import NoTelemetry
from tests.unit.test_chunking import small_pieces

CASES = [
    # markdown
    ("**Paris** is the capital of France.", "Paris is the capital of France."),
    ("## Tips", "Tips"),
    ("# Heading", "Heading"),
    ("1. Drink water", "one. Drink water"),
    ("2. Sleep", "two. Sleep"),
    ("1. Drink water\n2. Sleep", "one. Drink water. two. Sleep"),
    ("- Eat *well* and _rest_.", "Eat well and rest."),
    ("* Walk __daily__", "Walk daily"),
    ("> A quote here.", "A quote here."),
    ("Run `pip install dandelion` now.", "Run pip install dandelion now."),
    ("```python", ""),
    ("[the docs](https://example.com/docs) are here.", "the docs are here."),
    ("| Name | Age |", "Name, Age"),
    ("|---|---|", ""),
    ("~~old~~ new", "old new"),
    ("Done.<br>Next", "Done. Next"),
    # emoji
    ("Great job! 🎉", "Great job!"),
    ("I love it 😀👍🏽!", "I love it!"),
    ("🎉", ""),
    ("Flags 🇫🇷 and keycaps 3️⃣ too.", "Flags and keycaps too."),
    # money
    ("It costs $4.", "It costs four dollars."),
    ("It costs $4.50.", "It costs four dollars and fifty cents."),
    ("Only $0.99 today.", "Only ninety-nine cents today."),
    ("That is $1 or $1.01.", "That is one dollar or one dollar and one cent."),
    ("£3.20 or €5 or ¥300.", "three pounds and twenty pence or five euros or three hundred yen."),
    ("Revenue hit $1.2 million.", "Revenue hit one point two million dollars."),
    (
        "A $2bn deal and a $5k bonus.",
        "A two billion dollars deal and a five thousand dollars bonus.",
    ),
    ("It was -$5 and 10 USD.", "It was minus five dollars and ten dollars."),
    ("$5/month.", "five dollars per month."),
    # numbers
    ("Pi is 3.14.", "Pi is three point one four."),
    ("About 1,000 people.", "About one thousand people."),
    (
        "Nearly 1,234,567 visits.",
        "Nearly one million two hundred thirty-four thousand five hundred sixty-seven visits.",
    ),
    ("It fell to -7 overnight.", "It fell to minus seven overnight."),
    (
        "Growth was 2.5% and 50 % after.",
        "Growth was two point five percent and fifty percent after.",
    ),
    ("Version 1.2.3 is out.", "Version one point two point three is out."),
    ("Agent 007.", "Agent zero zero seven."),
    ("It's 5-10 minutes.", "It's five to ten minutes."),
    ("Call 555-123-4567.", "Call five five five, one two three, four five six seven."),
    ("#1 priority.", "number one priority."),
    # arithmetic
    ("12 x 12 = 144", "twelve times twelve equals one hundred forty-four"),
    ("2 + 2 = 4", "two plus two equals four"),
    ("10 - 3 = 7", "ten minus three equals seven"),
    ("3 * 4 = 12", "three times four equals twelve"),
    ("6 ÷ 2 ≈ 3", "six divided by two approximately three"),
    ("2^10 is 1024.", "two to the power of ten is one thousand twenty-four."),
    ("1920x1080 pixels", "one thousand nine hundred twenty by one thousand eighty pixels"),
    ("It is 3x faster.", "It is three times faster."),
    ("Add 1/2 cup.", "Add one half cup."),
    ("Open 24/7.", "Open twenty-four seven."),
    # dates and times
    ("Launch on 2026-11-30.", "Launch on November thirtieth, twenty twenty-six."),
    ("Launch on Nov 30, 2026.", "Launch on November thirtieth, twenty twenty-six."),
    ("On 30 November 2026 we go.", "On the thirtieth of November, twenty twenty-six we go."),
    ("Since March 5th.", "Since March fifth."),
    ("Meet me at 3:45 pm.", "Meet me at three forty-five PM."),
    ("The train leaves at 14:05.", "The train leaves at fourteen oh five."),
    ("Open 9:00-17:00 daily.", "Open nine o'clock to seventeen hundred daily."),
    ("At 3 p.m. tomorrow.", "At three PM tomorrow."),
    ("Wake at 7am.", "Wake at seven AM."),
    ("Dinner at 6:30 PM. Then sleep.", "Dinner at six thirty PM. Then sleep."),
    ("It's 3:05 PM UTC.", "It's three oh five PM UTC."),
    ("On the 1st of May.", "On the first of May."),
    ("The 4th of July, 1990.", "The fourth of July, nineteen ninety."),
    # ordinals and years
    (
        "You came 1st, she came 22nd, I came 3rd.",
        "You came first, she came twenty-second, I came third.",
    ),
    ("The 101st time.", "The one hundred first time."),
    ("It was built in 1961.", "It was built in nineteen sixty-one."),
    ("Born in 1905, died in 2000.", "Born in nineteen oh-five, died in two thousand."),
    ("The 1990s and the '80s.", "The nineteen nineties and the eighties."),
    ("From 2010-2020.", "From twenty ten to twenty twenty."),
    ("There are 1961 people.", "There are one thousand nine hundred sixty-one people."),
    # units
    ("Run 5 km.", "Run five kilometers."),
    ("Walk 1 km.", "Walk one kilometer."),
    ("It is 20°C.", "It is twenty degrees Celsius."),
    ("It is -5 °F outside.", "It is minus five degrees Fahrenheit outside."),
    ("Lift 3 kg.", "Lift three kilograms."),
    ("Drive 60 mph.", "Drive sixty miles per hour."),
    ("Wait 100 ms.", "Wait one hundred milliseconds."),
    ("Store 2 GB.", "Store two gigabytes."),
    ("A 5-km run.", "A five-kilometer run."),
    ("It is 6 ft tall.", "It is six feet tall."),
    ("10 m² of floor.", "ten square meters of floor."),
    # abbreviations
    ("Dr. Smith will see you.", "Doctor Smith will see you."),
    ("Mr. Jones and Mrs. Lee.", "Mister Jones and Missus Lee."),
    ("Fruits, e.g. apples.", "Fruits, for example, apples."),
    ("Food, i.e. bread.", "Food, that is, bread."),
    ("Cats, dogs, etc.", "Cats, dogs, et cetera."),
    ("Cats vs. dogs.", "Cats versus dogs."),
    ("The U.S. law applies.", "The US law applies."),
    ("She has a Ph.D. in math.", "She has a PhD in math."),
    ("St. Louis is nice.", "Saint Louis is nice."),
    ("It is No. 5.", "It is number five."),
    # URLs and e-mail addresses
    ("Visit https://www.example.com/docs.", "Visit example dot com slash docs."),
    ("See example.com/docs for more.", "See example dot com slash docs for more."),
    ("Go to http://my-site.org/a_b?x=1#top now.", "Go to my dash site dot org slash a b now."),
    ("Node.js and config.yaml files.", "Node dot js and config dot yaml files."),
    ("e-mail ann@example.com today.", "e-mail ann at example dot com today."),
    (
        "Write to first.last+tag@mail.example.co.uk.",
        "Write to first dot last plus tag at mail dot example dot co dot uk.",
    ),
    # symbols
    ("Salt & pepper.", "Salt and pepper."),
    ("Yes/no questions.", "Yes or no questions."),
    ("TCP/IP stack.", "TCP slash IP stack."),
    ("It takes ~5 minutes.", "It takes approximately five minutes."),
    ("C++ rocks.", "C plus plus rocks."),
    ("A -> B.", "A to B."),
    ("Paris (France) is big.", "Paris, France, is big."),
    ("Well — maybe.", "Well, maybe."),
    ("Wait... what?", "Wait... what?"),
    ('"Quoted," she said.', "Quoted, she said."),
    ("He said 'hi' and left.", "He said hi and left."),
    ("O'Brien's dogs' toys", "O'Brien's dogs' toys"),
    ("snake_case_name", "snake case name"),
    ("Price: $20; time: 3:45; done!", "Price: twenty dollars; time: three forty-five; done!"),
    # comparisons
    ("a != b", "a does not equal b"),
    ("a <= b and 5 >= 3", "a less than or equal to b and five greater than or equal to three"),
    ("5 > 3 and x<y", "five greater than three and x less than y"),
    ("Ages >=18 only.", "Ages at least eighteen only."),
    ("Keep it <5 ms.", "Keep it less than five milliseconds."),
    # numbers written with unicode characters
    ("Add ½ cup.", "Add one half cup."),
    ("¼, ¾ or ⅓.", "one quarter, three quarters or one third."),
    ("Add 2½ cups.", "Add two and a half cups."),
    ("Take 2 1/2 cups.", "Take two and a half cups."),
    ("x² + y³", "x squared plus y cubed"),
    ("E=mc²", "E equals mc squared"),
    ("10⁶ cells.", "ten to the power of six cells."),
    ("H₂O and CO₂.", "H two O and CO two."),
    ("Zoom \u00d72.", "Zoom times two."),
    ("It goes to ∞.", "It goes to infinity."),
    ("2**10 is 1024.", "two to the power of ten is one thousand twenty-four."),
    ("Brand™ ® © here.", "Brand here."),
    # money and percent ranges
    ("It was $-5.", "It was minus five dollars."),
    ("Only $.50 each.", "Only fifty cents each."),
    ("It costs 5¢.", "It costs five cents."),
    ("From $5 - $10.", "From five to ten dollars."),
    ("From $5-$10.", "From five to ten dollars."),
    ("$4.50-$5.50", "four dollars and fifty cents to five dollars and fifty cents"),
    ("$10 - $5 = $5", "ten dollars minus five dollars equals five dollars"),
    (
        "Pay $5k-$10k or $5-$10k.",
        "Pay five to ten thousand dollars or five dollars to ten thousand dollars.",
    ),
    ("*unclosed **bold", "unclosed bold"),
    ("Up 50%-60%.", "Up fifty to sixty percent."),
    # slashes
    ("10 / 2 = 5", "ten divided by two equals five"),
    ("Born 5/6/1990.", "Born five, six, nineteen ninety."),
    ("Due 30/11/2026.", "Due thirty, eleven, twenty twenty-six."),
    ("Due 30.11.2026.", "Due thirty, eleven, twenty twenty-six."),
    ("See ftp://files.example.com now.", "See files dot example dot com now."),
    # phone numbers, addresses, references, durations
    ("Call 555-1234.", "Call five five five, one two three four."),
    ("For 500-1000 people.", "For five hundred to one thousand people."),
    ("Use 256-1024 tokens.", "Use two hundred fifty-six to one thousand twenty-four tokens."),
    ("My number is 867-5309.", "My number is eight six seven, five three zero nine."),
    ("Call 1-800-FLOWERS.", "Call one eight hundred FLOWERS."),
    (
        "Call +1 (555) 123-4567.",
        "Call plus one, five five five, one two three, four five six seven.",
    ),
    (
        "Open 127.0.0.1:8000.",
        "Open one two seven dot zero dot zero dot one, port eight thousand.",
    ),
    ("Read Psalm 23:4.", "Read Psalm twenty-three, four."),
    ("Read John 3:16.", "Read John three sixteen."),
    ("A 16:9 screen.", "A sixteen to nine screen."),
    ("It took 2h 30m.", "It took two hours thirty minutes."),
    ("Plank for 1m 30s.", "Plank for one minute thirty seconds."),
    ("I did a 5k run.", "I did a five K run."),
    ("A 5k bonus.", "A five thousand bonus."),
    ("The 1990's were fun.", "The nineteen nineties were fun."),
    ("- [x] done", "done"),
    ("C# and .NET", "C sharp and dot NET"),
    (
        "ID 12345678901234567890.",
        "ID one two three four five six seven eight nine zero one two three four five six seven"
        " eight nine zero.",
    ),
]

# Inputs with no fixed expectation, only that the voice gets plain words from them.
AWKWARD = [
    "<script>alert(1)</script>",
    "x = y[0] + f(z) {a: 1}",
    "def f(x): return x**2",
    "```\nprint('hi')\n```",
    "™ ® © • ¼ ² § ¶ « » \\ ^ $ € £",
    "Call +1 (555) 123-4567, IPv4 192.168.0.1, v2.0-beta, 1e6, .5, 5., 1,2,3.",
    "12345678901234567890 and 2026-13-45 and COVID-19 and H2O and 3D.",
    "x ≠ y, a ≤ b, c ≥ d, 5 > 3, 2 < 4, ±3, 16:9, 25:99, 100%!",
    "a<>b, x<<2, <-, >>>, <=>, !, ==, ½\u2044, ⁻, ²³⁴, ₀₀, 1\u20440, ¢, 5 ¢, $-, $.",
    "1-800-, 1:2:3:4, x**, **2, ^, 2^, 1 1/, $5-, 5%-, 1h, 5k/, Psalm 1:",
    "Ftp://x, 999.999.999.999:99999, 0/0/0000, 99/99/99, 1 99/2, 0h 0m, 5K, 1999's, C#5, .5x",
    "*unclosed **bold and _half",
    "| a | b |\n|---|---|\n| 1 | 2 |",
]

PLAIN = re.compile(r"[^\W\d_]|[ '.,?!;:-]")


def assert_plain(spoken: str) -> None:
    """Letters, spaces, apostrophes, hyphens and sentence punctuation only; no digits."""
    odd = [ch for ch in spoken if not PLAIN.fullmatch(ch)]
    assert not odd, (spoken, odd)
    assert spoken == spoken.strip()
    assert "  " not in spoken


@pytest.mark.parametrize(("written", "spoken"), CASES, ids=[c[0][:40] for c in CASES])
def test_to_spoken(written: str, spoken: str) -> None:
    assert to_spoken(written) == spoken


@pytest.mark.parametrize("written", [c[0] for c in CASES] + AWKWARD)
def test_spoken_form_is_what_every_tts_backend_reads(written: str) -> None:
    # Piper (espeak-ng phonemes) and Coqui read letters and sentence punctuation without naming
    # symbols; a digit or a symbol left here would be read out by name, or not at all.
    assert_plain(to_spoken(written))


def test_helpers() -> None:
    assert number_words("-1,234.05") == "minus one thousand two hundred thirty-four point zero five"
    assert number_words("0042") == "zero zero four two"
    assert year_words(1961) == "nineteen sixty-one"
    assert year_words(2005) == "two thousand five"


def _repeated(unit: str) -> Callable[[int], str]:
    return lambda length: (unit * (length // len(unit) + 1))[:length]


# Inputs that made some rule rescan or backtrack over the whole text (quadratic or worse),
# and the length each is timed at against its 1,000-character time.
PATHOLOGICAL: dict[str, tuple[Callable[[int], str], int]] = {
    "dollars": (_repeated("$"), 20_000),
    "pipes": (_repeated("|"), 20_000),
    "brackets": (lambda length: "[" * (length // 2) + "]" * (length - length // 2), 20_000),
    "angles": (_repeated("<"), 20_000),
    "emoji": (_repeated("\U0001f600"), 20_000),
    "underscores": (_repeated("_a"), 20_000),
    "digits": (_repeated("7"), 20_000),
    "a long numeral": (_repeated("7"), 100_000),
    "one long word": (_repeated("a"), 10_000),
    "digit groups": (_repeated("123,"), 10_000),
    "abbreviations": (_repeated("etc. "), 10_000),
    "years": (_repeated("in 1990 "), 10_000),
}


def _seconds(text: str) -> float:
    start = time.perf_counter()
    to_spoken(text)
    return time.perf_counter() - start


@pytest.mark.parametrize("kind", PATHOLOGICAL)
def test_time_grows_linearly_with_the_length_of_pathological_text(kind: str) -> None:
    # A ratio to the 1,000-character time, not a wall-clock limit, so a slow machine passes;
    # linear time gives a ratio near length / 1,000, quadratic time ten times that or more.
    make, length = PATHOLOGICAL[kind]
    short_text, long_text = make(1_000), make(length)
    short = min(_seconds(short_text) for _ in range(5))
    allowed = 3 * (length / 1_000) * short
    long = _seconds(long_text)
    for _ in range(2):  # a scheduling hiccup on a busy machine: measure again before failing
        if long < allowed:
            break
        long = min(long, _seconds(long_text))
    assert long < allowed, (kind, short, long)


def test_typical_chunk_normalizes_well_under_five_ms() -> None:
    chunks = [c[0] for c in CASES]
    for chunk in chunks:
        to_spoken(chunk)
    start = time.perf_counter()
    for chunk in chunks:
        to_spoken(chunk)
    assert (time.perf_counter() - start) / len(chunks) < 0.005


# ---------------------------------------------------------------- with the chunker

REPLY = (
    "Sure! Here are **three tips** for a good trip to Paris 🎉:\n\n"
    "## Before you go\n\n"
    "1. Book tickets at https://www.example.com/tickets, e.g. the 2-day pass for $49.50.\n"
    "2. Pack for 20°C, it's mild in late May.\n"
    "3. Write to Dr. Smith at ann@example.com before 3:45 pm on Nov 30, 2026.\n\n"
    "---\n\n"
    "| Site | Price |\n|---|---|\n| Louvre | €22 |\n\n"
    "> *Tip:* the U.S. embassy is ~2 km away, see example.com/a.b for more.\n\n"
    "```\n```\n"
    "That's it, enjoy the 1st day! 😀"
)


@pytest.mark.parametrize("seed", range(4))
def test_streamed_markdown_reply_is_spoken_without_symbols(seed: int) -> None:
    chunker = SentenceChunker()
    chunks = [c for delta in small_pieces(REPLY, seed) for c in chunker.push(delta)]
    chunks += chunker.flush()
    spoken = [to_spoken(chunk) for chunk in chunks]
    for text in spoken:
        assert_plain(text)
    assert "---" not in chunks and "|---|---|" not in chunks and "```" not in chunks
    assert spoken[:4] == [
        "Sure!",
        "Here are three tips for a good trip to Paris:",
        "Before you go",
        "one. Book tickets at example dot com slash tickets, for example, "
        "the two-day pass for forty-nine dollars and fifty cents.",
    ]
    said = " ".join(spoken)
    for words in (
        "two. Pack for twenty degrees Celsius",
        "Doctor Smith at ann at example dot com before three forty-five PM on November thirtieth",
        "Louvre, twenty-two euros",
        "the US embassy is approximately two kilometers away, see example dot com slash a dot b",
        "enjoy the first day!",
    ):
        assert words in said


# ---------------------------------------------------------------- in the reply pipeline


class SpeakingStages:
    """Stages with a scripted LLM and a TTS that records what it was asked to say."""

    output_sample_rate = 16_000
    video: VideoFormat | None = None

    def __init__(self, deltas: list[str]) -> None:
        self.deltas = deltas
        self.spoken: list[str] = []

    async def transcribe(self, pcm16: bytes) -> Transcript:
        return Transcript("Tips please.")

    async def chat(self, messages: list[dict[str, str]]) -> AsyncGenerator[str, None]:
        for delta in self.deltas:
            yield delta

    async def end_of_turn_probability(self, messages: list[dict[str, str]]) -> float | None:
        return None  # no LLM to score: silence decides

    async def speak(self, text: str) -> AsyncGenerator[SpeechChunk, None]:
        self.spoken.append(text)
        yield SpeechChunk(b"\x00\x00" * 160)

    def animate(
        self, chunk: SpeechChunk, start_s: float, codec: str, face_s: float = 0.0
    ) -> AsyncGenerator[list[VideoFrame], None]:
        raise AssertionError("no avatar here")

    async def idle(self, start_s: float, count: int, codec: str) -> list[VideoFrame]:
        raise AssertionError("no avatar here")


def test_pipeline_speaks_the_spoken_form_and_keeps_the_written_text() -> None:
    deltas = small_pieces("## Costs\n\n---\n\n- **Lunch** is $4.50 🎉\n\n🎉\n", seed=0)
    stages = SpeakingStages(deltas)
    pipeline = ReplyPipeline(stages, clock=time.monotonic, telemetry=NoTelemetry())
    reply = Reply(1, 0, b"\x00\x00" * 1600, time.monotonic(), PlaybackClock(16_000))
    sent: list[Outgoing] = []

    async def run() -> None:
        async for output in pipeline.run(reply):
            if isinstance(output, Transcribed):
                reply.messages = [{"role": "user", "content": output.text}]
            elif isinstance(output, Emit):
                sent.append(output.item)

    asyncio.run(run())

    assert stages.spoken == ["Costs", "Lunch is four dollars and fifty cents"]  # no TTS for "🎉"
    assert [chunk.text for chunk in reply.chunks] == ["## Costs", "- **Lunch** is $4.50 🎉"]
    deltas_sent = "".join(m.delta for m in sent if isinstance(m, ev.ResponseTextDelta))
    assert "**Lunch** is $4.50" in deltas_sent  # the text shown to the user stays as written
