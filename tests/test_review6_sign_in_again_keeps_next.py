"""A client sent to sign in by an app (/login?next=...) whose code ran out, or was replaced,
is offered "Sign in again" on the code page. That link (and "Start again", and the live
guard's) went to a bare /login, so the new sign-in forgot where the client was going and ended
on the portal: an app's sign-in (OpenID Connect's /oauth/authorize?...) was lost."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import parse_qs, quote, urlsplit

from services import clock
from tests.conftest import TEST_PASSWORD, Browser, request_code

GOING_TO = "/account/devices?from=app"
LOGIN_WITH_NEXT = f"/login?next={quote(GOING_TO, safe='')}"


def _links_to_login(page: str) -> set[str]:
    """The links to the login page, each as where it leads after the sign-in ("" for none)."""
    links = {html.unescape(href) for href in re.findall(r'href="(/login(?:\?[^"]*)?)"', page)}
    return {parse_qs(urlsplit(link).query).get("next", [""])[0] for link in links}


def _live_guards_login_url(page: str) -> str:
    url = html.unescape(re.search(r'data-login-url="([^"]*)"', page).group(1))
    return parse_qs(urlsplit(url).query).get("next", [""])[0]


def _start(b: Browser, smtp, deliver, login_url: str) -> str:
    count = len(smtp.messages)
    started = b.post(login_url, {"email": "client@example.com", "password": TEST_PASSWORD},
                     form_page=login_url)
    assert started.status_code == 302 and started.location.endswith("/login/code")
    deliver()
    smtp.wait_for(count + 1)
    return smtp.last_to("client@example.com").code


def test_sign_in_again_after_a_code_ran_out_goes_where_the_client_was_going(
        app, user, smtp, deliver):
    b = Browser(app)
    _start(b, smtp, deliver, LOGIN_WITH_NEXT)
    pending = b.text("/login/code")
    assert _links_to_login(pending) == {GOING_TO}  # "Start again"
    assert _live_guards_login_url(pending) == GOING_TO

    clock.advance(timedelta(minutes=11))
    page = b.text("/login/code")
    assert "Your code has run out" in page
    again = _links_to_login(page)
    assert again == {GOING_TO}, again

    done = b.enter_code(_start(b, smtp, deliver, f"/login?next={quote(again.pop(), safe='')}"))
    assert done.status_code == 302 and done.location.endswith(GOING_TO)


def test_the_code_page_of_a_sign_in_from_the_portal_itself_links_to_a_bare_login(
        app, user, smtp, deliver):
    b = Browser(app)
    request_code(b, smtp, deliver)
    page = b.text("/login/code")
    assert _links_to_login(page) == {""} and _live_guards_login_url(page) == ""
