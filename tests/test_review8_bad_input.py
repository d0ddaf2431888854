"""Review 8: bad input as real clients and support staff type it, on every form.

"Bad input gets a clear message and loses nothing. Never a 500 from a form." Each test here
failed on the code before its fix.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import select

from extensions import db
from models import User
from services import clock
from tests.conftest import TEST_PASSWORD, Browser, add_user
from tests.accounts.conftest import link_in, path_of
from tests.support.conftest import CLIENT, DESKTOP_UA, STAFF

IMPORT = "/support/clients/import"
NEW = "plum tree by the river"


def words(response) -> str:
    """The page's text, as read: tags out, entities and runs of spaces undone."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


@pytest.fixture
def staff(app, sign_in) -> Browser:
    add_user(app, STAFF, role="support")
    return sign_in(STAFF, b=Browser(app, user_agent=DESKTOP_UA))


def invited(app) -> dict[str, tuple]:
    with app.app_context():
        return {u.email: (u.name, u.phone) for u in db.session.scalars(
            select(User).where(User.password_hash == ""))}


def import_confirmed(staff, text: str):
    preview = staff.post(IMPORT, {"text": text})
    assert preview.status_code == 200, words(preview)
    return staff.post(IMPORT, {"text": text, "confirmed": "yes"}, form_page=IMPORT)


# --- the CSV import -----------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    # Rows copied from a spreadsheet and pasted into the box arrive separated by tabs.
    "email\tname\tphone\nanna@example.com\tAnna Smith\t07400 123456\nbob@example.com\tBob\t\n",
    # A spreadsheet set up for a country that writes 1,5 saves its "CSV" with semicolons.
    'anna@example.com;"Anna Smith";07400 123456\r\nbob@example.com;Bob;\r\n',
    # The headings as people write them, in their own order.
    "Name,Email address,Mobile number\nAnna Smith,anna@example.com,07400 123456\nBob,"
    "bob@example.com,\n",
    "E-mail,Full name\nanna@example.com,Anna Smith\nbob@example.com,Bob\n",
], ids=["pasted-tabs", "semicolons", "headings-in-words-and-order", "e-mail-heading"])
def test_a_csv_as_spreadsheets_make_it_imports_its_clients(app, staff, text):
    done = import_confirmed(staff, text)
    assert done.status_code == 302
    people = invited(app)
    assert set(people) == {"anna@example.com", "bob@example.com"}
    assert people["anna@example.com"][0] == "Anna Smith"
    if "07400" in text:
        assert people["anna@example.com"][1] == "+447400123456"


def test_excels_unicode_text_file_is_read(app, staff):
    """Excel's "Unicode Text (*.txt)" is UTF-16 with tabs; it was refused as "not text"."""
    raw = "email\tname\tphone\r\nzoe@example.com\tZoë Brontë\t\r\n".encode("utf-16")
    answer = staff.post(IMPORT, {"file": (io.BytesIO(raw), "clients.txt")}, form_page=IMPORT,
                        content_type="multipart/form-data")
    assert answer.status_code == 200, words(answer)
    assert "Ready to invite 1 client" in words(answer) and "Zoë Brontë" in words(answer)


def test_headings_it_does_not_know_are_named_and_nothing_is_imported(app, staff):
    answer = staff.post(IMPORT, {"text": "email,name,company\nanna@example.com,Anna,ACME\n"})
    assert answer.status_code == 422
    assert "We do not know the column “company” in the first row" in words(answer)
    assert "email, name and phone" in words(answer)
    assert invited(app) == {}


def test_a_quote_never_closed_does_not_swallow_the_rows_after_it(app, staff):
    """Before, Bob's row became part of Anna's name: "Ready to invite 1 client", Bob never
    invited, and nothing said so."""
    text = 'anna@example.com,"Anna Smith,\nbob@example.com,Bob,\ncarol@example.com,Carol,\n'
    answer = staff.post(IMPORT, {"text": text})
    assert answer.status_code == 422
    assert "Ready to invite" not in words(answer)
    assert "A quote mark (\") on this row is never closed" in words(answer)
    assert staff.post(IMPORT, {"text": text, "confirmed": "yes"},
                      form_page=IMPORT).status_code == 422
    assert invited(app) == {}


# --- a staff member whose session ended -------------------------------------------------

