"""Staff invite clients (console, CSV, CLI); clients accept at /welcome/<token>."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Event, User
from services import clock
from services.signin import passwords
from tests.accounts.conftest import DESKTOP_UA, link_in, path_of
from tests.conftest import Browser, add_user, user_by_email

STAFF = "support@example.com"
ADMIN = "admin@example.com"
NEW = "plum tree by the river"


def staff_browser(app, sign_in, email=STAFF, role="support") -> Browser:
    add_user(app, email, role=role)
    return sign_in(email, b=Browser(app, user_agent=DESKTOP_UA))


def invitation_path(smtp, deliver, email: str, count: int) -> str:
    deliver()
    smtp.wait_for(count)
    mail = smtp.last_to(email)
    assert "invited" in mail.subject
    return path_of(link_in(mail.text, "/welcome/"))


def test_staff_invite_a_client_who_chooses_a_password_then_signs_in(app, smtp, deliver, sign_in):
    staff = staff_browser(app, sign_in)
    count = len(smtp.messages)
    answer = staff.post("/support/clients/new", {"email": "Anna@Example.com ", "name": "Anna Smith",
                                                 "phone": "", "channel": "email"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    mail_path = invitation_path(smtp, deliver, "anna@example.com", count + 1)
    mail = smtp.last_to("anna@example.com")
    assert "Hello Anna Smith" in mail.text and "7 days" not in mail.subject
    assert "http://localhost/login" in mail.text
    assert "Choose your password" in mail.html and "Test Portal" in mail.html

    listed = staff.text("/support/invitations")
    assert "anna@example.com" in listed

    anna = Browser(app)
    page = anna.text(mail_path)
    assert "Welcome, Anna Smith" in page and page.count('type="password"') == 2
    # She cannot sign in before choosing a password.
    assert anna.log_in("anna@example.com", "").status_code == 200
    answer = anna.post(mail_path, {"password": NEW, "confirm": NEW})
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    assert "anna@example.com" not in staff.text("/support/invitations")

    count = len(smtp.messages)
    assert anna.log_in("anna@example.com", NEW).headers["Location"] == "/login/code"
    deliver()
    smtp.wait_for(count + 1)
    assert anna.enter_code(smtp.last_to("anna@example.com").code).headers["Location"] \
        == "/portal"
    # The link worked once.
    assert Browser(app).get(mail_path).status_code == 410


def test_invitation_runs_out_after_7_days_and_support_sees_why(app, smtp, deliver, sign_in):
    staff = staff_browser(app, sign_in)
    staff.post("/support/clients/new", {"email": "late@example.com", "channel": "email"})
    path = invitation_path(smtp, deliver, "late@example.com", len(smtp.messages) + 1)
    clock.advance(timedelta(days=7, minutes=1))
    try:
        page = Browser(app).get(path)
        assert page.status_code == 410
        assert "run out" in page.get_data(as_text=True)
        late = user_by_email(app, "late@example.com")
        staff = sign_in(STAFF, b=Browser(app))  # a week later: a new session
        client_page = staff.text(f"/support/clients/{late.id}")
    finally:
        clock.reset()
    assert 'data-kind="invitation_expired"' in client_page
    assert "Send the invitation again" in client_page


def test_resend_and_revoke_an_invitation(app, smtp, deliver, sign_in):
    staff = staff_browser(app, sign_in)
    staff.post("/support/clients/new", {"email": "bob@example.com", "channel": "email"})
    first = invitation_path(smtp, deliver, "bob@example.com", len(smtp.messages) + 1)
    bob = user_by_email(app, "bob@example.com")
    action = f"/support/clients/{bob.id}/actions/resend-invitation"
    assert staff.post(action, {"confirm": "y"}).status_code == 302
    second = invitation_path(smtp, deliver, "bob@example.com", len(smtp.messages) + 1)
    assert first != second
    assert Browser(app).get(first).status_code == 410
    assert Browser(app).get(second).status_code == 200

    revoke = f"/support/clients/{bob.id}/actions/revoke-invitation"
    assert staff.post(revoke, {"confirm": "y"}).status_code == 302
    refused = Browser(app).get(second)
    assert refused.status_code == 410
    assert "is withdrawn" in staff.text(f"/support/clients/{bob.id}")
    assert "bob@example.com" not in staff.text("/support/invitations")
    timeline = staff.text(f"/support/clients/{bob.id}")
    assert "Invitation withdrawn" in timeline and "Invitation sent again" in timeline
    assert f"By {STAFF}" in timeline


def test_new_client_form_names_each_problem(app, sign_in):
    staff = staff_browser(app, sign_in)
    add_user(app, "taken@example.com")
    answer = staff.post("/support/clients/new", {"email": "taken@example.com",
                                                 "phone": "+33 6 12 34 56 78",
                                                 "channel": "sms"})
    assert answer.status_code == 422
    text = answer.get_data(as_text=True)
    assert "already has an account" in text and "not a UK number" in text


def test_support_cannot_invite_staff_but_an_admin_can(app, smtp, deliver, sign_in):
    staff = staff_browser(app, sign_in)
    staff.post("/support/clients/new", {"email": "sneaky@example.com", "channel": "email",
                                        "role": "admin"})
    assert user_by_email(app, "sneaky@example.com").role == "client"
    admin = staff_browser(app, sign_in, ADMIN, "admin")
    admin.post("/support/clients/new", {"email": "helper@example.com", "channel": "email",
                                        "role": "support"})
    assert user_by_email(app, "helper@example.com").role == "support"


def test_clients_never_see_the_console_pages(app, user, sign_in):
    client = sign_in()
    for path in ("/support/clients/new", "/support/clients/import", "/support/invitations",
                 "/support/staff"):
        assert client.get(path).status_code == 404
    assert client.client.post("/support/clients/new", data={"email": "x@example.com"}) \
        .status_code == 404


# --- CSV import ------------------------------------------------------------------------

GOOD_CSV = "email,name,phone\nanna@example.com,Anna Smith,07400 123456\nbob@example.com,Bob,\n"


def test_csv_preview_then_import_all(app, smtp, deliver, sign_in):
    staff = staff_browser(app, sign_in)
    preview = staff.post("/support/clients/import", {"text": GOOD_CSV})
    assert preview.status_code == 200
    text = preview.get_data(as_text=True)
    assert "Ready to invite 2 clients" in text
    # Nothing is wrong, so there is no Problem column to read "None" in.
    assert ">Problem<" not in text and "None" not in text
    assert user_by_email(app, "anna@example.com") is None  # a preview imports nothing
    done = staff.post("/support/clients/import", {"text": GOOD_CSV, "confirmed": "yes"},
                      form_page="/support/clients/import")
    assert done.status_code == 302
    anna = user_by_email(app, "anna@example.com")
    assert anna.name == "Anna Smith" and anna.phone == "+447400123456"
    deliver()
    smtp.wait_for(len(smtp.messages) and 3)
    assert {"anna@example.com", "bob@example.com"} <= {m.to[0] for m in smtp.messages}


def test_csv_upload_as_a_file(app, sign_in):
    import io

    staff = staff_browser(app, sign_in)
    answer = staff.post("/support/clients/import",
                        {"file": (io.BytesIO(("\ufeff" + GOOD_CSV).encode()), "clients.csv")},
                        form_page="/support/clients/import", content_type="multipart/form-data")
    assert answer.status_code == 200
    assert "Ready to invite 2 clients" in answer.get_data(as_text=True)


def upload(staff, raw: bytes, name: str = "clients.csv"):
    import io

    return staff.post("/support/clients/import", {"file": (io.BytesIO(raw), name)},
                      form_page="/support/clients/import", content_type="multipart/form-data")


def test_csv_saved_by_excel_on_windows_is_read_with_its_accents(app, sign_in):
    """Excel's plain "CSV (Comma delimited)" is Windows-1252, not UTF-8."""
    staff = staff_browser(app, sign_in)
    answer = upload(staff, "email,name,phone\nzoe@example.com,Zoë Brontë,\n".encode("cp1252"))
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    assert "Ready to invite 1 client" in text and "Zoë Brontë" in text


