"""UK mobile numbers, judged by `phonenumbers`."""

from __future__ import annotations

from typing import Optional

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType


def uk_mobile(raw: str | None) -> Optional[str]:
    """The number in E.164 if it is a valid UK mobile, else None."""
    if not raw or len(raw) > 40:
        return None
    text = raw.strip()
    if text.startswith("44"):
        text = "+" + text
    try:
        number = phonenumbers.parse(text, "GB")
    except NumberParseException:
        return None
    if number.country_code != 44 or not phonenumbers.is_valid_number(number):
        return None
    if phonenumbers.number_type(number) != PhoneNumberType.MOBILE:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

