"""The password rules, after NIST SP 800-63B §3.1.1.2 (and ASVS 5.0 V6.2).

At least 12 characters, and up to 1,024 (far more than the 64 a password manager may make).
Any characters: spaces, accents and emoji are all welcome, compared after Unicode NFKC
normalisation, so the same password typed on another keyboard still matches. No rules about
mixing letters, digits and symbols (they make passwords worse, not better). Instead a
password is refused when it is one people commonly use (zxcvbn's list of 30,000, read
offline: no network call), a dictionary word, one character or a run like "abcdef..."
repeated, one piece typed again and again ("monkeymonkey", "abcdabcdabcd"; a piece of 12
characters or more is judged by these same rules), a row of keys in order ("qwertyuiopasdf",
"1234567890-=", either way along the keyboard), or contains the account's email address or
the firm's name. The message says why, and what would do instead. The browser forms and
`flask users` commands use these same rules.
"""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from array import array
from bisect import bisect_left
from functools import lru_cache
from hashlib import blake2b
from pathlib import Path
from typing import Iterable, Optional

from heap_setup import give_back

MIN_LENGTH = 12
MAX_LENGTH = 1024

_EDGES = re.compile(r"^[\W\d_]+|[\W\d_]+$")
_SEPARATORS = re.compile(r"[\s._\-]+")
# A UK keyboard's rows, and its letters row after row, left to right or right to left, top to
# bottom (each is also read backwards). Compared with separators taken out, as the password
# is, so "1234567890-=" is a row.
_KEYBOARD_ROWS = tuple(_SEPARATORS.sub("", row) for row in (
    "`1234567890-=", "¬!\"£$%^&*()_+", "qwertyuiop[]", "asdfghjkl;'#", "\\zxcvbnm,./",
    "qwertyuiopasdfghjklzxcvbnm", "poiuytrewqlkjhgfdsamnbvcxz",
))
_WHAT_WORKS = ("A few ordinary words with spaces between them make a good password that is "
               "easy to remember.")


def normalise(password: str) -> str:
    """The form a password is hashed and compared in (NFKC)."""
    return unicodedata.normalize("NFKC", password)


class _WordList:
    """A long word list held as sorted 8-byte BLAKE2b digests of its words, about 8 bytes a
    word where a set of the words themselves takes over 100. The rules only ask whether a word
    is on the list; a word off it matches by chance with odds of one in 2**64 / len(list)."""

    def __init__(self, words: Iterable[str]) -> None:
        self._digests = array("Q", sorted({self._digest(word) for word in words}))

    @staticmethod
    def _digest(word: str) -> int:
        return int.from_bytes(blake2b(word.encode(), digest_size=8).digest(), "big")

    def __contains__(self, word: str) -> bool:
        digest = self._digest(word)
        at = bisect_left(self._digests, digest)
        return at < len(self._digests) and self._digests[at] == digest

    def __len__(self) -> int:
        return len(self._digests)


@lru_cache(maxsize=1)
def _lists() -> tuple[_WordList, _WordList]:
    """zxcvbn's 30,000 common passwords, and its common English words, read once per process.

    Importing zxcvbn itself builds all six of its lists and a ranked dictionary of each: 17 MB
    that a web worker would hold for the rest of its life after checking one password. Only
    its data file is read, outside the package; the two lists the rules use are kept as digests
    (0.6 MB) and the rest is let go at once.
    """
    package = importlib.util.find_spec("zxcvbn")
    if package is None or not package.submodule_search_locations:
        raise RuntimeError("the zxcvbn package (the list of common passwords) is not installed")
    path = Path(package.submodule_search_locations[0]) / "frequency_lists.py"
    spec = importlib.util.spec_from_file_location("zxcvbn_frequency_lists", path)
    data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(data)
    lists = data.FREQUENCY_LISTS
    common = _WordList(lists["passwords"])
    words = _WordList(lists["english_wikipedia"] + lists["us_tv_and_film"])
    del data, lists
    give_back()  # glibc would keep the lists' freed memory, several megabytes in one go
    return common, words


def _common() -> _WordList:
    return _lists()[0]


def _words() -> _WordList:
    return _lists()[1]


def _repeated_piece(text: str) -> Optional[str]:
    """The shortest piece the text is made of, typed twice or more; None if it is not one."""
    # The text is a repeat exactly when it turns up inside itself doubled, short of the end.
    at = (text + text).find(text, 1)
    return text[:at] if 0 < at < len(text) else None


def _is_keyboard_row(text: str) -> bool:
    """Keys in order along a keyboard row, either way, as "qwertyuiop" or "=-0987654321"."""
    return bool(text) and any(text in row or text in row[::-1] for row in _KEYBOARD_ROWS)


def _is_listed(text: str) -> bool:
    """A common password or a word, as it is or with numbers or symbols at either end."""
    core = _EDGES.sub("", text)
    return text in _common() or (len(core) >= 4 and (core in _common() or core in _words()))


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
        return f"Use at least {MIN_LENGTH} characters: this has {length}. {_WHAT_WORKS}"
    if length > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    if not password.strip():
        return "A password cannot be only spaces."
    lower = password.casefold()
    squeezed = _SEPARATORS.sub("", lower)
    if lower in _common() or squeezed in _common():
        return ("That is one of the passwords people use most often, so it is among the first "
                "that attackers try. Choose something less common.")
    if _is_listed(squeezed):
        return ("That is a single common word, or a common password with numbers or symbols "
                "added, which attackers try early. Add more words of your own.")
    # A piece typed again and again (numbers or symbols at the ends or not) is about as easy
    # to guess as the piece alone.
    piece = _repeated_piece(squeezed) or _repeated_piece(_EDGES.sub("", squeezed))
    if _is_run(squeezed) or (piece and _is_run(piece)):
        return ("That repeats the same few characters or follows a simple sequence, which "
                f"attackers try early. {_WHAT_WORKS}")
    if _is_keyboard_row(squeezed) or (piece and _is_keyboard_row(piece)):
        return ("That is keys in a row along the keyboard (like “qwerty” or “12345”), which "
                f"attackers try early. {_WHAT_WORKS}")
    if piece and _is_listed(piece):
        return ("That is one word or common password typed more than once, which attackers "
                f"try early: typing it again does not make it harder to guess. {_WHAT_WORKS}")
    if piece and len(piece) < MIN_LENGTH:
        return ("That is the same short piece typed more than once, which attackers try "
                f"early. {_WHAT_WORKS}")
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
