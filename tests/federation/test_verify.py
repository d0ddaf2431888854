"""GET /auth/verify as nginx, Caddy and Traefik ask it, through Flask's test client.

The real web servers in front are in test_web_servers.py; these tests cover the answers one
by one: who is let in, with which headers, who is refused and how, and what it costs.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from app import create_app
from blueprints.safety import safe_next
from extensions import db
from services import clock
from services.signin import sessions
from services.federation.forward_auth import header_text
from tests.conftest import (TEST_PASSWORD, Browser, add_user, make_config, running_app,
                            statements_of)

RULES = "files.localhost any Shared files; files.localhost/admin/ admin"
FILES = "http://files.localhost/report.pdf?year=2026&part=2"
NGINX = {"X-Forwarded-Host": "files.localhost", "X-Original-URL": FILES}
CADDY = {"X-Forwarded-Method": "GET", "X-Forwarded-Proto": "http",
         "X-Forwarded-Host": "files.localhost", "X-Forwarded-Uri": "/report.pdf?year=2026&part=2"}


def settings(tmp_path, smtp, **extra):
    values = dict(PROTECTED_HOSTS="files.localhost", ACCESS_RULES=RULES, PROXY_FIX_X_HOST=1,
                  PROXY_FIX_X_PROTO=1, TRUSTED_HOSTS=["localhost"])
    values.update(extra)
    return make_config(tmp_path, smtp, **values)


@pytest.fixture
def app(tmp_path, smtp, request):
    """The app with RULES, or with the settings a test gives (parametrize with indirect)."""
    with running_app(settings(tmp_path, smtp, **getattr(request, "param", {}))) as application:
        yield application


def verify(b: Browser, headers: dict):
    return b.client.get("/auth/verify", headers=headers)


def nginx_asks(url: str) -> dict:
    """What nginx sends (docs/forward-auth/nginx.conf): the host it routed on, and the URL."""
    return {"X-Forwarded-Host": urlsplit(url).netloc, "X-Original-URL": url}


def test_without_a_session_nginx_gets_401_and_caddy_a_redirect_to_sign_in(browser, user):
    answer = verify(browser, NGINX)
    assert answer.status_code == 401 and answer.get_data() == b""
    assert "Remote-User" not in answer.headers

    answer = verify(browser, CADDY)
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("http", "localhost", "/login")
    assert parse_qs(location.query) == {"next": [FILES]}


@pytest.mark.parametrize("script", [{"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"},
                                    {"Sec-Fetch-Mode": "same-origin"},
                                    {"Sec-Fetch-Mode": "websocket"},
                                    {"X-Requested-With": "XMLHttpRequest"}])
def test_without_a_session_the_apps_own_script_gets_401_in_json_not_the_sign_in_page(
        browser, user, script):
    # A redirect is followed by fetch() unseen: the script got the sign-in page with a 200.
    answer = verify(browser, {**CADDY, **script})
    assert answer.status_code == 401 and "Location" not in answer.headers
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.get_json() == {"error": "not_signed_in",
                                 "message": "Your sign-in has ended. Sign in again to go on.",
                                 "sign_in": "http://localhost/login"}
    # A page the browser opens still goes to sign in and back.
    answer = verify(browser, {**CADDY, "Sec-Fetch-Mode": "navigate"})
    assert answer.status_code == 302 and "/login?next=" in answer.headers["Location"]


def test_a_live_session_gets_200_and_who_it_is(app, sign_in, user):
    b = sign_in()
    for headers in (NGINX, CADDY):
        answer = verify(b, headers)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert answer.headers["Remote-User"] == str(user)
        assert answer.headers["Remote-Email"] == "client@example.com"
        assert answer.headers["Remote-Name"]  # the name once accounts have one, else the email
        assert answer.headers["Remote-Groups"] == "client"
        assert "Set-Cookie" not in answer.headers  # the cookie is not rewritten


def test_after_the_code_the_client_lands_on_the_page_asked_for(app, browser, smtp, deliver,
                                                              user):
    location = urlsplit(verify(browser, CADDY).headers["Location"])
    login = f"{location.path}?{location.query}"
    # The login form posts back to its own address, next included, as a browser would.
    answer = browser.post(login, {"email": "client@example.com", "password": TEST_PASSWORD})
    assert answer.status_code == 302
    deliver()
    answer = browser.enter_code(smtp.wait_for(1)[-1].code)
    assert answer.status_code == 302 and answer.headers["Location"] == FILES
    assert verify(browser, NGINX).status_code == 200
    # Signed in already, a second trip to sign in goes straight on too.
    again = browser.get("/login?next=" + FILES.replace("&", "%26").replace("?", "%3F"))
    assert again.status_code == 302 and again.headers["Location"] == FILES


def test_logout_revocation_idle_and_age_end_access_at_once(app, sign_in, user, browser):
    b = sign_in()
    assert verify(b, NGINX).status_code == 200
    clock.advance(timedelta(minutes=20))
    assert verify(b, NGINX).status_code == 200  # and the idle timeout starts again
    clock.advance(timedelta(minutes=20))
    assert verify(b, NGINX).status_code == 200
    clock.advance(timedelta(minutes=31))
    assert verify(b, NGINX).status_code == 401  # idle too long

    b = sign_in(b=Browser(app))
    assert verify(b, NGINX).status_code == 200
    with app.app_context():
        sessions.revoke_all_for(user)  # support or a password change ends every session
        db.session.commit()
    assert verify(b, NGINX).status_code == 401

    b = sign_in(b=Browser(app))
    for _ in range(13):
        clock.advance(timedelta(minutes=29, seconds=59))
        verify(b, NGINX)
    clock.advance(timedelta(hours=12) - 13 * timedelta(minutes=29, seconds=59))
    assert verify(b, NGINX).status_code == 401  # twelve hours after sign-in, however active

    b = sign_in(b=Browser(app))
    b.post("/logout", {}, form_page="/portal")
    assert verify(b, NGINX).status_code == 401


def test_a_client_the_rules_keep_out_gets_a_403_in_our_words(app, sign_in, user):
    b = sign_in()
    nginx = verify(b, nginx_asks("http://files.localhost/admin/users"))
    assert nginx.status_code == 403 and nginx.get_data() == b""
    caddy = verify(b, {**CADDY, "X-Forwarded-Uri": "/public/../admin/users"})
    page = caddy.get_data(as_text=True)
    assert caddy.status_code == 403
    assert "You cannot open this page" in page and "client@example.com" in page
    assert "open only to administrators" in page
    assert "http://localhost/portal" in page
    assert "http://localhost/static/css/app.css" in page
    assert "style-src 'self' http://localhost" in caddy.headers["Content-Security-Policy"]
    assert "Remote-User" not in caddy.headers

    add_user(app, "boss@example.com", role="admin")
    boss = sign_in("boss@example.com", Browser(app))
    answer = verify(boss, nginx_asks("http://files.localhost/admin/users"))
    assert answer.status_code == 200 and answer.headers["Remote-Groups"] == "admin"


def test_behind_caddy_a_browsers_own_x_original_url_opens_nothing(app, sign_in, user):
    # Caddy and Traefik pass a browser's X-Original-URL on beside their own X-Forwarded-Uri:
    # naming an open page in it must not open the closed page actually asked for.
    b = sign_in()
    closed = {**CADDY, "X-Forwarded-Uri": "/admin/users"}
    assert verify(b, closed).status_code == 403
    answer = verify(b, {**closed, "X-Original-URL": "http://files.localhost/report.pdf"})
    assert answer.status_code == 403 and "Remote-User" not in answer.headers
    assert verify(b, {**closed, "X-Original-URL": "http://files.localhost/admin/users"}
                  ).status_code == 403
    # The two agreeing is no refusal; the two disagreeing is, even about an open page.
    assert verify(b, {**CADDY, "X-Original-URL": FILES}).status_code == 200
    assert verify(b, {**CADDY, "X-Original-URL": "http://files.localhost/"}).status_code == 403
    add_user(app, "boss@example.com", role="admin")
    boss = sign_in("boss@example.com", Browser(app))
    assert verify(boss, closed).status_code == 200
    assert verify(boss, {**closed, "X-Original-URL": "http://files.localhost/other"}
                  ).status_code == 403


@pytest.mark.parametrize("app", [dict(
    ACCESS_RULES="files.localhost any Shared files; localhost/files/staff/ support,admin",
)], indirect=True)
def test_x_original_url_must_name_the_host_the_web_server_routed_on(app, sign_in, user):
    # nginx asked about localhost/files/staff/plans (X-Forwarded-Host: localhost), but the
    # browser's Host header chose files.localhost for X-Original-URL, where any client may go.
    b = sign_in()
    asked = {"X-Forwarded-Host": "localhost",
             "X-Original-URL": "http://files.localhost/files/staff/plans"}
    assert verify(b, asked).status_code == 403
    assert verify(b, {**asked, "X-Forwarded-Method": "GET"}).status_code == 403
    assert verify(b, nginx_asks("http://localhost/files/staff/plans")).status_code == 403
    assert verify(b, nginx_asks("http://localhost/files/open")).status_code == 200
    assert verify(b, {"X-Forwarded-Host": "files.localhost",
                      "X-Original-URL": "http://FILES.localhost./files/staff/plans"}
                  ).status_code == 200
    add_user(app, "staff@example.com", role="support")
    staff = sign_in("staff@example.com", Browser(app))
    assert verify(staff, nginx_asks("http://localhost/files/staff/plans")).status_code == 200
    assert verify(staff, asked).status_code == 403


@pytest.mark.parametrize("headers", [
    {"X-Original-URL": "http://[::1/"},
    {"X-Original-URL": "http://files.localhost:99999/"},
    {"X-Original-URL": "http://files.localhost/\x7f"},
    {"X-Original-URL": "http:///admin/"},
    {"X-Original-URL": "files.localhost/admin/"},
    {"X-Original-URL": "http://files.localhost/" + "a" * 9000},
    {**CADDY, "X-Forwarded-Uri": "//evil.example/"},
    {**CADDY, "X-Forwarded-Uri": "/ok", "X-Original-URL": "http://[/"},
    {**CADDY, "X-Forwarded-Host": "[::1"},
    {**CADDY, "X-Forwarded-Host": "files.localhost:99999"},
])
def test_bad_address_headers_get_a_refusal_never_a_500(app, sign_in, user, headers):
    b = sign_in()
    headers = {"X-Forwarded-Host": "files.localhost", **headers}
    assert verify(b, headers).status_code in (400, 403)
    assert verify(Browser(app), headers).status_code in (302, 400, 401)


def test_a_long_address_is_judged_like_any_other(app, sign_in, user):
    """nginx takes a request line of up to 8 KB, and gunicorn a header of 8190 bytes, but an
    address over 4096 characters was refused as the web server's setup ("set up wrong",
    logged as such): a signed-in client's search with a long query got a refusal page."""
    b = sign_in()
    long_page = "http://files.localhost/search?q=" + "a" * 6000
    headers = {"X-Forwarded-Host": "files.localhost", "X-Forwarded-Method": "GET",
               "X-Original-URL": long_page}
    assert verify(b, headers).status_code == 200


