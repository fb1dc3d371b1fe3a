"""Written reply text to what a voice should say: markdown, emoji, numbers, symbols. Pure.

`to_spoken` takes one chunk of an LLM reply (`SentenceChunker`'s output) and returns plain words
every TTS backend here reads well: letters, spaces, apostrophes, hyphens and the sentence
punctuation that drives prosody (. , ? ! ; :). "**Paris** costs $4.50 at 3:45 pm 🎉" becomes
"Paris costs four dollars and fifty cents at three forty-five PM.".

Libraries: markdown-it-py (MIT) parses markdown; emoji (BSD-3-Clause) finds emoji, which are
dropped; num2words (LGPL-2.1, used unmodified) spells numbers, years and ordinals. The rest is
an ordered list of regular expressions: e-mail addresses, URLs, abbreviations, dates, times,
money, units, numbers, symbols. inflect (MIT) was set aside: its import takes ~1.8 s here.
NVIDIA's nemo-text-processing (WFST grammars on pynini) covers more, but it installs ~1.1 GB,
compiles its grammars for ~22 s on first use, and takes 100-160 ms per sentence warm on a 2-core
CPU, against a budget of a few milliseconds per chunk on the voice's critical path.

Not covered: slash dates ("30/11" is ambiguous; read as "thirty over eleven"), a year with no
cue word before it ("1961 was" reads as a cardinal), Roman numerals, non-English text, and
reading code aloud well (code is spoken as its words).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import emoji
from markdown_it import MarkdownIt
from markdown_it.token import Token
from num2words import num2words  # type: ignore[import-untyped]

__all__ = ["number_words", "to_spoken", "year_words"]

_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_MARKDOWN_HINT = re.compile(r"[*_`#>\[|<~\\&]|^\s*(?:[-+]|\d{1,9}[.)])(?:\s|$)", re.M)
_BLOCK_END = frozenset({"paragraph_close", "heading_close", "tr_close", "fence", "code_block"})

_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_MONTH = r"(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"  # noqa: E501
_YEAR_CUES = frozenset(
    {"in", "since", "by", "from", "until", "till", "to", "through", "of", "year", "circa",
     "around", "before", "after", "during", "early", "late", "mid"}
    | {month.lower() for month in _MONTHS}
)  # fmt: skip
_TITLES = {
    "Dr": "Doctor", "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Prof": "Professor",
    "St": "Saint", "Mt": "Mount", "Inc": "Incorporated", "Ltd": "Limited", "Corp": "Corporation",
}  # fmt: skip
_CURRENCY = {  # symbol: (one, many, one hundredth, hundredths)
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", "", ""),
    "₹": ("rupee", "rupees", "paisa", "paise"),
}
_CURRENCY_CODES = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}
_MAGNITUDES = {"k": "thousand", "K": "thousand", "m": "million", "M": "million", "mn": "million",
               "b": "billion", "B": "billion", "bn": "billion", "tn": "trillion"}  # fmt: skip
_UNITS = {
    "km": "kilometer", "m": "meter", "cm": "centimeter", "mm": "millimeter", "mi": "mile",
    "ft": "foot", "yd": "yard", "kg": "kilogram", "g": "gram", "mg": "milligram", "lb": "pound",
    "lbs": "pound", "oz": "ounce", "L": "liter", "ml": "milliliter", "mL": "milliliter",
    "mph": "mile per hour", "km/h": "kilometer per hour", "kph": "kilometer per hour",
    "m/s": "meter per second", "ms": "millisecond", "sec": "second", "min": "minute",
    "h": "hour", "hr": "hour", "hrs": "hour", "KB": "kilobyte", "kB": "kilobyte",
    "MB": "megabyte", "GB": "gigabyte", "TB": "terabyte", "GiB": "gibibyte", "Mbps":
    "megabit per second", "Gbps": "gigabit per second", "Hz": "hertz", "kHz": "kilohertz",
    "MHz": "megahertz", "GHz": "gigahertz", "W": "watt", "kW": "kilowatt", "kWh":
    "kilowatt-hour", "V": "volt", "mAh": "milliamp-hour", "px": "pixel", "fps":
    "frame per second", "k": "thousand",
}  # fmt: skip
_PLURAL_EXCEPTIONS = {"foot": "feet", "hertz": "hertz", "thousand": "thousand"}
_FRACTIONS = {
    "1/2": "one half", "1/3": "one third", "2/3": "two thirds", "1/4": "one quarter",
    "3/4": "three quarters", "24/7": "twenty-four seven", "50/50": "fifty-fifty",
}  # fmt: skip
_TLDS = (
    "com|org|net|edu|gov|io|ai|dev|app|co|uk|de|fr|es|nl|eu|us|ca|au|info|biz|me|tv|ly|gg|xyz"
    "|tech|site|online|ru|jp|cn|br|ch|se|ie|nz|in"
)
_URL_PUNCT = {"/": " slash ", ".": " dot ", "-": " dash ", "_": " underscore ", ":": " colon ",
              "~": " tilde ", "+": " plus ", "@": " at "}  # fmt: skip
_CHARACTERS = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201c": " ", "\u201d": " ", '"': " ", "\u00ab": " ",
    "\u00bb": " ", "\u2026": "...", "\u00a0": " ", "\u2212": "-", "\u2014": ", ", "\u2013": "-",
})  # fmt: skip

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_Replacement = str | Callable[[re.Match[str]], str]


def _clean(words: str) -> str:
    """num2words' British "and" and thousands commas dropped: "one hundred forty-four"."""
    return words.replace(",", "").replace(" and ", " ")


