"""Index jobs.updated_at: the server's tailer asks for rows changed since its last look.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_updated", "jobs", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_updated", "jobs")
