"""OpenID Connect provider: registered apps, authorization codes, access tokens, signing keys

Codes, tokens and client secrets are stored only as SHA-256 hashes; the signing key's
private half is Fernet-encrypted under a key derived from SECRET_KEY.

Revision ID: 439215e7b535
Revises: 8a4b6c2d1e30
Create Date: 2026-12-01 05:55:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '439215e7b535'
down_revision = '8a4b6c2d1e30'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'oauth_clients',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('client_id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=True),
        sa.Column('redirect_uris', sa.JSON(), nullable=False),
        sa.Column('post_logout_redirect_uris', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('client_id'),
    )
    op.create_table(
        'oidc_signing_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kid', sa.String(length=64), nullable=False),
        sa.Column('private_key_encrypted', sa.Text(), nullable=False),
        sa.Column('public_jwk', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('kid'),
    )
    op.create_table(
        'oauth_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('client_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('auth_session_id', sa.Integer(), nullable=True),
        sa.Column('redirect_uri', sa.String(length=512), nullable=False),
        sa.Column('scope', sa.String(length=255), nullable=False),
        sa.Column('nonce', sa.String(length=255), nullable=True),
        sa.Column('code_challenge', sa.String(length=128), nullable=True),
        sa.Column('code_challenge_method', sa.String(length=10), nullable=True),
        sa.Column('auth_time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('amr', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['auth_session_id'], ['auth_sessions.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['client_id'], ['oauth_clients.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('code_hash'),
    )
    with op.batch_alter_table('oauth_codes', schema=None) as batch_op:
        batch_op.create_index('ix_oauth_codes_auth_session_id', ['auth_session_id'])
        batch_op.create_index('ix_oauth_codes_client_id', ['client_id'])
        batch_op.create_index('ix_oauth_codes_expires_at', ['expires_at'])
        batch_op.create_index('ix_oauth_codes_user_id', ['user_id'])
    op.create_table(
        'oauth_tokens',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('client_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('code_id', sa.Integer(), nullable=True),
        sa.Column('auth_session_id', sa.Integer(), nullable=True),
        sa.Column('scope', sa.String(length=255), nullable=False),
        sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['auth_session_id'], ['auth_sessions.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['client_id'], ['oauth_clients.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['code_id'], ['oauth_codes.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    with op.batch_alter_table('oauth_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_oauth_tokens_auth_session_id', ['auth_session_id'])
        batch_op.create_index('ix_oauth_tokens_client_id', ['client_id'])
        batch_op.create_index('ix_oauth_tokens_code_id', ['code_id'])
        batch_op.create_index('ix_oauth_tokens_expires_at', ['expires_at'])
        batch_op.create_index('ix_oauth_tokens_user_id', ['user_id'])


def downgrade():
    op.drop_table('oauth_tokens')
    op.drop_table('oauth_codes')
    op.drop_table('oidc_signing_keys')
    op.drop_table('oauth_clients')
