"""Debian's nginx (auth_request) in front of an app under /files/ of the portal's own host.

nginx runs docs/forward-auth/nginx.conf (the guide's), ClientGate runs under gunicorn, the app
behind is a small WSGI app that shows the Remote-Email it was given.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.conftest import (  # noqa: F401 - fixtures
    PHONE, assert_accessible, assert_fits_phone, chromium, code_from, new_context, screenshot,
)
from tests.conftest import free_port
from tests.federation.conftest import CookieUpstream, clientgate_under_gunicorn
from tests.federation.web_servers import NGINX, Client, Nginx, nginx_site
from tests.production.conftest import module_smtp  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not __import__("os").path.exists(NGINX), reason="Debian's nginx is not installed")]

# files.localhost (served by nobody here) is open to any client: a browser must not get
# its rules applied to localhost/files/staff/ by naming it in the Host header.
RULES = ("localhost/files/ any Shared files; localhost/files/staff/ support,admin; "
         "files.localhost any")
LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" viewBox="0 0 40 40">'
        '<circle cx="20" cy="20" r="18" fill="#fff"/><text x="20" y="26" font-size="16" '
        'text-anchor="middle" fill="#0b5d3b" font-family="sans-serif">S&amp;C</text></svg>')


@pytest.fixture(scope="module")
def front(tmp_path_factory, module_smtp):  # noqa: F811
    """nginx on http://localhost:<port>: ClientGate at /, the protected app at /files/."""
    port = free_port()
    folder = tmp_path_factory.mktemp("nginx-front")
    upstream = CookieUpstream().start()
    logo = folder / "logo.svg"
    logo.write_text(LOGO)
    with clientgate_under_gunicorn(folder, module_smtp, f"http://localhost:{port}",
                                   ACCESS_RULES=RULES, PROTECTED_HOSTS="files.localhost",
                                   PORTAL_NAME="Smith & Co",
                                   PORTAL_COLOUR="#2e9e6b", PORTAL_LOGO=str(logo),
                                   ) as (gunicorn, app):
        nginx = Nginx(folder, nginx_site("localhost", port, gunicorn.port, upstream.port), port)
        try:
            nginx.start()
            yield type("Front", (), {"port": port, "url": f"http://localhost:{port}",
                                     "gunicorn": gunicorn, "nginx": nginx, "app": app})
        finally:
            nginx.stop()
            upstream.stop()


def client(front) -> Client:
    return Client(front.port, f"localhost:{front.port}")


