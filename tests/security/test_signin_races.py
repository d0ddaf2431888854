"""Requests for one account posted at the same moment are judged one after another.

Double-clicking "Send a code by email instead" on an authenticator app's code page, wrong
codes typed at once to prove a number, and wrong passwords at once at the tenth failure.
On the old code each request read the row before any of them wrote, so two codes were
emailed, eight wrong proof codes counted as one (and the right code was then accepted), and
an account could be locked (and its client emailed) twice.

To make the race certain rather than lucky, every request pauses at the point where the old
code had read and not yet written, until all have arrived (or 2 s pass): on the old code all
were past their reads by then; on the new one the first holds the lock and the others wait
for it (tests/hardening/test_races.py does the same for resends and code caps).
"""

from __future__ import annotations

import threading
from functools import partial

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Delivery, Event, PhoneProof, SignIn
from services import delivery
from services.signin import codes, limits
from tests.authenticators.conftest import set_up_app  # noqa: F401  (a fixture)
from tests.conftest import Browser, at_once, pause_in, wrong_code
from tests.sms.conftest import SMS_PHONE, vonage  # noqa: F401  (a fixture)

AT_ONCE = 4


def _at_once(app, cookie: str, path: str, forms: list[dict]) -> list[int]:
    """Each form posted to `path` by its own thread with this browser's cookie, all at once."""
    statuses: list[int] = []
    start = threading.Barrier(len(forms))

    def run(form: dict) -> None:
        client = app.test_client()
        client.set_cookie("clientgate_session", cookie)
        start.wait(timeout=30)
        statuses.append(client.post(path, data=form).status_code)

    at_once(*(partial(run, form) for form in forms), timeout=60)
    return statuses


def _scalar(app, query):
    with app.app_context():
        value = db.session.scalar(query)
        db.session.remove()
        return value


def test_double_click_on_email_instead_sends_one_code(app, user, set_up_app, smtp, deliver,
                                                      monkeypatch):
    set_up_app()
    browser = Browser(app)
    assert browser.log_in().status_code == 302  # an authenticator-app sign-in: nothing sent
    deliver()
    before = len(smtp.messages)
    token = browser.csrf_for("/login/code")
    cookie = browser.client.get_cookie("clientgate_session").value

    restore = pause_in(monkeypatch, delivery, "queue_code", parties=2)
    statuses = _at_once(app, cookie, "/login/code/resend",
                        [{"csrf_token": token, "channel": "email"}] * 2)
    restore()
    assert statuses == [302, 302]

    sign_in_id = _scalar(app, select(func.max(SignIn.id)))
    assert _scalar(app, select(func.count(Delivery.id)).where(
        Delivery.sign_in_id == sign_in_id)) == 1
    deliver()
    mails = smtp.wait_for(before + 1)[before:]
    assert len(mails) == 1 and mails[0].code
    assert browser.enter_code(mails[0].code).status_code == 302
    assert browser.get("/portal").status_code == 200


@pytest.fixture
def sms_app(app, vonage):  # noqa: F811
    app.config.update(vonage.app_config())
    return app


def test_wrong_proof_codes_at_once_all_count(sms_app, user, sign_in, vonage, deliver,  # noqa: F811
                                             monkeypatch):
    app = sms_app
    browser = sign_in()
    assert browser.post("/account/security",
                        {"channel": "sms", "phone": "07400 123456"}).status_code == 302
    deliver()
    code = vonage.last_to(SMS_PHONE).code
    token = browser.csrf_for("/account/security")
    cookie = browser.client.get_cookie("clientgate_session").value

    wrong = 8
    restore = pause_in(monkeypatch, codes, "code_matches", parties=wrong)
    _at_once(app, cookie, "/account/security",
             [{"csrf_token": token, "code": wrong_code(code), "channel": "sms"}] * wrong)
    restore()

    proof = _scalar(app, select(PhoneProof))
    assert (proof.failed_attempts, proof.status) == (codes.MAX_WRONG_CODES, "locked")
    with app.app_context():
        outcomes = db.session.scalars(select(Event.outcome).where(
            Event.type == "phone_proof_entry").order_by(Event.id)).all()
        db.session.remove()
    assert outcomes == ["wrong"] * 4 + ["locked"] * 4

    # The right code now proves nothing: the number is not the account's.
    browser.post("/account/security", {"code": code, "channel": "sms"})
    assert _scalar(app, select(PhoneProof.status)) == "locked"
    assert "is confirmed" not in browser.text("/account/security")


def test_wrong_passwords_at_once_at_the_tenth_lock_once_and_mail_once(
        app, user, smtp, deliver, monkeypatch):
    browser = Browser(app)
    for _ in range(limits.FAILURES_BEFORE_LOCK - 1):
        assert browser.log_in("client@example.com", "not the password").status_code == 200
    token = browser.csrf_for("/login")
    cookie = browser.client.get_cookie("clientgate_session").value

    restore = pause_in(monkeypatch, limits, "failures_counted", AT_ONCE)
    _at_once(app, cookie, "/login",
             [{"csrf_token": token, "email": "client@example.com",
               "password": "not the password"}] * AT_ONCE)
    restore()

    with app.app_context():
        locks = db.session.scalars(select(Event).where(Event.type == "account_locked")).all()
        notices = db.session.scalar(select(func.count(Delivery.id)).where(
            Delivery.kind == "notice"))
        db.session.remove()
    # The first of the four to count made the tenth failure and locked the account; the
    # others count from that lock, so it is made once, not extended, and mailed once.
    assert [lock.detail["extended"] for lock in locks] == [False]
    assert notices == 1


def test_a_sign_in_ended_by_another_request_meanwhile_is_not_ended_again(app, user):
    """On PostgreSQL a new sign-in may read an earlier one as pending while a right code is
    being accepted for it; its UPDATE then waits for that row. Once the acceptance commits,
    the sign-in must stay "completed", not be rewritten as superseded in the trail."""
    assert Browser(app).log_in().status_code == 302
    with app.app_context():
        stale = db.session.scalar(select(SignIn))
        assert stale.status == "pending"  # as the new sign-in read it
        with db.engine.begin() as other:  # the code post, committed meanwhile
            other.execute(SignIn.__table__.update().where(SignIn.__table__.c.id == stale.id)
                          .values(status="completed"))
        assert codes.end_sign_in(stale, "superseded") is False
        db.session.commit()
        assert stale.status == "completed"
        assert codes.end_pending_sign_ins(stale.user, by="test") == 0
        db.session.commit()
        db.session.remove()
