"""The new-client form shows each problem under the field it is about, whatever its words say."""

from __future__ import annotations

import re

from services.accounts import invitations
from tests.accounts.test_invitations import staff_browser
from tests.conftest import add_user

FIELDS = ("email", "name", "phone", "channel")


def errors_by_field(page: str) -> dict[str, str]:
    """The error shown under each field of the form, in words, as a client of the page reads."""
    found = {}
    for name in FIELDS:
        shown = re.search(r'id="%s-error"[^>]*>(.*?)</p>' % name, page, re.S)
        if shown:
            found[name] = " ".join(re.sub(r"<[^>]+>", " ", shown.group(1)).split())
    return found


def add(staff, **fields):
    answer = staff.post("/support/clients/new", {"channel": "email", **fields})
    assert answer.status_code == 422
    return errors_by_field(answer.get_data(as_text=True))


def test_a_taken_address_with_name_in_it_is_shown_under_the_address(app, sign_in):
    staff = staff_browser(app, sign_in)
    add_user(app, "firstname.lastname@example.com")
    assert add(staff, email="firstname.lastname@example.com", name="") == {
        "email": "Error: firstname.lastname@example.com already has an account."}


def test_an_address_with_phone_or_mobile_in_it_is_shown_under_the_address(app, sign_in):
    staff = staff_browser(app, sign_in)
    add_user(app, "phone.bills@example.com")
    assert add(staff, email="phone.bills@example.com") == {
        "email": "Error: phone.bills@example.com already has an account."}
    shown = add(staff, email="téléphone.mobile@example.com")
    assert list(shown) == ["email"] and "letters such as ü or é" in shown["email"]


def test_a_number_problem_is_shown_under_the_number(app, sign_in):
    staff = staff_browser(app, sign_in)
    shown = add(staff, email="anna@example.com", phone="+33 6 12 34 56 78", channel="sms")
    assert list(shown) == ["phone"] and "not a UK number" in shown["phone"]
    shown = add(staff, email="anna@example.com", name="Phone Name", channel="sms")
    assert shown == {"phone": "Error: Codes by text message need a UK mobile number."}


def test_each_problem_comes_with_the_field_it_is_about(app):
    with app.app_context():
        add_user(app, "taken@example.com")
        checked = invitations.check(invitations.Candidate(
            email="taken@example.com", name="x" * 201, phone="12", channel="fax", role="boss"))
    assert [issue.about for issue in checked.issues] == ["email", "name", "phone", "channel",
                                                         "role"]
    assert checked.problems == [issue.message for issue in checked.issues]


def test_a_csv_row_names_its_problems_as_before(app):
    with app.app_context():
        preview = invitations.read_csv("a@example.com,A,,extra\na@example.com,A\n")
    first, second = preview.rows
    assert first.problems == ["The row has more than 3 columns (email, name, phone)."]
    assert [issue.about for issue in second.issues] == ["email"]
    assert second.problems == ["The same address is on row 1."]
