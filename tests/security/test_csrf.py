"""Every POST route needs a CSRF token of the browser's own session; only the Vonage
webhook (which Vonage calls, and which checks a signature instead) goes without."""

from __future__ import annotations

import re

import pytest

from extensions import csrf
from tests.conftest import Browser, add_user
from tests.security.conftest import table_rows

CLIENT, STAFF = "client@example.com", "staff@example.com"
WEBHOOK = "/webhooks/vonage/dlr"
# What a real form would carry, so that only the token is missing.
PLAUSIBLE = {"email": CLIENT, "password": "correct horse battery", "code": "123456",
             "channel": "email", "phone": "07700900123", "action": "new", "submit": "1"}


def post_routes(app) -> list[str]:
    paths = []
    for rule in app.url_map.iter_rules():
        if "POST" in rule.methods and rule.rule != WEBHOOK and not rule.rule.startswith(
                OIDC_PATHS):  # see OIDC_VIEWS
            paths.append(re.sub(r"<int:[^>]+>", "1", re.sub(r"<(?!int:)[^>]+>", "unlock",
                                                                rule.rule)))
    return sorted(paths)


# OpenID Connect's machine endpoints use no cookie: the token endpoint checks the app's
# secret or PKCE verifier, userinfo a bearer token, logout a signed id_token_hint (without
# one it only shows a page asking, whose button posts to /logout with a CSRF token). An app's
# page on another site may POST an authorization request (OIDC Core 3.1.2.1): it passes the
# same checks as a GET, and the session cookie (SameSite=Lax) does not come with it.
OIDC_VIEWS = {"blueprints.oidc.authorize", "blueprints.oidc.token", "blueprints.oidc.userinfo",
              "blueprints.oidc.end_session"}
OIDC_PATHS = ("/oauth/authorize", "/oauth/token", "/oauth/userinfo", "/oauth/logout")


def test_only_the_webhook_is_exempt_by_view(app):
    assert csrf._exempt_views <= {"blueprints.webhooks.vonage_dlr"} | OIDC_VIEWS


def test_every_post_route_is_tested_here(app):
    covered = {"/login", "/login/code", "/login/code/resend", "/logout"}
    assert covered <= set(post_routes(app))


@pytest.fixture
def people(app, smtp, deliver, sign_in):
    """A browser waiting for a code, a signed-in client and a signed-in member of staff."""
    add_user(app, CLIENT)
    add_user(app, STAFF, role="admin")
    add_user(app, "waiting@example.com")
    waiting = Browser(app)
    waiting.log_in("waiting@example.com")
    return {"waiting": waiting, "client": sign_in(CLIENT, Browser(app)),
            "staff": sign_in(STAFF, Browser(app))}


@pytest.mark.parametrize("who", ["waiting", "client", "staff"])
@pytest.mark.parametrize("token", ["missing", "empty", "another session's", "garbage"])
def test_post_without_this_sessions_token_changes_nothing(app, people, who, token):
    browser = people[who]
    other = Browser(app)
    tokens = {"missing": None, "empty": "", "garbage": "IjAwMCI.aaaa.bbbb",
              "another session's": other.csrf_for("/login")}
    for path in post_routes(app):
        before = table_rows(app)
        data = dict(PLAUSIBLE)
        if tokens[token] is not None:
            data["csrf_token"] = tokens[token]
        response = browser.client.post(path, data=data)
        assert response.status_code in (302, 400, 404), (path, response.status_code)
        if response.status_code == 302:
            # Back to the same form with "that page had been open too long" (or to sign in).
            assert response.headers["Location"].split("?")[0] in (path, "/login"), path
        assert table_rows(app) == before, f"{path} changed data without a CSRF token"
    # And the browser is still where it was: nothing was done in its name.
    if who != "waiting":
        assert browser.get("/portal").status_code == 200


def test_the_same_post_with_its_token_works(app, people):
    """The control: the refusals above are about the token, not the form."""
    response = people["client"].post("/logout", form_page="/portal")
    assert response.status_code == 302
    assert people["client"].get("/portal").status_code == 302
