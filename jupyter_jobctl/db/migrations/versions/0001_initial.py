"""Initial schema: jobs, events, jobctl_meta.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.String(255), unique=True),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("last_seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("progress_done", sa.Float),
        sa.Column("progress_total", sa.Float),
        sa.Column("progress_unit", sa.String(32)),
        sa.Column("progress_rate", sa.Float),
        sa.Column("progress_eta", sa.Float),
        sa.Column("count_total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("count_completed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("count_passed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("count_failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("count_skipped", sa.Integer, nullable=False, server_default="0"),
        sa.Column("metrics", sa.Text, nullable=False, server_default="{}"),
        sa.Column("exit_code", sa.Integer),
        sa.Column("signal", sa.String(16)),
        sa.Column("reason", sa.Text),
        sa.Column("stop_requested_at", sa.Float),
        sa.Column("interrupt_at", sa.Float),
        sa.Column("term_at", sa.Float),
        sa.Column("kill_at", sa.Float),
        sa.Column("interrupt_after", sa.Float),
        sa.Column("stop_grace", sa.Float),
        sa.Column("kill_grace", sa.Float),
        sa.Column("heartbeat_interval", sa.Float),
        sa.Column("heartbeat_at", sa.Float),
        sa.Column("host", sa.String(255)),
        sa.Column("boot_id", sa.String(64)),
        sa.Column("supervisor_pid", sa.Integer),
        sa.Column("supervisor_start", sa.BigInteger),
        sa.Column("worker_pid", sa.Integer),
        sa.Column("worker_start", sa.BigInteger),
        sa.Column("worker_stopped", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_created", "jobs", ["created_at", "id"])
    op.create_table(
        "events",
        sa.Column(
            "job_id",
            sa.String(32),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_table(
        "jobctl_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("jobctl_meta")
    op.drop_table("events")
    op.drop_table("jobs")
