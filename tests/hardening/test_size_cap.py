"""Issue 11, point 3: a request body over 64 KiB is refused with 413 before it is read.

On the old code MAX_CONTENT_LENGTH stayed None: a large form to /login and a large body to the
webhook were read whole.
"""

from __future__ import annotations

import json

BIG = 100 * 1024  # over the 64 KiB cap, under Werkzeug's own form limits


def test_a_large_login_form_is_refused(app, browser):
    token = browser.csrf_for("/login")
    response = browser.client.post("/login", data={
        "email": "client@example.com", "password": "x" * BIG, "csrf_token": token})
    assert response.status_code == 413
    assert "far more data" in response.get_data(as_text=True)


def test_a_large_webhook_body_is_refused(app, browser):
    body = json.dumps({"messageId": "ABC", "status": "delivered", "pad": "x" * BIG})
    response = browser.client.post("/webhooks/vonage/dlr", data=body,
                                   content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["status"] == 413


def test_a_form_under_the_cap_is_answered_as_usual(app, browser):
    response = browser.post("/login", {"email": "client@example.com", "password": "x" * 1000})
    assert response.status_code == 200
