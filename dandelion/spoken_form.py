"""Written reply text to what a voice should say: markdown, emoji, numbers, symbols. Pure.

`to_spoken` takes one chunk of an LLM reply (`SentenceChunker`'s output) and returns plain words
every TTS backend here reads well: letters, spaces, apostrophes, hyphens and the sentence
punctuation that drives prosody (. , ? ! ; :). "**Paris** costs $4.50 at 3:45 pm 🎉" becomes
"Paris costs four dollars and fifty cents at three forty-five PM.".

Libraries: markdown-it-py (MIT) parses markdown; emoji (BSD-3-Clause) finds emoji, which are
dropped; num2words (LGPL-2.1, used unmodified) spells numbers, years and ordinals. The rest is
an ordered list of regular expressions (below; what each says is in `spoken_form_rules`):
e-mail addresses, URLs, abbreviations, dates, phone numbers, ranges, times, money, units,
arithmetic, numbers, symbols. inflect (MIT) was set aside: its import takes ~1.8 s here.
NVIDIA's nemo-text-processing (WFST grammars on pynini) covers more, but it installs ~1.1 GB,
compiles its grammars for ~22 s on first use, and takes 100-160 ms per sentence warm on a 2-core
CPU, against a budget of a few milliseconds per chunk on the voice's critical path.

Time is linear in the text's length, whatever the text: every pattern that may scan a long run
starts only at the run's start and does not backtrack into it (possessive and atomic groups),
whitespace runs are collapsed first, and a numeral of 16 or more digits is read digit by digit
before the rules see it.

Not covered: a slash date's day and month order ("5/6/1990" is read "five, six, nineteen
ninety"), a two-part slash date ("30/11" reads as "thirty over eleven"), a year with no cue word
before it ("1961 was" reads as a cardinal), Roman numerals, non-English text, and reading code
aloud well (code is spoken as its words).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import emoji
from markdown_it import MarkdownIt
from markdown_it.token import Token

from dandelion import spoken_form_rules as say
from dandelion.spoken_form_rules import MONTH, TITLES, TLDS, UNITS, number_words, year_words

__all__ = ["number_words", "to_spoken", "year_words"]

_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_MARKDOWN_HINT = re.compile(r"[*_`#>\[|<~\\&]|^[ \t]*+(?:[-+]|\d{1,9}[.)])(?:\s|$)", re.M)
_BLOCK_END = frozenset({"paragraph_close", "heading_close", "tr_close", "fence", "code_block"})
_BEFORE_MARKDOWN = (  # what markdown would misread
    (re.compile(r"(?<=\d)\*(?=\d)"), "\u00d7"),  # "2*3", a product, not emphasis
    (re.compile(r"(?:(?<=[\d)])|(?<=\b[A-Za-z]))\*\*(?=[-\u2212]?\d)"), "^"),  # "x**2", a power
    (re.compile(r"^([ \t]*+(?:[-*+]|\d{1,9}[.)])[ \t]++)\[[ xX]\][ \t]++", re.M), r"\1"),  # [x]
)
_CHARACTERS = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201c": " ", "\u201d": " ", '"': " ", "\u00ab": " ",
    "\u00bb": " ", "\u2026": "...", "\u00a0": " ", "\u2212": "-", "\u2014": ", ", "\u2013": "-",
    "\u221e": " infinity ",
    # "½" -> " 1", U+2044 FRACTION SLASH, "2": a slash that only a fraction is written with
    **{ch: " " + unicodedata.normalize("NFKC", ch) for ch in "¼½¾⅐⅑⅒⅓⅔⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞"},
})  # fmt: skip
# A numeral too long to say as one number: read digit by digit before any rule scans it.
_LONG_NUMERAL = re.compile(r"(?<![\d.])(\d(?:\.?\d){15,}+)")

_NUMBER = r"(?>\d{1,3}(?:,\d{3})++(?:\.\d++)?|\d++(?:\.\d++)?)"
_NUM = r"(?<!\d)(?<!\d,)" + _NUMBER  # starting at a numeral's first digit only
_CURRENCY = "[$£€¥₹]"
_SCALE = r"thousand|million|billion|trillion|[kKmMbB]|mn|bn|tn"
_UNIT_NAMES = "|".join(sorted(map(re.escape, UNITS), key=len, reverse=True))
_OPERAND = r"(?=[-\u2212$£€¥₹.(]?\w)"
_UNARY_COMPARISON = {"<=": "at most", "≤": "at most", ">=": "at least", "≥": "at least",
                     "<": "less than", ">": "more than"}  # fmt: skip
_Replacement = str | Callable[[re.Match[str]], str]
_RULE_TABLE: tuple[tuple[str, _Replacement], ...] = (
    # addresses
    (r"(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[A-Za-z0-9-]++)+", say.email),
    (r"(?<![\w@.-])(?:[A-Za-z][A-Za-z0-9+.-]{0,15}://|www\.)[^\s<>\"]++", say.url),
    (rf"(?<![\w@.-])[a-z0-9][a-z0-9-]*+(?:\.[a-z0-9-]++)*\.(?:{TLDS})\b(?:/[^\s<>\"]*+)?", say.url),
    (r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?(?!\w|\.\d)", say.ip_address),
    (r"\blocalhost:(\d{1,5})\b", lambda m: f"localhost, port {say.cardinal(int(m[1]))}"),
    # abbreviations
    (r"(?i:\be\.g\.),?", "for example,"),
    (r"(?i:\bi\.e\.),?", "that is,"),
    (r"\betc\.", lambda m: "et cetera" + say.sentence_dot(m)),
    (r"\bvs\b\.?", "versus"),
    (r"\bapprox\.", "approximately"),
    (r"\bPh\.D\.", lambda m: "PhD" + say.sentence_dot(m)),
    (r"\b(?:No|no|Nr)\.\s?(?=\d)|#(?=\d)", " number "),
    (r"(?<![\w#])([A-Za-z])#(?![\w#])", r"\1 sharp"),
    (r"\b(Dr|Mr|Mrs|Ms|Prof|St|Mt)\b\.?(?=\s+[A-Z])", lambda m: TITLES[m[1]]),
    (r",?\s(Jr|Sr)\b\.?", lambda m: " Junior" if m[1] == "Jr" else " Senior"),
    (r"\b(Inc|Ltd|Corp)\.", lambda m: TITLES[m[1]] + say.sentence_dot(m)),
    (r"\b(?:[A-Za-z]\.){2,}", say.initialism),
    # dates, fractions, phone numbers, ranges, times
    (r"\b(\d{4})-(\d{2})-(\d{2})\b", say.iso_date),
    (r"(?<![\d/.])(\d{4})/(\d{1,2})/(\d{1,2})(?![\d/])", say.iso_date),
    (r"(?<![\d/.])(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?![\d/])", say.numeric_date),
    (r"(?<![\d.])(\d{1,2})\.(\d{1,2})\.(\d{4})(?!\d|\.\d)", say.numeric_date),
    (rf"\b{MONTH}\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?", say.month_day),
    (
        rf"\b(?:[Tt]he\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{MONTH}\b"
        rf"(?:\.?,?\s+(\d{{4}})\b)?",
        say.day_month,
    ),
    (r"(?<![\d/.,])(\d{1,6})[ -](\d{1,2})[/\u2044](\d{1,2})(?![\d/\u2044])", say.mixed_number),
    (r"(\d{1,3})\u2044(\d{1,3})", say.vulgar_fraction),
    (r"(?<![\w+-])1-(\d{3})-(?=\d{3}-\d{4}\b|[A-Z]{3,}\b)", say.toll_free),
    (r"(?<![\w-])(?:\+\d{1,3}[-. ]?)?\(?\d{3}\)?[-. ]\d{3}[-.]\d{4}(?![\d-])", say.phone),
    (r"(?<![\w+.-])([2-9]\d{2})-(\d{4})(?![\w-]|\.\d)", say.local_phone),
    (r"\b(1\d{3}|20\d{2})\s?[-\u2013]\s?(1\d{3}|20\d{2})\b", say.year_range),
    (
        rf"(?:US|A|C)?({_CURRENCY})\s?({_NUM})(?:\s?({_SCALE})\b)?\s?-\s?(\1\s?)?({_NUM})"
        rf"(?:\s?({_SCALE})\b)?(?!\s?=)",
        say.money_range,
    ),
    (
        rf"({_NUM})\s?%\s?-\s?({_NUM})\s?%",
        lambda m: f"{number_words(m[1])} to {number_words(m[2])} percent",
    ),
    (r"(?<=\d)\s+[-\u2212]\s+(?=[$£€¥₹]?\d)", " minus "),
    (r"(?<=[\d%])(?:-|\s?\u2013\s?)(?=[$£€¥₹]?\d)", " to "),
    (r"\b(\d{1,2}):([0-5]\d)(?::([0-5]\d))?(?:\s?([AaPp])\.?\s?[Mm](?![A-Za-z])\.?)?", say.time),
    (r"\b(\d{1,2})()()\s?([AaPp])\.?\s?[Mm](?![A-Za-z])\.?", say.time),
    (r"\b([A-Z][a-z]{1,15}) (\d{1,3}):(\d{1,3})(?![\d:])", say.reference),
    # signs, money, measures
    (r"(?<![\w)\].,%$£€¥₹])[-\u2212](?=[$£€¥₹]?\.?\d)", " minus "),
    (r"\s?(?:≈|~)\s?(?=[$£€¥₹]?\d)", " approximately "),
    (
        rf"(?:US|A|C)?(?P<symbol>{_CURRENCY})\s?(?P<sign>[-\u2212])?(?P<amount>{_NUM}|\.\d++)"
        rf"(?:\s?(?P<magnitude>{_SCALE})\b)?|(?P<coded>{_NUM})\s?(?P<code>USD|EUR|GBP|JPY|INR)\b",
        say.money,
    ),
    (rf"({_NUM})\s?¢", say.cents),
    (rf"({_NUM})\s?°\s?([CF])?(?![A-Za-z])", say.temperature),
    (
        r"\b(\d{1,3})\s?h\s?(\d{1,2})\s?m(?:in)?\b(?:\s?(\d{1,2})\s?s\b)?"
        r"|\b(\d{1,3})\s?m(?:in)?\s?(\d{1,2})\s?s\b",
        say.duration,
    ),
    (r"(?<![\w.])(\d{1,3})[kK]\b(?!/)", say.race),
    (rf"(?<![\w.])({_NUM})(\s?|-)({_UNIT_NAMES})([²³])?(?![\w/])", say.unit),
    (rf"({_NUM})\s?%", lambda m: f" {number_words(m[1])} percent "),
    (r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: say.ordinal(int(m[1]))),
    (r"(?<![\w'])'?(\d0|1\d\d0|20\d0)'?s\b", say.decade),
    # arithmetic and comparisons
    (r"\s?(?:->|→|=>)\s?", " to "),
    (r"\s?(?:!==?|≠)\s?", " does not equal "),
    (
        r"(?:^|(?<=[\s(]))(?:<=|≤|>=|≥|<|>)(?=[-\u2212$£€¥₹.]?\d)",
        lambda m: f" {_UNARY_COMPARISON[m[0]]} ",
    ),
    (r"\s?(?:<=|≤)\s?", " less than or equal to "),
    (r"\s?(?:>=|≥)\s?", " greater than or equal to "),
    (rf"(?<=[\w)\]])\s?<\s?{_OPERAND}", " less than "),
    (rf"(?<=[\w)\]])\s?>\s?{_OPERAND}", " greater than "),
    (r"\s?(?:={1,3}|≡)\s?", " equals "),
    (
        rf"(?<=[\w)])\s?\^\s?{_OPERAND}|(?<=[\w)])(?:\*\*| \*\* )(?=[-\u2212]?\d|\()",
        " to the power of ",
    ),
    (r"\s?\u00d7\s?", " times "),
    (r"(?<=\d)\s?\*\s?(?=\d)|(?<=\d)\s+x\s+(?=\d)", " times "),
    (r"(?<=[\d)])\s+/\s+(?=[-\u2212\d(])", " divided by "),
    (r"(?<=\d)x(?=\d)", " by "),
    (r"(?<=\d):(?=\d)", " to "),
    (r"(?<=\d)x\b", " times"),
    (r"(?<![\d/])(\d+)/(\d+)(?![\d/])", say.fraction),
    (r"[⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻]++", say.superscript),
    (r"[₀₁₂₃₄₅₆₇₈₉]++", say.subscript),
    (r"\s?±\s?", " plus or minus "),
    (r"\s?÷\s?", " divided by "),
    (r"\s?\+\s?", " plus "),
    # numbers
    (r"(?<![\d.,])\b(1[1-9]\d\d|20\d\d)\b(?![.,]\d)", say.year),
    (rf"\d++(?:\.\d++){{2,}}|(?<![\w.])\.\d++|{_NUMBER}", say.number),
    # symbols
    (r"&", " and "),
    (r"@", " at "),
    (r"%", " percent "),
    (r"°", " degrees "),
    (r"(?<=[\w])/(?=(?:month|mo|year|yr|day|week|hour|night|person|each|unit)\b)", " per "),
    (r"\band/or\b", "and or"),
    (r"(?<=[a-z])/(?=[a-z])", " or "),
    (r"/", " slash "),
    (r"(?<![\w.])\.(?=[A-Za-z])", " dot "),  # ".NET"
    (r"^\s*+\|\s*+|(?<!\s)\s*+\|\s*+$", ""),
    (r"[|()\[\]{}]", ", "),
    (r"(?:^|\s)-++(?=\s|$)", ", "),
    (r"(?<=[A-Za-z])\.(?=[a-z])", " dot "),
)
_RULES = [(re.compile(pattern), replacement) for pattern, replacement in _RULE_TABLE]


def _inline_text(children: list[Token]) -> str:
    parts = []
    for child in children:
        if child.type in ("text", "code_inline", "image"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak", "html_inline"):
            parts.append(" ")
    return "".join(parts)


def _markdown_to_text(text: str) -> str:
    """Markdown to its words: markers, emphasis, links' targets, task boxes and html dropped."""
    for pattern, replacement in _BEFORE_MARKDOWN:
        text = pattern.sub(replacement, text)
    blocks: list[str] = []
    current: list[str] = []
    for token in _MARKDOWN.parse(text):
        if token.type == "inline":
            current.append(_inline_text(token.children or []))
        elif token.type in ("fence", "code_block"):
            current.append(token.content)
        elif token.type == "list_item_open" and token.info:
            current.append(f"{token.info}.")  # an ordered item's number is spoken
        elif token.type in ("th_close", "td_close"):
            current.append(",")
        if token.type in _BLOCK_END:
            blocks.append(" ".join(current).strip(" ,"))
            current = []
    blocks = [block for block in [*blocks, " ".join(current)] if block]
    return " ".join(
        block if i == len(blocks) - 1 or block[-1] in ".!?;:" else block + "."
        for i, block in enumerate(blocks)
    )


