"""index for the dispatcher's sweep of expired sign-ins

Every dispatcher round ends the pending sign-ins whose code has run out
(status = 'pending' AND expires_at <= now). Without an index on (status, expires_at) that
scanned the whole sign_ins table each round: 0.2 s at a million sign-ins on SQLite, many
times a second under load (found by the benchmark, bench/run.py, issue 8).

Revision ID: 5e1a7c3d9b20
Revises: 3c9d2f5a7b10
Create Date: 2026-11-28 12:00:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '5e1a7c3d9b20'
down_revision = '3c9d2f5a7b10'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_sign_ins_status_expires', 'sign_ins', ['status', 'expires_at'],
                    unique=False)


def downgrade():
    op.drop_index('ix_sign_ins_status_expires', table_name='sign_ins')
