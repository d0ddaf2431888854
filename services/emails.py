"""The one rule for what counts as an email address, for every form and command.

The sign-in form, `flask users add`, the invitations and a change of address all judge an
address with email_validator (syntax and special-use domains such as `.local`, no DNS look-up,
nothing the mail path cannot send to), so an account the command line makes can always sign
in (issue 11: `ann@firm.local` could be added and then never get past the sign-in form).

`ascii_address` is the other half of that rule, used by the mail path: what the form accepted
is handed to the mail server in the same IDNA 2008 form email_validator checked it in.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Optional

import idna
from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 254
# An address whose part before the @ has letters beyond ASCII (anna.müller@…) is a real
# address, but it needs the mail server's SMTPUTF8 extension, which Flask-Mail cannot use:
# the code would never leave. A domain with such letters is fine (sent as xn--…).
NOT_SENDABLE = ("We cannot send codes to an address with letters such as ü or é before the @. "
                "Please use another email address.")


# Invisible characters a copy brings along: a zero-width space, a soft hyphen, direction
# marks and embeddings, a byte order mark. Not the zero-width joiner and non-joiner
# (U+200C, U+200D): IDNA 2008 allows them in some scripts' domain names.
_COPIED_ALONG = dict.fromkeys(
    [0x00AD, 0x200B, 0x200E, 0x200F, 0x2060, 0xFEFF, *range(0x202A, 0x202F),
     *range(0x2066, 0x206A)])

# An address copied from an address book or an email's "To:" line: "Anna Smith <anna@…>".
_NAMED = re.compile(r"[^<>]*<\s*([^<>\s]+@[^<>\s]+)\s*>")


def as_typed(value: str) -> str:
    """The address a person meant, from what they pasted: without the invisible characters a
    copy brings along (a zero-width space, a direction mark, a byte order mark: none is ever
    part of an address), without the name of "Anna Smith <anna@example.com>" or the
    "mailto:" of a link, and trimmed. Anything else comes back as it was, trimmed."""
    value = value.translate(_COPIED_ALONG).strip()
    named = _NAMED.fullmatch(value)
    if named:
        value = named.group(1)
    if value[:7].lower() == "mailto:":
        value = value[7:].strip()
    return value


def canonical(value: str) -> str:
    """The one spelling an address is stored and looked up by: trimmed, lowercased, NFKC
    (full-width letters become plain ones) and its domain as IDNA 2008 U-labels (so
    `xn--exmple-cua.com` and `exämple.com` are one address, as they are one mailbox), from
    what was pasted (as_typed).
    A value that is no address comes back only trimmed and lowercased, for the checks to
    refuse in their own words."""
    value = as_typed(unicodedata.normalize("NFKC", value)).lower()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        return value
    if domain.isascii() and "xn--" not in domain:
        # Most addresses: IDNA gives a lowercased ASCII domain back as it is, or refuses it
        # (which leaves it as it is too), so there is nothing to convert: IDNA's round trip costs
        # 29 µs, and a password post asks for the spelling three times.
        return value
    u_labels = _u_labels(domain)
    return value if u_labels is None else f"{local}@{u_labels}"


def _u_labels(domain: str) -> Optional[str]:
    """The domain in IDNA 2008 U-labels, or None when IDNA refuses it."""
    try:
        return idna.decode(idna.encode(domain, uts46=True))
    except (idna.IDNAError, UnicodeError):
        return None


def email_problem(value: Optional[str]) -> Optional[str]:
    """Why `value` is not a usable email address, in plain words, or None when it is."""
    value = (value or "").strip()
    if not value:
        return "Enter your email address."
    if len(value) > MAX_LENGTH:
        return "That email address is too long."
    try:
        validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        try:
            validate_email(value, check_deliverability=False)
        except EmailNotValidError:
            return "Enter an email address like name@example.com."
        return NOT_SENDABLE
    return None


def ascii_address(value: str) -> str:
    """The address as the mail server must get it: ASCII, its domain in IDNA 2008 A-labels.

    Flask-Mail would encode a domain such as straße.de with Python's IDNA 2003 codec, which
    maps ß to "ss": the message would go to strasse.de, another firm's domain. email_validator
    (IDNA 2008, UTS 46 non-transitional, as here) is what accepted the address, so the domain
    it checked is the one written. Raises ValueError for an address that has no ASCII form
    (letters beyond ASCII before the @, a domain IDNA 2008 refuses)."""
    if value.isascii():
        return value
    local, at, domain = value.rpartition("@")
    if not at:
        raise ValueError("there is no @")
    if not local.isascii():
        raise ValueError("letters beyond ASCII before the @")
    try:
        ascii_domain = idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"the domain has no IDNA 2008 form ({exc})") from None
    return f"{local}@{ascii_domain}"