@pytest.mark.parametrize("raw, words", [
    (b"PK\x03\x04\x14\x00\x06\x00" + bytes(200), "not a CSV. In your spreadsheet"),  # .xlsx
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200), "not a CSV. In your spreadsheet"),  # .xls
    (b"email\x81\x8d\x8f\x90\x9d" * 10, "The file is not text"),
    (b"email,name\x00,phone\n", "not text (a NUL)"),
], ids=["xlsx", "xls", "neither-utf8-nor-cp1252", "nul"])
def test_a_file_that_is_not_a_csv_says_what_to_do_and_imports_nothing(app, sign_in, raw, words):
    staff = staff_browser(app, sign_in)
    answer = upload(staff, raw)
    assert answer.status_code == 422
    assert words in answer.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 1  # the staff member only


def test_csv_with_problems_imports_nothing_and_names_each_row(app, sign_in):
    staff = staff_browser(app, sign_in)
    add_user(app, "taken@example.com")
    bad = ("email,name,phone\n"
           "good@example.com,Good,\n"
           "not-an-address,Nobody,\n"
           "taken@example.com,Taken,\n"
           "dup@example.com,One,\n"
           "dup@example.com,Two,\n"
           "paris@example.com,Paris,+33 6 12 34 56 78\n")
    answer = staff.post("/support/clients/import", {"text": bad, "confirmed": "yes"})
    assert answer.status_code == 422
    text = answer.get_data(as_text=True)
    assert "Nothing has been imported" in text
    assert "is not an email address" in text
    assert "already has an account" in text
    assert "The same address is on row 5" in text
    assert "not a UK number" in text
    good_row = text.split('data-row="2"', 1)[1].split("</tr>", 1)[0]
    assert '<td data-label="Problem">—</td>' in good_row and "None" not in text
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 2  # staff and taken only


