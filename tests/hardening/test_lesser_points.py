"""Issue 11, point 8: `flask demo` in production, replayed and wrongly signed delivery
receipts, support staff reading admin timelines, and one email rule for `users add` and the
sign-in form. (/healthz details: tests/hardening/test_production_channels.py.)
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Event, User
from services import clock, support
from services.signin import codes, limits
from tests.conftest import Browser, add_user
from tests.sms.conftest import SMS_EMAIL, SMS_PHONE, sms_user  # noqa: F401 - fixtures
from tests.vonage_stub import sign

SECRET = "receipt-signing-secret-0123456789"


# --- flask demo ----------------------------------------------------------------------------

def test_there_is_no_demo_command_in_production(production_app):
    result = production_app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code != 0 and "No such command" in result.output
    with production_app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0


def test_development_and_tests_keep_it(app):
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 0, result.output


# --- delivery receipts -----------------------------------------------------------------------

@pytest.fixture
def sent(app, vonage, sms_user, deliver, browser):  # noqa: F811
    app.config.update(vonage.app_config(), VONAGE_SIGNATURE_SECRET=SECRET)
    assert browser.log_in(SMS_EMAIL).status_code == 302
    deliver()
    return vonage.wait_for(1)[0]


def _receipts(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Event.id)).where(
            Event.type == "delivery_receipt"))


def test_a_replayed_signed_receipt_is_not_recorded_again(app, sent, vonage, browser):
    fields = vonage.receipt(sent, "delivered", signature_secret=SECRET)
    first = browser.client.post("/webhooks/vonage/dlr", data=fields)
    assert first.status_code == 200 and first.get_json()["result"] == "recorded"
    for _ in range(3):
        again = browser.client.post("/webhooks/vonage/dlr", data=fields)
        assert again.status_code == 200 and again.get_json()["result"] == "already recorded"
    assert _receipts(app) == 1
    # A later receipt (another nonce and time) about the same message is still heard.
    later = vonage.receipt(sent, "delivered", signature_secret=SECRET)
    assert browser.client.post("/webhooks/vonage/dlr", data=later).get_json()["result"] \
        == "recorded"
    assert _receipts(app) == 2


@pytest.mark.parametrize("configured, used", [("sha256", "md5hash"), ("md5hash", "md5"),
                                              ("sha512", "sha256")])
def test_only_the_configured_signature_method_is_accepted(app, sent, vonage, browser,
                                                          configured, used):
    app.config["VONAGE_SIGNATURE_METHOD"] = configured
    fields = vonage.receipt(sent, "failed", signature_secret=SECRET, method=used)
    response = browser.client.post("/webhooks/vonage/dlr", data=fields)
    assert response.status_code == 403 and response.get_json()["error"] == "bad signature"
    fields = vonage.receipt(sent, "delivered", signature_secret=SECRET, method=configured)
    assert browser.client.post("/webhooks/vonage/dlr", data=fields).status_code == 200


def test_an_unknown_signature_method_stops_the_start(tmp_path, smtp):
    from app import create_app
    from tests.hardening.conftest import production_config

    with pytest.raises(RuntimeError, match="VONAGE_SIGNATURE_METHOD"):
        create_app(production_config(tmp_path, smtp, VONAGE_SIGNATURE_METHOD="md4"))


# --- admin timelines -------------------------------------------------------------------------

def test_support_staff_cannot_open_an_admins_timeline_but_admins_can(app, smtp, deliver,
                                                                      sign_in):
    admin_id = add_user(app, "boss@example.com", role="admin")
    add_user(app, "helper@example.com", role="support")
    helper = sign_in("helper@example.com", Browser(app))
    assert helper.get(f"/support/clients/{admin_id}").status_code == 404
    assert helper.get(f"/support/clients/{admin_id}/export.csv").status_code == 404
    assert "boss@example.com" not in helper.text("/support?q=boss")
    boss = sign_in("boss@example.com", Browser(app))
    assert boss.get(f"/support/clients/{admin_id}").status_code == 200
    assert "boss@example.com" in boss.text("/support?q=boss")


def test_support_staff_do_not_see_an_admins_invitation(app, smtp, deliver, sign_in):
    add_user(app, "boss@example.com", role="admin")
    boss = sign_in("boss@example.com", Browser(app))
    assert boss.post("/support/clients/new", {"email": "new.boss@example.com",
                                              "channel": "email", "role": "admin"}) \
        .status_code == 302
    boss.post("/support/clients/new", {"email": "new.client@example.com", "channel": "email"})
    assert "new.boss@example.com" in boss.text("/support/invitations")
    add_user(app, "helper@example.com", role="support")
    helper = sign_in("helper@example.com", Browser(app))
    listed = helper.text("/support/invitations")
    assert "new.client@example.com" in listed and "new.boss@example.com" not in listed


def test_a_search_matching_only_admins_reads_as_one_matching_no_one(app, smtp, deliver,
                                                                   sign_in):
    import re

    add_user(app, "admin@example.com", role="admin")
    add_user(app, "helper@example.com", role="support")
    helper = sign_in("helper@example.com", Browser(app))

    def page(query: str) -> str:
        text = helper.text(f"/support?q={query}")
        text = re.sub(r'name="csrf_token" (?:type="hidden" )?value="[^"]+"', "", text)
        return text.replace(query, "QUERY")

    admin, nobody = page("admin@exa"), page("nobody@exa")
    assert "No one’s email address or phone number contains “QUERY”" in nobody
    assert admin == nobody


def test_admins_left_out_of_went_wrong_lately_do_not_shorten_it(app, smtp, deliver):
    """Admins' locks and failed sign-ins are left out before the list's limit, not after:
    the client's older rows still show to support staff however many admins came later."""
    add_user(app, "client@example.com")
    bosses = [f"boss{i}@example.com" for i in range(3)]
    for email in bosses:
        add_user(app, email, role="admin")
    for email in ["client@example.com", *bosses]:  # oldest first: the client's, then admins'
        Browser(app).log_in(email)
        clock.advance(timedelta(seconds=1))
    clock.advance(codes.CODE_LIFETIME)
    deliver()  # every code runs out unused
    with app.app_context():
        for email in ["client@example.com", *bosses]:
            limits.lock_account(db.session.scalar(select(User).filter_by(email=email)))
            clock.advance(timedelta(seconds=1))
        db.session.commit()
    with app.app_context():
        def emails(rows):
            return [row.user.email for row in rows]

        assert emails(support.recent_locks(("admin",), limit=3)) == ["client@example.com"]
        assert emails(support.recent_problems("UTC", ("admin",), limit=3)) == [
            "client@example.com"]
        assert emails(support.recent_locks(limit=3)) == bosses[::-1]  # an admin sees all
        assert emails(support.recent_problems("UTC", limit=3)) == bosses[::-1]


