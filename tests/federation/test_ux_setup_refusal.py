"""/auth/verify refusing because of the setup, not the client: the page says so plainly and
who to tell; the technical reason goes to the operator's log."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import Browser, add_user, make_config, running_app

RULES = "files.localhost any Shared files; files.localhost/admin/ admin"
CADDY = {"X-Forwarded-Method": "GET", "X-Forwarded-Proto": "http",
         "X-Forwarded-Host": "files.localhost", "X-Forwarded-Uri": "/report.pdf?token=secret"}
PLAIN = ("Something is set up wrong on our side, so we cannot open this page. Please tell the "
         "firm")


@pytest.fixture
def app(tmp_path, smtp, request):
    values = dict(PROTECTED_HOSTS="files.localhost", ACCESS_RULES=RULES, PROXY_FIX_X_HOST=1,
                  PROXY_FIX_X_PROTO=1, TRUSTED_HOSTS=["localhost", "elsewhere.localhost"])
    values.update(getattr(request, "param", {}))
    with running_app(make_config(tmp_path, smtp, **values)) as application:
        yield application


def _words(response) -> str:
    return " ".join(response.get_data(as_text=True).split())


@pytest.mark.parametrize("app", [{"PROXY_FIX_X_HOST": 0}], indirect=True)
def test_an_address_the_web_server_did_not_give_reads_as_our_setup(app, sign_in, user, caplog):
    caplog.set_level(logging.WARNING, "clientgate.forward_auth")
    b = sign_in()
    answer = b.client.get("/auth/verify", headers=CADDY)
    assert answer.status_code == 403
    page = _words(answer)
    assert PLAIN + ".</p>" in page
    assert "did not say which page" not in page and "access rules" not in page
    assert "not open to your account" not in page
    [record] = [r for r in caplog.records if r.name == "clientgate.forward_auth"]
    assert record.levelno == logging.WARNING
    assert "did not say which page was asked for" in record.getMessage()


def test_an_address_this_portal_does_not_guard_reads_as_our_setup(app, sign_in, user, caplog):
    caplog.set_level(logging.WARNING, "clientgate.forward_auth")
    app.config["PORTAL_CONTACT"] = "call 020 7946 0000"
    b = sign_in()
    asked = {**CADDY, "X-Forwarded-Host": "elsewhere.localhost"}
    answer = b.client.get("/auth/verify", headers=asked)
    assert answer.status_code == 403
    assert (PLAIN + ': call <a href="tel:02079460000">020 7946 0000</a>.') in _words(answer)
    logged = [r.getMessage() for r in caplog.records if r.name == "clientgate.forward_auth"]
    assert logged and "not one of the sites this portal guards" in logged[0]
    assert "http://elsewhere.localhost/report.pdf" in logged[0]
    assert "secret" not in logged[0]  # the query stays out of the log


def test_nginx_gets_its_bare_403_and_the_operator_the_reason(app, sign_in, user, caplog):
    caplog.set_level(logging.WARNING, "clientgate.forward_auth")
    b = sign_in()
    answer = b.client.get("/auth/verify", headers={
        "X-Forwarded-Host": "elsewhere.localhost",
        "X-Original-URL": "http://elsewhere.localhost/"})
    assert answer.status_code == 403 and answer.get_data() == b""
    assert any("not one of the sites" in r.getMessage() for r in caplog.records
               if r.name == "clientgate.forward_auth")


def test_a_rule_that_keeps_the_client_out_keeps_its_words_and_logs_nothing(
        app, sign_in, user, caplog):
    caplog.set_level(logging.WARNING, "clientgate.forward_auth")
    b = sign_in()
    answer = b.client.get("/auth/verify", headers={**CADDY, "X-Forwarded-Uri": "/admin/users"})
    assert answer.status_code == 403
    page = _words(answer)
    assert "this page is not open to your account" in page
    assert "This address is open only to administrators." in page
    assert "set up wrong" not in page
    assert not [r for r in caplog.records if r.name == "clientgate.forward_auth"]
    add_user(app, "boss@example.com", role="admin")
    boss = sign_in("boss@example.com", Browser(app))
    assert boss.client.get("/auth/verify", headers={**CADDY, "X-Forwarded-Uri": "/admin/"}) \
        .status_code == 200