def _cardinal(value: int) -> str:
    return _clean(num2words(value))


def _ordinal(value: int) -> str:
    return _clean(num2words(value, to="ordinal"))


def year_words(year: int) -> str:
    """1961 -> "nineteen sixty-one", 2005 -> "two thousand five"."""
    return _clean(num2words(year, to="year"))


def number_words(number: str) -> str:
    """A written number ("-1,234.5", "007", "3.14") in words; decimals digit by digit."""
    sign = "minus " if number[:1] in "-\u2212" else ""
    whole, _, fraction = number.lstrip("-\u2212").replace(",", "").partition(".")
    if len(whole) > 15 or (len(whole) > 1 and whole.startswith("0")):
        spoken = " ".join(_DIGITS[int(d)] for d in whole)
    else:
        spoken = _cardinal(int(whole or "0"))
    if fraction:
        spoken += " point " + " ".join(_DIGITS[int(d)] for d in fraction)
    return sign + spoken


def _sentence_dot(match: re.Match[str]) -> str:
    """ "." when the abbreviation just replaced also ended its sentence."""
    if not match.group().endswith("."):
        return ""
    rest = match.string[match.end() :]
    return "." if not rest.strip() or re.match(r"\s+[A-Z]", rest) else ""


def _previous_word(match: re.Match[str]) -> str:
    words = match.string[: match.start()].split()
    return words[-1].strip("(,").lower() if words else ""


# ---------------------------------------------------------------- rule bodies


def _email(match: re.Match[str]) -> str:
    local, domain = match.group().split("@")
    return (
        re.sub(r"[._+-]", lambda p: _URL_PUNCT.get(p.group(), " "), local)
        + " at "
        + (domain.replace(".", " dot "))
    )


def _url(match: re.Match[str]) -> str:
    url = match.group()
    trail = len(url) - len(url.rstrip(".,;:!?)]'"))
    url, trailing = url[: len(url) - trail], url[len(url) - trail :]
    url = re.sub(r"^(?:https?://)?(?:www\.)?", "", url)
    url = re.split(r"[?#]", url, maxsplit=1)[0].rstrip("/")
    spoken = re.sub(r"[^\w\s]", lambda p: _URL_PUNCT.get(p.group(), " "), url)
    return f" {spoken} {trailing}"


def _initialism(match: re.Match[str]) -> str:
    return match.group().replace(".", "").upper() + _sentence_dot(match)


def _month_day(match: re.Match[str]) -> str:
    month, day, year = match.group(1), int(match.group(2)), match.group(3)
    if not 1 <= day <= 31:
        return match.group()
    spoken = f"{_MONTHS[_month_index(month)]} {_ordinal(day)}"
    return f"{spoken}, {year_words(int(year))}" if year else spoken


