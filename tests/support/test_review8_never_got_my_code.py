"""Review 8: a client on the phone says "I never got my code". For each cause, made for real,
the client's page (or the search) tells support what happened and what to say or do."""

from __future__ import annotations

import html
import re

import pytest

from tests.conftest import Browser, add_user
from tests.support.conftest import hhmm, start, views


def plain(page: str) -> str:
    """What a person reads on the page: no tags, no scripts, one space between words."""
    page = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def client_page(staff: Browser, user_id: int) -> str:
    return plain(staff.text(f"/support/clients/{user_id}"))


def test_an_email_handed_over_says_to_look_in_spam_and_in_the_right_inbox(
        app, client_id, smtp, deliver, phone, staff):
    """Was: only "Still waiting for the code", nothing to tell a client whose email went
    through but who cannot see it."""
    start(phone, smtp, deliver)
    [view] = views(app, client_id)
    sent = hhmm(app, view.facts.deliveries[0].sent_at, view.sign_in.created_at)
    page = client_page(staff, client_id)
    assert (f"The email was handed to the mail server at {sent}, to c•••@example.com. If the "
            "client cannot find it, ask them to look in their junk or spam folder, and read them "
            "the address at the top of this page: if it is not the inbox they are looking in, or "
            "is mistyped, the code went there.") in page


def test_mail_server_down_says_the_fault_is_ours_in_words_not_program_names(
        app, client_id, smtp, deliver, phone, staff):
    """Was: "could not be reached (ConnectionRefusedError)" and no word on whose fault."""
    smtp.stop()
    assert phone.log_in().status_code == 302
    deliver()
    page = client_page(staff, client_id)
    section = page[page.index("Sign-ins"):page.index("Every step")]
    assert "Error)" not in section
    assert ("keeps failing: the mail server could not be reached. Tried 1 time" in section)
    assert ("This is a fault on our side, not the client's: tell them the code will come once "
            "the mail server answers again, and tell whoever runs the server.") in section


def test_an_authenticator_app_sign_in_says_nothing_is_sent_and_to_open_the_app(
        app, client_id, smtp, deliver, phone, staff):
    """Was: "Still waiting for the code", as if a message were on its way."""
    from tests.authenticators.conftest import give_confirmed_app

    give_confirmed_app(app)
    assert phone.log_in().status_code == 302
    deliver()
    assert not [m for m in smtp.messages if "client@example.com" in m.to]
    page = client_page(staff, client_id)
    assert "Nothing is sent by email or text for these: ask the client to open the app" in page
    assert "If they no longer have the app, switch them to codes by email." in page


def test_an_address_with_no_account_says_so_and_how_to_find_theirs(app, client_id, staff):
    """Was: only "No one's email address ... contains", and support had to guess that no code
    was sent and how else to search for a client who typed a wrong domain."""
    Browser(app).log_in("client@exmaple.com")  # the client's typo: no account, no code
    page = plain(staff.text("/support?q=client@exmaple.com"))
    assert ("No account uses that address, so signing in with it sends no code. Search for "
            "“client” (the part before the @) to see accounts with that name, or search their "
            "phone number, and ask the client which address they use.") in page
    assert "client@example.com" in plain(staff.text("/support?q=client"))


@pytest.mark.parametrize("query", ["client@exa", "client"])
def test_part_of_an_address_is_not_told_as_a_whole_one(app, client_id, staff, query):
    page = plain(staff.text(f"/support?q={query}"))
    assert "No account uses that address" not in page


def test_a_lock_notice_sent_reads_as_a_message_handed_over(app, client_id, phone, deliver, staff):
    """Was: "Delivery sent · sent" in the account's other activity, after the lock notice that
    tells the client their sign-ins are paused."""
    from services.signin import limits

    for _ in range(limits.FAILURES_BEFORE_LOCK):
        phone.log_in(password="not the password at all")
    deliver()
    page = client_page(staff, client_id)
    activity = page[page.index("Other account activity"):page.index("Sign-ins Newest")]
    assert "Message handed over" in activity and "Delivery sent" not in activity
    assert "Account locked Too many wrong passwords or codes. Locked until" in activity


