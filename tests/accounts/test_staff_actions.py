"""Staff switch accounts off and on, send reset links, and (admins) change roles."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from extensions import db
from models import Delivery, Event
from services import clock
from tests.accounts.conftest import DESKTOP_UA, link_in, path_of
from tests.conftest import TEST_PASSWORD, Browser, add_user, user_by_email

CLIENT = "client@example.com"
STAFF = "support@example.com"
ADMIN = "admin@example.com"


def staff_browser(app, sign_in, email=STAFF, role="support") -> Browser:
    add_user(app, email, role=role)
    return sign_in(email, b=Browser(app, user_agent=DESKTOP_UA))


def test_deactivate_ends_sessions_blocks_sign_in_and_codes_then_reactivate(
        app, user, smtp, deliver, sign_in):
    client = sign_in()
    staff = staff_browser(app, sign_in)
    # A sign-in half-way, whose code must stop working.
    waiting = Browser(app)
    waiting.log_in()
    deliver()
    smtp.wait_for(3)
    code = smtp.last_to(CLIENT).code

    confirm = staff.get(f"/support/clients/{user}/actions/deactivate")
    assert "will not be able to sign in" in confirm.get_data(as_text=True)
    assert staff.post(f"/support/clients/{user}/actions/deactivate", {"confirm": "y"}) \
        .status_code == 302
    assert client.get("/portal").status_code == 302
    assert waiting.enter_code(code).headers.get("Location") != "/portal"

    count = len(smtp.messages)
    refused = Browser(app).log_in()
    assert refused.status_code == 403
    assert "switched off" in refused.get_data(as_text=True)
    wrong = Browser(app).log_in(CLIENT, "not the password at all")
    assert "switched off" not in wrong.get_data(as_text=True)  # says nothing without it
    deliver()
    smtp.wait_for(count + 1)
    assert "switched off" in smtp.last_to(CLIENT).subject
    with app.app_context():
        assert db.session.scalar(select(Delivery).where(
            Delivery.kind == "code", Delivery.created_at > clock.now() - timedelta(seconds=2),
            Delivery.status == "queued")) is None
    # Forgotten password sends nothing to a switched-off account.
    Browser(app).post("/password/forgot", {"email": CLIENT})
    deliver()
    with app.app_context():
        assert db.session.scalar(select(Delivery).where(Delivery.kind == "reset")) is None
        held = db.session.scalar(select(Delivery).where(Delivery.kind == "reset_request"))
        assert held.status == "cancelled" and "no usable account" in held.last_error

    page = staff.text(f"/support/clients/{user}")
    assert "Switched off" in page and "Account switched off" in page
    assert staff.post(f"/support/clients/{user}/actions/reactivate", {"confirm": "y"}) \
        .status_code == 302
    assert Browser(app).log_in().headers["Location"] == "/login/code"


def test_actions_need_the_confirmation_box(app, user, sign_in):
    staff = staff_browser(app, sign_in)
    answer = staff.post(f"/support/clients/{user}/actions/deactivate", {})
    assert answer.status_code == 422
    assert user_by_email(app, CLIENT).is_active


def test_support_sends_a_reset_link(app, user, smtp, deliver, sign_in):
    staff = staff_browser(app, sign_in)
    count = len(smtp.messages)
    assert staff.post(f"/support/clients/{user}/actions/send-reset", {"confirm": "y"}) \
        .status_code == 302
    deliver()
    smtp.wait_for(count + 1)
    path = path_of(link_in(smtp.last_to(CLIENT).text, "/password/reset/"))
    new = "plum tree by the river"
    assert Browser(app).post(path, {"password": new, "confirm": new}).status_code == 302
    timeline = staff.text(f"/support/clients/{user}")
    assert "New password asked for" in timeline and f"By {STAFF}" in timeline
    assert "With a link from a" in timeline


def test_reset_link_run_out_shows_in_the_diagnosis(app, user, smtp, deliver, sign_in):
    Browser(app).post("/password/forgot", {"email": CLIENT})
    deliver()
    smtp.wait_for(1)
    path = path_of(link_in(smtp.last_to(CLIENT).text, "/password/reset/"))
    clock.advance(timedelta(hours=2))
    try:
        assert Browser(app).get(path).status_code == 410
        staff = staff_browser(app, sign_in)
        page = staff.text(f"/support/clients/{user}")
    finally:
        clock.reset()
    assert 'data-kind="reset_expired"' in page
    assert "these links work for one hour" in page


def test_support_cannot_switch_off_staff_but_an_admin_can(app, sign_in):
    other = add_user(app, "colleague@example.com", role="support")
    staff = staff_browser(app, sign_in)
    assert staff.post(f"/support/clients/{other}/actions/deactivate", {"confirm": "y"}) \
        .status_code == 403
    assert user_by_email(app, "colleague@example.com").is_active
    admin = staff_browser(app, sign_in, ADMIN, "admin")
    assert admin.post(f"/support/clients/{other}/actions/deactivate", {"confirm": "y"}) \
        .status_code == 302
    assert not user_by_email(app, "colleague@example.com").is_active


def test_admin_changes_a_role_in_the_browser(app, user, sign_in):
    staff = staff_browser(app, sign_in)
    admin = staff_browser(app, sign_in, ADMIN, "admin")
    assert staff.get("/support/staff").status_code == 404  # support is not admin
    page = admin.text("/support/staff")
    assert STAFF in page and ADMIN in page
    staff_id = user_by_email(app, STAFF).id
    answer = admin.post(f"/support/staff/{staff_id}", {"role": "client"})
    assert answer.status_code == 422  # not confirmed
    answer = admin.post(f"/support/staff/{staff_id}", {"role": "client", "confirm": "y"})
    assert answer.status_code == 302
    assert user_by_email(app, STAFF).role == "client"
    assert staff.get("/portal").status_code == 302  # their session ended
    admin_id = user_by_email(app, ADMIN).id
    admin.post(f"/support/staff/{admin_id}", {"role": "client", "confirm": "y"},
               form_page="/support/staff")
    assert user_by_email(app, ADMIN).role == "admin"  # not their own role
    with app.app_context():
        event = db.session.scalar(select(Event).where(Event.type == "role_set"))
        assert event.actor_id == admin_id and event.detail["to"] == "client"


def test_password_still_works_after_reactivation(app, user, sign_in):
    staff = staff_browser(app, sign_in)
    staff.post(f"/support/clients/{user}/actions/deactivate", {"confirm": "y"})
    staff.post(f"/support/clients/{user}/actions/reactivate", {"confirm": "y"})
    assert Browser(app).log_in(CLIENT, TEST_PASSWORD).status_code == 302


# --- how many links staff may send, and how fast (review of the support console) ----------

def _resets_queued(app, user_id: int) -> int:
    with app.app_context():
        return len(db.session.scalars(select(Delivery.id).where(
            Delivery.user_id == user_id, Delivery.kind == "reset")).all())


def test_staff_reset_links_keep_the_hourly_cap_of_the_public_form(app, user, sign_in):
    staff = staff_browser(app, sign_in)
    url = f"/support/clients/{user}/actions/send-reset"
    for _ in range(3):
        assert staff.post(url, {"confirm": "y"}).status_code == 302
    fourth = staff.post(url, {"confirm": "y"})
    assert fourth.status_code == 302
    assert _resets_queued(app, user) == 3
    page = staff.text(f"/support/clients/{user}")
    assert "3 links in the last hour" in page and "You can send another at" in page
    # An hour after the first, one more may go.
    clock.advance(timedelta(hours=1, minutes=1))
    try:
        staff = sign_in(STAFF, b=Browser(app, user_agent=DESKTOP_UA))
        assert staff.post(url, {"confirm": "y"}).status_code == 302
        assert _resets_queued(app, user) == 4
    finally:
        clock.reset()


def test_the_public_form_and_staff_share_one_cap(app, user, sign_in, deliver):
    for _ in range(3):
        Browser(app).post("/password/forgot", {"email": CLIENT})
        deliver()
        clock.advance(timedelta(seconds=61))  # three requests, not a double click
    staff = staff_browser(app, sign_in)
    staff.post(f"/support/clients/{user}/actions/send-reset", {"confirm": "y"})
    assert _resets_queued(app, user) == 3
    assert "You can send another at" in staff.text(f"/support/clients/{user}")


def test_actions_on_one_account_have_the_staff_request_limit(app, user, sign_in):
    from extensions import limiter

    app.config["RATELIMIT_ENABLED"] = True
    app.config["RATE_LIMITS"] = {"staff_per_account": "2 per minute"}
    limiter.init_app(app)  # before any request: fresh memory storage and the request hooks
    staff = staff_browser(app, sign_in)
    url = f"/support/clients/{user}/actions/end-sign-ins"
    answers = [staff.post(url, {"confirm": "y"}).status_code for _ in range(3)]
    # Nothing is waiting, so the first two say there is nothing to end (409); the third is
    # not even looked at.
    assert answers == [409, 409, 429]
    assert staff.get(url).status_code == 200  # the limit counts changes, not looking


def test_an_action_the_page_does_not_offer_is_refused(app, user, sign_in):
    staff = staff_browser(app, sign_in)
    answer = staff.post(f"/support/clients/{user}/actions/reactivate", {"confirm": "y"})
    assert answer.status_code == 409
    assert "does not apply" in answer.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Event).where(Event.type == "account_reactivated")) \
            is None
