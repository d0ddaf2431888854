"""Security headers, the session cookie, session timeouts, and production's refusal to start
without SECRET_KEY."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest

from app import create_app
from config import BASE_DIR, Config
from extensions import db
from services import clock
from tests.conftest import Browser, PRODUCTION_SENDER, make_config, running_app

EMAIL = "client@example.com"
TEMPLATES = BASE_DIR / "templates"


def csp(response) -> dict[str, str]:
    """The Content-Security-Policy as {directive: sources}."""
    policy = response.headers["Content-Security-Policy"]
    directives = {}
    for part in policy.split(";"):
        name, _, sources = part.strip().partition(" ")
        if name:
            directives[name] = sources.strip()
    return directives


def assert_security_headers(response) -> None:
    policy = csp(response)
    raw = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in raw and "unsafe-eval" not in raw
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no inline script, nothing from elsewhere
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'" and policy["base-uri"] == "'none'"
    assert policy["form-action"] == "'self'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] in ("same-origin", "no-referrer",
                                                   "strict-origin-when-cross-origin")


# --- headers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/login", "/login/code", "/login/code/status", "/portal", "/healthz", "/no-such-page",
    "/static/css/app.css",
])
def test_every_kind_of_response_has_the_security_headers(browser, path):
    with browser.client.get(path) as response:
        assert_security_headers(response)


def test_error_and_limit_pages_have_the_security_headers(app, user, limits_on):
    limits_on(login_per_ip="1 per hour")
    b = Browser(app)
    b.log_in(EMAIL, "wrong")
    limited = b.log_in(EMAIL, "wrong")
    assert limited.status_code == 429
    assert_security_headers(limited)
    assert_security_headers(b.client.post("/login", data={}))  # CSRF failure
    assert_security_headers(b.client.delete("/login"))  # 405


def test_pages_carry_no_inline_script_or_style(app, user, smtp, deliver, sign_in):
    """With script-src 'self' inline code would be blocked; make sure none is written."""
    b = sign_in()
    paths = ["/portal"] + (["/account/security"] if "account.security" in app.view_functions
                           else [])
    pages = [b.get(path).get_data(as_text=True) for path in paths]
    fresh = Browser(app)
    pages.append(fresh.get("/login").get_data(as_text=True))
    fresh.log_in()
    pages.append(fresh.get("/login/code").get_data(as_text=True))
    for html in pages:
        for script in re.findall(r"<script\b[^>]*>", html, re.I):
            assert "src=" in script, script
        assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html, re.I)  # nothing between the tags
        assert not re.search(r"\son[a-z]+\s*=", html, re.I)  # no onclick= and the like
        assert not re.search(r"\sstyle\s*=", html, re.I)
        assert "javascript:" not in html.lower()


def test_templates_have_no_inline_script_or_style():
    for path in TEMPLATES.rglob("*.html"):
        if path.parent.name == "messages":
            continue  # HTML email needs inline style= (mail clients drop <style>); no script
        text = path.read_text()
        for script in re.findall(r"<script\b[^>]*>", text, re.I):
            assert "src=" in script, f"{path}: inline <script>"
        assert not re.search(r"\son[a-z]+\s*=\s*[\"']", text, re.I), f"{path}: on...= handler"
        assert not re.search(r"\sstyle\s*=\s*[\"']", text, re.I), f"{path}: style= attribute"
        assert not re.search(r"<style\b", text, re.I), f"{path}: <style> element"


def test_hsts_only_over_https(browser):
    assert "Strict-Transport-Security" not in browser.client.get("/login").headers
    hsts = browser.client.get("/login", base_url="https://localhost").headers[
        "Strict-Transport-Security"]
    max_age = int(re.search(r"max-age=(\d+)", hsts).group(1))
    assert max_age >= 365 * 24 * 3600 and "includeSubDomains" in hsts


def test_hsts_behind_a_proxy_only_when_the_proxy_is_trusted(app, tmp_path):
    # Not configured to trust a proxy: a forged X-Forwarded-Proto changes nothing.
    forged = app.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in forged.headers
    behind_proxy = create_app(make_config(tmp_path / "proxied", PROXY_FIX_X_PROTO=1,
                                          PROXY_FIX_X_FOR=1,
                                          SQLALCHEMY_DATABASE_URI="sqlite://"))
    client = behind_proxy.test_client()
    response = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in response.headers
    assert "Strict-Transport-Security" not in client.get("/login").headers
    with behind_proxy.app_context():
        db.engine.dispose()


# --- the session cookie ----------------------------------------------------------------------

def session_cookie_header(response, name: str) -> str:
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(name + "=")]
    assert headers, response.headers.getlist("Set-Cookie")
    return headers[-1]


def test_session_cookie_is_httponly_and_lax(app, browser):
    header = session_cookie_header(browser.client.get("/login"), app.config["SESSION_COOKIE_NAME"])
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Path=/" in header and "Domain=" not in header


@pytest.fixture
def production_app(tmp_path):
    """The production configuration (Secure cookies), with a key and a throwaway database."""
    values = {"SECRET_KEY": "k" * 48, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/p.db",
              "PORTAL_URL": "https://localhost", "MAIL_SERVER": "127.0.0.1",
              "MAIL_DEFAULT_SENDER": PRODUCTION_SENDER,
              "RATELIMIT_ENABLED": False, "DISPATCHER_AUTOSTART": False, "DEV_OUTBOX": False}
    if "SESSION_COOKIE_SECURE" in os.environ:
        pytest.skip("SESSION_COOKIE_SECURE is set in this environment")
    with running_app(type("ProductionForTest", (Config,), values)) as application:
        yield application


def test_production_session_cookie_is_secure_with_host_prefix(production_app):
    assert production_app.config["SESSION_COOKIE_SECURE"] is True
    response = production_app.test_client().get("/login", base_url="https://localhost")
    header = session_cookie_header(response, "__Host-clientgate_session")
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert flag in header
    assert "Domain=" not in header


# --- secrets -----------------------------------------------------------------------------------

def test_production_refuses_to_start_without_secret_key(tmp_path):
    values = {"SECRET_KEY": None, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/p.db",
              "RATELIMIT_ENABLED": False, "DISPATCHER_AUTOSTART": False}
    with pytest.raises(RuntimeError, match="SECRET_KEY is not set"):
        create_app(type("ProductionWithoutKey", (Config,), values))


def test_production_command_line_refuses_to_start_without_secret_key(tmp_path):
    """The real start path: environment only, CLIENTGATE_ENV unset means production."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CLIENTGATE_ENV", "SECRET_KEY", "DATABASE_URL")}
    env.update(SECRET_KEY="", DATABASE_URL=f"sqlite:///{tmp_path}/p.db")
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "users", "list"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr + result.stdout


