"""Per-job log bound: bytes of log stored so far and the attempt's limit.

Revision ID: 0004
Revises: 0003
"""

from alembic import op
from sqlalchemy import BigInteger, Column

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", Column("log_bytes", BigInteger, nullable=False, server_default="0"))
    op.add_column("jobs", Column("log_limit", BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:  # SQLite drops columns by copying the table
        batch.drop_column("log_limit")
        batch.drop_column("log_bytes")
