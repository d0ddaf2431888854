"""Freed memory handed back to the system after the steps that leave holes in the heap.

glibc's malloc keeps what a process frees and gives back to the system only the top of its
heap. A few one-off steps allocate a lot and free it at once, between objects that stay: the
worker then keeps those pages, unused, for the rest of its life. The largest is compiling a
template (Jinja's generated module through Python's parser and compiler): the code page's
first render left 1.8 MB of free pages in a worker that holds about 89 MB at rest. Building the
app (the models' mappers, the dummy password hash) left another 0.9 MB.

`give_back()` asks glibc to return every whole free page, wherever it is in the heap
(`malloc_trim(0)`, which does so since glibc 2.8). It walks the heap, so it runs only after
such a step: once when the app is built, once each time a template is compiled, and once
after the password rules have read their lists (services/accounts/policy.py): a few dozen
times in a worker's life. Where the C library has no malloc_trim (musl, macOS) it
does nothing.
"""

from __future__ import annotations

import ctypes
from typing import Callable, Optional

from flask.templating import Environment


def _malloc_trim() -> Optional[Callable[[int], int]]:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_trim = _malloc_trim()


def give_back() -> None:
    """Return the heap's free pages to the system (a no-op without glibc)."""
    if _trim is not None:
        _trim(0)


class GivingBackEnvironment(Environment):
    """Flask's Jinja environment, giving the heap's free pages back after each compile."""

    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):
        compiled = super().compile(source, name, filename, raw, defer_init)
        give_back()
        return compiled
