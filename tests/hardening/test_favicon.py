"""Issue 11, point 12: /favicon.ico was a 404 on every page.

(The other half of point 12, one way of writing the number when it is confirmed, is in
tests/sms/test_account.py::test_prove_a_number_then_codes_come_by_sms.)
"""

from __future__ import annotations

import re


def test_favicon_is_served_and_linked(app, browser):
    with browser.client.get("/favicon.ico") as icon:
        assert icon.status_code == 200
        assert icon.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
        assert icon.mimetype == "image/vnd.microsoft.icon"
    page = browser.text("/login")
    links = re.findall(r'<link rel="icon" href="([^"]+)"', page)
    assert "/favicon.ico" in links and any(link.endswith(".svg") for link in links)
    for link in links:
        with browser.client.get(link) as response:
            assert response.status_code == 200
