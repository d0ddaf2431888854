"""Accounts without a shell: readers for the links that arrive by email."""

from __future__ import annotations

import re

import pytest

from tests.conftest import TEST_PASSWORD, Browser

PHONE_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.6099.144 Mobile Safari/537.36")
DESKTOP_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")
LINK = re.compile(r"(https?://[^\s<>\"]+)")


def link_in(text: str, part: str) -> str:
    """The first absolute link in a message whose address contains `part`."""
    for link in LINK.findall(text):
        if part in link:
            return link
    raise AssertionError(f"no link with {part!r} in:\n{text}")


def path_of(link: str) -> str:
    """The path of an absolute link (PORTAL_URL is http://localhost in tests)."""
    assert link.startswith("http://localhost/"), link
    return link[len("http://localhost"):]


def new_address_link(b: Browser, smtp, deliver, new: str) -> str:
    """Ask on /account/email, signed in as `b`, to sign in with `new`; the path of the link
    that arrives there (after the note to the current address)."""
    count = len(smtp.messages)
    assert b.post("/account/email", {"email": new,
                                     "current_password": TEST_PASSWORD}).status_code == 302
    deliver()
    smtp.wait_for(count + 2)
    return path_of(link_in(smtp.last_to(new).text, "/account/email/confirm/"))


@pytest.fixture
def phone(app) -> Browser:
    return Browser(app, user_agent=PHONE_UA)


@pytest.fixture
def desktop(app) -> Browser:
    return Browser(app, user_agent=DESKTOP_UA)
