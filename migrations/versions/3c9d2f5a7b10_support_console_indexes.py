"""indexes for the support console and for pruning old history

A client's timeline is read a page at a time by (user_id, created_at); the list of sign-ins
that went wrong reads recent events by (type, created_at). The other three index columns that
point at sign-ins or messages, so that deleting old rows (`flask prune`) does not make the
database scan a whole table for each row it deletes.

Revision ID: 3c9d2f5a7b10
Revises: 722ee4288f6e
Create Date: 2026-11-28 10:00:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '3c9d2f5a7b10'
down_revision = '722ee4288f6e'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_sign_ins_user_created', 'sign_ins', ['user_id', 'created_at'], unique=False)
    op.create_index('ix_sign_ins_superseded_by_id', 'sign_ins', ['superseded_by_id'], unique=False)
    op.create_index('ix_events_type_created', 'events', ['type', 'created_at'], unique=False)
    op.create_index('ix_events_delivery_id', 'events', ['delivery_id'], unique=False)
    op.create_index('ix_auth_sessions_sign_in_id', 'auth_sessions', ['sign_in_id'], unique=False)


def downgrade():
    op.drop_index('ix_auth_sessions_sign_in_id', table_name='auth_sessions')
    op.drop_index('ix_events_delivery_id', table_name='events')
    op.drop_index('ix_events_type_created', table_name='events')
    op.drop_index('ix_sign_ins_superseded_by_id', table_name='sign_ins')
    op.drop_index('ix_sign_ins_user_created', table_name='sign_ins')
