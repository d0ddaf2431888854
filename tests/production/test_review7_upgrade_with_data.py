"""A firm that has run ClientGate since its first release upgrades to this one.

tests/production/test_migrations.py builds the schema from an empty database; firms upgrade
databases full of rows. Here a database is built at an old revision, filled with the rows the
app of that revision wrote (review7_old_data), upgraded with `flask db upgrade` as the
operator's guide says, and then used: the old clients sign in, support reads their history,
the messages and links in flight still work, and the operator's commands find the right
account. Two such databases are shared by the module's tests (the first release, and the
release before addresses were stored in one spelling), and one more is upgraded and killed
midway; all on this run's kind (SQLite, or PostgreSQL under scripts/pgtemp.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

from app import create_app
from config import database_url
from db_setup import configure_engine
from extensions import db
from models import Delivery, SignIn, User
from services import delivery
from services.emails import canonical
from tests.conftest import Browser, let_go, make_config
from tests.production.conftest import (
    DATABASE_KIND, ROOT, SECRET_KEY, Databases, flask_cli, production_env,
)
from tests.production.review7_old_data import (
    BEFORE_ONE_SPELLING, FIRST_RELEASE, PASSWORD, OldDatabase, fill_before_one_spelling,
    fill_first_release,
)


def row_counts(url: str) -> dict[str, int]:
    """How many rows each table holds (alembic_version aside)."""
    engine = create_engine(database_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            quote = engine.dialect.identifier_preparer.quote
            return {name: conn.execute(text(f"SELECT count(*) FROM {quote(name)}")).scalar()
                    for name in inspect(conn).get_table_names() if name != "alembic_version"}
    finally:
        engine.dispose()


class Firm:
    """The upgraded database, the ids of its old rows, what the upgrade printed, and how many
    rows each table held before and just after it."""

    def __init__(self, url: str, ids: dict, upgrade) -> None:
        self.url = url
        self.ids = ids
        self.before = row_counts(url)
        self.upgraded = upgrade()
        self.after = row_counts(url)

    def rows(self, sql: str, **params):
        engine = create_engine(database_url(self.url))
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql), params).all()
        finally:
            engine.dispose()


@contextmanager
def firm_at(folder, revision: str, fill):
    """A database built at `revision` and filled by `fill` in that revision's own tables; the
    Firm's `upgrade` brings it to this release."""
    databases = Databases(folder)
    url = databases.new()
    try:
        flask_cli("db", "upgrade", revision, database_url=url)
        old = OldDatabase(url, SECRET_KEY)
        try:
            ids = fill(old)
        finally:
            old.close()
        yield Firm(url, ids, lambda: flask_cli("db", "upgrade", database_url=url))
    finally:
        databases.drop_all()


@contextmanager
def app_on(firm: Firm, smtp, folder):
    """The new release's app on the firm's database, sending mail to `smtp`."""
    config = make_config(folder, smtp, SQLALCHEMY_DATABASE_URI=database_url(firm.url),
                         SECRET_KEY=SECRET_KEY)
    application = create_app(config)
    yield application
    let_go(application)


@pytest.fixture(scope="module")
def firm(tmp_path_factory):
    with firm_at(tmp_path_factory.mktemp("first-release"), FIRST_RELEASE,
                 fill_first_release) as made:
        yield made


@pytest.fixture(scope="module")
def app(firm, module_smtp, tmp_path_factory):
    with app_on(firm, module_smtp, tmp_path_factory.mktemp("app")) as application:
        yield application


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


def test_the_upgrades_lose_no_row_of_any_table(firm, later_firm):
    """A migration that rebuilds a table on SQLite (batch mode) drops the old one, and with
    foreign keys on, that deletes every row pointing at it (ON DELETE CASCADE): events,
    messages and sessions would go without an error."""
    for upgraded in (firm, later_firm):
        assert {name: upgraded.after[name] for name in upgraded.before} == upgraded.before


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


def test_a_browser_from_before_the_upgrade_keeps_its_sign_in_and_its_code_page(firm, app,
                                                                              module_smtp):
    """Cookies outlive the upgrade: one signed in stays signed in; one on the code page (the
    first release's session held only the sign-in's id) takes the code that was waiting."""
    signed_in = Browser(app)
    with signed_in.client.session_transaction() as cookie:
        cookie.update(sid=firm.ids["sam_token"], _user_id=str(firm.ids["sam"]), _fresh=True)
    assert signed_in.get("/portal").status_code == 200
    on_the_code_page = Browser(app)
    with on_the_code_page.client.session_transaction() as cookie:
        cookie["signin_id"] = firm.ids["dee_sign_in"]
    dispatch(app)
    done = on_the_code_page.enter_code(module_smtp.last_to("dee@example.com").code)
    assert done.status_code == 302 and done.headers["Location"].endswith("/portal"), \
        words(done.get_data(as_text=True))


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
    assert staff.get("/support").status_code == 200


