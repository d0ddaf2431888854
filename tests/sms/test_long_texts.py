"""A text too long for one SMS goes out in parts, each with its own Vonage id and receipt:
every part's receipt is recorded, the text is delivered once all parts are, and a part that
failed fails the text."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select

from extensions import db
from models import Delivery
from tests.sms.conftest import SMS_EMAIL, SMS_PHONE

DLR = "/webhooks/vonage/dlr"
PARTS = 3


@pytest.fixture
def long_text(app, sms_user, vonage, deliver, browser):
    """An SMS sign-in whose code Vonage took as a text of three parts; returns the text, its
    parts' ids, and a function making the receipt of part n (1, 2, 3)."""
    single = vonage._answer

    def in_parts(received):  # as Vonage answers for a long text: a message per part
        status, body = single(received)
        first = body["messages"][0]
        others = [dict(first, **{"message-id": secrets.token_hex(8).upper()})
                  for _ in range(PARTS - 1)]
        return status, {"message-count": str(PARTS), "messages": [first, *others]}

    vonage._answer = in_parts
    assert browser.log_in(SMS_EMAIL).status_code == 302
    deliver()
    sent = vonage.last_to(SMS_PHONE)
    with app.app_context():
        ids = list(db.session.scalars(select(Delivery)).one().provider_parts)
    assert ids[0] == sent.message_id and len(ids) == PARTS

    def receipt(n: int, status: str = "delivered", **extra) -> dict:
        return dict(vonage.receipt(sent, status, **extra), messageId=ids[n - 1])

    return sent, ids, receipt


def _post(browser, fields: dict):
    return browser.client.post(DLR, data=fields)


def _item(app) -> Delivery:
    with app.app_context():
        item = db.session.scalars(select(Delivery)).one()
        db.session.expunge(item)
        return item


def test_the_text_is_delivered_once_every_part_is(app, long_text, browser):
    _, _, receipt = long_text
    for n in (1, 3):
        response = _post(browser, receipt(n))
        assert response.status_code == 200 and response.json["result"] == "recorded"
        assert _item(app).status == "sent"  # a part still on its way
    assert _post(browser, receipt(2)).status_code == 200
    item = _item(app)
    assert item.status == "delivered" and item.delivered_at is not None
    assert set(item.provider_parts.values()) == {"delivered"}
    assert "Delivered to your phone" in browser.text("/login/code")


def test_a_failed_later_part_fails_the_text_and_shows_why(app, long_text, browser):
    _, ids, receipt = long_text
    assert _post(browser, receipt(1)).status_code == 200
    response = _post(browser, receipt(2, "failed", err_code="2"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert _post(browser, receipt(3)).status_code == 200  # the others arriving changes nothing
    item = _item(app)
    assert item.status == "failed"
    assert item.last_error == "the phone was switched off or out of signal"
    assert item.provider_parts == {ids[0]: "delivered", ids[1]: "failed", ids[2]: "delivered"}
    assert "switched off or out of signal" in browser.text("/login/code")


def test_a_part_reported_failed_then_delivered_counts_as_delivered(app, long_text, browser):
    _, _, receipt = long_text
    assert _post(browser, receipt(2, "failed", err_code="7")).status_code == 200
    assert _item(app).status == "failed"
    for n in (1, 2, 3):
        assert _post(browser, receipt(n)).status_code == 200
    assert _item(app).status == "delivered"


def test_a_receipt_for_no_part_of_the_text_is_refused(app, long_text, browser):
    _, _, receipt = long_text
    forged = dict(receipt(1), messageId=secrets.token_hex(8).upper())
    response = _post(browser, forged)
    assert response.status_code == 404
    assert _item(app).status == "sent"
