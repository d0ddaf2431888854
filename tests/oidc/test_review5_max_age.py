"""A max_age that is not a number of seconds is refused at once, before any sign-in.

It was read only once somebody was signed in: a signed-out client went through the whole
sign-in (password and code) only for the app to get invalid_request at the end; and a
negative max_age, which OpenID Connect Core 3.1.2.1 does not allow, was read as 0.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.conftest import Browser
from tests.oidc.conftest import REDIRECT, authorize_url, code_from, pkce


@pytest.mark.parametrize("max_age", ["abc", "-5", "1e3", "1.5", " 60", "٣"])
def test_a_max_age_that_is_no_number_of_seconds_is_invalid_request(app, sign_in, rp, max_age):
    for b in (Browser(app), sign_in()):
        back = code_from(b.get(authorize_url(rp, pkce()[1], max_age=max_age)))
        assert back["_to"] == REDIRECT and back["error"] == "invalid_request", back
        assert back["state"].startswith("st-") and "code" not in back


def test_a_good_max_age_still_works(app, sign_in, rp):
    assert urlsplit(Browser(app).get(authorize_url(rp, pkce()[1], max_age="0"))
                    .headers["Location"]).path == "/login"
    b = sign_in()
    # RFC 6749 3.1: a parameter without a value is as if it were not sent.
    for max_age in ("3600", "", "9" * 5000):
        assert code_from(b.get(authorize_url(rp, pkce()[1], max_age=max_age)))["code"], max_age
