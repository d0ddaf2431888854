"""A text with a code tells Vonage how long it is worth trying the phone: until the code dies.

Without `ttl` Vonage keeps trying a phone that is off or out of signal for 72 hours, and a
client who switches on hours later gets a code long dead.
"""

from __future__ import annotations

from datetime import timedelta

from services import clock
from tests.sms.conftest import SMS_EMAIL, SMS_PHONE

TEN_MINUTES_MS = 600_000


def _ttl_of_the_code_sent(browser, vonage, deliver, *, wait: timedelta = timedelta(0)) -> int:
    assert browser.log_in(SMS_EMAIL).status_code == 302
    clock.advance(wait)
    deliver()
    return int(vonage.last_to(SMS_PHONE).params["ttl"])


def test_a_code_is_tried_only_until_it_expires(app, sms_user, vonage, deliver, browser):
    ttl = _ttl_of_the_code_sent(browser, vonage, deliver)
    # The code's ten minutes, less the moments between the password and the send.
    assert TEN_MINUTES_MS - 60_000 < ttl <= TEN_MINUTES_MS


def test_a_code_sent_late_is_given_vonages_shortest_ttl(app, sms_user, vonage, deliver,
                                                        browser):
    ttl = _ttl_of_the_code_sent(browser, vonage, deliver,
                                wait=timedelta(minutes=9, seconds=50))
    assert ttl == 20_000  # Vonage refuses less


def test_a_resent_code_is_tried_only_until_it_expires(app, sms_user, vonage, deliver, browser):
    _ttl_of_the_code_sent(browser, vonage, deliver)
    clock.advance(timedelta(minutes=5))
    assert browser.post("/login/code/resend", form_page="/login/code").status_code == 302
    deliver()
    resent = vonage.last_to(SMS_PHONE)
    assert int(resent.params["ttl"]) <= TEN_MINUTES_MS // 2


def test_the_code_proving_a_new_number_is_tried_only_until_it_expires(
        app, user, sign_in, vonage, deliver):
    b = sign_in()
    assert b.post("/account/security", {"channel": "sms", "phone": "07400 123456"}) \
        .status_code == 302
    deliver()
    assert 0 < int(vonage.last_to(SMS_PHONE).params["ttl"]) <= TEN_MINUTES_MS
