"""How a client reaches the firm: PORTAL_CONTACT, said wherever a page or a message tells
them to contact us.

PORTAL_CONTACT is free text, e.g. "call 020 7946 0000 or email help@smithco.co.uk". Unset,
pages and messages keep their words ("please contact us."); set, they say how, at the end of
a sentence ("please contact us: call 020 7946 0000 or email help@smithco.co.uk.") or in a
sentence of its own ("Contact us: call 020 7946 0000 or email help@smithco.co.uk.").
"""

from __future__ import annotations

import re
from typing import Optional

from flask import current_app
from markupsafe import Markup, escape

# An email address, or a phone number of at least 9 digits ("020 7946 0000", "+44 20 7946
# 0000"): on a web page they become mailto: and tel: links, one tap away on a phone.
_REACHABLE = re.compile(
    r"(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)|(?P<phone>\+?\d(?:[ ()-]{0,2}\d){8,})")


def how() -> Optional[str]:
    """PORTAL_CONTACT on one line, without a closing full stop; None when it is not set."""
    value = " ".join(str(current_app.config.get("PORTAL_CONTACT") or "").split())
    return value.rstrip(" .") or None


def address() -> Optional[str]:
    """The email address in PORTAL_CONTACT, if it names one: where a reply to any of our
    emails ("I never got my code") should go, rather than to a sender address no one reads."""
    return next((found.group("email") for found in _REACHABLE.finditer(how() or "")
                 if found.group("email")), None)


def contact_us(words: str = "contact us") -> str:
    """The end of a sentence: "contact us", or "contact us: call 020 7946 0000" when set."""
    found = how()
    return f"{words}: {found}" if found else words


def line() -> str:
    """"Contact us: call 020 7946 0000." as a sentence of its own; "" when not set."""
    found = how()
    return f"Contact us: {found}." if found else ""


def linked(text: str) -> Markup:
    """`text` escaped for a web page, with its email addresses and phone numbers as links."""
    parts, start = [], 0
    for found in _REACHABLE.finditer(text):
        parts.append(escape(text[start:found.start()]))
        if found.group("email"):
            parts.append(Markup('<a href="mailto:{0}">{0}</a>').format(found.group()))
        else:
            # "+44 (0)20 ..." is dialled without its "(0)".
            number = re.sub(r"[^\d+]", "", found.group().replace("(0)", ""))
            parts.append(Markup('<a href="tel:{0}">{1}</a>').format(number, found.group()))
        start = found.end()
    parts.append(escape(text[start:]))
    return Markup("").join(parts)
