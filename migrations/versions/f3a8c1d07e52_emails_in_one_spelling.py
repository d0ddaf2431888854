"""store every email address in one spelling (services.emails.canonical)

Addresses were stored trimmed and lowercased only, so `other@ｅｘａｍｐｌｅ.com` (full-width
letters) or a domain written as `xn--...` passed the "already has an account" check of an
address that reaches the same mailbox. From now on they are stored and looked up in one
spelling: NFKC, lowercased, the domain as IDNA 2008 U-labels. This rewrites the addresses
already stored; one whose canonical spelling another account already has is left as it is
(and named in the output), for the operator to look at.

What was in flight keeps working (a firm upgrades with links in its clients' mailboxes and
messages in its outbox): a link bound to the account's state, address included
(services.accounts.tokens.fingerprint), is bound again to the address in its new spelling;
a new address waiting for its confirmation is rewritten too, or confirming it would store
an address no sign-in finds; and an email not yet sent goes to the new spelling, which a
queued new-password request looks its account up by.

Revision ID: f3a8c1d07e52
Revises: b7e4d2a91c05
Create Date: 2026-12-02 05:50:00

"""
import hashlib

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f3a8c1d07e52'
down_revision = 'b7e4d2a91c05'
branch_labels = None
depends_on = None

MAX_LENGTH = 254  # users.email, account_tokens.new_email, deliveries.destination


def upgrade():
    from services.emails import canonical

    bind = op.get_bind()
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String),
                     sa.column("password_hash", sa.String),
                     sa.column("deactivated_at", sa.DateTime(timezone=True)))
    links = sa.table("account_tokens", sa.column("id", sa.Integer),
                     sa.column("user_id", sa.Integer), sa.column("bound_to", sa.String),
                     sa.column("new_email", sa.String), sa.column("used_at", sa.DateTime),
                     sa.column("revoked_at", sa.DateTime))
    outbox = sa.table("deliveries", sa.column("id", sa.Integer),
                      sa.column("channel", sa.String), sa.column("destination", sa.String),
                      sa.column("status", sa.String))
    waiting = sa.and_(links.c.used_at.is_(None), links.c.revoked_at.is_(None))

    for link_id, new_email in bind.execute(
            sa.select(links.c.id, links.c.new_email)
            .where(waiting, links.c.new_email.is_not(None))).all():
        if canonical(new_email) != new_email and _fits(canonical(new_email)):
            bind.execute(links.update().where(links.c.id == link_id)
                         .values(new_email=canonical(new_email)))
    for message_id, destination in bind.execute(
            sa.select(outbox.c.id, outbox.c.destination)
            .where(outbox.c.channel == "email",
                   outbox.c.status.in_(("queued", "sending")))).all():
        if canonical(destination) != destination and _fits(canonical(destination)):
            bind.execute(outbox.update().where(outbox.c.id == message_id)
                         .values(destination=canonical(destination)))

    rows = bind.execute(sa.select(users.c.id, users.c.email, users.c.password_hash,
                                  users.c.deactivated_at)).all()
    taken = {email for _, email, _, _ in rows}
    for user_id, email, password_hash, deactivated_at in rows:
        spelled = canonical(email)
        if spelled == email:
            continue
        if spelled in taken:
            # Left for the operator: it cannot sign in (sign-in looks up the one spelling),
            # and the commands find it only when typed exactly as `users list` shows it.
            print(f"users.id {user_id}: {email!r} left as it is, and it cannot sign in: "
                  f"{spelled!r} is another account's address. Give it an address of its own "
                  f"(flask --app app users recover {email!r} --email NEW) or switch it off "
                  f"(flask --app app users deactivate {email!r}).")
            continue
        if not _fits(spelled):
            print(f"users.id {user_id}: {email!r} left as it is: its one spelling is longer "
                  f"than an address can be ({len(spelled)} characters, at most {MAX_LENGTH}). "
                  f"Give it a shorter address (flask --app app users recover {email!r} "
                  f"--email NEW).")
            continue
        bind.execute(users.update().where(users.c.id == user_id).values(email=spelled))
        taken.discard(email)
        taken.add(spelled)
        was, now = (_bound_to(user_id, address, password_hash, deactivated_at)
                    for address in (email, spelled))
        bind.execute(links.update().where(links.c.user_id == user_id, links.c.bound_to == was,
                                          waiting).values(bound_to=now))


def _fits(address: str) -> bool:
    """NFKC can lengthen an address (the ligature "ﬀ" becomes "ff"): one that would no longer
    fit the column stays as it is, rather than failing the whole upgrade on PostgreSQL."""
    return len(address) <= MAX_LENGTH


def _bound_to(user_id, email, password_hash, deactivated_at) -> str:
    """services.accounts.tokens.fingerprint as this release computes it: a link is bound to
    the account's id, address, password hash and whether it is switched on. Written out
    here, so that this migration keeps the meaning it had when it was released."""
    state = f"{user_id}\x1f{email}\x1f{password_hash}\x1f{deactivated_at is None}"
    return hashlib.sha256(state.encode()).hexdigest()


def downgrade():
    pass  # the canonical spelling is an address the old code reads as well
