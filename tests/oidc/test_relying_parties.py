"""Two relying parties nobody here wrote, each in its own small app under gunicorn, and
Chromium signing in through them end to end against ClientGate under gunicorn.

- tests/oidc/rp/authlib_app.py: Authlib's Flask client (discovery, PKCE S256, state,
  nonce, the id_token checked by Authlib against the JWKS, userinfo, RP-initiated logout);
- tests/oidc/rp/oic_app.py: the `oic` package's Client (the same, checked by oic).

ClientGate runs as the operator's guide starts it: a database made by `flask db upgrade`, the
apps registered with `flask oidc add-client`, gunicorn with two workers, PORTAL_URL set to
the address it is served at (the issuer every library checks). The apps live on
`localhost`, ClientGate on 127.0.0.1, so their cookies are kept apart as on real hosts.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import (  # noqa: F401 - fixtures
    DESKTOP, PHONE, assert_accessible, assert_fits_phone, chromium, new_context, screenshot,
)
from tests.conftest import CSRF_IN_PAGE, SMTPServer, TEST_PASSWORD, free_port
from tests.production.conftest import Databases, Gunicorn, ROOT, flask_cli, production_env

pytestmark = [
    pytest.mark.browser,
    # oic (pyoidc) still calls a few deprecated things of its own dependencies; only those.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:oic"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:cryptojwt"),
]

CLIENT = "client@example.com"
ADMIN_ONLY = "http://localhost:9/admin-only/callback"


class RelyingParty:
    """One of the small apps in tests/oidc/rp/ under gunicorn on localhost:<port>."""

    def __init__(self, module: str, log_dir: Path) -> None:
        self.module = module
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"
        self.log_path = log_dir / f"{module}.log"
        self.process: Optional[subprocess.Popen] = None

    def start(self, issuer: str, client_id: str, secret: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "CLIENTGATE"))}
        env.update(RP_ISSUER=issuer, RP_CLIENT_ID=client_id, RP_CLIENT_SECRET=secret,
                   RP_BASE_URL=self.url, RP_SECRET_KEY=secrets.token_hex(16),
                   PYTHONUNBUFFERED="1")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind",
                 f"127.0.0.1:{self.port}", "--no-control-socket",
                 f"tests.oidc.rp.{self.module}:create_app()"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/", timeout=10).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.module} did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _client_credentials(output: str) -> tuple[str, str]:
    client_id = re.search(r"^client_id: (\S+)$", output, re.M).group(1)
    secret = re.search(r"^client_secret: (\S+)$", output, re.M).group(1)
    return client_id, secret


@pytest.fixture(scope="module")
def module_smtp():
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory, module_smtp):
    """ClientGate and the two apps, each under gunicorn, set up as an operator would."""
    logs = tmp_path_factory.mktemp("oidc-logs")
    databases = Databases(tmp_path_factory.mktemp("oidc-db"))
    url = databases.new()
    apps = {"authlib": RelyingParty("authlib_app", logs), "oic": RelyingParty("oic_app", logs)}
    rules = dict(PROTECTED_HOSTS="localhost", ACCESS_RULES="localhost/admin-only/ admin")
    gunicorn = Gunicorn(url, module_smtp, logs, workers=2, **rules)
    issuer = f"http://127.0.0.1:{gunicorn.port}"
    gunicorn.env["PORTAL_URL"] = issuer
    try:
        flask_cli("db", "upgrade", database_url=url)
        subprocess.run([sys.executable, "-m", "flask", "--app", "app", "users", "add", CLIENT,
                        "--password-stdin"], cwd=ROOT, input=TEST_PASSWORD + "\n", text=True,
                       env=production_env(url, PORTAL_URL=issuer, **rules), check=True,
                       capture_output=True, timeout=120)
        credentials = {}
        for name, app in apps.items():
            result = flask_cli("oidc", "add-client", f"{name} app", "--redirect-uri",
                               app.url + "/callback", "--post-logout-uri", app.url + "/",
                               database_url=url, PORTAL_URL=issuer, **rules)
            credentials[name] = _client_credentials(result.stdout)
        admin_only = flask_cli("oidc", "add-client", "Admin tools", "--redirect-uri",
                               ADMIN_ONLY, database_url=url, PORTAL_URL=issuer, **rules)
        credentials["admin-only"] = _client_credentials(admin_only.stdout)
        gunicorn.start()
        for name, app in apps.items():
            app.start(issuer, *credentials[name])
        yield {"issuer": issuer, "apps": apps, "credentials": credentials, "gunicorn": gunicorn,
               "smtp": module_smtp}
    finally:
        for app in apps.values():
            app.stop()
        gunicorn.stop()
        databases.drop_all()


def _check_logs(world) -> None:
    for text in [world["gunicorn"].log(), *(app.log() for app in world["apps"].values())]:
        assert "Traceback" not in text, text[-3000:]


def _arrive(page, url: str, world) -> None:
    """Wait for the browser to reach `url`; if it does not, show where it is and the logs."""
    try:
        page.wait_for_url(url, timeout=15000)
    except Exception:
        logs = "\n".join(app.log()[-3000:] for app in world["apps"].values())
        raise AssertionError(f"stuck at {page.url}:\n{page.inner_text('body')[:1500]}\n"
                             f"{logs}\n{world['gunicorn'].log()[-3000:]}") from None


def _sign_in_at_clientgate(page, smtp: SMTPServer) -> None:
    """On ClientGate's /login (sent there by an app): password, then the emailed code."""
    expect(page.locator("[data-login-form]")).to_be_visible()
    count = len(smtp.messages)
    page.fill("input[name=email]", CLIENT)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.locator("[data-login-form] button[type=submit]").click()
    smtp.wait_for(count + 1, timeout=20)
    page.fill("input[name=code]", smtp.last_to(CLIENT).code)
    page.locator("form:has(input[name=code]) button[type=submit]").first.click()


