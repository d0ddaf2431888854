"""State that must hold across servers and workers: a review (docs/operators-guide.md, 14).

Each test runs two app instances on one database, as two servers (or two gunicorn workers)
share one: each has its own process state (app.extensions, its fast paths' memory), and only
the database is common. Requests "at once" are threads, one request each, as a sync gunicorn
worker serves one request at a time: two requests overlap only when they are in different
workers, on one server or on two.

To make a race certain rather than lucky, every request pauses just after its check and
before its write until all have arrived (tests/conftest.py pause_in, 2 s at most). Where the
check and the write are not under one lock, all pass the check before any writes; where they
are, the first holds the lock and the others wait for it, then see its write.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select

from app import create_app
from extensions import db
from models import Event
from services import audit
from services.accounts import email_change
from tests.conftest import TEST_PASSWORD, add_user, make_config, pause_in, running_app
from tests.oidc.conftest import authorize_url, pkce, register, signed_in

AT_ONCE = 4


@contextmanager
def two_servers(tmp_path, databases, smtp=None, **settings):
    """Two app instances ("servers") on one fresh database, with the same settings."""
    config = make_config(tmp_path, smtp, SQLALCHEMY_DATABASE_URI=databases.new(), **settings)
    with running_app(config) as first:
        second = create_app(config)  # the tables are there: the first made them
        try:
            yield first, second
        finally:
            with second.app_context():
                db.session.remove()
                db.engine.dispose()


def _at_once(requests) -> list[int]:
    """Each request (a function returning a response) in its own thread, all let go together."""
    statuses: list[int] = []
    start = threading.Barrier(len(requests))

    def run(request) -> None:
        start.wait(timeout=30)
        statuses.append(request().status_code)

    threads = [threading.Thread(target=run, args=(request,)) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


def _events(app, type_: str) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count(Event.id)).where(Event.type == type_))
        db.session.remove()
        return count


# --- the email change: "at most three an hour" ---------------------------------------------

def test_three_email_changes_an_hour_hold_for_requests_at_once_on_two_servers(
        tmp_path, databases, smtp, monkeypatch):
    """Each request for a new sign-in address emails two people, so the account may ask
    REQUESTS_PER_HOUR times an hour. The count is read from the database, but four requests
    posted at once (two on each server) each read "none yet" before any wrote, and all four
    were sent."""
    with two_servers(tmp_path, databases, smtp) as (one, two):
        add_user(one)
        browser = signed_in(one, smtp)
        token = browser.csrf_for("/account/email")  # kept in the session: read it first
        cookie = browser.client.get_cookie("clientgate_session").value
        pause_in(monkeypatch, email_change, "request_change", AT_ONCE)

        def ask(app, n: int):
            def post():
                client = app.test_client()
                client.set_cookie("clientgate_session", cookie)
                return client.post("/account/email", data={
                    "email": f"new{n}@example.com", "current_password": TEST_PASSWORD,
                    "csrf_token": token})
            return post

        statuses = _at_once([ask(one, 1), ask(two, 2), ask(one, 3), ask(two, 4)])

        assert _events(one, "email_change_requested") == email_change.REQUESTS_PER_HOUR
        assert sorted(statuses) == [302] * email_change.REQUESTS_PER_HOUR + [429]


# --- OpenID Connect: anonymous requests noted once per app and address in 10 minutes --------

def test_anonymous_authorization_requests_at_once_on_two_servers_are_noted_once(
        tmp_path, databases, monkeypatch):
    """/oauth/authorize from nobody signed in writes one audit row per app and address in
    NOTE_WINDOW, so a script asking it (within its request limit) cannot fill the audit
    trail. Four requests at once on two servers each read "not noted yet" and all wrote."""
    with two_servers(tmp_path, databases) as (one, two):
        add_user(one)
        rp = register(one)
        def ask(app, unknown: bool):
            def get():
                extra = {"client_id": "cg-" + "B" * 24} if unknown else {}
                return app.test_client().get(authorize_url(rp, pkce()[1], **extra))
            return get

        restore = pause_in(monkeypatch, audit, "record", AT_ONCE)
        statuses = _at_once([ask(one, False), ask(two, False), ask(one, False),
                             ask(two, False)])
        restore()
        assert statuses == [302] * AT_ONCE
        assert _events(one, "oidc_login_asked") == 1

        # An unknown app: refused on our own page, and noted once too.
        pause_in(monkeypatch, audit, "record", AT_ONCE)
        statuses = _at_once([ask(one, True), ask(two, True), ask(one, True), ask(two, True)])
        assert statuses == [400] * AT_ONCE
        assert _events(one, "oidc_bad_request") == 1


# --- the firm's look: each server's own, from its settings -----------------------------------

def test_a_look_asked_by_version_from_a_server_with_another_is_not_kept_for_a_day(tmp_path):
    """Each server reads PORTAL_COLOUR and PORTAL_LOGO at start (app.extensions["brand"]),
    and pages ask for /brand.css and /brand/logo by its version, kept for a day. While the
    servers are restarted one by one with a new look, a page from a restarted server asks for
    the new version, and the request may land on a server not yet restarted: its old look was
    kept for a day under the new version's address, so browsers (and any cache between) went
    on showing the old look after every server had the new one."""
    (tmp_path / "old.png").write_bytes(b"\x89PNG old logo")
    (tmp_path / "new.png").write_bytes(b"\x89PNG new logo")
    restarted = create_app(make_config(tmp_path, PORTAL_COLOUR="#0b3d2e",
                                       PORTAL_LOGO=str(tmp_path / "new.png")))
    not_yet = create_app(make_config(tmp_path, PORTAL_COLOUR="#1f4e8c",
                                     PORTAL_LOGO=str(tmp_path / "old.png")))
    page = restarted.test_client().get("/login").get_data(as_text=True)
    sheet = re.search(r'href="(/brand\.css\?v=\w+)"', page).group(1)
    logo = re.search(r'class="brand-logo" src="([^"]+)"', page).group(1)

    # The restarted server's own answers are kept for a day.
    for asked in (sheet, logo):
        assert restarted.test_client().get(asked).headers["Cache-Control"] \
            == "public, max-age=86400"
    # The other server answers with what it has, for now, but nobody keeps it.
    old_sheet = not_yet.test_client().get(sheet)
    assert "#1f4e8c" in old_sheet.get_data(as_text=True)
    assert old_sheet.headers["Cache-Control"] == "no-cache"
    old_logo = not_yet.test_client().get(logo)
    assert old_logo.data == b"\x89PNG old logo"
    assert old_logo.headers["Cache-Control"] == "no-cache"


# --- OpenID Connect signing keys: each process keeps the keys it has read ---------------------

def test_a_key_rotated_on_one_server_is_the_one_the_other_signs_with_at_once(
        tmp_path, databases):
    """Each process keeps the private keys it has decrypted (app.extensions["oidc_keys"], by
    kid: a key never changes), but which key is current is read from the database with
    every request, so a rotation on one server is seen by the other at once. (A guard: this
    held before the review.)"""
    from services.federation import oidc

    with two_servers(tmp_path, databases) as (one, two):
        first = one.test_client().get("/oauth/jwks").get_json()["keys"]
        with one.app_context():
            old = oidc.ensure_signing_key()
            oidc._private_key(old)  # kept by this process now
            db.session.remove()
        with two.app_context():
            new, _ = oidc.rotate_key()
            db.session.commit()
            new_kid = new.kid
            db.session.remove()

        published = one.test_client().get("/oauth/jwks").get_json()["keys"]
        assert [key["kid"] for key in first] == [old.kid]
        assert [key["kid"] for key in published] == [new_kid, old.kid]
        with one.app_context():
            assert oidc.ensure_signing_key().kid == new_kid
            assert oidc._private_key(oidc.ensure_signing_key()).kid == new_kid
            db.session.remove()


# --- "Forgotten your password?": at most three links an hour --------------------------------

@pytest.mark.parametrize("asked", ["over minutes", "by a double click"])
def test_three_reset_links_an_hour_hold_for_requests_prepared_at_once_on_two_servers(
        tmp_path, databases, smtp, monkeypatch, asked):
    """A reset request is looked up in the dispatcher (lifecycle.prepare_reset), which sends a
    link only while the account has had fewer than RESETS_PER_HOUR in the hour. Four requests
    prepared at once by the senders of two servers each counted "none yet" before any had
    written its link, and all four were sent. Requests a minute or less apart (a double
    click) get one link between them, under the same lock."""
    from models import Delivery
    from services import delivery
    from services.accounts import lifecycle

    if asked == "over minutes":  # the hourly cap alone decides
        monkeypatch.setattr(lifecycle, "_link_just_made", lambda *args: False)
    with two_servers(tmp_path, databases, smtp) as (one, two):
        add_user(one)
        with one.app_context():
            for _ in range(AT_ONCE):
                lifecycle.request_reset("client@example.com")
            db.session.commit()
            ids = delivery.claim_due(limit=AT_ONCE)
            db.session.remove()
        assert len(ids) == AT_ONCE
        pause_in(monkeypatch, audit, "record", AT_ONCE)  # after the count, before the link
        start = threading.Barrier(AT_ONCE)

        def prepare(app, delivery_id: int) -> None:
            start.wait(timeout=30)
            with app.app_context():
                delivery.process(delivery_id)
                db.session.remove()

        threads = [threading.Thread(target=prepare, args=(app, delivery_id))
                   for app, delivery_id in zip((one, two, one, two), ids)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        with one.app_context():
            kinds = db.session.execute(
                select(Delivery.kind, Delivery.status).where(Delivery.id.in_(ids))).all()
            db.session.remove()
        sent = [kind for kind, status in kinds if status != "cancelled"]
        links = lifecycle.RESETS_PER_HOUR if asked == "over minutes" else 1
        assert sent == ["reset"] * links, kinds
