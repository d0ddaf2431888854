"""Trusted devices: "don't ask for a code on this device for 30 days", and its limits."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import select

from extensions import db
from models import AuthSession, Event, TrustedDevice
from services import clock
from tests.conftest import TEST_PASSWORD, Browser, add_user, request_code

COOKIE = "cg-device"  # __Host-cg-device where cookies are Secure


def _remembered(app, smtp, deliver, email="client@example.com") -> Browser:
    """Sign in with a code, ticking `remember`."""
    b = Browser(app)
    code = request_code(b, smtp, deliver, email)
    response = b.post("/login/code", {"code": code, "remember": "y"})
    assert response.status_code == 302
    deliver()  # the note that this browser is trusted
    return b


def _refusals(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Event.outcome).where(
            Event.type == "trusted_device_refused").order_by(Event.id)))


def test_a_remembered_device_skips_the_code_but_not_the_password(app, smtp, deliver):
    b = _remembered(app, smtp, deliver)
    cookie = b.client.get_cookie(COOKIE)
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    assert cookie.expires is not None
    with app.app_context():
        stored = db.session.scalar(select(TrustedDevice))
        assert stored.token_hash == hashlib.sha256(cookie.value.encode()).hexdigest()
        assert cookie.value not in (stored.token_hash, stored.browser)
    b.post("/logout", form_page="/portal")
    count = len(smtp.messages)

    assert b.log_in(password="wrong password").status_code == 200  # the password still counts
    response = b.log_in()
    assert response.status_code == 302 and response.location.endswith("/portal")
    deliver()
    assert len(smtp.messages) == count  # no code sent
    with app.app_context():
        newest = db.session.scalars(select(AuthSession).order_by(AuthSession.id.desc())).first()
        assert newest.amr == ["pwd"]
        assert db.session.scalar(select(Event.id).where(Event.type == "trusted_device_used"))


def test_the_client_is_emailed_when_a_browser_is_trusted(app, smtp, deliver):
    """Someone relaying a code could tick the box as well: the client must hear of it."""
    count = len(smtp.messages)
    _remembered(app, smtp, deliver)
    _code, note = smtp.messages[count:]
    assert note.to == ["client@example.com"]
    until = clock.local(clock.now() + timedelta(days=30), app.config["PORTAL_TIMEZONE"])
    assert f"will not be asked for a code after your password until {until:%-d %B %Y}" \
        in note.text
    assert "devices page: http://localhost/account/devices" in note.text
    assert "change your password" in note.text


def test_without_the_tick_the_code_is_asked_next_time(app, smtp, deliver, sign_in):
    b = sign_in()
    assert b.client.get_cookie(COOKIE) is None
    b.post("/logout", form_page="/portal")
    assert b.log_in().location.endswith("/login/code")


def test_a_mark_is_refused_for_another_account_another_browser_and_after_30_days(
        app, smtp, deliver):
    add_user(app, "other@example.com")
    b = _remembered(app, smtp, deliver)
    b.post("/logout", form_page="/portal")
    # Someone else signing in on this device still needs their code.
    assert b.log_in("other@example.com").location.endswith("/login/code")
    assert _refusals(app) == ["other_account"]

    # The mark copied into another kind of browser does not work there.
    thief = Browser(app, user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) "
                                    "AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15")
    thief.client.set_cookie(COOKIE, b.client.get_cookie(COOKIE).value)
    assert thief.log_in().location.endswith("/login/code")
    assert _refusals(app)[-1] == "other_browser"

    clock.advance(timedelta(days=30, minutes=1))
    b2 = Browser(app)
    b2.client.set_cookie(COOKIE, b.client.get_cookie(COOKIE).value)
    assert b2.log_in().location.endswith("/login/code")
    assert _refusals(app)[-1] == "expired"
    # A refused mark is taken off the browser.
    assert b2.client.get_cookie(COOKIE) is None


def test_forget_this_device_on_the_devices_page(app, smtp, deliver):
    b = _remembered(app, smtp, deliver)
    page = b.text("/account/devices")
    assert "Devices that do not ask for a code" in page and "Forget this device" in page
    with app.app_context():
        device_id = db.session.scalar(select(TrustedDevice.id))
    response = b.post(f"/account/devices/trusted/{device_id}/forget", form_page="/account/devices")
    assert response.status_code == 302
    assert "We have forgotten that device" in b.text("/account/devices")
    assert "Forget this device" not in b.text("/account/devices")
    b.post("/logout", form_page="/portal")
    assert b.log_in().location.endswith("/login/code")
    assert _refusals(app)[-1] == "forgotten"


def test_forgetting_a_device_ends_the_sessions_it_opened(app, smtp, deliver, sign_in):
    b = _remembered(app, smtp, deliver)
    b.post("/logout", form_page="/portal")
    assert b.log_in().location.endswith("/portal")  # the mark skipped the code
    with app.app_context():
        device_id = db.session.scalar(select(TrustedDevice.id))
    other = sign_in(b=Browser(app))
    other.post(f"/account/devices/trusted/{device_id}/forget", form_page="/account/devices")
    assert b.get("/portal").status_code == 302
    assert other.get("/portal").status_code == 200
    with app.app_context():
        forgotten = db.session.scalar(select(Event).where(Event.type == "device_forgotten"))
        assert forgotten.detail["sessions_ended"] == 1


def test_sign_out_everywhere_else_forgets_the_other_devices_marks(app, smtp, deliver):
    here, there = _remembered(app, smtp, deliver), _remembered(app, smtp, deliver)
    here.post("/account/devices/sign-out-others", form_page="/account/devices")
    assert there.get("/portal").status_code == 302
    assert there.log_in().location.endswith("/login/code")  # its mark is forgotten
    assert _refusals(app)[-1] == "forgotten"
    here.post("/logout", form_page="/portal")
    assert here.log_in().location.endswith("/portal")  # this browser's mark stays


def test_a_new_password_from_the_command_line_forgets_every_device(app, smtp, deliver):
    b = _remembered(app, smtp, deliver)
    result = app.test_cli_runner().invoke(
        args=["users", "set-password", "client@example.com", "--password-stdin"],
        input="a brand new passphrase 42\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        device = db.session.scalar(select(TrustedDevice))
        assert device.ended_at is not None and device.end_reason == "password changed"
    assert b.log_in(password="a brand new passphrase 42").location.endswith("/login/code")


def test_changing_the_password_on_the_account_page_forgets_every_device(app, smtp, deliver):
    b = _remembered(app, smtp, deliver)
    new = "a brand new passphrase 42"
    changed = b.post("/account/password", {"current_password": TEST_PASSWORD,
                                           "password": new, "confirm": new})
    assert changed.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(TrustedDevice.end_reason)) == "password changed"
    assert "Forget this device" not in b.text("/account/devices")


def test_prune_forgets_marks_long_run_out(app, smtp, deliver):
    from services.support import retention

    _remembered(app, smtp, deliver)
    clock.advance(timedelta(days=60))  # run out 30 days ago: kept for the 90 days of history
    with app.app_context():
        retention.prune(90)
        assert db.session.scalar(select(TrustedDevice.id)) is not None
    clock.advance(timedelta(days=61))
    with app.app_context():
        retention.prune(90)
        assert db.session.scalar(select(TrustedDevice.id)) is None
