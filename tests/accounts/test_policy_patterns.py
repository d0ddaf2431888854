"""The password rules refuse a piece typed again and again, and keys in a row on the keyboard."""

from __future__ import annotations

import pytest

from services.accounts import policy
from tests.accounts.test_passwords import ask_for_reset, set_new

WHAT_WORKS = "A few ordinary words with spaces between them"

REPEATED_WORDS = ["passwordpassword", "monkeymonkey", "trustno1trustno1", "Monkey Monkey!",
                  "dragon dragon dragon"]
REPEATED_PIECES = ["abcdabcdabcd", "x7k2x7k2x7k2", "blue sky blue sky", "Tom Tom 1984 2024!"]
# Each on its own is on no list of common passwords, so only the rule about rows refuses it.
KEYBOARD_ROWS = ["qwertyuiopasdf", "1234567890-=", "=-0987654321", "poiuytrewqlkj",
                 "mnbvcxz lkjh", "#';LKJHGFDSA", "ghjklzxcvbnm", "qwertyqwertyqwerty"]


@pytest.mark.parametrize("password", REPEATED_WORDS)
def test_a_word_typed_again_is_refused(password):
    answer = policy.problem(password)
    assert answer is not None and "typed more than once" in answer
    assert WHAT_WORKS in answer


@pytest.mark.parametrize("password", REPEATED_PIECES)
def test_a_short_piece_typed_again_is_refused(password):
    answer = policy.problem(password)
    assert answer is not None and "attackers try early" in answer
    assert WHAT_WORKS in answer


@pytest.mark.parametrize("password", KEYBOARD_ROWS)
def test_keys_in_a_row_are_refused(password):
    answer = policy.problem(password)
    assert answer is not None and "keys in a row along the keyboard" in answer
    assert WHAT_WORKS in answer


@pytest.mark.parametrize("password", [
    "plum tree by the river",
    "a quiet walk to the harbour",
    # A long piece typed twice is judged as that piece, which would be accepted on its own.
    "correct horse battery correct horse battery",
    "aabbccddeeff",  # no piece repeats, and no row of keys
    "the queen of tarts",  # "qwe..."-like letters inside ordinary words are not a row
])
def test_ordinary_passphrases_are_still_accepted(password):
    assert policy.problem(password) is None


def test_a_long_common_password_typed_twice_is_refused():
    assert policy.problem("administrator") is not None
    assert "typed more than once" in policy.problem("administrator administrator")


def test_only_separators_or_huge_repeats_answer_in_words():
    assert policy.problem("............") is not None
    assert policy.problem("-_. " * 3) is not None
    assert "typed more than once" in policy.problem("monkey" * 170)  # 1,020 characters


def test_a_reset_refuses_a_repeated_word_and_a_keyboard_row(app, user, smtp, deliver, browser):
    path = ask_for_reset(browser, smtp, deliver)
    for password, why in (("monkeymonkey", "typed more than once"),
                          ("qwertyuiopasdf", "keys in a row along the keyboard")):
        answer = set_new(browser, path, password)
        assert answer.status_code == 422, password
        assert why in answer.get_data(as_text=True), password
    assert set_new(browser, path).status_code == 302
