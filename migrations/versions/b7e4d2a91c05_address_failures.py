"""wrong passwords per email address, under a keyed hash, in a table of their own

A wrong password for an address with no account was counted by reading every
`password_failed` event of the last day and pulling `email_key` out of each row's JSON:
~80 ms at 50,000 unrelated failures against ~0.2 ms for a known account (a timing oracle,
and on SQLite it ran under the write lock). `address_failures` keeps one short row per wrong
password (and per pause), for known and unknown addresses alike, read by
(email_key, created_at).

Revision ID: b7e4d2a91c05
Revises: e05e20c9aba6
Create Date: 2026-12-02 02:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7e4d2a91c05'
down_revision = 'e05e20c9aba6'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('address_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email_key', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paused_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_address_failures'))
    )
    with op.batch_alter_table('address_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_address_failures_created_at'), ['created_at'],
                              unique=False)
        batch_op.create_index('ix_address_failures_key_created', ['email_key', 'created_at'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('address_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_address_failures_key_created')
        batch_op.drop_index(batch_op.f('ix_address_failures_created_at'))

    op.drop_table('address_failures')