def test_a_staff_form_sent_after_the_session_ended_says_so_not_page_not_found(
        app, staff, smtp, deliver, sign_in):
    """Thirty minutes on the phone with a client, then "Send the invitation": the console
    answered 404 "There is nothing at this address", as if it did not exist."""
    token = staff.csrf_for("/support/clients/new")
    clock.advance(timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] + 1))
    answer = staff.client.post("/support/clients/new", data={
        "csrf_token": token, "email": "anna@example.com", "name": "Anna", "channel": "email"})
    assert answer.status_code == 302
    assert answer.location == "/login?next=/support/clients/new"
    page = staff.get(answer.location)
    assert "Your session had ended, so nothing you sent was saved or done" in words(page)
    assert invited(app) == {}
    # Signing in again leads back to the form.
    count = len(smtp.messages)
    assert staff.post(answer.location, {"email": STAFF, "password": TEST_PASSWORD}).status_code == 302
    deliver()
    smtp.wait_for(count + 1)
    again = staff.enter_code(smtp.last_to(STAFF).code)
    assert again.status_code == 302 and again.location == "/support/clients/new"
    # A page opened after the session ended (a bookmark, a reload) says so, and leads back.
    clock.advance(timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] + 1))
    answer = staff.get("/support?q=anna")
    assert answer.status_code == 302 and answer.location == "/login?next=/support?q%3Danna"
    assert "Sign in again to use the support console" in words(staff.get(answer.location))
    # Nobody else learns the console is there: a client whose session ended, a browser
    # without one, a staff member who logged out.
    add_user(app)
    client = sign_in()
    clock.advance(timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] + 1))
    assert client.get("/support/clients/new").status_code == 404
    assert Browser(app).get("/support").status_code == 404
    staff.post("/logout", form_page="/support")
    assert staff.get("/support").status_code == 404


def test_a_csv_over_the_size_cap_is_answered_on_the_import_page(app, staff):
    """Before: a bare "That was far more data than any form here takes", off the console."""
    rows = "".join(f"client{n}@example.com,Client Number {n},07400 {n:06d}\n" for n in range(2000))
    answer = staff.post(IMPORT, {"file": (io.BytesIO(rows.encode()), "everyone.csv")},
                        form_page=IMPORT, content_type="multipart/form-data")
    assert answer.status_code == 413
    text = words(answer)
    assert "Import clients from a CSV" in text and "Check the file" in text
    assert "That is more than we can check at once: at most 64 KB, enough for 500 clients" in text
    assert "Split the file into smaller ones" in text
    assert invited(app) == {}
    # Anyone else still finds no console there.
    answer = Browser(app).client.post(IMPORT, data={"text": "x" * 70_000})
    assert answer.status_code == 404 and "Import clients" not in words(answer)


# --- email addresses as people paste them -------------------------------------------------

PASTED = {
    "zero-width-space": "client@example.com\u200b",  # copied from a web page or a PDF
    "direction-mark": "\u200eclient@example.com",
    "address-book": "Client Name <Client@Example.com>",  # Outlook's "To:" line
    "quoted-name": '"Name, Client" <client@example.com>',
    "mailto-link": "mailto:client@example.com",
}


@pytest.mark.parametrize("pasted", PASTED.values(), ids=PASTED.keys())
def test_an_address_pasted_with_what_came_along_signs_in(app, user, pasted):
    """Before: "Enter an email address like name@example.com", for the client's own address."""
    b = Browser(app)
    answer = b.log_in(pasted)
    assert answer.status_code == 302 and answer.location == "/login/code", words(answer)


def test_a_pasted_address_counts_towards_the_same_pause(app, user):
    """The per-address count of wrong passwords keys the address as it is looked up."""
    from services.signin import limits

    with app.app_context():
        assert len({limits.email_key(p) for p in PASTED.values()}) == 1
        assert limits.email_key(PASTED["address-book"]) == limits.email_key("client@example.com")


def test_staff_paste_an_address_from_their_mail_program(app, staff, smtp, deliver):
    answer = staff.post("/support/clients/new", {
        "email": "Anna Smith <anna@example.com>", "name": "Anna Smith", "channel": "email"})
    assert answer.status_code == 302, words(answer)
    done = import_confirmed(staff, "email,name\nBob Jones <bob@example.com>,Bob Jones\n")
    assert done.status_code == 302
    assert set(invited(app)) == {"anna@example.com", "bob@example.com"}