def test_never_redirects_off_the_listed_hosts(app, browser, user):
    for url in ("http://evil.example/", "https://files.localhost.evil.example/",
                "http://files.localhost@evil.example/", "javascript:alert(1)"):
        answer = verify(browser, {"X-Forwarded-Method": "GET", "X-Original-URL": url})
        assert answer.status_code == 302
        assert answer.headers["Location"] == "http://localhost/login", url


def test_forwarded_headers_count_only_when_proxy_fix_says_so(tmp_path, smtp):
    config = settings(tmp_path, smtp, PROXY_FIX_X_HOST=0, PROXY_FIX_X_PROTO=0)
    with running_app(config) as application:
        add_user(application)
        b = Browser(application)
        answer = verify(b, CADDY)
        assert answer.status_code == 302
        assert answer.headers["Location"] == "http://localhost/login"  # no next from headers
        from tests.conftest import request_code  # noqa: F401 - signs in below

    with running_app(config) as application:
        add_user(application)
        b = Browser(application)
        assert verify(b, NGINX).status_code == 401


def test_untrusted_address_with_rules_is_refused_even_signed_in(tmp_path, smtp, deliver):
    # Without PROXY_FIX_X_HOST a client could name a harmless page in X-Original-URL while
    # asking for a closed one; so with rules and no trusted address, nobody is let in.
    config = settings(tmp_path, smtp, PROXY_FIX_X_HOST=0)
    with running_app(config) as application:
        add_user(application, "boss@example.com", role="admin")
        from services import delivery
        from tests.conftest import request_code

        b = Browser(application)

        def run():
            with application.app_context():
                return delivery.run_once()

        assert b.enter_code(request_code(b, smtp, run, "boss@example.com")).status_code == 302
        assert verify(b, {"X-Original-URL": "http://files.localhost/"}).status_code == 403


