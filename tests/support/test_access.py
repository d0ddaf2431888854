"""Who may see the support console (staff only; everyone else a 404), and bad input."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest

from extensions import db
from models import User
from services import clock
from tests.conftest import Browser, add_user
from tests.support.conftest import CLIENT

STAFF_PAGES = ("/support", "/support/clients/{id}", "/support/clients/{id}/export.csv",
               "/support/clients/{id}/actions/unlock")


@pytest.mark.parametrize("path", STAFF_PAGES)
def test_anonymous_gets_404_not_a_login_redirect(app, client_id, browser, path):
    response = browser.get(path.format(id=client_id))
    assert response.status_code == 404
    assert "Location" not in response.headers


def test_anonymous_post_gets_404_even_without_a_csrf_token(app, client_id, browser):
    # A CSRF error here would say "there is a form" and give the console away.
    for name in ("unlock", "switch-to-email", "end-sign-ins"):
        response = browser.post(f"/support/clients/{client_id}/actions/{name}",
                                {"confirm": "y"}, csrf=False)
        assert response.status_code == 404


@pytest.mark.parametrize("path", STAFF_PAGES)
def test_signed_in_client_gets_404(app, client_id, sign_in, path):
    client = sign_in(CLIENT)
    assert client.get(path.format(id=client_id)).status_code == 404
    response = client.post(f"/support/clients/{client_id}/actions/unlock", {"confirm": "y"},
                           form_page="/portal")
    assert response.status_code == 404


def test_support_and_admin_see_the_console(app, client_id, staff, admin):
    for member in (staff, admin):
        assert member.get("/support").status_code == 200
        page = member.get(f"/support/clients/{client_id}")
        assert page.status_code == 200
        assert CLIENT in page.get_data(as_text=True)


def test_console_pages_are_never_cached(app, client_id, staff):
    response = staff.get(f"/support/clients/{client_id}")
    assert "no-store" in response.headers["Cache-Control"]


def test_portal_links_staff_to_the_console(app, staff):
    assert "/support" in staff.text("/portal")


@pytest.mark.parametrize("path", [
    "/support/clients/0", "/support/clients/999999", "/support/clients/abc",
    "/support/clients/-1", "/support/clients/99999999999999999999999999",
    "/support/clients/{id}/actions/delete-everything",
    "/support/clients/99999999999999999999999999/export.csv",
])
def test_bad_client_addresses_are_404(app, client_id, staff, path):
    assert staff.get(path.format(id=client_id)).status_code == 404


@pytest.mark.parametrize("query", [
    "x" * 10_000, "\x00\x01\x02", "%", "_", "\\", "'; DROP TABLE users; --", "🙂" * 50,
    "0" * 300,
])
def test_any_search_text_is_answered_without_an_error(app, client_id, staff, query):
    response = staff.get("/support", query_string={"q": query})
    # A NUL is refused before any page runs (app.py, no_nul_characters), with a message.
    assert response.status_code == (400 if "\x00" in query else 200)


@pytest.mark.parametrize("before", ["abc", "-5", "0", "99999999999999999999999999", "1e9", ""])
def test_any_page_cursor_is_answered_without_an_error(app, client_id, staff, before):
    response = staff.get(f"/support/clients/{client_id}", query_string={"before": before})
    assert response.status_code == 200


def test_a_huge_query_string_is_refused_cleanly(app, staff):
    response = staff.get("/support?q=" + "a" * 100_000)
    assert response.status_code in (200, 414, 431)


def test_find_a_client_by_part_of_their_email_or_their_whole_phone(app, staff):
    add_user(app, "jane.smith@example.com")
    add_user(app, "mobile.person@example.com", channel="sms", phone="+447400123456")
    add_user(app, "abroad@example.com", channel="email", phone="+33612345678")
    add_user(app, "other@example.org")

    def search(typed: str) -> str:
        return staff.get("/support", query_string={"q": typed}).get_data(as_text=True)

    page = search("SMITH")
    assert "jane.smith@example.com" in page and "other@example.org" not in page
    # The whole number in any spelling, or the three digits staff are shown.
    for typed in ("07400 123456", "+44 7400 123456", "447400123456", "0044 7400 123456", "456"):
        page = search(typed)
        assert "mobile.person@example.com" in page and "•••• ••• 456" in page, typed
    assert "7400123456" not in search("456")
    assert "abroad@example.com" in search("+33 6 12 34 56 78")
    page = search("nobody-here")
    assert "No one’s email address or phone number contains “nobody-here”" in page


@pytest.mark.parametrize("typed", ["123456", "7400-123", "3456", "07400 12345", "+44 7400 1234"])
def test_part_of_a_number_finds_no_one_and_says_how_to_search(app, staff, typed):
    """Staff see numbers as "•••• ••• 456": finding one by any other part would tell, a digit
    at a time, what the mask hides."""
    add_user(app, "mobile.person@example.com", channel="sms", phone="+447400123456")
    page = staff.get("/support", query_string={"q": typed}).get_data(as_text=True)
    assert "mobile.person@example.com" not in page
    assert "type the whole number, like 07400 123456, or its last three digits" in page


def test_like_wildcards_in_the_search_match_only_themselves(app, staff):
    add_user(app, "a_b@example.com")
    add_user(app, "axb@example.com")
    page = staff.text("/support?q=a_b")
    assert "a_b@example.com" in page and "axb@example.com" not in page


def test_an_address_pasted_in_another_spelling_finds_the_client(app, staff):
    add_user(app, "anna@straße.de")
    for typed in ("ANNA@xn--strae-oqa.de", "ａｎｎａ@straße.de", "anna@STRASSE.de"):
        page = staff.text("/support?q=" + quote(typed))
        assert ("anna@straße.de" in page) is (typed != "anna@STRASSE.de"), typed
    assert "anna@straße.de" in staff.text("/support?q=" + quote("ａｎｎａ"))  # part of one


def test_staff_see_staff_accounts_but_support_may_not_change_them(app, staff, admin):
    from tests.conftest import user_by_email

    admin_id = user_by_email(app, "admin@example.com").id
    # Support staff do not see admins' timelines at all (issue 11, point 8), nor act on them.
    assert staff.get(f"/support/clients/{admin_id}").status_code == 404
    response = staff.post(f"/support/clients/{admin_id}/actions/unlock", {"confirm": "y"},
                          form_page="/support")
    assert response.status_code in (403, 404)
    assert admin.get(f"/support/clients/{admin_id}").status_code == 200
    # An admin may (once there is a lock to lift: an action that does not apply is refused).
    with app.app_context():
        row = db.session.get(User, admin_id)
        row.locked_until = clock.now() + timedelta(hours=1)
        db.session.commit()
    response = admin.post(f"/support/clients/{admin_id}/actions/unlock", {"confirm": "y"})
    assert response.status_code == 302


def test_a_browser_signed_out_of_staff_loses_the_console(app, staff):
    staff.post("/logout", form_page="/portal")
    assert staff.get("/support").status_code == 404


def test_a_second_browser_does_not_share_the_staff_session(app, staff):
    assert Browser(app).get("/support").status_code == 404