# --- one email rule --------------------------------------------------------------------------

@pytest.mark.parametrize("address", ["ann@firm.local", "bob@localhost", "no-at-sign.example",
                                     "two@@example.com", "x@example..com"])
def test_users_add_refuses_what_the_sign_in_form_refuses(app, browser, address):
    result = app.test_cli_runner().invoke(args=["users", "add", address, "--password-stdin"],
                                          input="a long enough password\n")
    assert result.exit_code != 0 and "not an email address" in result.output
    page = browser.post("/login", {"email": address, "password": "whatever"})
    assert "Enter an email address like name@example.com." in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0


def test_what_users_add_accepts_can_sign_in(app, browser):
    result = app.test_cli_runner().invoke(
        args=["users", "add", "Ann@Firm.co.uk", "--password-stdin"],
        input="a long enough password\n")
    assert result.exit_code == 0, result.output
    response = browser.post("/login", {"email": "ann@firm.co.uk",
                                       "password": "a long enough password"})
    assert response.status_code == 302


def test_an_address_the_mail_path_cannot_send_to_is_refused_in_plain_words(app, browser):
    # anna.müller@… is a valid address, but only for mail servers speaking SMTPUTF8, which
    # Flask-Mail cannot: such an account would be made and its codes never sent (each try a
    # UnicodeEncodeError in the log). A domain with such letters goes out as xn--… and is fine.
    address = "anna.müller@example.com"
    result = app.test_cli_runner().invoke(args=["users", "add", address, "--password-stdin"],
                                          input="a long enough password\n")
    assert result.exit_code != 0 and "letters such as ü or é before the @" in result.output
    page = browser.post("/login", {"email": address, "password": "whatever"})
    assert "letters such as ü or é before the @" in page.get_data(as_text=True)
    result = app.test_cli_runner().invoke(args=["users", "add", "anna@exämple.com",
                                                "--password-stdin"],
                                          input="a long enough password\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 1
        from services.accounts.invitations import Candidate, check

        row = check(Candidate(email=address, line=2), taken=set())
        assert row.problems == [f"“{address}”: We cannot send codes to an address with letters "
                                "such as ü or é before the @. Please use another email address."]
