"""A firm that has run ClientGate since its first release upgrades to this one.

tests/production/test_migrations.py builds the schema from an empty database; firms upgrade
databases full of rows. Here a database is built at the first release's revision, filled with
the rows that release wrote (review7_old_data), upgraded with `flask db upgrade` as the
operator's guide says, and then used: the old clients sign in, support reads their history,
the messages waiting in the outbox go out, and the operator's commands find the right account.
One database per module, on this run's kind (SQLite, or PostgreSQL under scripts/pgtemp.py).
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, select, text

from app import create_app
from config import database_url
from extensions import db
from models import Delivery, SignIn, User
from services import delivery
from services.emails import canonical
from tests.conftest import Browser, make_config
from tests.production.conftest import SECRET_KEY, Databases, flask_cli
from tests.production.review7_old_data import (
    FIRST_RELEASE, PASSWORD, OldDatabase, fill_first_release,
)


class Firm:
    """The upgraded database, the ids of its old rows, and what the upgrade printed."""

    def __init__(self, url: str, ids: dict, upgraded) -> None:
        self.url = url
        self.ids = ids
        self.upgraded = upgraded

    def rows(self, sql: str, **params):
        engine = create_engine(database_url(self.url))
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql), params).all()
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def firm(tmp_path_factory):
    databases = Databases(tmp_path_factory.mktemp("first-release"))
    url = databases.new()
    try:
        flask_cli("db", "upgrade", FIRST_RELEASE, database_url=url)
        old = OldDatabase(url, SECRET_KEY)
        try:
            ids = fill_first_release(old)
        finally:
            old.close()
        yield Firm(url, ids, flask_cli("db", "upgrade", database_url=url))
    finally:
        databases.drop_all()


@pytest.fixture(scope="module")
def app(firm, module_smtp, tmp_path_factory):
    """The new release's app on the upgraded database, sending mail to the SMTP fixture."""
    config = make_config(tmp_path_factory.mktemp("app"), module_smtp,
                         SQLALCHEMY_DATABASE_URI=database_url(firm.url), SECRET_KEY=SECRET_KEY)
    application = create_app(config)
    yield application
    application.extensions["dispatcher"].stop()
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def dispatch(app) -> int:
    """One round of the dispatcher, as the servers' background thread runs it."""
    with app.app_context():
        return delivery.run_once()


def sign_in(app, smtp, email: str) -> Browser:
    """Password, then the code from the email that arrived, as the client would (the code
    goes to the address in its one spelling)."""
    browser = Browser(app)
    count = len(smtp.messages)
    response = browser.log_in(email, PASSWORD)
    assert response.status_code == 302, response.get_data(as_text=True)
    dispatch(app)
    smtp.wait_for(count + 1)
    response = browser.enter_code(smtp.last_to(canonical(email)).code)
    assert response.status_code == 302 and "/login" not in response.headers["Location"], \
        response.get_data(as_text=True)
    return browser