# --- the command line --------------------------------------------------------------------

def test_cli_invite_sends_the_same_invitation(app, smtp, deliver):
    result = app.test_cli_runner().invoke(args=["users", "invite", "cli@example.com",
                                                "--name", "Cleo", "--phone", "07400 123456",
                                                "--channel", "sms"])
    assert result.exit_code == 0, result.output
    path = invitation_path(smtp, deliver, "cli@example.com", 1)
    assert Browser(app).post(path, {"password": NEW, "confirm": NEW}).status_code == 302
    user = user_by_email(app, "cli@example.com")
    assert user.channel == "sms" and user.phone == "+447400123456"
    with app.app_context():
        assert passwords.verify_password(db.session.get(User, user.id), NEW)
        assert db.session.scalar(select(Event.detail).where(Event.type == "user_invited")) \
            ["by"] == "cli"


def test_cli_refuses_a_bad_invitation_and_a_weak_password(app):
    runner = app.test_cli_runner()
    add_user(app, "taken@example.com")
    result = runner.invoke(args=["users", "invite", "taken@example.com"])
    assert result.exit_code == 2 and "already has an account" in result.output
    result = runner.invoke(args=["users", "set-password", "taken@example.com",
                                 "--password-stdin"], input="password1234\n")
    assert result.exit_code == 2 and "most often" in result.output


def test_someone_invited_who_lost_the_email_gets_a_new_invitation_from_forgot(app, smtp,
                                                                             deliver):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["users", "invite", "lost@example.com", "--name", "Lou"]) \
        .exit_code == 0
    first = invitation_path(smtp, deliver, "lost@example.com", 1)
    Browser(app).post("/password/forgot", {"email": "lost@example.com"})
    second = invitation_path(smtp, deliver, "lost@example.com", 2)
    assert "Hello Lou" in smtp.last_to("lost@example.com").text
    assert first != second and Browser(app).get(first).status_code == 410
    assert Browser(app).post(second, {"password": NEW, "confirm": NEW}).status_code == 302


# --- sending again never undoes a staff decision (review of the support console) ----------

def _invitations_queued(app, user_id: int) -> int:
    from models import Delivery

    with app.app_context():
        return len(db.session.scalars(select(Delivery.id).where(
            Delivery.user_id == user_id, Delivery.kind == "invitation")).all())


def _events(app, user_id: int) -> list[Event]:
    with app.app_context():
        return list(db.session.scalars(select(Event).where(Event.user_id == user_id)
                                       .order_by(Event.id)).all())


def test_sending_again_does_not_switch_on_an_account_staff_switched_off(app, sign_in):
    from services.accounts import invitations, lifecycle

    admin = staff_browser(app, sign_in, ADMIN, "admin")
    admin.post("/support/clients/new", {"email": "mallory@example.com", "channel": "email"})
    mallory = user_by_email(app, "mallory@example.com")
    # The console does not offer switching off an invited account, nor runs it when posted.
    assert admin.post(f"/support/clients/{mallory.id}/actions/deactivate",
                      {"confirm": "y"}).status_code == 409
    assert user_by_email(app, "mallory@example.com").is_active
    with app.app_context():  # as `flask users deactivate` does
        lifecycle.deactivate(db.session.get(User, mallory.id), None, by="cli")
        db.session.commit()
    queued = _invitations_queued(app, mallory.id)

    staff = staff_browser(app, sign_in)
    assert "Send the invitation again" not in staff.text(f"/support/clients/{mallory.id}")
    answer = staff.post(f"/support/clients/{mallory.id}/actions/resend-invitation",
                        {"confirm": "y"})
    assert answer.status_code == 409
    assert not user_by_email(app, "mallory@example.com").is_active
    assert _invitations_queued(app, mallory.id) == queued
    assert "invitation_resent" not in [e.type for e in _events(app, mallory.id)]
    with app.app_context():  # the service refuses too, whoever calls it
        problem = invitations.resend(db.session.get(User, mallory.id), None)
        assert problem and "switched off" in problem
        db.session.rollback()
    assert not user_by_email(app, "mallory@example.com").is_active

    # Switching it on is its own, audited step; then a new invitation may go.
    assert admin.post(f"/support/clients/{mallory.id}/actions/reactivate",
                      {"confirm": "y"}).status_code == 302
    assert staff.post(f"/support/clients/{mallory.id}/actions/resend-invitation",
                      {"confirm": "y"}).status_code == 302
    assert _invitations_queued(app, mallory.id) == queued + 1
    admin_id = user_by_email(app, ADMIN).id
    assert [e.actor_id for e in _events(app, mallory.id)
            if e.type == "account_reactivated"] == [admin_id]


