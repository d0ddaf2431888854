"""Review of the receipt webhook's edges (/webhooks/vonage/dlr): what a forged or odd receipt
can do, through every way Vonage may send one."""

from __future__ import annotations

import pytest

from tests.sms.conftest import only_delivery, receipt_events

DLR = "/webhooks/vonage/dlr"


@pytest.mark.parametrize("change", [
    lambda f: f.update({"client-ref": f["client-ref"] + "\x00"}),  # a 500 on PostgreSQL
    lambda f: f.update({"network-code": "234\x0010"}),  # kept in the event's detail
    lambda f: f.update({"extra\x00": "x"}),
    lambda f: f.update({"err-code": "2\n"}),
])
def test_a_control_character_in_a_json_receipt_is_refused_before_any_query(
        app, sent, vonage, browser, change):
    """Forms and queries with a NUL are refused in front of every route (app.py); a JSON
    body is not. On PostgreSQL a NUL in the client reference was a 500 (text cannot hold
    one), and one in another field was stored in the event's JSON detail, after which every
    later receipt for that message was a 500 ("unsupported Unicode escape sequence")."""
    fields = vonage.receipt(sent, "buffered")
    change(fields)
    response = browser.client.post(DLR, json=fields)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "malformed" in response.json["error"]
    assert receipt_events(app) == []
    # The genuine receipt that follows is heard.
    response = browser.client.post(DLR, json=vonage.receipt(sent, "delivered"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert only_delivery(app).status == "delivered"


SECRET = "receipt-signing-secret-0123456789"


@pytest.mark.parametrize("method", ["md5hash", "sha256"])
def test_a_signed_receipt_cannot_be_regrouped_by_its_field_names(
        app, sent, vonage, browser, method):
    """The signed text is "&name=value..." with "&" and "=" replaced in values, not in names:
    a name holding "=" and "&" can swallow the fields before it and sign the same, so a signed
    receipt could be sent again with fields hidden (here its err-code, so the reason said is
    not the network's). Vonage's field names are letters, digits and "-" only."""
    app.config.update(VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_SIGNATURE_METHOD=method)
    fields = vonage.receipt(sent, "failed", err_code="2", signature_secret=SECRET,
                            method=method)
    regrouped = dict(fields)
    stamp = regrouped.pop("message-timestamp")
    regrouped.pop("err-code")
    regrouped["err-code=2&message-timestamp"] = stamp
    response = browser.client.post(DLR, data=regrouped)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert receipt_events(app) == [] and only_delivery(app).status == "sent"
    # The receipt as Vonage signed it is heard, with its reason.
    assert browser.client.post(DLR, data=fields).status_code == 200
    assert "switched off" in only_delivery(app).last_error


def test_a_failure_reported_after_delivery_changes_nothing_but_keeps_its_reason(
        app, sent, vonage, browser):
    """Out of order: delivered, then failed. The text stays delivered (for the client and
    support alike), and the late report is recorded with the network's own reason, not
    as "the phone network gave no reason"."""
    assert browser.client.post(DLR, data=vonage.receipt(sent, "delivered")).status_code == 200
    late = vonage.receipt(sent, "failed", err_code="3")
    assert browser.client.post(DLR, data=late).status_code == 200
    item = only_delivery(app)
    assert item.status == "delivered" and item.failed_at is None and item.last_error is None
    assert "Delivered to your phone" in browser.text("/login/code")
    [_, failure] = receipt_events(app)
    assert failure.outcome == "failed"
    assert failure.detail["reason"] == "the number is not in use"
    assert failure.detail["delivery_status"] == "delivered"


@pytest.mark.parametrize("body", [
    "[" * 30000 + "]" * 30000,
    '{"messageId": ' + "[" * 30000,
])
def test_a_deeply_nested_json_body_is_a_400_not_a_500(app, sent, browser, body):
    """Python's JSON parser raises RecursionError, not ValueError, for nesting this deep, and
    Flask's silent get_json lets it through: an anonymous post was a 500."""
    assert len(body) < app.config["MAX_CONTENT_LENGTH"]
    response = browser.client.post(DLR, data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "malformed" in response.json["error"]
    assert receipt_events(app) == []
