"""The one rule for what counts as an email address, for every form and command.

The sign-in form, `flask users add` and the invitations all judge an address with
email_validator (syntax and special-use domains such as `.local`, no DNS look-up), so an
account the command line makes can always sign in (issue 11: `ann@firm.local` could be added
and then never get past the sign-in form).
"""

from __future__ import annotations

from typing import Optional

from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 254


def email_problem(value: Optional[str]) -> Optional[str]:
    """Why `value` is not a usable email address, in plain words, or None when it is."""
    value = (value or "").strip()
    if not value:
        return "Enter your email address."
    if len(value) > MAX_LENGTH:
        return "That email address is too long."
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return "Enter an email address like name@example.com."
    return None
