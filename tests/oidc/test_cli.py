"""flask oidc add-client / list-clients / remove-client (SPEC: the contract's output)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from extensions import db
from models import OAuthClient


def test_add_list_and_remove_clients(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["oidc", "add-client", "Nextcloud",
                                 "--redirect-uri", "https://cloud.example.com/apps/user_oidc/code",
                                 "--redirect-uri", "https://cloud.example.com/index.php/apps/user_oidc/code"])
    assert result.exit_code == 0, result.output
    client_id = re.search(r"^client_id: (\S+)$", result.output, re.M).group(1)
    secret = re.search(r"^client_secret: (\S+)$", result.output, re.M).group(1)
    assert len(secret) >= 43
    with app.app_context():
        row = db.session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
        assert row.secret_hash and secret not in row.secret_hash and len(row.redirect_uris) == 2

    public = runner.invoke(args=["oidc", "add-client", "Phone app", "--public",
                                 "--redirect-uri", "https://phone.example.com/cb"])
    assert public.exit_code == 0 and "client_id: " in public.output
    assert "client_secret" not in public.output

    listed = runner.invoke(args=["oidc", "list-clients"]).output
    assert client_id in listed and "Nextcloud" in listed and "(public)" in listed
    assert secret not in listed

    removed = runner.invoke(args=["oidc", "remove-client", client_id])
    assert removed.exit_code == 0 and "Removed Nextcloud" in removed.output
    assert client_id not in runner.invoke(args=["oidc", "list-clients"]).output
    assert runner.invoke(args=["oidc", "remove-client", client_id]).exit_code == 2


def test_a_client_id_is_always_a_plain_argument(app):
    # One in 64 random url-safe ids began with "-", which `remove-client ID` took for an option.
    from services.federation import oidc

    ids = {oidc.new_client_id() for _ in range(2000)}
    assert len(ids) == 2000 and not any(i.startswith("-") for i in ids)


def test_add_client_refuses_bad_addresses(app):
    runner = app.test_cli_runner()
    for uri in ("http://cloud.example.com/cb", "https://cloud.example.com/cb#frag", "cloud/cb"):
        result = runner.invoke(args=["oidc", "add-client", "X", "--redirect-uri", uri])
        assert result.exit_code == 2, (uri, result.output)
    assert runner.invoke(args=["oidc", "add-client", "X"]).exit_code == 2
    ok = runner.invoke(args=["oidc", "add-client", "Dev", "--redirect-uri",
                             "http://localhost:8080/cb"])
    assert ok.exit_code == 0


@pytest.mark.parametrize("uri", [
    "https://cloud.example.com:99999/cb", "https://cloud.example.com:0/cb",
    "https://cloud.example.com:http/cb", "https://user:secret@cloud.example.com/cb",
    "https://user@cloud.example.com/cb", "http://me@localhost:8080/cb",
    "https://cloud.example.com/cb#", "https://:443/cb", "https://[cloud/cb",
])
def test_add_client_refuses_an_address_no_app_could_be_sent_to(app, uri):
    """A port out of range was accepted, and then every sign-in through the app was a 500;
    a user name or password in the address was accepted too."""
    for option in ("--redirect-uri", "--post-logout-uri"):
        args = ["oidc", "add-client", "X", "--redirect-uri", "https://cloud.example.com/cb",
                option, uri]
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 2 and "Error:" in result.output, (uri, result.output)
    with app.app_context():
        assert db.session.scalar(select(OAuthClient.id)) is None


def test_prune_forgets_long_expired_codes_and_tokens(app, sign_in, rp):
    from datetime import timedelta

    from models import OAuthCode, OAuthToken
    from services import clock
    from tests.oidc.conftest import authorize_url, code_from, exchange, pkce

    b = sign_in()
    verifier, challenge = pkce()
    back = code_from(b.get(authorize_url(rp, challenge)))
    assert exchange(b.client, rp, back["code"], verifier).status_code == 200
    runner = app.test_cli_runner()
    assert runner.invoke(args=["prune", "--days", "7"]).exit_code == 0
    with app.app_context():
        assert db.session.scalar(select(OAuthToken.id)) is not None  # still young: kept
    clock.advance(timedelta(days=8))
    assert runner.invoke(args=["prune", "--days", "7"]).exit_code == 0
    with app.app_context():
        assert db.session.scalar(select(OAuthToken.id)) is None
        assert db.session.scalar(select(OAuthCode.id)) is None
