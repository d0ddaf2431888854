"""auth_sessions.amr: how each session's client proved who they are (RFC 8176)

The OpenID Connect provider's `amr` claim and the audit trail read it; passkeys and
authenticator apps add their own method names.

Revision ID: 8a4b6c2d1e30
Revises: 5e1a7c3d9b20
Create Date: 2026-12-01 05:45:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '8a4b6c2d1e30'
down_revision = '5e1a7c3d9b20'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('amr', sa.JSON(), nullable=False,
                                      server_default=sa.text("'[]'")))


def downgrade():
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.drop_column('amr')
