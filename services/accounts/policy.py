"""The password rules, after NIST SP 800-63B §3.1.1.2 (and ASVS 5.0 V6.2).

At least 12 characters, and up to 1,024 (far more than the 64 a password manager may make).
Any characters: spaces, accents and emoji are all welcome, compared after Unicode NFKC
normalisation, so the same password typed on another keyboard still matches. No rules about
mixing letters, digits and symbols (they make passwords worse, not better). Instead a
password is refused when it is one people commonly use (zxcvbn's list of 30,000, read
offline: no network call), a dictionary word, one character or a run like "abcdef..."
repeated, or contains the account's email address or the firm's name. The message says why.
The browser forms and `flask users` commands use these same rules.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Optional

MIN_LENGTH = 12
MAX_LENGTH = 1024

_EDGES = re.compile(r"^[\W\d_]+|[\W\d_]+$")
_SEPARATORS = re.compile(r"[\s._\-]+")


def normalise(password: str) -> str:
    """The form a password is hashed and compared in (NFKC)."""
    return unicodedata.normalize("NFKC", password)


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


@lru_cache(maxsize=1)
def _words() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["english_wikipedia"]) | frozenset(
        FREQUENCY_LISTS["us_tv_and_film"])


def _is_run(text: str) -> bool:
    """One character repeated, or a straight run such as "abcdefghijkl" or "987654321098"."""
    if len(set(text)) <= 3:
        return True
    steps = {ord(b) - ord(a) for a, b in zip(text, text[1:])}
    return len(steps) == 1 and steps <= {1, -1} or steps <= {1, -9} or steps <= {-1, 9}


def problem(password: str, *, email: Optional[str] = None,
            firm: Optional[str] = None) -> Optional[str]:
    """Why this password cannot be used, in words for the person choosing it; None if it can."""
    password = normalise(password or "")
    length = len(password)
    if length < MIN_LENGTH:
        return (f"Use at least {MIN_LENGTH} characters: this has {length}. A few ordinary "
                "words with spaces between them make a good password that is easy to remember.")
    if length > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    if not password.strip():
        return "A password cannot be only spaces."
    lower = password.casefold()
    squeezed = _SEPARATORS.sub("", lower)
    if lower in _common() or squeezed in _common():
        return ("That is one of the passwords people use most often, so it is among the first "
                "that attackers try. Choose something less common.")
    core = _EDGES.sub("", squeezed)
    if core and (core in _common() or core in _words()) and len(core) >= 4:
        return ("That is a single common word, or a common password with numbers or symbols "
                "added, which attackers try early. Add more words of your own.")
    if _is_run(squeezed):
        return ("That repeats the same few characters or follows a simple sequence. "
                "Choose something less predictable.")
    if email:
        address = email.strip().casefold()
        local = address.split("@", 1)[0]
        if address in lower or (len(local) >= 3 and local in lower):
            return "Your password must not contain your email address or the part before the @."
    if firm:
        name = firm.casefold()
        if len(name) >= 3 and (name in lower or _SEPARATORS.sub("", name) in squeezed):
            return f"Your password must not contain the name “{firm}”."
    return None