def test_chromium_signs_in_through_both_libraries_and_logs_out(world, new_context):
    issuer, apps = world["issuer"], world["apps"]
    page = new_context(DESKTOP).new_page()

    # Authlib's app: not signed in anywhere, so ClientGate's own sign-in comes first.
    page.goto(apps["authlib"].url + "/")
    page.click("#sign-in")
    page.wait_for_url(re.compile(re.escape(issuer) + r"/login\?next="))
    screenshot(page, "oidc-login-from-app")
    _sign_in_at_clientgate(page, world["smtp"])
    _arrive(page, apps["authlib"].url + "/", world)
    expect(page.locator("#who")).to_have_text(f"Signed in as {CLIENT}")
    expect(page.locator("#amr")).to_have_text("pwd otp mfa")
    expect(page.locator("#userinfo")).to_have_text(CLIENT)
    sub = page.locator("#sub").inner_text()
    assert sub.isdigit()  # stable id, not the email

    # oic's app: ClientGate already knows this browser, so no second sign-in.
    page.goto(apps["oic"].url + "/")
    page.click("#sign-in")
    _arrive(page, apps["oic"].url + "/", world)
    expect(page.locator("#who")).to_have_text(f"Signed in as {CLIENT}")
    expect(page.locator("#sub")).to_have_text(sub)
    expect(page.locator("#userinfo")).to_have_text(CLIENT)

    # RP-initiated logout from Authlib's app: back to the app, and ClientGate's session ended.
    page.goto(apps["authlib"].url + "/")
    page.click("#sign-out")
    page.wait_for_url(apps["authlib"].url + "/?state=bye")
    expect(page.locator("#who")).to_have_text("Not signed in")
    page.goto(issuer + "/portal")
    assert urlsplit(page.url).path == "/login"
    _check_logs(world)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_clientgate_stops_a_bad_redirect_and_an_app_not_allowed(world, new_context, viewport):
    issuer, apps = world["issuer"], world["apps"]
    context = new_context(viewport)
    page = context.new_page()
    page.goto(apps["oic"].url + "/")
    page.click("#sign-in")
    _sign_in_at_clientgate(page, world["smtp"])
    _arrive(page, apps["oic"].url + "/", world)

    client_id, _ = world["credentials"]["oic"]
    page.goto(issuer + "/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "scope": "openid",
        "redirect_uri": "https://evil.example.net/callback", "state": "x"}))
    assert urlsplit(page.url).netloc == urlsplit(issuer).netloc  # no redirect anywhere
    expect(page.locator("h1")).to_have_text("This app's sign-in did not work")
    expect(page.locator("[role=alert]")).to_contain_text("has not registered")
    screenshot(page, "oidc-redirect-mismatch")
    assert_accessible(page, "oidc redirect mismatch")
    if viewport is PHONE:
        assert_fits_phone(page, "oidc redirect mismatch")

    admin_id, _ = world["credentials"]["admin-only"]
    verifier = secrets.token_urlsafe(48)
    page.goto(issuer + "/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": admin_id, "scope": "openid",
        "redirect_uri": ADMIN_ONLY, "state": "x", "code_challenge": _s256(verifier),
        "code_challenge_method": "S256"}))
    assert urlsplit(page.url).netloc == urlsplit(issuer).netloc
    expect(page.locator("h1")).to_have_text("You cannot open this app")
    expect(page.locator("[role=alert]")).to_contain_text("Admin tools is not open to your account")
    screenshot(page, "oidc-app-not-allowed")
    assert_accessible(page, "oidc app not allowed")
    if viewport is PHONE:
        assert_fits_phone(page, "oidc app not allowed")

    # An app asks to log out without proving who it is: ClientGate asks the client first.
    page.goto(issuer + "/oauth/logout?" + urlencode({"client_id": client_id}))
    expect(page.locator("h1")).to_have_text("Log out of Client Portal?")
    screenshot(page, "oidc-confirm-logout")
    assert_accessible(page, "oidc confirm logout")
    if viewport is PHONE:
        assert_fits_phone(page, "oidc confirm logout")
    page.locator("[data-oidc-confirm-logout] button[type=submit]").click()
    page.wait_for_url(re.compile(re.escape(issuer) + r"/login"))
    page.goto(issuer + "/portal")
    assert urlsplit(page.url).path == "/login"


