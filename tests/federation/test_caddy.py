"""Debian's caddy (forward_auth) in front of an app on a sibling host of the portal.

The portal is http://portal.cg.localhost:<port>, the app http://files.cg.localhost:<port>
(Chromium and these tests reach both on 127.0.0.1); the session cookie is set for the shared
domain (SESSION_COOKIE_DOMAIN=cg.localhost). Caddy runs docs/forward-auth/Caddyfile.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.conftest import (  # noqa: F401 - fixtures
    PHONE, assert_accessible, chromium, code_from, new_context, screenshot,
)
from tests.conftest import TEST_PASSWORD, free_port
from tests.federation.conftest import CookieUpstream, clientgate_under_gunicorn
from tests.federation.web_servers import CADDY, Caddy, Client, caddy_site
from tests.production.conftest import module_smtp  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not os.path.exists(CADDY), reason="Debian's caddy is not installed")]

PORTAL, FILES = "portal.cg.localhost", "files.cg.localhost"
RULES = f"{FILES} any Shared files; {FILES}/staff/ support,admin Staff area"


@pytest.fixture(scope="module")
def front(tmp_path_factory, module_smtp):  # noqa: F811
    port = free_port()
    folder = tmp_path_factory.mktemp("caddy-front")
    upstream = CookieUpstream().start()
    with clientgate_under_gunicorn(
        folder, module_smtp, f"http://{PORTAL}:{port}", PROTECTED_HOSTS=FILES,
        SESSION_COOKIE_DOMAIN="cg.localhost", ACCESS_RULES=RULES,
    ) as (gunicorn, app):
        caddy = Caddy(folder, caddy_site(PORTAL, FILES, port, gunicorn.port, upstream.port),
                      port)
        try:
            caddy.start()
            yield type("Front", (), {
                "port": port, "portal": f"http://{PORTAL}:{port}",
                "files": f"http://{FILES}:{port}", "gunicorn": gunicorn, "caddy": caddy})
        finally:
            caddy.stop()
            upstream.stop()


def test_without_a_session_caddy_passes_on_the_redirect_to_sign_in(front, module_smtp):  # noqa: F811
    c = Client(front.port, f"{FILES}:{front.port}")
    status, headers, _ = c.get("/reports/2026?part=2")
    assert status == 302
    location = urlsplit(headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == front.portal + "/login"
    asked = front.files + "/reports/2026?part=2"
    assert parse_qs(location.query) == {"next": [asked]}

    c.host = f"{PORTAL}:{front.port}"
    assert c.sign_in(module_smtp, next_url=asked) == asked
    status, _, page = c.get("/reports/2026?part=2", host=f"{FILES}:{front.port}",
                            headers={"Remote-Email": "boss@example.com", "Remote-User": "9"})
    assert status == 200
    assert "<span id='remote-email'>client@example.com</span>" in page
    assert "<span id='remote-user'>9</span>" not in page

    status, _, page = c.get("/staff/", host=f"{FILES}:{front.port}")
    assert status == 403 and "You cannot open this page" in page

    c.get("/portal")
    assert c.send("POST", "/logout", {})[0] == 302
    status, headers, _ = c.get("/reports/", host=f"{FILES}:{front.port}")
    assert status == 302 and headers["Location"].startswith(front.portal + "/login?next=")


def test_a_browsers_own_x_original_url_opens_no_closed_page(front, module_smtp):  # noqa: F811
    # Caddy passes a browser's X-Original-URL on unless told not to: naming an open page in it
    # must not open the staff page actually asked for.
    c = Client(front.port, f"{PORTAL}:{front.port}")
    c.sign_in(module_smtp)
    files = f"{FILES}:{front.port}"
    for named in (front.files + "/", front.files + "/reports/2026", "http://evil.example/"):
        status, _, page = c.get("/staff/plans", host=files, headers={"X-Original-URL": named})
        assert status == 403 and "You cannot open this page" in page, named
    status, _, page = c.get("/reports/", host=files,
                            headers={"X-Original-URL": front.files + "/staff/"})
    assert status == 200 and "<span id='path'>/reports/</span>" in page


def test_the_app_never_receives_the_session_cookie(front, module_smtp):  # noqa: F811
    c = Client(front.port, f"{PORTAL}:{front.port}")
    c.sign_in(module_smtp)
    (session_name,) = [name for name in c.cookies if name.endswith("clientgate_session")]
    session_value = c.cookies[session_name]
    # The session cookie first, between and last among the app's own.
    for order in ([session_name, "theme", "lang"], ["theme", session_name, "lang"],
                  ["theme", "lang", session_name]):
        c.cookies = {name: {"theme": "dark", "lang": "en-GB"}.get(name, session_value)
                     for name in order}
        status, _, page = c.get("/cookies", host=f"{FILES}:{front.port}")
        assert status == 200, order  # ClientGate still saw the session: the app was reached
        assert "theme=dark" in page and "lang=en-GB" in page, page
        assert "clientgate_session" not in page and session_value not in page, page
    # Caddy's header_up replaces every match: a second session cookie (one kept from before
    # SESSION_COOKIE_DOMAIN changed) goes too.
    second = "__Host-clientgate_session" if session_name != "__Host-clientgate_session" \
        else "clientgate_session"
    c.cookies = {session_name: session_value, "theme": "dark", second: session_value,
                 "lang": "en-GB"}
    status, _, page = c.get("/cookies", host=f"{FILES}:{front.port}")
    assert status == 200 and "theme=dark" in page and "lang=en-GB" in page, page
    assert "clientgate_session" not in page and session_value not in page, page


def test_next_never_leaves_the_listed_hosts(front):
    c = Client(front.port, f"{PORTAL}:{front.port}")
    for evil in ("http://evil.example/", "//evil.example/", f"http://{FILES}.evil.example/"):
        status, _, page = c.get("/login?next=" + evil)
        assert status == 200 and evil not in page.replace("&amp;", "&").split("action=")[0]
    # A Host naming a host nobody listed reaches neither the app nor ClientGate (Caddy
    # answers an empty 200 for a site it does not serve).
    status, _, page = c.get("/login", host=f"evil.example:{front.port}")
    assert "csrf_token" not in page and "Shared files" not in page


@pytest.mark.browser
def test_chromium_on_sibling_hosts_signs_in_reaches_the_app_and_logs_out(
        front, module_smtp, new_context):  # noqa: F811
    page = new_context().new_page()
    page.goto(front.files + "/welcome")
    assert page.url.startswith(front.portal + "/login?next=")
    count = len(module_smtp.messages)
    page.fill("input[name=email]", "client@example.com")
    page.fill("input[name=password]", TEST_PASSWORD)
    page.locator("[data-login-form] button[type=submit]").click()
    page.wait_for_url("**/login/code")
    page.fill("input[name=code]", code_from(module_smtp, count + 1))
    page.locator("form button[type=submit]").first.click()
    try:
        page.wait_for_url(front.files + "/welcome")
    except Exception:
        raise AssertionError(f"{page.url} {page.context.cookies()} {page.content()[:500]}")
    assert page.text_content("#remote-email") == "client@example.com"

    page.set_viewport_size(PHONE)
    page.goto(front.files + "/staff/")
    assert page.locator("h1").text_content() == "You cannot open this page"
    screenshot(page, "forward-auth-403")
    assert_accessible(page, "the 403 page on a sibling host")

    page.goto(front.portal + "/portal")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    page.goto(front.files + "/welcome")
    assert page.url.startswith(front.portal + "/login?next=")
