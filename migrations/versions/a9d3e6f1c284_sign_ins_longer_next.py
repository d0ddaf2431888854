"""sign_ins.next_url: room for an app's whole sign-in request (1024 characters, not 512)

The address a client goes back to after signing in carries, for an app signing in through
OpenID Connect, the app's whole authorization request. An app that keeps the page the client
asked for in its `state` (oauth2-proxy does) sends one of 450 to 600 characters, which did
not fit, and its client was told the app's sign-in did not work.

SQLite does not hold a VARCHAR to its length, so only PostgreSQL's column changes (a change
of its declared type only: no row is rewritten).

Revision ID: a9d3e6f1c284
Revises: c41d7e9a2b63
Create Date: 2026-12-04 13:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a9d3e6f1c284'
down_revision = 'c41d7e9a2b63'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column('sign_ins', 'next_url', type_=sa.String(length=1024),
                        existing_type=sa.String(length=512), existing_nullable=True)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column('sign_ins', 'next_url', type_=sa.String(length=512),
                        existing_type=sa.String(length=1024), existing_nullable=True)
