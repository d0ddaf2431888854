"""deliveries.provider_parts: every part of a long text, and what its receipts said

A text too long for one SMS goes out in parts, each with its own Vonage message id and its
own delivery receipt. Only the first part's id was kept (provider_ref), so the receipts of
the others were refused as unknown, and a part that failed never showed. NULL for a text in
one part, and for email.

Revision ID: c41d7e9a2b63
Revises: f3a8c1d07e52
Create Date: 2026-12-04 00:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c41d7e9a2b63'
down_revision = 'f3a8c1d07e52'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider_parts', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('provider_parts')