def test_mail_server_down_until_the_code_ran_out_names_no_program_error(
        app, client_id, smtp, deliver, phone, staff):
    """Was: "could not be sent (the mail server could not be reached (ConnectionRefusedError))"
    at the top of the client's page and in the list of sign-ins that went wrong."""
    from datetime import timedelta

    from services import clock
    from services.signin import codes

    smtp.stop()
    assert phone.log_in().status_code == 302
    deliver()
    clock.advance(codes.CODE_LIFETIME + timedelta(seconds=1))
    deliver()
    page = client_page(staff, client_id)
    findings = page[page.index("Sign-ins Newest"):page.index("Every step")]
    assert "could not be sent (the mail server could not be reached); tried" in findings
    assert ("This was a fault on our side, not the client's: tell whoever runs the server, and "
            "once the mail server answers again the client should sign in again for a new code."
            ) in findings
    assert "Error" not in findings
    assert "Error" not in plain(staff.text("/support")).split("Sign-ins that went wrong")[1]


def test_a_code_typed_too_late_says_what_to_tell_the_client(app, client_id, smtp, deliver,
                                                             phone, staff):
    """Was: when the code ran out and when it was typed, but nothing to tell the client."""
    from datetime import timedelta

    from services import clock
    from services.signin import codes

    code = start(phone, smtp, deliver)
    clock.advance(codes.CODE_LIFETIME + timedelta(minutes=2))
    assert phone.enter_code(code).status_code == 422
    assert ("A code works for 10 minutes: ask the client to sign in again and type the new code "
            "as soon as it arrives.") in client_page(staff, client_id)


def test_a_paused_account_says_no_code_is_sent_and_when_to_unlock(app, client_id, phone,
                                                                   staff):
    """Was: "Locked until 16:48" beside the settings, with nothing on what it means for a
    client waiting for a code."""
    from services.signin import limits

    for _ in range(limits.FAILURES_BEFORE_LOCK):
        phone.log_in(password="not the password at all")
    assert phone.log_in().status_code == 429  # the right password: no code while paused
    page = client_page(staff, client_id)
    assert ("Too many wrong passwords or codes: no code is sent until then, even with the right "
            "password. Unlock it if you are sure you are speaking to the client.") in page


def test_a_text_handed_over_then_delivered_says_so_and_where_to_look(
        app, vonage, deliver, phone, staff):
    """Was: only "Still waiting for the code", for a text the network said had arrived."""
    from extensions import db
    from services.delivery import sms

    user_id = add_user(app, "mobile@example.com", channel="sms", phone="+447400123456")
    assert phone.log_in("mobile@example.com").status_code == 302
    deliver()
    sent = vonage.wait_for(1)[0]
    page = client_page(staff, user_id)
    assert "to •••• ••• 456. If it has not arrived, check the number with the client" in page
    with app.app_context():
        assert sms.receive_receipt(vonage.receipt(sent, "delivered")).http_status == 200
        db.session.commit()
    page = client_page(staff, user_id)
    assert "The phone network reported the text reached •••• ••• 456 at" in page
    assert "ask the client to look in the messages on that phone" in page


def test_a_message_still_being_retried_is_listed_among_sign_ins_that_went_wrong(
        app, client_id, smtp, deliver, phone, staff):
    """Was: "Nothing has gone wrong in the last 7 days" on the console's front page while
    the mail server was down and every client's code was waiting to be retried."""
    smtp.stop()
    assert phone.log_in().status_code == 302
    deliver()
    front = plain(staff.text("/support"))
    section = front[front.index("Sign-ins that went wrong lately"):]
    assert "Nothing has gone wrong" not in section
    assert "client@example.com" in section
    assert "keeps failing: the mail server could not be reached" in section


def test_a_code_that_never_left_us_is_not_called_sent(app, client_id, smtp, deliver, phone,
                                                      staff):
    """Was: "Only this last one's code, sent at 16:44, could work" for a code the mail server,
    down, had never taken."""
    start(phone, smtp, deliver)
    smtp.stop()
    assert phone.log_in().status_code == 302  # Log in again: a new code, not handed over
    deliver()
    [newer, _] = views(app, client_id)
    page = client_page(staff, client_id)
    made = hhmm(app, newer.sign_in.created_at)
    assert f"Only this last one's code, made at {made}, could work." in page
    assert "Only this last one's code, sent at" not in page