def test_users_list_shows_every_old_account_and_prune_deletes_old_history(firm):
    listed = flask_cli("users", "list", database_url=firm.url).stdout
    for email in ("ann.client@example.com", "sam@example.com", "Bob@Example.com",
                  "bob@example.com", "carol@example.com"):
        assert f" {email} " in listed
    # 30 days: only the two events of the accounts' first days (60 days ago) are that old.
    pruned = flask_cli("prune", "--days", "30", database_url=firm.url).stdout
    assert "0 sign-ins, 2 events" in pruned


# --- two spellings of one mailbox ----------------------------------------------------------

def role_of(firm, user_id: int) -> str:
    return firm.rows("SELECT role FROM users WHERE id = :id", id=user_id)[0][0]


def test_a_command_naming_an_address_acts_on_the_account_that_signs_in_with_it(firm):
    """`users set-role bob@example.com` must change the account that signs in as
    bob@example.com, not the old spelling the upgrade left beside it (which the database
    happens to return first): a deactivate would otherwise leave the live account on."""
    flask_cli("users", "set-role", " BOB@example.com ", "support", database_url=firm.url)
    assert role_of(firm, firm.ids["bob"]) == "support"
    assert role_of(firm, firm.ids["bob_old_spelling"]) == "client"
    # The old spelling, typed as `users list` shows it, names the account left beside it.
    flask_cli("users", "set-role", "Bob@Example.com", "admin", database_url=firm.url)
    assert role_of(firm, firm.ids["bob_old_spelling"]) == "admin"
    assert role_of(firm, firm.ids["bob"]) == "support"


def test_a_lockout_email_queued_before_the_upgrade_names_the_new_password_page(firm, app,
                                                                               module_smtp):
    """The lockout email asks a client who was not trying to sign in to set a new password
    "at {{ forgot_url }}"; a release before that link came queued it without one, and it went
    out as "set a new password at , or contact us"."""
    dispatch(app)
    mail = module_smtp.last_to("locked@example.com")
    assert "set a new password at http://localhost/password/forgot" in mail.text
    assert " at , " not in mail.text


# --- a firm upgrading from the release before one spelling ---------------------------------

@pytest.fixture(scope="module")
def later_firm(tmp_path_factory):
    with firm_at(tmp_path_factory.mktemp("before-one-spelling"), BEFORE_ONE_SPELLING,
                 fill_before_one_spelling) as made:
        yield made


@pytest.fixture(scope="module")
def later_app(later_firm, module_smtp, tmp_path_factory):
    with app_on(later_firm, module_smtp, tmp_path_factory.mktemp("later-app")) as application:
        yield application


NEW_PASSWORD = "a brand new passphrase 2"


def test_an_address_whose_one_spelling_is_too_long_is_left_and_named_not_a_failed_upgrade(
        later_firm):
    """On PostgreSQL the rewritten address overflowed VARCHAR(254), and the whole upgrade
    stopped with "value too long"; the firm's servers could not start on the new release."""
    address = later_firm.ids["long_address"]
    assert later_firm.rows("SELECT email FROM users WHERE id = :id",
                           id=later_firm.ids["zed"])[0][0] == address
    (said,) = [line for line in later_firm.upgraded.stdout.splitlines() if address in line]
    assert "left as it is: its one spelling is longer than an address can be" in said


