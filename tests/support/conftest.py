"""Support console fixtures: a signed-in staff member, a client on a phone, and readers."""

from __future__ import annotations

import re
from typing import Optional

import pytest

from extensions import db
from models import User
from services import support
from tests.conftest import Browser, add_user, request_code, wrong_code

CLIENT = "client@example.com"
STAFF = "support@example.com"
ADMIN = "admin@example.com"
PHONE_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.6099.144 Mobile Safari/537.36")
DESKTOP_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")
CSRF_TOKEN = re.compile(r'name="csrf_token" (?:type="hidden" )?value="[^"]+"')


@pytest.fixture
def client_id(app) -> int:
    return add_user(app, CLIENT)


@pytest.fixture
def phone(app) -> Browser:
    """The client's browser: Chrome on an Android phone."""
    return Browser(app, user_agent=PHONE_UA)


@pytest.fixture
def staff(app, sign_in) -> Browser:
    """A support staff member, signed in through the front door on a desktop browser."""
    add_user(app, STAFF, role="support")
    return sign_in(STAFF, b=Browser(app, user_agent=DESKTOP_UA))


@pytest.fixture
def admin(app, sign_in) -> Browser:
    add_user(app, ADMIN, role="admin")
    return sign_in(ADMIN, b=Browser(app, user_agent=DESKTOP_UA))


start = request_code  # log in (password right), return the code that arrived by email
wrong = wrong_code  # a well-formed code that is not this one


def views(app, user_id: int) -> list[support.SignInView]:
    """The client's sign-ins as the console sees them, newest first."""
    with app.app_context():
        user = db.session.get(User, user_id)
        page = support.client_page(user, None, app.config["PORTAL_TIMEZONE"])
        return page.views


def kinds(view: support.SignInView) -> list[str]:
    return [f.kind for f in view.findings]


def finding(view: support.SignInView, kind: str):
    matches = [f for f in view.findings if f.kind == kind]
    assert matches, f"no {kind} finding in {[(f.kind, f.text) for f in view.findings]}"
    return matches[0]


def hhmm(app, moment, day_of=None) -> str:
    """A time as the console says it: "23:58", or "00:03 on 5 Dec" when `day_of` (the sign-in
    the words are about) was on another day, so a test run near midnight reads the same."""
    from services import clock

    tz = app.config["PORTAL_TIMEZONE"]
    if day_of is None:
        return clock.hhmm(moment, tz)
    return clock.hhmm_on(moment, clock.local(day_of, tz).date(), tz)


def without_tokens(text: str) -> str:
    """A page without its CSRF tokens, whose random letters could hide six digits."""
    return CSRF_TOKEN.sub("", text)


def sent_codes(smtp, vonage=None) -> set[str]:
    codes = {m.code for m in smtp.messages if m.code}
    if vonage is not None:
        codes |= {s.code for s in vonage.received if s.code}
    return codes


def assert_no_code(text: str, codes: set[str], where: Optional[str] = "") -> None:
    clean = without_tokens(text)
    for code in codes:
        assert not re.search(rf"(?<!\d){code}(?!\d)", clean), f"code {code} shown {where}"
