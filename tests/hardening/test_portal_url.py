"""Issue 11, point 1: the public address comes from PORTAL_URL, never from the Host header.

On the old code a password posted with `Host: attacker-phish.example` made the SMS end with
`@attacker-phish.example #123456`, so a phishing page got the code filled in.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app import create_app
from config import BASE_DIR
from tests.conftest import Browser, add_user, make_config, running_app
from tests.hardening.conftest import production_config

SMS_EMAIL, SMS_PHONE = "mobile@example.com", "+447400123456"


@pytest.fixture
def sms_app(tmp_path, smtp, vonage):
    config = make_config(tmp_path, smtp, PORTAL_URL="https://portal.firm.example",
                         TRUSTED_HOSTS=["internal.firm.example"], **vonage.app_config())
    with running_app(config) as application:
        add_user(application, SMS_EMAIL, channel="sms", phone=SMS_PHONE)
        yield application


def _log_in(app, base_url: str, **headers):
    b = Browser(app)
    b.client.get("/login", base_url=base_url)
    page = b.client.get("/login", base_url=base_url)
    b._remember_csrf(page)
    return b.client.post("/login", base_url=base_url, headers=headers, data={
        "email": SMS_EMAIL, "password": "correct horse battery", "csrf_token": b.last_csrf})


def test_a_request_naming_another_host_is_refused_and_sends_nothing(sms_app, vonage):
    response = _log_in(sms_app, "http://portal.firm.example", Host="attacker-phish.example")
    assert response.status_code == 400
    with sms_app.app_context():
        from services import delivery

        delivery.run_once()
    assert vonage.received == []


def test_the_webotp_line_names_portal_url_even_through_another_trusted_host(sms_app, vonage):
    # internal.firm.example is a host the operator added: it is answered, but a text still
    # names the address clients know.
    response = _log_in(sms_app, "http://internal.firm.example")
    assert response.status_code == 302 and response.location.endswith("/login/code")
    with sms_app.app_context():
        from services import delivery

        delivery.run_once()
    text = vonage.wait_for(1)[0].text
    assert text.rstrip().endswith(f"@portal.firm.example #{vonage.received[0].code}")
    assert "internal.firm.example" not in text


def test_trusted_hosts_come_from_portal_url(tmp_path):
    config = make_config(tmp_path, PORTAL_URL="https://portal.firm.example:8443/",
                         TRUSTED_HOSTS=["other.example"])
    with running_app(config) as app:
        assert app.config["TRUSTED_HOSTS"] == ["portal.firm.example", "other.example"]
        client = app.test_client()
        assert client.get("/login", base_url="https://portal.firm.example:8443").status_code == 200
        assert client.get("/login", base_url="http://127.0.0.1").status_code == 400


@pytest.mark.parametrize("value, origin", [
    ("https://portal.firm.example", "https://portal.firm.example"),
    ("HTTPS://Portal.Firm.Example:443/clients/", "https://portal.firm.example"),
    ("http://LocalHost:80", "http://localhost"),
    ("https://portal.firm.example:8443", "https://portal.firm.example:8443"),
    ("https://[2001:DB8::1]:443", "https://[2001:db8::1]"),
])
def test_the_origin_is_written_as_browsers_write_it(tmp_path, value, origin):
    """Passkeys and the form-origin check compare it with what a browser sends, byte for byte:
    with PORTAL_URL=http://LocalHost:80 no passkey could be added before."""
    from services import urls

    with running_app(make_config(tmp_path, PORTAL_URL=value)) as app, app.app_context():
        assert urls.portal_origin() == origin


def test_development_also_answers_on_127_0_0_1(monkeypatch):
    from config import DevelopmentConfig, trusted_hosts

    assert trusted_hosts({"PORTAL_URL": "http://localhost:5000", "TRUSTED_HOSTS": None},
                         DevelopmentConfig.DEVELOPMENT_HOSTS) == ["localhost", "127.0.0.1"]
    assert not hasattr(production_config, "DEVELOPMENT_HOSTS")


@pytest.mark.parametrize("value, message", [
    (None, "PORTAL_URL is not set"),
    ("portal.firm.example", "PORTAL_URL must be a full address"),
    ("ftp://portal.firm.example", "PORTAL_URL must be a full address"),
    ("https://portal.firm.example:99999", "PORTAL_URL must be a full address"),
    ("https://portal.firm.example:https", "PORTAL_URL must be a full address"),
])
def test_production_refuses_to_start_without_a_usable_portal_url(tmp_path, smtp, value,
                                                                 message):
    with pytest.raises(RuntimeError, match=message):
        create_app(production_config(tmp_path, smtp, PORTAL_URL=value))


def test_the_command_line_says_what_is_missing(tmp_path):
    """The real start path, from the environment alone."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLIENTGATE_", "PORTAL_", "MAIL_", "TRUSTED_HOSTS"))}
    env.update(SECRET_KEY="s" * 48, DATABASE_URL=f"sqlite:///{tmp_path}/p.db")
    run = [sys.executable, "-m", "flask", "--app", "app", "users", "list"]
    result = subprocess.run(run, cwd=BASE_DIR, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0 and "PORTAL_URL is not set" in result.stderr
    env["PORTAL_URL"] = "https://portal.firm.example"
    result = subprocess.run(run, cwd=BASE_DIR, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0 and "MAIL_SERVER is not set" in result.stderr
    env["MAIL_SERVER"] = "smtp.firm.example"
    result = subprocess.run(run, cwd=BASE_DIR, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0 and "MAIL_DEFAULT_SENDER must be" in result.stderr
