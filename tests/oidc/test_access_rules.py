"""The access rules (ACCESS_RULES, PROTECTED_HOSTS) applied to the apps that sign in through
ClientGate: decided for the app, not for the one address a request names."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from extensions import db
from models import Event, OAuthCode
from tests.conftest import add_user, make_config, running_app
from tests.oidc.conftest import REDIRECT, App, authorize_url, code_from, pkce, register, signed_in

DEVELOPER = "http://localhost:8080/cb"


@pytest.fixture
def guarded(tmp_path, smtp):
    """A portal whose rules open files.example.com to administrators only."""
    config = make_config(tmp_path, smtp, PROTECTED_HOSTS="files.example.com",
                         ACCESS_RULES="files.example.com admin Files")
    with running_app(config) as app:
        add_user(app, "client@example.com")
        add_user(app, "admin@example.com", role="admin")
        yield app


def test_an_app_kept_from_a_client_is_kept_at_each_of_its_addresses(guarded, smtp):
    """A second address on a host no rule names (a developer's localhost) used to let a
    client the rules keep out of the app through that address, and get tokens."""
    rp = register(guarded, "Files", (REDIRECT, DEVELOPER), public=True)
    b = signed_in(guarded, smtp)
    for uri in (REDIRECT, DEVELOPER):
        response = b.get(authorize_url(App(rp.client_id, None, uri), pkce()[1]))
        assert response.status_code == 403 and "Location" not in response.headers, uri
        assert "Files is not open to your account" in response.get_data(as_text=True)
    with guarded.app_context():
        assert db.session.scalar(select(OAuthCode.id)) is None
        assert len(db.session.scalars(select(Event).where(Event.type == "oidc_denied")).all()) == 2


def test_a_client_the_rules_admit_uses_any_address_of_the_app(guarded, smtp):
    rp = register(guarded, "Files", (REDIRECT, DEVELOPER), public=True)
    b = signed_in(guarded, smtp, "admin@example.com")
    for uri in (REDIRECT, DEVELOPER):
        back = code_from(b.get(authorize_url(App(rp.client_id, None, uri), pkce()[1])))
        assert back["_to"] == uri and back["code"], back


def test_an_app_on_no_guarded_host_is_open_to_every_client(guarded, smtp):
    rp = register(guarded, "Phone app", ("https://phone.example.com/cb", DEVELOPER),
                  public=True)
    b = signed_in(guarded, smtp)
    assert code_from(b.get(authorize_url(rp, pkce()[1])))["code"]


def test_prompt_none_for_a_client_the_rules_keep_out_goes_back_as_access_denied(guarded, smtp):
    """prompt=none asks for no page at ClientGate (OIDC Core 3.1.2.1): the app hears why,
    rather than the browser stopping at a page the app cannot see (it was a 403 page)."""
    rp = register(guarded)
    b = signed_in(guarded, smtp)
    back = code_from(b.get(authorize_url(rp, pkce()[1], prompt="none", state="st-quiet")))
    assert back["_to"] == REDIRECT and back["error"] == "access_denied", back
    assert back["state"] == "st-quiet" and back["iss"] == "http://localhost" and "code" not in back
    with guarded.app_context():
        assert db.session.scalar(select(OAuthCode.id)) is None
        denied = db.session.scalars(select(Event).where(Event.type == "oidc_denied")).all()
        assert [event.outcome for event in denied] == ["not_allowed"]  # support still sees it
    # Without prompt=none the client is told on ClientGate's own page, as before.
    assert b.get(authorize_url(rp, pkce()[1])).status_code == 403
