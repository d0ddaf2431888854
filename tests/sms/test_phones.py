"""The UK-mobile rule, over the formats people really type."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.phones import ONLY_UK_MOBILES, check_uk_mobile, national, uk_mobile

SAME_NUMBER = "+447400123456"


@pytest.mark.parametrize("typed", [
    "07400 123456",
    "+44 7400 123456",
    "447400123456",
    "07400123456",
    "+447400123456",
    "7400 123456",
    "+44 (0)7400 123456",
    "+44(0)7400123456",
    "+44 (0) 7400 123 456",
    "0044 7400 123456",
    "00447400123456",
    "44 7400 123456",
    "+44 07400 123456",
    "(07400) 123456",
    "(07400) 123-456",
    "07400-123-456",
    "07400.123.456",
    "0740 0123 456",
    "07400/123456",
    "  07400 123456  ",
    "07400\u00a0123456",           # a non-breaking space, as copied from a web page
    "07400\u2009123\u2009456",     # thin spaces
    "07400\u2013123\u2013456",     # en dashes
    "+44\u20127400\u2012123456",   # figure dashes
    "０７４００ １２３４５６",         # full-width digits (a phone keyboard in CJK mode)
    "٠٧٤٠٠١٢٣٤٥٦",                 # Arabic-Indic digits
    "۰۷۴۰۰۱۲۳۴۵۶",                 # Persian digits
    "०७४०० १२३४५६",                # Devanagari digits
    "+447400123456\n",
])
def test_same_uk_mobile_in_e164(typed):
    assert check_uk_mobile(typed).e164 == SAME_NUMBER
    assert uk_mobile(typed) == SAME_NUMBER


@pytest.mark.parametrize("typed, e164", [
    ("07950 123456", "+447950123456"),
    ("07810 123456", "+447810123456"),
    ("07123 456789", "+447123456789"),
    ("07575 123456", "+447575123456"),
])
def test_other_uk_mobiles(typed, e164):
    assert uk_mobile(typed) == e164


@pytest.mark.parametrize("typed, why", [
    # landlines
    ("020 7946 0000", "landline"),
    ("0161 496 0000", "landline"),
    ("+44 20 7946 0000", "landline"),
    ("0131 496 0000", "landline"),
    ("01632 960000", None),
    # premium, free, non-geographic, personal, pagers
    ("09098 790000", "not a mobile"),
    ("0800 123 4567", "not a mobile"),
    ("0845 464 0000", "not a mobile"),
    ("0300 123 4567", "not a mobile"),
    ("07000 123456", "not a mobile"),  # "personal numbers" that forward anywhere
    ("07600 123456", "not a mobile"),  # pagers
    ("056 1234 5678", None),
    # international numbers
    ("+1 202 555 0136", "+1"),
    ("+1 (415) 555-2671", "+1"),
    ("+33 6 12 34 56 78", "+33"),
    ("0033 6 12 34 56 78", "+33"),
    ("+353 85 123 4567", "+353"),
    ("+49 151 23456789", "+49"),
    ("+91 98765 43210", "+91"),
    ("+61 412 345 678", "+61"),
    ("+86 138 0013 8000", "+86"),
    ("+34 612 34 56 78", "+34"),
    ("+234 803 123 4567", "+234"),
    # +44 but not the UK
    ("+44 7624 123456", "Isle of Man"),
    ("07624 123456", "Isle of Man"),
    ("+44 7797 123456", "Jersey"),
    ("+44 7781 123456", "Guernsey"),
    ("07911 123456", "Guernsey"),
    # too short or too long
    ("07400 12345", "not a complete"),
    ("07400 1234567", "not a complete"),
    # eleven digits, but no number in use: Ofcom keeps 07700 900000-900999 for drama
    ("07700 900123", "not a UK phone number in use"),
    ("0740", "too short"),
    ("12", "too short"),
    ("+", "too short"),
    ("1" * 20, "too many digits"),
    ("0" * 41, "too long"),
    ("07400 123456 " * 1000, "too long"),
    # letters and other things that are not numbers
    ("07400 HELLO1", "only digits"),
    ("0800 FLOWERS", "only digits"),
    ("07400 123456 ext 12", "only digits"),
    ("tel:+447400123456", "only digits"),
    ("++447400123456", "only digits"),
    ("07400+123456", "only digits"),
    ("07400 123456; DROP TABLE users", "only digits"),
    ("<script>alert(1)</script>", "only digits"),
    ("07400\x00123456", "only digits"),
    ("🙂🙂🙂", "only digits"),
    ("", "Enter your mobile number"),
    ("   ", "Enter your mobile number"),
    (None, "Enter your mobile number"),
])
def test_refused_with_a_reason(typed, why):
    check = check_uk_mobile(typed)
    assert check.e164 is None and not check.ok
    assert check.problem
    if why:
        assert why in check.problem
    if typed and typed.strip():
        # The message says SMS is for UK mobiles only and email is the way instead.
        assert check.message.endswith(ONLY_UK_MOBILES)
        assert "UK mobile" in check.message and "email" in check.message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_never_raises_and_always_answers(typed):
    check = check_uk_mobile(typed)
    assert (check.e164 is None) != (check.problem is None)
    if check.e164:
        assert check.e164.startswith("+447") and len(check.e164) == 13


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"7[1-9][0-9]{8}", fullmatch=True))
def test_valid_mobiles_round_trip(digits):
    e164 = uk_mobile("0" + digits)
    if e164 is not None:
        assert uk_mobile(e164) == e164
        assert uk_mobile(national(e164)) == e164


def test_national_format():
    assert national("+447400123456") == "07400 123456"
    assert national(None) == ""
