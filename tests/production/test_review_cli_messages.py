"""The admin commands' refusals say why, and what to do instead."""

from __future__ import annotations

import pytest

from tests.test_cli import invoke

PASSWORD = "a long enough password"


@pytest.mark.parametrize("phone, reason", [
    ("020 7946 0123", "landline"),
    ("+33 6 12 34 56 78", "not a UK number (it starts +33)"),
    ("07400 12345", "not a complete UK phone number"),
])
def test_users_add_says_why_a_phone_number_is_refused(app, phone, reason):
    result = invoke(app, "users", "add", "new@example.com", "--phone", phone,
                    "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 2, result.output
    assert reason in result.output, result.output
    assert "leave out --phone for codes by email" in result.output  # what to do instead


@pytest.mark.parametrize("args", [("users", "add", "new@example.com"),
                                  ("users", "set-password", "someone@example.com")])
def test_no_password_typed_without_a_terminal_says_to_use_password_stdin(app, args):
    from tests.conftest import add_user

    add_user(app, "someone@example.com")
    # Run from a script or `ssh server clientgate ...` without a terminal: stdin is empty.
    result = invoke(app, *args, input="")
    assert result.exit_code == 2, result.output
    assert "Aborted" not in result.output
    assert "--password-stdin" in result.output, result.output