def test_development_makes_its_own_key_but_production_never_does():
    from config import DevelopmentConfig

    config = {"SECRET_KEY": None, "PORTAL_URL": DevelopmentConfig.PORTAL_URL,
              "VONAGE_SIGNATURE_METHOD": "md5hash"}
    DevelopmentConfig.check(config)
    assert config["SECRET_KEY"] and len(config["SECRET_KEY"]) >= 32
    with pytest.raises(RuntimeError):
        Config.check({"SECRET_KEY": ""})


# --- session timeouts and revocation ---------------------------------------------------------

def test_active_session_still_ends_at_the_absolute_limit(app, user, sign_in):
    b = sign_in()
    hours = app.config["SESSION_ABSOLUTE_HOURS"]
    idle = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] - 5)
    elapsed = timedelta(0)
    # Busy all day: a request every few minutes keeps the idle timer from firing...
    while elapsed + idle < timedelta(hours=hours):
        clock.advance(idle)
        elapsed += idle
        assert b.get("/portal").status_code == 200
    # ...but the absolute limit still ends the session.
    clock.advance(timedelta(hours=hours) - elapsed + timedelta(minutes=1))
    assert b.get("/portal").status_code == 302


def test_idle_session_ends_but_activity_keeps_it(app, user, sign_in):
    b = sign_in()
    idle = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
    clock.advance(idle - timedelta(minutes=2))
    assert b.get("/portal").status_code == 200
    clock.advance(idle - timedelta(minutes=2))
    assert b.get("/portal").status_code == 200  # the last request restarted the idle timer
    clock.advance(idle + timedelta(minutes=1))
    assert b.get("/portal").status_code == 302


def test_timeouts_are_within_nist_aal2(app):
    """SP 800-63B AAL2: reauthenticate after 30 minutes idle and at least every 12 hours."""
    assert app.config["SESSION_IDLE_MINUTES"] <= 30
    assert app.config["SESSION_ABSOLUTE_HOURS"] <= 12


def test_session_token_is_random_and_stored_only_hashed(app, user, sign_in):
    from models import AuthSession
    from sqlalchemy import select

    first, second = sign_in(), sign_in(b=Browser(app))
    with first.client.session_transaction() as s1, second.client.session_transaction() as s2:
        tokens = [s1["sid"], s2["sid"]]
    assert tokens[0] != tokens[1] and all(len(t) >= 43 for t in tokens)  # 256 bits
    with app.app_context():
        stored = db.session.scalars(select(AuthSession.token_hash)).all()
    assert not set(tokens) & set(stored)


def test_sms_is_offered_with_its_risk_and_email_as_the_alternative(app, user, sign_in):
    """SMS is a restricted authenticator (SP 800-63B-4; ASVS 6.6.1): say so where it is chosen."""
    page = sign_in().get("/account/security").get_data(as_text=True)
    assert "Less safe than email" in page and "SIM card" in page
    assert 'value="email"' in page and 'value="sms"' in page