def words(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


# --- the upgrade itself --------------------------------------------------------------------

def test_every_old_row_survives_the_upgrade_with_sensible_new_columns(firm):
    (users,) = firm.rows("SELECT count(*) FROM users")[0]
    assert users == 9
    # New NOT NULL columns got values the app reads: no methods known for old sessions.
    (amr,) = firm.rows("SELECT amr FROM auth_sessions WHERE id = :id", id=firm.ids["ann_session"])[0]
    assert amr in ([], "[]")
    (name, deactivated) = firm.rows("SELECT name, deactivated_at FROM users WHERE id = :id",
                                    id=firm.ids["ann"])[0]
    assert name is None and deactivated is None
    (statuses,) = zip(*firm.rows("SELECT DISTINCT status FROM sign_ins"))
    assert set(statuses) == {"expired", "superseded", "completed", "locked", "pending"}


def test_old_spellings_are_rewritten_to_the_one_spelling(firm):
    emails = {row[0]: row[1] for row in firm.rows("SELECT id, email FROM users")}
    assert emails[firm.ids["ann"]] == "ann.client@example.com"
    assert emails[firm.ids["admin"]] == "admin@firm.example"
    assert emails[firm.ids["carol"]] == "carol@example.com"
    # One mailbox, two accounts: the second spelling cannot take the first's; it is named.
    assert emails[firm.ids["bob"]] == "bob@example.com"
    assert emails[firm.ids["bob_old_spelling"]] == "Bob@Example.com"
    (said,) = [line for line in firm.upgraded.stdout.splitlines() if "Bob@Example.com" in line]
    assert "left as it is, and it cannot sign in" in said
    assert "users recover 'Bob@Example.com' --email NEW" in said


def test_upgrade_run_again_finds_nothing_to_do_and_changes_nothing(firm):
    before = firm.rows("SELECT id, email FROM users ORDER BY id")
    again = flask_cli("db", "upgrade", database_url=firm.url)
    assert "Running upgrade" not in again.stderr
    assert firm.rows("SELECT id, email FROM users ORDER BY id") == before


# --- the app on the old rows ---------------------------------------------------------------

def test_a_code_queued_before_the_upgrade_is_sent_after_it(firm, app, module_smtp):
    dispatch(app)
    mail = module_smtp.last_to("dee@example.com")
    assert mail.code == firm.ids["dee_code"]
    with app.app_context():
        assert db.session.get(Delivery, firm.ids["dee_delivery"]).status == "sent"
        # The notice a killed server had in hand is sent too, once its claim ran out.
        assert db.session.get(Delivery, firm.ids["notice_in_hand"]).status == "sent"
        # The sign-in whose code ran out while the servers were stopped is ended.
        assert db.session.get(SignIn, firm.ids["stale_sign_in"]).status == "expired"
    assert "Codes now go by text message." in module_smtp.last_to("sam@example.com").text


def test_an_old_client_signs_in_end_to_end_under_the_old_spelling_of_the_address(app, module_smtp):
    browser = sign_in(app, module_smtp, "Ann.Client@Example.COM")
    assert browser.get("/portal").status_code == 200
    devices = browser.get("/account/devices")
    assert devices.status_code == 200
    # Her session from before the upgrade is listed, though nothing says how it was proved.
    assert "Firefox" in words(devices.get_data(as_text=True))


def test_support_reads_an_old_clients_whole_history(firm, app, module_smtp):
    staff = sign_in(app, module_smtp, "admin@firm.example")
    page = staff.get(f"/support/clients/{firm.ids['ann']}")
    assert page.status_code == 200
    shown = words(page.get_data(as_text=True))
    for step in ("Code typed: right", "Signed in"):
        assert step in shown
    sam = staff.get(f"/support/clients/{firm.ids['sam']}")
    assert sam.status_code == 200
    assert "Vonage refused the message" in words(sam.get_data(as_text=True))
    assert staff.get(f"/support/clients/{firm.ids['ann']}/export.csv").status_code == 200
    assert staff.get("/support?q=bob%40example.com").status_code == 200


def test_users_list_shows_every_old_account(firm):
    listed = flask_cli("users", "list", database_url=firm.url).stdout
    for email in ("ann.client@example.com", "sam@example.com", "Bob@Example.com",
                  "bob@example.com", "carol@example.com"):
        assert f" {email} " in listed


# --- two spellings of one mailbox ----------------------------------------------------------

def role_of(firm, user_id: int) -> str:
    return firm.rows("SELECT role FROM users WHERE id = :id", id=user_id)[0][0]


def test_a_command_naming_an_address_acts_on_the_account_that_signs_in_with_it(firm):
    """`users set-role bob@example.com` must change the account that signs in as
    bob@example.com, not the old spelling the upgrade left beside it (which the database
    happens to return first): a deactivate would otherwise leave the live account on."""
    flask_cli("users", "set-role", "bob@example.com", "support", database_url=firm.url)
    assert role_of(firm, firm.ids["bob"]) == "support"
    assert role_of(firm, firm.ids["bob_old_spelling"]) == "client"
    # Any spelling of that address names the same account...
    flask_cli("users", "set-role", " BOB@example.COM ", "client", database_url=firm.url)
    assert role_of(firm, firm.ids["bob"]) == "client"
    # ...and the old one, typed as `users list` shows it, names the account left beside it.
    flask_cli("users", "set-role", "Bob@Example.com", "admin", database_url=firm.url)
    assert role_of(firm, firm.ids["bob_old_spelling"]) == "admin"
    assert role_of(firm, firm.ids["bob"]) == "client"
    flask_cli("users", "set-role", "Bob@Example.com", "client", database_url=firm.url)


def test_a_lockout_email_queued_before_the_upgrade_names_the_new_password_page(firm, app,
                                                                               module_smtp):
    """The lockout email asks a client who was not trying to sign in to set a new password
    "at {{ forgot_url }}"; a release before that link came queued it without one, and it went
    out as "set a new password at , or contact us"."""
    dispatch(app)
    mail = module_smtp.last_to("locked@example.com")
    assert "set a new password at http://localhost/password/forgot" in mail.text
    assert " at , " not in mail.text