def test_a_client_pastes_a_new_address_with_a_name(app, user, sign_in):
    b = sign_in()
    answer = b.post("/account/email", {"email": "New Me <new@example.com>\u200b",
                                       "current_password": TEST_PASSWORD})
    assert answer.status_code == 302, words(answer)
    assert "new@example.com" in words(b.get(answer.location))


# --- double clicks ------------------------------------------------------------------------

def test_a_double_click_on_send_the_invitation_says_it_was_sent(app, staff):
    """Before: the second press answered "anna@example.com already has an account", as if
    the invitation had failed."""
    form = {"email": "anna@example.com", "name": "Anna", "phone": "07400 123456",
            "channel": "sms"}
    token = staff.csrf_for("/support/clients/new")
    first = staff.client.post("/support/clients/new", data={"csrf_token": token, **form})
    second = staff.client.post("/support/clients/new", data={"csrf_token": token, **form})
    assert first.status_code == second.status_code == 302
    assert second.location == first.location
    assert "Invitation sent to anna@example.com" in words(staff.get(second.location))
    assert list(invited(app)) == ["anna@example.com"]
    # A changed name is another wish: the address is taken, and the form says so.
    again = staff.client.post("/support/clients/new",
                              data={"csrf_token": token, **form, "name": "Anne"})
    assert again.status_code == 422
    assert "anna@example.com already has an account." in words(again)


def test_a_double_click_on_invite_these_clients_says_they_were_invited(app, staff):
    """Before: the second press showed "Nothing has been imported", every row "already has an
    account", though the first had invited them all."""
    text = "email,name\nbob@example.com,Bob\ncarol@example.com,Carol\n"
    staff.post(IMPORT, {"text": text})
    token = staff.last_csrf
    first = staff.client.post(IMPORT, data={"csrf_token": token, "text": text, "confirmed": "yes"})
    second = staff.client.post(IMPORT, data={"csrf_token": token, "text": text, "confirmed": "yes"})
    assert first.status_code == second.status_code == 302
    page = words(staff.get(second.location))
    assert "Invited 2 clients" in page and "Nothing has been imported" not in page
    assert set(invited(app)) == {"bob@example.com", "carol@example.com"}
    # The same file a minute later is a new wish: its rows are named as taken.
    clock.advance(timedelta(minutes=2))
    later = staff.client.post(IMPORT, data={"csrf_token": token, "text": text, "confirmed": "yes"})
    assert later.status_code == 422 and "bob@example.com already has an account." in words(later)


@pytest.mark.parametrize("purpose", ["reset", "invitation"])
def test_a_double_click_on_save_my_password_says_it_is_saved(app, smtp, deliver, staff, purpose):
    """Before: the second press answered "This link has already been used... ask for a new
    link", and the client, whose password had just been saved, asked for one."""
    count = len(smtp.messages)
    if purpose == "reset":
        add_user(app)
        assert Browser(app).post("/password/forgot", {"email": CLIENT}).status_code == 200
    else:
        staff.post("/support/clients/new", {"email": CLIENT, "name": "", "channel": "email"})
    deliver()
    smtp.wait_for(count + 1)
    path = path_of(link_in(smtp.last_to(CLIENT).text, "/password/reset/" if purpose == "reset"
                           else "/welcome/"))
    b, other = Browser(app), Browser(app)
    form = {"csrf_token": b.csrf_for(path), "password": NEW, "confirm": NEW}
    other_token = other.csrf_for(path)  # the same link open in another browser too
    first = b.client.post(path, data=form)
    second = b.client.post(path, data=form)
    assert first.status_code == second.status_code == 302
    assert second.location == "/login"
    page = words(b.get("/login"))
    assert "Your password is saved" in page and "already been used" not in page
    assert b.log_in(CLIENT, NEW).location == "/login/code"
    # Another browser's page, even at once, is told the link was used, as before.
    replay = other.client.post(path, data={**form, "csrf_token": other_token})
    assert replay.status_code == 410 and "already been used" in words(replay)
    # And so is this page a little later.
    clock.advance(timedelta(minutes=2))
    assert b.client.post(path, data=form).status_code == 410