def test_an_invitation_sent_before_the_upgrade_still_lets_the_client_in(later_firm, later_app,
                                                                       module_smtp):
    """The upgrade rewrote the invited address to its one spelling; the link was bound to the
    account's state, address included, and must still work."""
    browser = Browser(later_app)
    link = f"/welcome/{later_firm.ids['carol_link']}"
    assert browser.get(link).status_code == 200
    saved = browser.post(link, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert saved.status_code == 302, words(saved.get_data(as_text=True))
    count = len(module_smtp.messages)
    assert browser.log_in("carol@example.com", NEW_PASSWORD).status_code == 302
    dispatch(later_app)
    module_smtp.wait_for(count + 1)
    assert browser.enter_code(module_smtp.last_to("carol@example.com").code).status_code == 302


def test_a_reset_link_sent_before_the_upgrade_still_works(later_firm, later_app):
    browser = Browser(later_app)
    page = browser.get(f"/password/reset/{later_firm.ids['fay_link']}")
    assert page.status_code == 200, words(page.get_data(as_text=True))


def test_a_new_address_typed_before_the_upgrade_is_confirmed_in_its_one_spelling(
        later_firm, later_app, module_smtp):
    """An address the old form stored with a full-width letter, confirmed after the upgrade,
    must become the address the client signs in with, not one no sign-in can find."""
    browser = Browser(later_app)
    link = f"/account/email/confirm/{later_firm.ids['erin_link']}"
    assert browser.get(link).status_code == 200
    done = browser.post(link, {"current_password": PASSWORD})
    assert done.status_code == 302, words(done.get_data(as_text=True))
    with later_app.app_context():
        assert db.session.get(User, later_firm.ids["erin"]).email == "erin.new@example.com"
    sign_in(later_app, module_smtp, "erin.new@example.com")


def test_a_new_password_asked_for_before_the_upgrade_is_sent_after_it(later_firm, later_app,
                                                                     module_smtp):
    """The request waits under the address as typed; the dispatcher looks the account up by
    it, and the upgrade rewrote the account's address to its one spelling."""
    dispatch(later_app)
    with later_app.app_context():
        request = db.session.get(Delivery, later_firm.ids["ivy_request"])
        assert request.status == "sent", request.last_error
    mail = module_smtp.last_to("ivy@xn--exmple-cua.com")  # the mail server's form of the domain
    assert "/password/reset/" in mail.text


@pytest.fixture(scope="module")
def gus(later_firm, later_app) -> Browser:
    """Gus, who signs in with an authenticator app, signed in once for the tests that need
    him (an app code is single use)."""
    import pyotp

    browser = Browser(later_app)
    assert browser.log_in("gus@example.com", PASSWORD).status_code == 302
    done = browser.enter_code(pyotp.TOTP(later_firm.ids["gus_secret"]).now())
    assert done.status_code == 302 and "/login" not in done.headers["Location"], \
        words(done.get_data(as_text=True))
    return browser


def test_an_authenticator_app_client_signs_in_after_the_upgrade(gus):
    assert gus.get("/account/security").status_code == 200
    assert gus.get("/account/devices").status_code == 200


def test_an_app_signing_in_through_openid_connect_keeps_its_key_and_token(later_firm,
                                                                         later_app):
    client = later_app.test_client()
    assert later_firm.ids["kid"] in client.get("/oauth/jwks").get_data(as_text=True)
    info = client.get("/oauth/userinfo",
                      headers={"Authorization": f"Bearer {later_firm.ids['access_token']}"})
    assert info.status_code == 200 and info.json["sub"] == str(later_firm.ids["gus"])
    listed = flask_cli("oidc", "list-clients", database_url=later_firm.url).stdout
    assert "Client files" in listed and later_firm.ids["app_client_id"] in listed


def test_an_app_registered_before_the_upgrade_signs_a_client_in_with_the_old_key(later_firm,
                                                                                 later_app, gus):
    """The whole authorization code flow, with the app's registration, secret and signing
    key as the release before wrote them."""
    import jwt

    from tests.oidc.conftest import App, authorize_url, code_from, exchange, pkce

    files = App(later_firm.ids["app_client_id"], "an app's secret",
                "https://files.firm.example/oauth2/callback")
    verifier, challenge = pkce()
    code = code_from(gus.get(authorize_url(files, challenge)))["code"]
    tokens = exchange(later_app.test_client(), files, code, verifier)
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    assert jwt.get_unverified_header(tokens.json["id_token"])["kid"] == later_firm.ids["kid"]


def test_support_and_users_list_read_the_later_rows(later_firm, later_app, module_smtp):
    listed = flask_cli("users", "list", database_url=later_firm.url).stdout
    assert re.search(r"hal@example\.com .* off", listed)
    staff = sign_in(later_app, module_smtp, "admin@firm.example")
    for user in ("gus", "hal", "fay", "carol"):
        page = staff.get(f"/support/clients/{later_firm.ids[user]}")
        assert page.status_code == 200, (user, words(page.get_data(as_text=True))[:500])


# --- an upgrade killed midway ---------------------------------------------------------------

# `flask db upgrade` that dies, as on SIGKILL or a power cut (no cleanup, no rollback sent),
# as it starts the OpenID Connect migration: after the support-console indexes and
# auth_sessions.amr have run in the upgrade's one transaction.
DIES_MIDWAY = """
import os, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine

@event.listens_for(Engine, "before_cursor_execute")
def die(conn, cursor, statement, parameters, context, executemany):
    if "CREATE TABLE oauth_clients" in statement:
        os._exit(9)

from flask.cli import main
sys.argv = ["flask", "--app", "app", "db", "upgrade"]
main()
"""


def test_an_upgrade_killed_midway_leaves_the_old_schema_and_rows_as_they_were(tmp_path):
    """The migrations already run go back with the rest (one transaction, migrations/env.py,
    on SQLite too), and the next upgrade starts afresh and finishes."""
    databases = Databases(tmp_path)
    url = databases.new()
    engine = create_engine(database_url(url), poolclass=NullPool)  # no session kept open
    try:
        flask_cli("db", "upgrade", FIRST_RELEASE, database_url=url)
        old = OldDatabase(url, SECRET_KEY)
        try:
            fill_first_release(old)
        finally:
            old.close()
        with engine.connect() as conn:
            users_before = conn.execute(text("SELECT id, email FROM users ORDER BY id")).all()
        died = subprocess.run([sys.executable, "-c", DIES_MIDWAY], cwd=ROOT, timeout=120,
                              env=production_env(url), capture_output=True, text=True)
        assert died.returncode == 9, died.stderr
        assert "Running upgrade 8a4b6c2d1e30 -> 439215e7b535" in died.stderr
        with engine.connect() as conn:
            found = inspect(conn)
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() \
                == FIRST_RELEASE
            assert "oauth_clients" not in found.get_table_names()
            assert "amr" not in {c["name"] for c in found.get_columns("auth_sessions")}
            assert "ix_sign_ins_user_created" not in {
                i["name"] for i in found.get_indexes("sign_ins")}
            assert conn.execute(text("SELECT id, email FROM users ORDER BY id")).all() \
                == users_before
        flask_cli("db", "upgrade", database_url=url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT email FROM users WHERE email LIKE 'ann%'")) \
                .scalar() == "ann.client@example.com"
    finally:
        engine.dispose()
        databases.drop_all()


# --- a migration that rebuilds a table on SQLite --------------------------------------------

REBUILDS_SIGN_INS = '''"""a later release's migration that SQLite can do only by rebuilding sign_ins"""
from alembic import op

revision = "r7probe00001"
down_revision = {head!r}
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("sign_ins", recreate="always"):
        pass


def downgrade():
    pass
'''

DANGLING_EVENT = '''"""a migration that writes an event of an account that is not there"""
from alembic import op

revision = "r7probe00002"
down_revision = "r7probe00001"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("INSERT INTO events (created_at, type, user_id, detail)"
               " VALUES (CURRENT_TIMESTAMP, 'x', 999999, '{}')")


def downgrade():
    pass
'''


@pytest.mark.skipif(DATABASE_KIND != "sqlite", reason="batch mode rebuilds tables on SQLite")
def test_a_later_migration_rebuilding_a_table_keeps_the_rows_that_point_at_it(tmp_path):
    """Alembic's batch mode on SQLite copies the table and drops the old one; with foreign
    keys on, the drop deleted every event, message and session of those sign-ins (ON DELETE
    CASCADE) and the upgrade reported success. migrations/env.py runs them with foreign keys
    off and checks them at the end."""
    import shutil

    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    directory = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", directory,
                    ignore=shutil.ignore_patterns("__pycache__"))
    config = AlembicConfig(str(directory / "alembic.ini"))
    config.set_main_option("script_location", str(directory))
    (head,) = ScriptDirectory.from_config(config).get_heads()
    (directory / "versions" / "r7probe00001_rebuild_sign_ins.py").write_text(
        REBUILDS_SIGN_INS.replace("{head!r}", repr(head)))

    databases = Databases(tmp_path)
    url = databases.new()
    try:
        flask_cli("db", "upgrade", FIRST_RELEASE, database_url=url)
        old = OldDatabase(url, SECRET_KEY)
        try:
            fill_first_release(old)
        finally:
            old.close()
        flask_cli("db", "upgrade", database_url=url)
        before = row_counts(url)
        flask_cli("db", "upgrade", "--directory", str(directory), database_url=url)
        assert row_counts(url) == before
        # A migration that would leave a row pointing at nothing is refused, in one line.
        (directory / "versions" / "r7probe00002_dangling_event.py").write_text(
            DANGLING_EVENT)
        refused = flask_cli("db", "upgrade", "--directory", str(directory),
                            database_url=url, check=False)
        assert refused.returncode == 1
        assert refused.stderr.splitlines()[-1] == (
            "Error: the upgrade would leave 1 row(s) pointing at rows that are not there "
            "(first: events row 41, in users); nothing was changed")
        assert row_counts(url) == before
        # And foreign keys still hold for the app afterwards (db_setup turns them on).
        engine = create_engine(database_url(url), poolclass=NullPool)
        configure_engine(engine)
        try:
            with pytest.raises(IntegrityError, match="(?i)foreign key"):
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO events (created_at, type, user_id, detail)"
                                      " VALUES (CURRENT_TIMESTAMP, 'x', 999999, '{}')"))
        finally:
            engine.dispose()
    finally:
        databases.drop_all()