def test_verify_costs_one_query_and_no_write(app, sign_in, user):
    b = sign_in()
    verify(b, NGINX)  # any due touch happens now
    # The fast path reads through the app's pool (blueprints/fast_path.py).
    with statements_of(app) as statements:
        for _ in range(5):
            assert verify(b, NGINX).status_code == 200
    assert statements == ["SELECT"] * 5, statements


@pytest.mark.parametrize("target,kept", [
    ("/portal", True),
    ("http://files.localhost/a?b=c", True),
    ("http://localhost:8080/x", True),
    ("http://FILES.localhost/", True),
    ("https://files.localhost/", True),
    ("http://evil.example/", False),
    ("//evil.example/", False),
    ("/\\evil.example", False),
    ("http:evil.example", False),
    ("http://user:pw@files.localhost/", False),
    ("ftp://files.localhost/", False),
    ("javascript://files.localhost/%0aalert(1)", False),
    ("http://files.localhost:99999/", False),
    ("http://files.localhost/\x00", False),
])
def test_safe_next_allows_this_site_and_the_protected_hosts_only(app, target, kept):
    with app.test_request_context():
        assert (safe_next(target) == target) is kept


def test_safe_next_never_steps_down_from_https(tmp_path, smtp):
    application = create_app(settings(tmp_path, smtp, PORTAL_URL="https://localhost"))
    with application.test_request_context():
        assert safe_next("https://files.localhost/") == "https://files.localhost/"
        assert safe_next("http://files.localhost/") is None


