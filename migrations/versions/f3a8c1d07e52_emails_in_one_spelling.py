"""store every email address in one spelling (services.emails.canonical)

Addresses were stored trimmed and lowercased only, so `other@ｅｘａｍｐｌｅ.com` (full-width
letters) or a domain written as `xn--...` passed the "already has an account" check of an
address that reaches the same mailbox. From now on they are stored and looked up in one
spelling: NFKC, lowercased, the domain as IDNA 2008 U-labels. This rewrites the addresses
already stored; one whose canonical spelling another account already has is left as it is
(and named in the output), for the operator to look at.

Revision ID: f3a8c1d07e52
Revises: b7e4d2a91c05
Create Date: 2026-12-02 05:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f3a8c1d07e52'
down_revision = 'b7e4d2a91c05'
branch_labels = None
depends_on = None


def upgrade():
    from services.emails import canonical

    bind = op.get_bind()
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String))
    rows = bind.execute(sa.select(users.c.id, users.c.email)).all()
    taken = {email for _, email in rows}
    for user_id, email in rows:
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
        bind.execute(users.update().where(users.c.id == user_id).values(email=spelled))
        taken.discard(email)
        taken.add(spelled)


def downgrade():
    pass  # the canonical spelling is an address the old code reads as well