def _day_month(match: re.Match[str]) -> str:
    day, month, year = int(match.group(1)), match.group(2), match.group(3)
    if not 1 <= day <= 31:
        return match.group()
    article = "The" if match.group().startswith("The") else "the"
    spoken = f"{article} {_ordinal(day)} of {_MONTHS[_month_index(month)]}"
    return f"{spoken}, {year_words(int(year))}" if year else spoken


def _month_index(name: str) -> int:
    return [m[:3] for m in _MONTHS].index(name[:3])


def _iso_date(match: re.Match[str]) -> str:
    year, month, day = (int(g) for g in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match.group()
    return f"{_MONTHS[month - 1]} {_ordinal(day)}, {year_words(year)}"


def _phone(match: re.Match[str]) -> str:
    groups = re.findall(r"\d+", match.group())
    return ", ".join(" ".join(_DIGITS[int(d)] for d in group) for group in groups)


def _year_range(match: re.Match[str]) -> str:
    return f"{year_words(int(match.group(1)))} to {year_words(int(match.group(2)))}"


def _time(match: re.Match[str]) -> str:
    hour, minute, second, meridiem = match.groups()
    h, m = int(hour), int(minute or 0)
    if h > 23 or (meridiem and not 1 <= h <= 12):
        return match.group()
    if m == 0:
        spoken = _cardinal(h)
        if not meridiem and minute is not None:
            spoken = (
                "midnight" if h == 0 else (f"{spoken} o'clock" if h <= 12 else f"{spoken} hundred")
            )
    else:
        spoken = f"{_cardinal(h)} {'oh ' if m < 10 else ''}{_cardinal(m)}"
    if second and int(second):
        spoken += f" and {_cardinal(int(second))} seconds"
    if meridiem:
        spoken += f" {meridiem.upper()}M" + _sentence_dot(match)
    return spoken


def _money(match: re.Match[str]) -> str:
    symbol = match.group(1) or _CURRENCY_CODES[match.group(5)]
    amount, magnitude = match.group(2) or match.group(4), match.group(3)
    one, many, hundredth, hundredths = _CURRENCY[symbol]
    if magnitude:
        return f"{number_words(amount)} {_MAGNITUDES.get(magnitude, magnitude)} {many}"
    whole, _, cents = amount.replace(",", "").partition(".")
    cents = cents + "0" if len(cents) == 1 else cents
    if len(cents) > 2 or (cents and not hundredth):
        return f"{number_words(amount)} {many}"
    dollars, hundred = int(whole), int(cents or "0")
    parts = []
    if dollars or not hundred:
        parts.append(f"{number_words(whole)} {one if dollars == 1 else many}")
    if hundred:
        parts.append(f"{_cardinal(hundred)} {hundredth if hundred == 1 else hundredths}")
    return " and ".join(parts)


def _unit(match: re.Match[str]) -> str:
    number, joiner, unit, power = match.groups()
    name = _UNITS[unit]
    if joiner != "-" and number != "1":
        first, _, rest = name.partition(" ")
        name = " ".join(filter(None, [_PLURAL_EXCEPTIONS.get(first, first + "s"), rest]))
    name = {"²": "square ", "³": "cubic "}.get(power or "", "") + name
    return f"{number_words(number)}{'-' if joiner == '-' else ' '}{name}"


def _temperature(match: re.Match[str]) -> str:
    number, scale = match.groups()
    degrees = "degree" if number == "1" else "degrees"
    name = {"C": " Celsius", "F": " Fahrenheit"}.get(scale or "", "")
    return f"{number_words(number)} {degrees}{name}"


def _decade(match: re.Match[str]) -> str:
    words = (
        year_words(int(match.group(1)))
        if len(match.group(1)) == 4
        else _cardinal(int(match.group(1)))
    )
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _padded(match: re.Match[str], words: str) -> str:
    """`words` in place of `match`, apart from a letter or digit it touches ("v2": "v two")."""
    text, start, end = match.string, match.start(), match.end()
    before = " " if start and text[start - 1].isalnum() else ""
    return before + words + (" " if end < len(text) and text[end].isalnum() else "")


def _year(match: re.Match[str]) -> str:
    after = match.string[match.end() : match.end() + 5]
    if _previous_word(match) in _YEAR_CUES or re.match(r"\s?(?:BCE?|AD|CE)\b", after):
        return _padded(match, year_words(int(match.group())))
    return match.group()


def _number(match: re.Match[str]) -> str:
    parts = match.group().split(".")
    if len(parts) > 2:  # a version or an address: 1.2.3
        return _padded(match, " point ".join(number_words(p) for p in parts))
    return _padded(match, number_words(match.group()))


def _fraction(match: re.Match[str]) -> str:
    written = match.group()
    if written in _FRACTIONS:
        return _FRACTIONS[written]
    return f"{number_words(match.group(1))} over {number_words(match.group(2))}"


_UNIT_NAMES = "|".join(sorted(map(re.escape, _UNITS), key=len, reverse=True))
_RULE_TABLE: tuple[tuple[str, _Replacement], ...] = (
    (r"[\w.+-]+@[\w-]+(?:\.[A-Za-z0-9-]+)+", _email),
    (r"(?<![\w@.-])(?:https?://|www\.)[^\s<>\"]+", _url),
    (rf"(?<![\w@.-])[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:{_TLDS})\b(?:/[^\s<>\"]*)?", _url),
    # abbreviations
    (r"(?i:\be\.g\.),?", "for example,"),
    (r"(?i:\bi\.e\.),?", "that is,"),
    (r"\betc\.", lambda m: "et cetera" + _sentence_dot(m)),
    (r"\bvs\b\.?", "versus"),
    (r"\bapprox\.", "approximately"),
    (r"\bPh\.D\.", lambda m: "PhD" + _sentence_dot(m)),
    (r"\b(?:No|no|Nr)\.\s?(?=\d)|#(?=\d)", "number "),
    (r"\b(Dr|Mr|Mrs|Ms|Prof|St|Mt)\b\.?(?=\s+[A-Z])", lambda m: _TITLES[m.group(1)]),
    (r",?\s(Jr|Sr)\b\.?", lambda m: " Junior" if m.group(1) == "Jr" else " Senior"),
    (r"\b(Inc|Ltd|Corp)\.", lambda m: _TITLES[m.group(1)] + _sentence_dot(m)),
    (r"\b(?:[A-Za-z]\.){2,}", _initialism),
    # dates, phone numbers, ranges, times
    (r"\b(\d{4})-(\d{2})-(\d{2})\b", _iso_date),
    (rf"\b{_MONTH}\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?", _month_day),
    (
        rf"\b(?:[Tt]he\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\b"
        rf"(?:\.?,?\s+(\d{{4}})\b)?",
        _day_month,
    ),
    (r"(?<![\d-])\(?\d{3}\)?[-. ]\d{3}[-.]\d{4}(?![\d-])", _phone),
    (r"\b(1\d{3}|20\d{2})\s?[-\u2013]\s?(1\d{3}|20\d{2})\b", _year_range),
    (r"(?<=\d)(?:-|\s?\u2013\s?)(?=[$£€¥₹]?\d)", " to "),
    (r"\b(\d{1,2}):([0-5]\d)(?::([0-5]\d))?(?:\s?([AaPp])\.?\s?[Mm](?![A-Za-z])\.?)?", _time),
    (r"\b(\d{1,2})()()\s?([AaPp])\.?\s?[Mm](?![A-Za-z])\.?", _time),
    # signs, money, measures
    (r"(?<![\w)\].,])[-\u2212](?=[$£€¥₹]?\.?\d)", "minus "),
    (r"\s?(?:≈|~)\s?(?=[$£€¥₹]?\d)", " approximately "),
    (
        rf"(?:US|A|C)?([$£€¥₹])\s?({_NUM})(?:\s?(thousand|million|billion|trillion|[kKmMbB]|mn|bn|tn)\b)?"
        rf"|({_NUM})\s?(USD|EUR|GBP|JPY|INR)\b",
        _money,
    ),
    (rf"({_NUM})\s?°\s?([CF])?(?![A-Za-z])", _temperature),
    (rf"(?<![\w.])({_NUM})(\s?|-)({_UNIT_NAMES})([²³])?(?![\w/])", _unit),
    (rf"({_NUM})\s?%", lambda m: f"{number_words(m.group(1))} percent"),
    (r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: _ordinal(int(m.group(1)))),
    (r"(?<![\w'])'?(\d0|1\d\d0|20\d0)s\b", _decade),
    # arithmetic
    (r"(?<=\d)\s*[\u00d7*]\s*(?=\d)|(?<=\d)\s+x\s+(?=\d)", " times "),
    (r"(?<=\d)\s+[-\u2212]\s+(?=\d)", " minus "),
    (r"(?<=\d)x(?=\d)", " by "),
    (r"(?<=\d):(?=\d)", " to "),
    (r"(?<=\d)x\b", " times"),
    (r"(?<![\d/])(\d+)/(\d+)(?![\d/])", _fraction),
    (r"(?<=\d)\s?\^\s?(?=\d)", " to the power of "),
    (r"\s?(?:->|→|=>)\s?", " to "),
    (r"\s?(?:==?|≡)\s?", " equals "),
    (r"\s?≠\s?", " does not equal "),
    (r"\s?≤\s?", " less than or equal to "),
    (r"\s?≥\s?", " greater than or equal to "),
    (r"\s<\s", " less than "),
    (r"\s>\s", " greater than "),
    (r"\s?±\s?", " plus or minus "),
    (r"\s?÷\s?", " divided by "),
    (r"\s?\+\s?", " plus "),
    # numbers
    (r"(?<![\d.,])\b(1[1-9]\d\d|20\d\d)\b(?![.,]\d)", _year),
    (r"\d+(?:\.\d+){2,}|(?<![\w.])\.\d+|" + _NUM, _number),
    # symbols
    (r"&", " and "),
    (r"@", " at "),
    (r"%", " percent "),
    (r"°", " degrees "),
    (r"(?<=[\w])/(?=(?:month|mo|year|yr|day|week|hour|night|person|each|unit)\b)", " per "),
    (r"\band/or\b", "and or"),
    (r"(?<=[a-z])/(?=[a-z])", " or "),
    (r"/", " slash "),
    (r"^\s*\|\s*|\s*\|\s*$", ""),
    (r"[|()\[\]{}]", ", "),
    (r"(?:^|\s)-+(?=\s|$)", ", "),
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
    """Markdown to its words: markers, emphasis, links' targets and html dropped."""
    blocks: list[str] = []
    current: list[str] = []
    for token in _MARKDOWN.parse(re.sub(r"(?<=\d)\*(?=\d)", "\u00d7", text)):
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


def _tidy(text: str) -> str:
    """Only letters, spaces, word-internal apostrophes and hyphens, and sentence punctuation."""
    text = "".join(ch if ch.isalpha() or ch in " '-.,?!;:" else " " for ch in text)
    text = re.sub(r"(?<![^\W\d_])-|-(?![^\W\d_])", " ", text)
    text = re.sub(r"(?<![^\W\d_])'|(?<![sS])'(?![^\W\d_])", " ", text)
    text = re.sub(r"\s+([.,?!;:])", r"\1", text)
    text = re.sub(r"[,;:]+(?=[.?!])|(?<=[.?!])[,;:]+", "", text)
    text = re.sub(r"([,;:])[,;:]+", r"\1", text)
    text = re.sub(r"([,;:?!])(?=[^\W\d_])", r"\1 ", text)
    text = re.sub(r"^[\s.,?!;:]+", "", text)
    text = " ".join(text.split())
    return text if any(ch.isalpha() for ch in text) else ""


def to_spoken(text: str) -> str:
    """One chunk of written reply text as a voice should say it ("" when nothing is to say)."""
    if _MARKDOWN_HINT.search(text):
        text = _markdown_to_text(text)
    if not text.isascii():
        text = emoji.replace_emoji(unicodedata.normalize("NFC", text), replace=" ")
        text = text.translate(_CHARACTERS)
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return _tidy(text)