def test_without_a_session_to_sign_in_and_back_after_it(front, module_smtp):  # noqa: F811
    c = client(front)
    status, headers, _ = c.get("/files/report.pdf?year=2026&part=2")
    assert status == 302
    location = urlsplit(headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == front.url + "/login"
    asked = front.url + "/files/report.pdf?year=2026&part=2"
    assert parse_qs(location.query) == {"next": [asked]}

    assert c.sign_in(module_smtp, next_url=asked) == asked
    status, _, page = c.get("/files/report.pdf?year=2026&part=2")
    assert status == 200
    assert "<span id='remote-email'>client@example.com</span>" in page
    assert "<span id='remote-groups'>client</span>" in page


def test_the_browser_cannot_pose_as_someone_else(front, module_smtp):  # noqa: F811
    forged = {"Remote-Email": "boss@example.com", "Remote-User": "1", "Remote-Groups": "admin",
              "X-Original-URL": front.url + "/files/", "X-Forwarded-Method": "GET"}
    c = client(front)
    status, _, page = c.get("/files/staff/", headers=forged)
    assert status == 302 and "boss@example.com" not in page  # never reached the app
    c.sign_in(module_smtp)
    status, _, page = c.get("/files/", headers=forged)
    assert status == 200 and "<span id='remote-email'>client@example.com</span>" in page
    assert "<span id='remote-groups'>client</span>" in page
    # Naming an open page in X-Original-URL does not open a closed one.
    status, _, page = c.get("/files/staff/plans", headers=forged)
    assert status == 403 and "You cannot open this page" in page


def test_the_app_never_receives_the_session_cookie(front, module_smtp):  # noqa: F811
    c = client(front)
    c.sign_in(module_smtp)
    (session_name,) = [name for name in c.cookies if name.endswith("clientgate_session")]
    session_value = c.cookies[session_name]
    # The session cookie first, between and last among the app's own; the trusted-device
    # mark (a cookie of this host too) goes as well.
    mark = "cg-device"
    for order in ([session_name, "theme", mark, "lang"], ["theme", session_name, "lang", mark],
                  [mark, "theme", "lang", session_name]):
        c.cookies = {name: {"theme": "dark", "lang": "en-GB", mark: "device-token"}.get(
            name, session_value) for name in order}
        status, _, page = c.get("/files/cookies")
        assert status == 200, order  # ClientGate still saw the session: the app was reached
        assert "theme=dark" in page and "lang=en-GB" in page, page
        assert "clientgate_session" not in page and session_value not in page, page
        assert "device-token" not in page, page
    # A second session cookie (one kept from before SESSION_COOKIE_DOMAIN changed): the app
    # gets no cookies rather than that one.
    second = "__Secure-clientgate_session" if session_name == "clientgate_session" \
        else "clientgate_session"
    for order in ([session_name, "theme", second], [second, "theme", session_name, "lang"]):
        c.cookies = {name: {"theme": "dark", "lang": "en-GB"}.get(name, session_value)
                     for name in order}
        status, _, page = c.get("/files/cookies")
        assert status == 200, order
        assert "clientgate_session" not in page and session_value not in page, page


def test_a_host_the_browser_names_does_not_choose_the_rules(front, module_smtp):  # noqa: F811
    # An absolute-form request line names the host nginx routes on; the Host header another.
    # ClientGate must judge the address nginx serves (the staff area) by its own host's rules.
    c = client(front)
    c.sign_in(module_smtp)
    status, _, page = c.get(f"{front.url}/files/staff/plans",
                            headers={"Host": f"files.localhost:{front.port}"})
    assert status == 403 and "You cannot open this page" in page


def test_a_protected_host_named_in_host_gets_no_answer(front, module_smtp):  # noqa: F811
    # files.localhost's rules let any client in. Were the portal's server nginx's default,
    # it would answer this, with $host (and X-Original-URL) naming files.localhost, and the
    # staff area would be judged by that host's rules.
    c = client(front)
    c.sign_in(module_smtp)
    with pytest.raises(http.client.RemoteDisconnected):
        c.get("/files/staff/plans", host=f"files.localhost:{front.port}")


def test_a_client_kept_out_sees_our_403_page_and_staff_get_in(front, module_smtp):  # noqa: F811
    c = client(front)
    c.sign_in(module_smtp)
    for path in ("/files/staff/", "/files/staff/plans?x=1", "/files/public/../staff/",
                 "/files/%73taff/"):
        status, headers, page = c.get(path)
        assert status == 403, path
        assert "You cannot open this page" in page and "open only to support staff" in page
        assert "client@example.com" in page
    staff = client(front)
    staff.sign_in(module_smtp, "staff@example.com")
    status, _, page = staff.get("/files/staff/plans")
    assert status == 200 and "<span id='remote-groups'>support</span>" in page


def test_logging_out_closes_the_app_at_once(front, module_smtp):  # noqa: F811
    c = client(front)
    c.sign_in(module_smtp)
    assert c.get("/files/")[0] == 200
    c.get("/portal")
    assert c.send("POST", "/logout", {})[0] == 302
    status, headers, _ = c.get("/files/")
    assert status == 302 and "/login?next=" in headers["Location"]


def test_a_flood_of_questions_neither_locks_nor_fails(front, module_smtp):  # noqa: F811
    signed = client(front)
    signed.sign_in(module_smtp)
    answers: Counter = Counter()
    lock = threading.Lock()

    def ask(index: int) -> None:
        for round_ in range(20):
            c = signed if (index + round_) % 2 else client(front)
            try:
                status = c.get(f"/files/{index}/{round_}", headers={"Cookie": "; ".join(
                    f"{k}={v}" for k, v in c.cookies.items())} if c.cookies else None)[0]
            except OSError as error:
                status = repr(error)
            with lock:
                answers[status] += 1

    # Meanwhile a client signs in: its writes go through while the flood reads.
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    late = client(front)
    assert late.sign_in(module_smtp, "staff@example.com")
    for thread in threads:
        thread.join(120)
    assert set(answers) <= {200, 302}, answers
    assert answers[200] == answers[302] == 160
    log = front.gunicorn.log()
    assert "database is locked" not in log and "Traceback" not in log, log[-3000:]


# --- Chromium through nginx ---------------------------------------------------------------------

@pytest.mark.browser
def test_chromium_signs_in_through_nginx_reaches_the_app_and_logs_out(
        front, module_smtp, new_context):  # noqa: F811
    page = new_context().new_page()
    page.goto(front.url + "/files/welcome")
    assert page.url.startswith(front.url + "/login?next=")
    count = len(module_smtp.messages)
    page.fill("input[name=email]", "client@example.com")
    page.fill("input[name=password]", __import__("tests.conftest").conftest.TEST_PASSWORD)
    page.locator("[data-login-form] button[type=submit]").click()
    page.wait_for_url("**/login/code")
    page.fill("input[name=code]", code_from(module_smtp, count + 1))
    page.locator("form[data-code-form] button[type=submit], form button[type=submit]").first.click()
    page.wait_for_url(front.url + "/files/welcome")
    assert page.text_content("#remote-email") == "client@example.com"
    assert page.text_content("#path") == "/files/welcome"

    page.goto(front.url + "/files/staff/")
    assert page.locator("h1").text_content() == "You cannot open this page"
    screenshot(page, "forward-auth-403")
    assert_accessible(page, "the 403 page")

    # The home lists the app, with the firm's colour (made AA-dark enough) and logo.
    page.goto(front.url + "/portal")
    assert page.get_by_role("link", name="Shared files").get_attribute("href") == \
        front.url + "/files/"
    header = page.evaluate("getComputedStyle(document.querySelector('.site-header'))"
                           ".backgroundColor")
    assert header not in ("rgb(31, 78, 140)", "rgb(46, 158, 107)"), header  # brand, darkened
    assert page.evaluate("document.querySelector('.brand-logo').naturalWidth") == 40
    screenshot(page, "portal-home-branded")
    assert_accessible(page, "the portal home")
    page.set_viewport_size(PHONE)
    screenshot(page, "portal-home-branded")
    assert_fits_phone(page, "the portal home")

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    page.goto(front.url + "/files/welcome")
    assert page.url.startswith(front.url + "/login?next=")
