"""UK mobile numbers, judged by `phonenumbers`.

Codes by SMS go only to UK mobiles: a text to an international number often never arrives,
so such a number is refused when it is set, with the reason, never discovered at sign-in.
`phonenumbers` (1 MB a process) is imported by the first number judged or written, not with
the app: a worker that serves sign-ins by email never needs it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Optional

# Longer than anyone types a phone number, even with spaces, brackets and "+44 (0)".
MAX_INPUT_LENGTH = 40
# E.164 allows at most 15 digits; "0044" adds two more in front.
MAX_DIGITS = 17

ONLY_UK_MOBILES = (
    "Codes by text message work only for UK mobile numbers (they start 07). "
    "You can get your codes by email instead."
)

# What people put between digits: spaces of any kind, dashes of any kind, dots, slashes.
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212./]+")
_ALLOWED = re.compile(r"\+?[0-9()]*")

_CROWN_DEPENDENCIES = {"GG": "Guernsey", "IM": "the Isle of Man", "JE": "Jersey"}


@dataclass(frozen=True)
class PhoneCheck:
    """The verdict on a typed number: its E.164 form, or the reason it cannot get codes."""

    e164: Optional[str] = None
    problem: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.e164 is not None

    @property
    def message(self) -> str:
        """The sentence to show the client when the number is refused."""
        return f"{self.problem} {ONLY_UK_MOBILES}" if self.problem else ""


def _ascii_digits(text: str) -> str:
    """Full-width and other Unicode digits as ASCII, so "０７４００…" reads as "07400…"."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(
        str(unicodedata.decimal(ch)) if not ch.isascii() and unicodedata.decimal(ch, None)
        is not None else ch
        for ch in text
    )


def check_uk_mobile(raw: str | None) -> PhoneCheck:
    """Judge a number as typed: a valid UK mobile in E.164, or a plain-English reason why not."""
    if raw is None or not raw.strip():
        return PhoneCheck(problem="Enter your mobile number.")
    if len(raw) > MAX_INPUT_LENGTH:
        return PhoneCheck(problem="That is too long to be a phone number.")
    text = _SEPARATORS.sub("", _ascii_digits(raw.strip()))
    # phonenumbers would read letters as a keypad ("0800 FLOWERS"); nobody means that here.
    if not _ALLOWED.fullmatch(text):
        return PhoneCheck(
            problem="A phone number has only digits, spaces, brackets and a + at the start."
        )
    digits = re.sub(r"\D", "", text)
    if len(digits) > MAX_DIGITS:
        return PhoneCheck(problem="That has too many digits to be a phone number.")
    if len(digits) < 7:
        return PhoneCheck(problem="That is too short to be a phone number.")
    if text.startswith("44"):
        text = "+" + text  # "447400123456": the international form without its plus
    import phonenumbers
    from phonenumbers import PhoneNumberFormat, PhoneNumberType

    try:
        number = phonenumbers.parse(text, "GB")
    except phonenumbers.NumberParseException:
        return PhoneCheck(problem="That is not a phone number we recognise.")
    if number.country_code != 44:
        return PhoneCheck(problem=f"That is not a UK number (it starts +{number.country_code}).")
    region = phonenumbers.region_code_for_number(number)
    if region in _CROWN_DEPENDENCIES:
        return PhoneCheck(problem=f"That is a number from {_CROWN_DEPENDENCIES[region]}, "
                                  "not the UK.")
    if not phonenumbers.is_valid_number(number) or region != "GB":
        if len(str(number.national_number)) == 10 and str(number.national_number)[0] == "7":
            # A mobile's 11 digits, but no number in use (07700 900..., kept for drama).
            return PhoneCheck(problem="That is not a UK phone number in use. Please check the "
                                      "digits.")
        return PhoneCheck(problem="That is not a complete UK phone number: a UK mobile number "
                                  "has 11 digits, like 07400 123456.")
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.FIXED_LINE:
        return PhoneCheck(problem="That looks like a landline number, which cannot receive "
                                  "text messages.")
    if kind != PhoneNumberType.MOBILE:
        return PhoneCheck(problem="That is not a mobile number.")
    return PhoneCheck(e164=phonenumbers.format_number(number, PhoneNumberFormat.E164))


def uk_mobile(raw: str | None) -> Optional[str]:
    """The number in E.164 if it is a valid UK mobile, else None."""
    return check_uk_mobile(raw).e164


def national(e164: str | None) -> str:
    """"07400 123456": how a UK client writes their own number."""
    if not e164:
        return ""
    import phonenumbers

    try:
        number = phonenumbers.parse(e164, "GB")
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