def _apply_rules(text: str) -> str:
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


def _tidy(text: str) -> str:
    """Only letters, spaces, word-internal apostrophes and hyphens, and sentence punctuation."""
    text = "".join(ch if ch.isalpha() or ch in " '-.,?!;:" else " " for ch in text)
    text = re.sub(r"(?<![^\W\d_])-|-(?![^\W\d_])", " ", text)
    text = re.sub(r"(?<![^\W\d_])'|(?<![sS])'(?![^\W\d_])", " ", text)
    text = " ".join(text.split())
    text = re.sub(r" ([.,?!;:])", r"\1", text)
    text = re.sub(r"(?<![,;:])[,;:]++(?=[.?!])|(?<=[.?!])[,;:]++", "", text)
    text = re.sub(r"([,;:])[,;:]++", r"\1", text)
    text = re.sub(r"([,;:?!])(?=[^\W\d_])", r"\1 ", text)
    text = text.lstrip(" .,?!;:")
    return text if any(ch.isalpha() for ch in text) else ""


def to_spoken(text: str) -> str:
    """One chunk of written reply text as a voice should say it ("" when nothing is to say)."""
    if _MARKDOWN_HINT.search(text):
        text = _markdown_to_text(text)
    if not text.isascii():
        text = emoji.replace_emoji(unicodedata.normalize("NFC", text), replace=" ")
        text = text.translate(_CHARACTERS)
    pieces = _LONG_NUMERAL.split(" ".join(text.split()))
    return _tidy(
        "".join(
            f" {say.numeral_words(piece)} " if i % 2 else _apply_rules(piece)
            for i, piece in enumerate(pieces)
        )
    )
