"""What `spoken_form`'s rules say: word tables, numbers in words, one function per rule. Pure.

Each function takes the regular-expression match of one rule (the table in `spoken_form`) and
returns the words to say in its place; a function that finds the match is not its kind (a
"phone number" that is a round range) returns the match unchanged, for a later rule to read.
Neighbouring text is looked at through bounded windows only, so every rule stays linear.
"""

from __future__ import annotations

import re

from num2words import num2words  # type: ignore[import-untyped]

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
MONTH = r"(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"  # noqa: E501
_YEAR_CUES = frozenset(
    {"in", "since", "by", "from", "until", "till", "to", "through", "of", "year", "circa",
     "around", "before", "after", "during", "early", "late", "mid"}
    | {month.lower() for month in MONTHS}
)  # fmt: skip
TITLES = {
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
MAGNITUDES = {"k": "thousand", "K": "thousand", "m": "million", "M": "million", "mn": "million",
              "b": "billion", "B": "billion", "bn": "billion", "tn": "trillion"}  # fmt: skip
UNITS = {
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
TLDS = (
    "com|org|net|edu|gov|io|ai|dev|app|co|uk|de|fr|es|nl|eu|us|ca|au|info|biz|me|tv|ly|gg|xyz"
    "|tech|site|online|ru|jp|cn|br|ch|se|ie|nz|in"
)
_URL_PUNCT = {"/": " slash ", ".": " dot ", "-": " dash ", "_": " underscore ", ":": " colon ",
              "~": " tilde ", "+": " plus ", "@": " at "}  # fmt: skip
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_SUBSCRIPTS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
# Words after "5k" that make it a race ("a 5k run"), not five thousand ("a 5k bonus").
_RACES = frozenset({"run", "runs", "race", "races", "walk", "walks", "runner", "runners", "time",
                    "course", "route", "training", "plan", "pr", "pb"})  # fmt: skip
_ARTICLES = frozenset({"a", "an", "the", "my", "your", "his", "her", "our", "their", "this",
                       "that", "first", "next", "last"})  # fmt: skip
_RATIO_CUES = frozenset({"ratio", "ratios", "odds", "aspect", "scale", "score", "mix", "about",
                         "at", "of", "by", "is", "was", "won", "lost", "beat", "ended",
                         "from"})  # fmt: skip
_PHONE_CUES = frozenset({"call", "phone", "telephone", "dial", "tel", "fax", "text", "number",
                         "reach", "contact", "cell", "mobile", "hotline"})  # fmt: skip
_SENTENCE_GOES_ON = re.compile(r"\s*+$|\s++[A-Z]")


def _clean(words: str) -> str:
    """num2words' British "and" and thousands commas dropped: "one hundred forty-four"."""
    return words.replace(",", "").replace(" and ", " ")


def cardinal(value: int) -> str:
    return _clean(num2words(value))


def ordinal(value: int) -> str:
    return _clean(num2words(value, to="ordinal"))


def year_words(year: int) -> str:
    """1961 -> "nineteen sixty-one", 2005 -> "two thousand five"."""
    return _clean(num2words(year, to="year"))


def digit_words(digits: str) -> str:
    """ "127" -> "one two seven"; any length, in linear time."""
    return " ".join(DIGITS[int(d)] for d in digits)


def number_words(number: str) -> str:
    """A written number ("-1,234.5", "007", "3.14") in words; decimals digit by digit.

    A whole part over 15 digits, or one with a leading zero, is read digit by digit too.
    """
    sign = "minus " if number[:1] in "-\u2212" else ""
    whole, _, fraction = number.lstrip("-\u2212").replace(",", "").partition(".")
    if len(whole) > 15 or (len(whole) > 1 and whole.startswith("0")):
        spoken = digit_words(whole)
    else:
        spoken = cardinal(int(whole or "0"))
    if fraction:
        spoken += " point " + digit_words(fraction)
    return sign + spoken


def numeral_words(numeral: str) -> str:
    """A number, or a dotted run of them (a version, "1.2.3"), in words."""
    parts = numeral.split(".")
    if len(parts) > 2:
        return " point ".join(number_words(part) for part in parts if part)
    return number_words(numeral)


def fraction_words(numerator: int, denominator: int, mixed: bool = False) -> str:
    """3, 4 -> "three quarters"; with `mixed` (after a whole number) 1, 2 -> "a half"."""
    name = {2: "half", 4: "quarter"}.get(denominator) or ordinal(denominator)
    if numerator != 1:
        name = "halves" if name == "half" else name + "s"
    count = "a" if mixed and numerator == 1 else cardinal(numerator)
    return f"{count} {name}"


def sentence_dot(match: re.Match[str]) -> str:
    """ "." when the abbreviation just replaced also ended its sentence."""
    if not match.group().endswith("."):
        return ""
    return "." if _SENTENCE_GOES_ON.match(match.string, match.end()) else ""


def _previous_words(match: re.Match[str], count: int) -> list[str]:
    words = match.string[max(0, match.start() - 15 * count) : match.start()].split()[-count:]
    return [word.strip("(,:").lower() for word in words]


def _previous_word(match: re.Match[str]) -> str:
    return (_previous_words(match, 1) or [""])[0]


def _next_word(match: re.Match[str]) -> str:
    words = match.string[match.end() : match.end() + 40].split()
    return words[0].strip(".,;:!?)").lower() if words else ""


def padded(match: re.Match[str], words: str) -> str:
    """`words` in place of `match`, apart from a letter or digit it touches ("v2": "v two")."""
    text, start, end = match.string, match.start(), match.end()
    before = " " if start and text[start - 1].isalnum() else ""
    return before + words + (" " if end < len(text) and text[end].isalnum() else "")


# ---------------------------------------------------------------- addresses


def email(match: re.Match[str]) -> str:
    local, domain = match.group().split("@")
    return (
        re.sub(r"[._+-]", lambda p: _URL_PUNCT.get(p.group(), " "), local)
        + " at "
        + (domain.replace(".", " dot "))
    )


def url(match: re.Match[str]) -> str:
    address = match.group()
    trail = len(address) - len(address.rstrip(".,;:!?)]'"))
    address, trailing = address[: len(address) - trail], address[len(address) - trail :]
    address = re.sub(r"^(?:[A-Za-z][\w+.-]*://)?(?:www\.)?", "", address)
    address = re.split(r"[?#]", address, maxsplit=1)[0].rstrip("/")
    spoken = re.sub(r"[^\w\s]", lambda p: _URL_PUNCT.get(p.group(), " "), address)
    return f" {spoken} {trailing}"


def ip_address(match: re.Match[str]) -> str:
    """ "127.0.0.1:8000" -> "one two seven dot zero dot zero dot one, port eight thousand"."""
    octets, port = match.group(1).split("."), match.group(2)
    if not any(len(octet) > 1 for octet in octets) and not port:
        return match.group()  # "1.2.3.4" is likelier a version
    spoken = " dot ".join(digit_words(octet) for octet in octets)
    return f" {spoken}, port {cardinal(int(port))}" if port else f" {spoken} "


def initialism(match: re.Match[str]) -> str:
    return match.group().replace(".", "").upper() + sentence_dot(match)


# ---------------------------------------------------------------- dates, phones, times


def _month_index(name: str) -> int:
    return [m[:3] for m in MONTHS].index(name[:3])


def month_day(match: re.Match[str]) -> str:
    month, day, year = match.group(1), int(match.group(2)), match.group(3)
    if not 1 <= day <= 31:
        return match.group()
    spoken = f"{MONTHS[_month_index(month)]} {ordinal(day)}"
    return f"{spoken}, {year_words(int(year))}" if year else spoken


def day_month(match: re.Match[str]) -> str:
    day, month, year = int(match.group(1)), match.group(2), match.group(3)
    if not 1 <= day <= 31:
        return match.group()
    article = "The" if match.group().startswith("The") else "the"
    spoken = f"{article} {ordinal(day)} of {MONTHS[_month_index(month)]}"
    return f"{spoken}, {year_words(int(year))}" if year else spoken


def iso_date(match: re.Match[str]) -> str:
    year, month, day = (int(g) for g in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match.group()
    return f"{MONTHS[month - 1]} {ordinal(day)}, {year_words(year)}"


def numeric_date(match: re.Match[str]) -> str:
    """ "5/6/1990" -> "five, six, nineteen ninety": read as written, day and month unguessed."""
    first, second, year = match.groups()
    a, b = int(first), int(second)
    if not (1 <= a <= 31 and 1 <= b <= 31 and min(a, b) <= 12):
        return match.group()
    spoken_year = (
        year_words(int(year))
        if len(year) == 4
        else ("oh " + DIGITS[int(year)] if year.startswith("0") else cardinal(int(year)))
    )
    return f"{cardinal(a)}, {cardinal(b)}, {spoken_year}"


def phone(match: re.Match[str]) -> str:
    plus = "plus " if match.group().lstrip("(").startswith("+") else ""
    return plus + ", ".join(digit_words(group) for group in re.findall(r"\d+", match.group()))


def local_phone(match: re.Match[str]) -> str:
    """ "Call 867-5309" and "555-1234" are phone numbers; "256-1024", a range, is left as it is."""
    exchange, line = match.groups()
    if exchange != "555" and not _PHONE_CUES.intersection(_previous_words(match, 3)):
        return match.group()
    return f"{digit_words(exchange)}, {digit_words(line)}"


def toll_free(match: re.Match[str]) -> str:
    """ "1-800-" -> "one eight hundred", "1-888-" -> "one eight eight eight"."""
    code = match.group(1)
    return "one " + (cardinal(int(code)) if code.endswith("00") else digit_words(code)) + " "


def year_range(match: re.Match[str]) -> str:
    return f"{year_words(int(match.group(1)))} to {year_words(int(match.group(2)))}"


def time(match: re.Match[str]) -> str:
    hour, minute, second, meridiem = match.groups()
    h, m = int(hour), int(minute or 0)
    if h > 23 or (meridiem and not 1 <= h <= 12):
        return match.group()
    if m == 0:
        spoken = cardinal(h)
        if not meridiem and minute is not None:
            spoken = (
                "midnight" if h == 0 else (f"{spoken} o'clock" if h <= 12 else f"{spoken} hundred")
            )
    else:
        spoken = f"{cardinal(h)} {'oh ' if m < 10 else ''}{cardinal(m)}"
    if second and int(second):
        spoken += f" and {cardinal(int(second))} seconds"
    if meridiem:
        spoken += f" {meridiem.upper()}M" + sentence_dot(match)
    return spoken


def reference(match: re.Match[str]) -> str:
    """ "Psalm 23:4" -> "Psalm twenty-three, four"; "Ratio 3:1" is left to the ratio rule."""
    word, first, second = match.groups()
    if word.lower() in _RATIO_CUES:
        return match.group()
    return f"{word} {cardinal(int(first))}, {cardinal(int(second))}"


def duration(match: re.Match[str]) -> str:
    """ "2h 30m" -> "two hours thirty minutes", "5m 10s" -> "five minutes ten seconds"."""
    names = ("hour", "minute", "second")
    amounts = match.groups()
    if amounts[3] is not None:  # minutes and seconds, no hours
        amounts = (None, amounts[3], amounts[4])
    parts = [
        f"{cardinal(int(amount))} {name}{'' if amount == '1' else 's'}"
        for amount, name in zip(amounts, names, strict=False)
        if amount is not None
    ]
    return " ".join(parts)


# ---------------------------------------------------------------- money, measures, numbers


def money_words(symbol: str, amount: str) -> str:
    """ "$", "-4.50" -> "minus four dollars and fifty cents"; ".5" -> "fifty cents"."""
    one, many, hundredth, hundredths = _CURRENCY[symbol]
    sign = "minus " if amount[:1] in "-\u2212" else ""
    amount = amount.lstrip("-\u2212")
    whole, _, cents = amount.replace(",", "").partition(".")
    cents = cents + "0" if len(cents) == 1 else cents
    if len(cents) > 2 or (cents and not hundredth) or len(whole) > 15:
        return f"{sign}{number_words(amount)} {many}"
    dollars, hundred = int(whole or "0"), int(cents or "0")
    parts = []
    if dollars or not hundred:
        parts.append(f"{number_words(whole or '0')} {one if dollars == 1 else many}")
    if hundred:
        parts.append(f"{cardinal(hundred)} {hundredth if hundred == 1 else hundredths}")
    return sign + " and ".join(parts)


def money(match: re.Match[str]) -> str:
    symbol = match["symbol"] or _CURRENCY_CODES[match["code"]]
    amount = (match["sign"] or "") + (match["amount"] or match["coded"])
    if magnitude := match["magnitude"]:
        scale = MAGNITUDES.get(magnitude, magnitude)
        return f"{number_words(amount)} {scale} {_CURRENCY[symbol][1]}"
    return money_words(symbol, amount)


def money_range(match: re.Match[str]) -> str:
    """ "$5-$10" -> "five to ten dollars", "$5-10k" -> "five to ten thousand dollars"."""
    symbol, low, low_scale, again, high, high_scale = match.groups()
    many = _CURRENCY[symbol][1]
    if not (low_scale or high_scale) and "." in low + high:  # cents: each amount in full
        return f"{money_words(symbol, low)} to {money_words(symbol, high)}"
    if not low_scale and not again:  # "$5-10k": thousands both
        low_scale = high_scale
    low_words, high_words = number_words(low), number_words(high)
    if low_scale:
        low_words += " " + MAGNITUDES.get(low_scale, low_scale)
    if high_scale:
        high_words += " " + MAGNITUDES.get(high_scale, high_scale)
    if MAGNITUDES.get(low_scale or "", low_scale) == MAGNITUDES.get(high_scale or "", high_scale):
        return f"{number_words(low)} to {high_words} {many}"
    return f"{low_words} {many} to {high_words} {many}"


def cents(match: re.Match[str]) -> str:
    return f"{number_words(match.group(1))} {'cent' if match.group(1) == '1' else 'cents'}"


def unit(match: re.Match[str]) -> str:
    number, joiner, name_written, power = match.groups()
    name = UNITS[name_written]
    if joiner != "-" and number != "1":
        first, _, rest = name.partition(" ")
        name = " ".join(filter(None, [_PLURAL_EXCEPTIONS.get(first, first + "s"), rest]))
    name = {"²": "square ", "³": "cubic "}.get(power or "", "") + name
    return f"{number_words(number)}{'-' if joiner == '-' else ' '}{name}"


def race(match: re.Match[str]) -> str:
    """ "a 5k run" -> "a five K run"; other "5k" is left to the unit rule (five thousand)."""
    rest = match.string[match.end() : match.end() + 40].lstrip()
    said_alone = not rest or rest[0] in ".,;:!?)"  # "I ran a 5k."
    if _next_word(match) in _RACES or (said_alone and _previous_word(match) in _ARTICLES):
        return f"{number_words(match.group(1))} K"
    return match.group()


def temperature(match: re.Match[str]) -> str:
    number, scale = match.groups()
    degrees = "degree" if number == "1" else "degrees"
    name = {"C": " Celsius", "F": " Fahrenheit"}.get(scale or "", "")
    return f"{number_words(number)} {degrees}{name}"


def decade(match: re.Match[str]) -> str:
    digits = match.group(1)
    words = year_words(int(digits)) if len(digits) == 4 else cardinal(int(digits))
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def year(match: re.Match[str]) -> str:
    after = match.string[match.end() : match.end() + 5]
    if _previous_word(match) in _YEAR_CUES or re.match(r"\s?(?:BCE?|AD|CE)\b", after):
        return padded(match, year_words(int(match.group())))
    return match.group()


def number(match: re.Match[str]) -> str:
    return padded(match, numeral_words(match.group()))


def fraction(match: re.Match[str]) -> str:
    written = match.group()
    if written in _FRACTIONS:
        return _FRACTIONS[written]
    return f"{number_words(match.group(1))} over {number_words(match.group(2))}"


def vulgar_fraction(match: re.Match[str]) -> str:
    """ "1\u20445" (how "\u2155" is written out) -> "one fifth"."""
    numerator, denominator = int(match.group(1)), int(match.group(2))
    if not 1 < denominator <= 100:
        return f"{cardinal(numerator)} over {cardinal(denominator)}"
    return padded(match, fraction_words(numerator, denominator))


def mixed_number(match: re.Match[str]) -> str:
    """ "2 1/2" -> "two and a half"; not a proper fraction: left as it was."""
    whole, numerator, denominator = match.groups()
    if not 0 < int(numerator) < int(denominator) <= 16:
        return match.group()
    return f"{number_words(whole)} and {fraction_words(int(numerator), int(denominator), True)}"


def superscript(match: re.Match[str]) -> str:
    """ "x²" -> "x squared", "10⁶" -> "ten to the power of six"; a footnote mark is dropped."""
    power = match.group().translate(_SUPERSCRIPTS)
    if power in ("2", "3"):
        return " squared " if power == "2" else " cubed "
    before = match.string[max(0, match.start() - 2) : match.start()]
    if (len(before) == 2 and before.isalpha()) or not power.strip("+-"):
        return " "  # "Einstein¹": a footnote
    return f" to the power of {number_words(power.lstrip('+'))} "


def subscript(match: re.Match[str]) -> str:
    """ "H₂O" -> "H two O"."""
    return padded(match, number_words(match.group().translate(_SUBSCRIPTS)))