def test_sending_a_withdrawn_invitation_again_says_who_switched_it_on(app, sign_in):
    staff = staff_browser(app, sign_in)
    staff.post("/support/clients/new", {"email": "wendy@example.com", "channel": "email"})
    wendy = user_by_email(app, "wendy@example.com")
    staff.post(f"/support/clients/{wendy.id}/actions/revoke-invitation", {"confirm": "y"})
    assert not user_by_email(app, "wendy@example.com").is_active
    assert staff.post(f"/support/clients/{wendy.id}/actions/resend-invitation",
                      {"confirm": "y"}).status_code == 302
    assert user_by_email(app, "wendy@example.com").is_active
    staff_id = user_by_email(app, STAFF).id
    switched = [e for e in _events(app, wendy.id) if e.type == "account_reactivated"]
    assert [e.actor_id for e in switched] == [staff_id]


def test_invitations_sent_again_keep_the_hourly_cap(app, sign_in):
    staff = staff_browser(app, sign_in)
    staff.post("/support/clients/new", {"email": "cap@example.com", "channel": "email"})
    cap = user_by_email(app, "cap@example.com")
    url = f"/support/clients/{cap.id}/actions/resend-invitation"
    for _ in range(3):
        assert staff.post(url, {"confirm": "y"}).status_code == 302
    assert _invitations_queued(app, cap.id) == 3  # the first and two more
    page = staff.text(f"/support/clients/{cap.id}")
    assert "3 links in the last hour" in page and "You can send another at" in page


# --- two staff adding one address at the same moment ------------------------------------

def _sneak_in_first(monkeypatch, app, email: str) -> None:
    """Another staff member adds `email` between this request's check and its insert."""
    from services.accounts import invitations

    check = invitations.check

    def check_then_lose_the_race(candidate, taken=None):
        checked = check(candidate, taken)
        if db.session.scalar(select(User.id).where(User.email == email)) is None:
            db.session.add(User(email=email, password_hash="", role="client", channel="email"))
            db.session.commit()
        return checked

    monkeypatch.setattr(invitations, "check", check_then_lose_the_race)


def test_adding_an_address_someone_added_a_moment_ago_says_so(app, sign_in, monkeypatch):
    staff = staff_browser(app, sign_in)
    _sneak_in_first(monkeypatch, app, "twice@example.com")
    answer = staff.post("/support/clients/new", {"email": "twice@example.com",
                                                 "channel": "email"})
    assert answer.status_code == 422
    assert "twice@example.com already has an account" in answer.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))
                                 .where(User.email == "twice@example.com")) == 1
        assert db.session.scalar(select(func.count(Event.id))
                                 .where(Event.type == "user_invited")) == 0


def test_an_import_racing_another_imports_nothing_and_names_the_row(app, sign_in, monkeypatch):
    staff = staff_browser(app, sign_in)
    form = staff.csrf_for("/support/clients/import")
    _sneak_in_first(monkeypatch, app, "bob@example.com")
    answer = staff.post("/support/clients/import",
                        {"text": GOOD_CSV, "confirmed": "yes", "csrf_token": form})
    assert answer.status_code == 422
    text = answer.get_data(as_text=True)
    assert "already has an account" in text and "Nothing has been imported" in text
    assert user_by_email(app, "anna@example.com") is None


def test_a_password_set_by_the_operator_ends_the_invitation_still_waiting(
        app, smtp, deliver, sign_in):
    """`users set-password` for someone invited: the welcome link must not set it again (the
    link's fingerprint of the account has changed with the password: tokens.py)."""
    staff = staff_browser(app, sign_in)
    count = len(smtp.messages)
    staff.post("/support/clients/new", {"email": "anna@example.com", "name": "Anna",
                                        "phone": "", "channel": "email"})
    mail_path = invitation_path(smtp, deliver, "anna@example.com", count + 1)
    result = app.test_cli_runner().invoke(
        args=["users", "set-password", "anna@example.com", "--password-stdin"], input=NEW + "\n")
    assert result.exit_code == 0, result.output

    anna = Browser(app)
    refused = anna.get(mail_path)
    assert refused.status_code == 410
    assert anna.log_in("anna@example.com", NEW).headers["Location"] == "/login/code"
