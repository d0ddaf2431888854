"""Vonage delivery receipts on /webhooks/vonage/dlr: recorded when genuine, refused otherwise."""

from __future__ import annotations

import secrets
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from vonage import Auth

from extensions import db
from models import Delivery, Event
from services import clock
from services.delivery import sms
from tests.sms.conftest import only_delivery, receipt_events
from tests.vonage_stub import sign

DLR = "/webhooks/vonage/dlr"
SECRET = "receipt-signing-secret-0123456789"


def _send(browser, how: str, fields: dict):
    client = browser.client
    if how == "get":
        return client.get(DLR, query_string=fields)
    if how == "form":
        return client.post(DLR, data=fields)
    return client.post(DLR, json=fields)


def _unchanged(app, before: Delivery) -> None:
    after = only_delivery(app)
    assert (after.status, after.delivered_at, after.failed_at, after.last_error) == (
        before.status, before.delivered_at, before.failed_at, before.last_error)
    assert receipt_events(app) == []


# --- genuine receipts -----------------------------------------------------------------

@pytest.mark.parametrize("how", ["get", "form", "json"])
def test_delivered_receipt_is_recorded(app, sent, vonage, browser, how):
    response = _send(browser, how, vonage.receipt(sent, "delivered"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["result"] == "recorded"
    item = only_delivery(app)
    assert item.status == "delivered"
    assert item.delivered_at is not None and item.delivered_at >= item.sent_at - timedelta(minutes=1)
    [event] = receipt_events(app)
    assert event.outcome == "delivered" and event.delivery_id == item.id
    assert event.sign_in_id == item.sign_in_id
    assert "Delivered to your phone" in browser.text("/login/code")


def test_failed_receipt_shows_the_reason(app, sent, vonage, browser):
    response = _send(browser, "form", vonage.receipt(sent, "failed", err_code="2"))
    assert response.status_code == 200
    item = only_delivery(app)
    assert item.status == "failed" and item.failed_at is not None
    assert "switched off or out of signal" in item.last_error
    page = browser.text("/login/code")
    assert "Could not be sent: the phone was switched off or out of signal" in page
    assert "Send by email instead" in page
    assert receipt_events(app)[0].detail["err_code"] == "2"


def test_rejected_receipt_is_a_failure(app, sent, vonage, browser):
    assert _send(browser, "get", vonage.receipt(sent, "rejected", err_code="6")).status_code == 200
    item = only_delivery(app)
    assert item.status == "failed" and "spam" in item.last_error


def test_expired_receipt(app, sent, vonage, browser):
    assert _send(browser, "get", vonage.receipt(sent, "expired", err_code="1")).status_code == 200
    item = only_delivery(app)
    assert item.status == "failed" and item.failed_at is not None
    assert "did not receive it in time" in item.last_error
    assert receipt_events(app)[0].outcome == "expired"


@pytest.mark.parametrize("status", ["accepted", "buffered", "unknown"])
def test_progress_receipts_change_no_status(app, sent, vonage, browser, status):
    assert _send(browser, "get", vonage.receipt(sent, status)).status_code == 200
    assert only_delivery(app).status == "sent"
    assert receipt_events(app)[0].outcome == status


def test_delivered_after_failure_wins_but_not_the_reverse(app, sent, vonage, browser):
    _send(browser, "get", vonage.receipt(sent, "failed", err_code="7"))
    _send(browser, "get", vonage.receipt(sent, "delivered"))
    assert only_delivery(app).status == "delivered"
    _send(browser, "get", vonage.receipt(sent, "expired"))
    assert only_delivery(app).status == "delivered"


def test_replayed_receipt_is_harmless(app, sent, vonage, browser):
    fields = vonage.receipt(sent, "delivered")
    assert _send(browser, "get", fields).status_code == 200
    first = only_delivery(app).delivered_at
    assert _send(browser, "get", fields).status_code == 200
    assert only_delivery(app).status == "delivered" and only_delivery(app).delivered_at >= first


def test_receipts_need_no_csrf_token_but_other_posts_do(app, sent, vonage, browser):
    assert browser.client.post(DLR, data=vonage.receipt(sent)).status_code == 200
    # An ordinary form still refuses a post without its token.
    response = browser.client.post("/login/code", data={"code": sent.code})
    assert response.status_code in (302, 400)
    assert "/portal" not in response.headers.get("Location", "")


# --- signed receipts ------------------------------------------------------------------

@pytest.mark.parametrize("method, how", [
    ("md5hash", "get"), ("md5hash", "form"), ("md5hash", "json"),
    ("md5", "get"), ("sha1", "form"), ("sha256", "get"), ("sha256", "json"), ("sha512", "get"),
])
def test_signed_receipt_is_recorded(app, sent, vonage, browser, method, how):
    app.config.update(VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_SIGNATURE_METHOD=method)
    fields = vonage.receipt(sent, "delivered", signature_secret=SECRET, method=method)
    response = _send(browser, how, fields)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert only_delivery(app).status == "delivered"


def test_signed_receipt_may_omit_the_client_ref(app, sent, vonage, browser):
    app.config.update(VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_SIGNATURE_METHOD="sha256")
    fields = vonage.receipt(sent, "delivered")
    del fields["client-ref"]
    fields.update(timestamp=str(int(time.time())), nonce="abc")
    fields["sig"] = sign(fields, SECRET, "sha256")
    assert _send(browser, "get", fields).status_code == 200
    assert only_delivery(app).status == "delivered"


def test_values_with_ampersand_and_equals_are_signed_as_vonage_does(app, sent, vonage, browser):
    app.config.update(VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_SIGNATURE_METHOD="sha256")
    fields = vonage.receipt(sent, "delivered", signature_secret=SECRET, method="sha256",
                            network_code="234&10=x")
    assert _send(browser, "form", fields).status_code == 200


def test_forged_signature(app, sent, vonage, browser):
    app.config["VONAGE_SIGNATURE_SECRET"] = SECRET
    before = only_delivery(app)
    fields = vonage.receipt(sent, "delivered", signature_secret=SECRET)
    fields["status"] = "failed"  # changed after signing
    response = _send(browser, "get", fields)
    assert response.status_code == 403
    assert response.json["error"] == "bad signature"
    _unchanged(app, before)


@pytest.mark.parametrize("tamper", [
    lambda f: f.update(sig=sign(f, "some-other-secret")),
    lambda f: f.pop("sig"),
    lambda f: f.update(sig=""),
    lambda f: f.update(sig="z" * 32),
    lambda f: f.update(sig="0" * 31),
    lambda f: f.update(sig=f["sig"][:-1] + ("0" if f["sig"][-1] != "0" else "1")),
    lambda f: f.update(messageId="0C0000001234ABCD"),
    lambda f: f.update(extra="added after signing"),
])
def test_tampered_signed_receipts_are_refused(app, sent, vonage, browser, tamper):
    app.config["VONAGE_SIGNATURE_SECRET"] = SECRET
    before = only_delivery(app)
    fields = vonage.receipt(sent, "delivered", signature_secret=SECRET, method="md5hash")
    tamper(fields)
    assert _send(browser, "get", fields).status_code == 403
    _unchanged(app, before)


def test_unsigned_receipt_is_refused_when_a_secret_is_set(app, sent, vonage, browser):
    app.config["VONAGE_SIGNATURE_SECRET"] = SECRET
    before = only_delivery(app)
    assert _send(browser, "form", vonage.receipt(sent, "delivered")).status_code == 403
    _unchanged(app, before)


@pytest.mark.parametrize("age", [timedelta(minutes=20), -timedelta(minutes=20)])
def test_stale_signed_receipt_is_refused(app, sent, vonage, browser, age):
    app.config["VONAGE_SIGNATURE_SECRET"] = SECRET
    before = only_delivery(app)
    stamp = int((clock.now() - age).timestamp())
    fields = vonage.receipt(sent, "delivered", signature_secret=SECRET, timestamp=stamp)
    response = _send(browser, "get", fields)
    assert response.status_code == 403 and "timestamp" in response.json["error"]
    _unchanged(app, before)


def test_known_md5hash_vector():
    """The example from Vonage's own SDK tests: a=1, b=2, timestamp 1461605396, secret "secret"."""
    fields = {"a": "1", "b": "2", "timestamp": "1461605396",
              "sig": "6af838ef94998832dbfc29020b564830"}
    assert sms.signature_matches(fields, "secret")
    assert not sms.signature_matches(fields, "Secret")
    assert not sms.signature_matches({**fields, "a": "2"}, "secret")


@pytest.mark.parametrize("method", ["md5", "sha1", "sha256", "sha512"])
def test_signatures_made_by_the_vonage_sdk_are_accepted(method):
    fields = {"messageId": "0A0000001", "status": "delivered", "timestamp": "1700000000",
              "note": "a&b=c"}
    auth = Auth(api_key="key", signature_secret=SECRET, signature_method=method)
    fields["sig"] = auth.sign_params(dict(fields))
    assert sms.signature_matches(fields, SECRET, method)
    assert sms.signature_matches({**fields, "sig": fields["sig"].upper()}, SECRET, method)
    assert not sms.signature_matches({**fields, "status": "failed"}, SECRET, method)


# --- malformed and unknown receipts ---------------------------------------------------

@pytest.mark.parametrize("change", [
    lambda f: f.pop("messageId"),
    lambda f: f.pop("status"),
    lambda f: f.update(status="DELIVERED!"),
    lambda f: f.update(status=""),
    lambda f: f.update(messageId="x" * 65),
    lambda f: f.update(messageId="<script>"),
    lambda f: f.update({"err-code": "9" * 600}),
    lambda f: f.update({f"field{i}": "x" for i in range(50)}),
])
def test_malformed_receipts(app, sent, vonage, browser, change):
    before = only_delivery(app)
    fields = vonage.receipt(sent, "delivered")
    change(fields)
    for how in ("get", "form", "json"):
        response = _send(browser, how, fields)
        assert response.status_code == 400, how
        assert response.is_json and "malformed" in response.json["error"]
    _unchanged(app, before)


@pytest.mark.parametrize("body", [
    b"[1, 2, 3]", b'"text"', b"{not json", b'{"messageId": {"x": 1}, "status": "delivered"}',
    b'{"messageId": ["a"], "status": "delivered"}', b'{"messageId": true, "status": "delivered"}',
    b"\x00\xff\xfe binary",
])
def test_malformed_json_bodies(app, sent, browser, body):
    before = only_delivery(app)
    response = browser.client.post(DLR, data=body, content_type="application/json")
    assert response.status_code == 400
    _unchanged(app, before)


def test_repeated_field_is_malformed(app, sent, vonage, browser):
    before = only_delivery(app)
    fields = vonage.receipt(sent, "delivered")
    query = "&".join(f"{k}={v}" for k, v in fields.items()) + "&status=failed"
    assert browser.client.get(f"{DLR}?{query}").status_code == 400
    _unchanged(app, before)


def test_empty_and_binary_posts(app, sent, browser):
    before = only_delivery(app)
    assert browser.client.get(DLR).status_code == 400
    assert browser.client.post(DLR).status_code == 400
    assert browser.client.post(DLR, data=b"\x00\x01\x02", content_type="application/octet-stream"
                               ).status_code == 400
    assert browser.client.put(DLR).status_code == 405
    _unchanged(app, before)


@pytest.mark.parametrize("change", [
    lambda f: f.update(messageId="0C000000DEADBEEF", **{"client-ref": secrets.token_hex(20)}),
    lambda f: f.update(messageId="0C000000DEADBEEF"),  # our reference, another message id
    lambda f: f.update({"client-ref": secrets.token_hex(20)}),  # our id, another reference
    lambda f: f.pop("client-ref"),  # unsigned and without our reference: cannot be trusted
])
def test_unknown_receipts(app, sent, vonage, browser, change):
    before = only_delivery(app)
    fields = vonage.receipt(sent, "delivered")
    change(fields)
    response = _send(browser, "get", fields)
    assert response.status_code == 404 and response.json["error"] == "unknown message"
    _unchanged(app, before)


def test_a_signed_receipt_for_another_programs_text_is_taken_and_ignored(app, sent, vonage,
                                                                          browser):
    """Vonage sends every receipt of the account to its one webhook and retries for a day
    whatever is not taken: a signed receipt for a text that is not ours is answered 200."""
    app.config["VONAGE_SIGNATURE_SECRET"] = SECRET
    before = only_delivery(app)
    fields = vonage.receipt(sent, "delivered", signature_secret=SECRET)
    fields.update(messageId="0C000000DEADBEEF", **{"client-ref": secrets.token_hex(20)})
    fields["sig"] = sign(fields, SECRET)
    response = _send(browser, "get", fields)
    assert response.status_code == 200 and response.json["result"] == "not one of our messages"
    _unchanged(app, before)
    # Our reference with another text's id is still refused: that is no honest receipt.
    fields = vonage.receipt(sent, "delivered", signature_secret=SECRET)
    fields.update(messageId="0C000000DEADBEEF")
    fields["sig"] = sign(fields, SECRET)
    assert _send(browser, "get", fields).status_code == 404
    _unchanged(app, before)


def test_receipt_from_another_account(app, sent, vonage, browser):
    before = only_delivery(app)
    fields = vonage.receipt(sent, "delivered", api_key="someone-else")
    assert _send(browser, "get", fields).status_code == 403
    _unchanged(app, before)


def test_receipt_for_an_email_is_unknown(app, user, smtp, deliver, vonage, browser):
    browser.log_in()
    deliver()
    with app.app_context():
        item = db.session.scalars(select(Delivery)).one()
        ref = item.client_ref
    fields = {"messageId": "0C00000012345678", "status": "delivered", "client-ref": ref}
    assert _send(browser, "get", fields).status_code == 404


def test_receipt_before_the_send_is_recorded_asks_to_retry(app, sent, vonage, browser):
    with app.app_context():
        item = db.session.scalars(select(Delivery)).one()
        item.status, item.provider_ref = "sending", None
        db.session.commit()
    response = _send(browser, "get", vonage.receipt(sent, "delivered"))
    assert response.status_code == 409
    assert only_delivery(app).status == "sending"
    with app.app_context():
        assert db.session.scalar(select(func.count(Event.id))
                                 .where(Event.type == "delivery_receipt")) == 0