def test_names_outside_ascii_reach_the_header_safely():
    assert header_text("Ann  Smith") == "Ann Smith"
    assert header_text("Zoë\r\nX-Evil: 1") == "=?utf-8?q?Zo=C3=AB=20X-Evil=3A=201?="


@pytest.mark.parametrize("domain,name", [(None, "__Host-clientgate_session"),
                                         ("localhost", "__Secure-clientgate_session")])
def test_a_cookie_for_sibling_hosts_is_secure_prefixed(tmp_path, smtp, domain, name):
    application = create_app(settings(tmp_path, smtp, SESSION_COOKIE_SECURE=True,
                                      SESSION_COOKIE_DOMAIN=domain))
    assert application.config["SESSION_COOKIE_NAME"] == name


def test_verify_refuses_a_closed_account(app, sign_in, user):
    b = sign_in()
    assert verify(b, NGINX).status_code == 200
    from models import User

    with app.app_context():
        db.session.get(User, user).deactivated_at = clock.now()  # as support's "switch off"
        db.session.commit()
    assert verify(b, NGINX).status_code == 401


def test_the_fast_path_answers_the_plain_cases_and_leaves_the_rest_to_the_route(
        app, sign_in, user):
    b = sign_in()
    verify(b, NGINX)
    asked = []
    route = app.view_functions["forward_auth.verify"]
    app.view_functions["forward_auth.verify"] = lambda: asked.append(1) or route()
    fresh = Browser(app)
    assert verify(fresh, NGINX).status_code == 401  # no cookie: answered before Flask
    answer = verify(b, NGINX)
    assert answer.status_code == 200 and answer.headers["Remote-Email"] == "client@example.com"
    assert answer.headers["Cache-Control"] == "no-store"
    assert asked == []
    # A refusal, a redirect for Caddy and a due idle touch are the route's to answer.
    assert verify(b, nginx_asks("http://files.localhost/admin/")).status_code == 403
    assert verify(fresh, CADDY).status_code == 302
    clock.advance(timedelta(minutes=2))
    assert verify(b, NGINX).status_code == 200
    assert len(asked) == 3
    assert verify(b, NGINX).status_code == 200 and len(asked) == 3  # touched: fast again


def test_a_forwarded_host_nobody_listed_is_refused(app, browser):
    # ProxyFix takes X-Forwarded-Host (PROXY_FIX_X_HOST=1); TRUSTED_HOSTS then refuses it,
    # before the fast path or the route could name it in a redirect.
    answer = verify(browser, {**CADDY, "X-Forwarded-Host": "evil.example"})
    assert answer.status_code == 400
    assert "evil.example" not in answer.headers.get("Location", "")
    answer = verify(browser, {"X-Forwarded-Host": "evil.example"})
    assert answer.status_code == 400
