"""One mailbox, one account: an address is stored and looked up in one spelling.

`other@ｅｘａｍｐｌｅ.com` (full-width letters) and a domain written as `xn--...` reach the
same mailbox as the plain spelling. Compared as typed, they passed the "that address already
has an account" check, and two accounts could end up with one mailbox.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from config import database_url
from services.emails import canonical
from tests.accounts.test_email_change import ask
from tests.conftest import Browser, add_user, user_by_email
from tests.production.conftest import DATABASE_KIND, Databases, flask_cli


@pytest.mark.parametrize("typed, stored", [
    (" Other@Example.COM ", "other@example.com"),
    ("other@ｅｘａｍｐｌｅ.com", "other@example.com"),
    ("ＡＮＮＡ@example.com", "anna@example.com"),
    ("anna@xn--strae-oqa.de", "anna@straße.de"),
    ("anna@STRASSE.de", "anna@strasse.de"),  # not straße.de: another domain (IDNA 2008)
    ("anna@straße.de", "anna@straße.de"),
    ("no at sign", "no at sign"),  # left for the checks to refuse in their own words
])
def test_one_spelling(typed, stored):
    assert canonical(typed) == stored


def test_a_look_alike_of_a_taken_address_gets_a_note_not_a_link(app, user, smtp, deliver,
                                                                 sign_in):
    add_user(app, "other@example.com")
    b = sign_in()
    count = len(smtp.messages)
    assert ask(b, "other@ｅｘａｍｐｌｅ.com").status_code == 302
    deliver()
    smtp.wait_for(count + 1)
    note = smtp.last_to("other@example.com")
    assert "already has an account" in note.subject
    assert "/account/email/confirm/" not in note.text


def test_signing_in_with_another_spelling_finds_the_account(app, smtp, deliver):
    add_user(app, "anna@straße.de")
    b = Browser(app)
    response = b.log_in("ANNA@xn--strae-oqa.de")
    assert response.status_code == 302 and response.headers["Location"] == "/login/code"


def test_a_staff_invitation_of_another_spelling_is_already_taken(app, smtp, deliver, sign_in):
    add_user(app, "staff@example.com", role="support")
    staff = sign_in("staff@example.com", Browser(app))
    add_user(app, "other@example.com")
    answer = staff.post("/support/clients/new", {"email": "OTHER@ｅｘａｍｐｌｅ.com",
                                                 "channel": "email"})
    assert answer.status_code in (200, 409, 422)
    assert "already has an account" in answer.get_data(as_text=True)
    assert user_by_email(app, "other@ｅｘａｍｐｌｅ.com") is None


def test_the_migration_rewrites_the_addresses_already_stored(tmp_path):
    databases = Databases(tmp_path, DATABASE_KIND)
    url = databases.new()
    try:
        flask_cli("db", "upgrade", "b7e4d2a91c05", database_url=url)
        engine = sa.create_engine(database_url(url))
        users = sa.table("users", sa.column("id"), sa.column("email"),
                         sa.column("password_hash"), sa.column("role"), sa.column("channel"),
                         sa.column("created_at"), sa.column("lockout_count"))
        stored = ["plain@example.com", "full@ｅｘａｍｐｌｅ.com", "anna@xn--strae-oqa.de",
                  "dup@example.com", "dup@ｅｘａｍｐｌｅ.com"]
        with engine.begin() as conn:
            conn.execute(users.insert(), [
                {"email": email, "password_hash": "x", "role": "client", "channel": "email",
                 "created_at": datetime.now(timezone.utc), "lockout_count": 0}
                for email in stored])
        result = flask_cli("db", "upgrade", database_url=url)
        with engine.connect() as conn:
            now = set(conn.execute(sa.select(users.c.email)).scalars())
        engine.dispose()
        assert now == {"plain@example.com", "full@example.com", "anna@straße.de",
                       "dup@example.com", "dup@ｅｘａｍｐｌｅ.com"}
        assert "'dup@ｅｘａｍｐｌｅ.com' left as it is" in result.stdout + result.stderr
    finally:
        databases.drop_all()


def test_a_plain_ascii_domain_is_kept_as_idna_would_give_it():
    """canonical() does not ask IDNA about a lowercase ASCII domain with no xn-- label: IDNA
    gives such a domain back as it is, or refuses it, which leaves it as it is too. Checked
    against IDNA on awkward domains and on random strings of the characters domains use."""
    import random

    from services import emails

    domains = ["example.com", "example.com.", "a..b", ".example", "-bad.com", "bad-.com",
               "ab--cd.com", "under_score.com", "1.2.3.4", "[127.0.0.1]", "x" * 64 + ".com",
               "a.b.c.d.e.f.g", "localhost", "exa mple.com", "ex%ample.com", "xn.com", "q--.a"]
    alphabet = "abcdexyz019-._"
    chance = random.Random(16)
    domains += ["".join(chance.choice(alphabet) for _ in range(chance.randint(1, 12)))
                for _ in range(3000)]
    for domain in domains:
        through_idna = emails._u_labels(domain)
        expected = f"anna@{domain}" if through_idna is None else f"anna@{through_idna}"
        assert canonical(f"anna@{domain}") == expected, domain