def _s256(verifier: str) -> str:
    import hashlib
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()) \
        .rstrip(b"=").decode()


# --- the libraries themselves reject a tampered id_token -------------------------------------

def _python_sign_in(world) -> tuple[dict, str]:
    """A real token response for the Authlib app's client, by plain HTTP (no browser)."""
    issuer, smtp = world["issuer"], world["smtp"]
    client_id, secret = world["credentials"]["authlib"]
    redirect_uri = world["apps"]["authlib"].url + "/callback"
    web = requests.Session()

    def csrf(response) -> str:
        match = CSRF_IN_PAGE.search(response.text)
        return match.group(1) or match.group(2)

    verifier, nonce = secrets.token_urlsafe(48), secrets.token_hex(8)
    authorize = issuer + "/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "scope": "openid email profile",
        "redirect_uri": redirect_uri, "state": "s", "nonce": nonce,
        "code_challenge": _s256(verifier), "code_challenge_method": "S256"})
    login = web.get(authorize)  # follows to /login?next=...
    count = len(smtp.messages)
    web.post(login.url, data={"email": CLIENT, "password": TEST_PASSWORD,
                              "csrf_token": csrf(login)})
    smtp.wait_for(count + 1, timeout=20)
    code_page = web.get(issuer + "/login/code")
    back = web.post(issuer + "/login/code", data={"code": smtp.last_to(CLIENT).code,
                                                  "csrf_token": csrf(code_page)},
                    allow_redirects=False)
    assert back.status_code == 302
    to_app = web.get(issuer + back.headers["Location"], allow_redirects=False)
    code = parse_qs(urlsplit(to_app.headers["Location"]).query)["code"][0]
    token = requests.post(issuer + "/oauth/token", auth=(client_id, secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "code_verifier": verifier}).json()
    return token, nonce


def _tamper(id_token: str) -> str:
    header, payload, signature = id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = "boss@example.com"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return ".".join([header, forged, signature])


def test_both_libraries_reject_a_tampered_id_token(world):
    from authlib.integrations.flask_client import OAuth
    from flask import Flask
    from joserfc.errors import BadSignatureError
    from oic.oic import Client
    from oic.oic.message import AccessTokenResponse, RegistrationResponse
    from oic.utils.authn.client import CLIENT_AUTHN_METHOD

    token, nonce = _python_sign_in(world)
    tampered = dict(token, id_token=_tamper(token["id_token"]))
    client_id, secret = world["credentials"]["authlib"]

    app = Flask(__name__)
    app.secret_key = "x"
    provider = OAuth(app).register(
        "clientgate", client_id=client_id, client_secret=secret,
        server_metadata_url=world["issuer"] + "/.well-known/openid-configuration")
    with app.test_request_context():
        assert provider.parse_id_token(token, nonce)["email"] == CLIENT
        with pytest.raises(BadSignatureError):
            provider.parse_id_token(tampered, nonce)

    rp = Client(client_authn_method=CLIENT_AUTHN_METHOD)
    rp.store_registration_info(RegistrationResponse(client_id=client_id, client_secret=secret))
    rp.provider_config(world["issuer"])
    good = rp.parse_response(AccessTokenResponse, info=json.dumps(token), sformat="json")
    assert good["id_token"]["email"] == CLIENT
    with pytest.raises(Exception) as refused:
        rp.parse_response(AccessTokenResponse, info=json.dumps(tampered), sformat="json")
    assert "signature" in repr(refused.value).lower() or "verif" in repr(refused.value).lower()
