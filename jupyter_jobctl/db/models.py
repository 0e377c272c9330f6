"""Table definitions (SQLAlchemy Core) and the row -> JSON mapping. No sessions, no queries.

Times are stored as float seconds since the epoch (portable across SQLite and PostgreSQL,
cheap deadline arithmetic) and rendered as ISO 8601 UTC in JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import RowMapping

from jupyter_jobctl.core import notebooks
from jupyter_jobctl.core.jsonsafe import finite_or_none as _num
from jupyter_jobctl.core.jsonsafe import loads_stored
from jupyter_jobctl.core.states import JobKind
from jupyter_jobctl.core.timestamps import iso

metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("spec", Text, nullable=False),
    Column("idempotency_key", String(255), unique=True),
    Column("request_hash", String(64)),
    Column("attempt", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("last_seq", Integer, nullable=False, default=0),
    # denormalised latest state, so lists never scan events
    Column("progress_done", Float),
    Column("progress_total", Float),
    Column("progress_unit", String(32)),
    Column("progress_rate", Float),
    Column("progress_eta", Float),
    Column("count_total", Integer, nullable=False, default=0),
    Column("count_completed", Integer, nullable=False, default=0),
    Column("count_passed", Integer, nullable=False, default=0),
    Column("count_failed", Integer, nullable=False, default=0),
    Column("count_skipped", Integer, nullable=False, default=0),
    Column("metrics", Text, nullable=False, default="{}"),
    Column("exit_code", Integer),
    Column("signal", String(16)),
    Column("reason", Text),
    # stop ladder: when it was asked for and the persisted deadline of each rung
    Column("stop_requested_at", Float),
    Column("interrupt_at", Float),
    Column("term_at", Float),
    Column("kill_at", Float),
    Column("interrupt_after", Float),
    Column("stop_grace", Float),
    Column("kill_grace", Float),
    Column("heartbeat_interval", Float),
    Column("heartbeat_at", Float),
    # process identity: boot id + pid + start time (clock ticks since boot)
    Column("host", String(255)),
    Column("boot_id", String(64)),
    Column("supervisor_pid", Integer),
    Column("supervisor_start", BigInteger),
    Column("worker_pid", Integer),
    Column("worker_start", BigInteger),
    Column("worker_stopped", Boolean, nullable=False, default=False),
    # what the job's log holds (bytes of stored log events) and may hold (None: no limit)
    Column("log_bytes", BigInteger, nullable=False, default=0, server_default="0"),
    Column("log_limit", BigInteger),
    Index("ix_jobs_status", "status"),
    Index("ix_jobs_created", "created_at", "id"),
    Index("ix_jobs_updated", "updated_at"),
    Index("ix_jobs_status_created", "status", "created_at", "id"),
)

events = Table(
    "events",
    metadata,
    Column("job_id", String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("type", String(16), nullable=False),
    Column("ts", Float, nullable=False),
    Column("data", Text, nullable=False),
)

meta = Table(
    "jobctl_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


class JobRow(TypedDict):
    """One ``jobs`` row as the store returns it (``Store.get_row``, ``Store.active_rows``).

    Values are what the database holds: ``status`` and ``kind`` are the plain strings of
    :class:`~jupyter_jobctl.core.states.JobState` and ``JobKind`` (equal to the members),
    ``spec`` and ``metrics`` are JSON text, times are float seconds since the epoch.
    """

    id: str
    kind: str
    name: str
    status: str
    spec: str
    idempotency_key: str | None
    request_hash: str | None
    attempt: int
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    last_seq: int
    progress_done: float | None
    progress_total: float | None
    progress_unit: str | None
    progress_rate: float | None
    progress_eta: float | None
    count_total: int
    count_completed: int
    count_passed: int
    count_failed: int
    count_skipped: int
    metrics: str
    exit_code: int | None
    signal: str | None
    reason: str | None
    stop_requested_at: float | None
    interrupt_at: float | None
    term_at: float | None
    kill_at: float | None
    interrupt_after: float | None
    stop_grace: float | None
    kill_grace: float | None
    heartbeat_interval: float | None
    heartbeat_at: float | None
    host: str | None
    boot_id: str | None
    supervisor_pid: int | None
    supervisor_start: int | None
    worker_pid: int | None
    worker_start: int | None
    worker_stopped: bool
    log_bytes: int
    log_limit: int | None


# a row as read: a RowMapping from a query, or a JobRow (a dict) the store handed out
Row = RowMapping | Mapping[str, Any]

# The public job object of docs/api.md (``job_to_json``) and an event (``event_to_json``):
# JSON documents, kept as plain dicts.
JobJSON = dict[str, Any]
EventJSON = dict[str, Any]


def _redacted(spec: dict[str, Any]) -> dict[str, Any]:
    # env values may hold secrets; never send them back out
    if isinstance(spec.get("env"), dict):
        return {**spec, "env": dict.fromkeys(spec["env"], "***")}
    return spec


def _object(text: str | None) -> dict[str, Any]:
    """Stored JSON text of an object; one too deep to decode here is shown as a note."""
    value = loads_stored(text or "{}")
    return value if isinstance(value, dict) else {"jobctl": value}


def job_to_json(row: Row) -> JobJSON:
    """The public job object of docs/api.md from a ``jobs`` row mapping.

    Typed numbers (progress) are never NaN/Infinity here (null instead); free-form objects
    (spec, metrics) may still hold them from old rows: responses encode them strictly
    (:mod:`jupyter_jobctl.core.jsonsafe`).
    """
    eta = _num(row["progress_eta"])
    out: dict[str, Any] = {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "status": row["status"],
        "spec": _redacted(_object(row["spec"])),
        "attempt": row["attempt"],
        "created_at": iso(row["created_at"]),
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
        "last_seq": row["last_seq"],
        "progress": {
            "done": _num(row["progress_done"]),
            "total": _num(row["progress_total"]),
            "unit": row["progress_unit"],
            "rate": _num(row["progress_rate"]),
            "eta_s": eta,
        },
        "counts": {
            "total": row["count_total"],
            "completed": row["count_completed"],
            "passed": row["count_passed"],
            "failed": row["count_failed"],
            "skipped": row["count_skipped"],
        },
        "metrics": _object(row["metrics"]),
    }
    for key in ("exit_code", "signal", "reason"):
        if row[key] is not None:
            out[key] = row[key]
    if row["kind"] == JobKind.NOTEBOOK and isinstance(out["spec"].get("path"), str):
        out["output_path"] = notebooks.output_path(out["spec"], row["id"])
    return out


def batch_to_json(row: Row) -> dict[str, Any]:
    """An entry of GET /batches/active (docs/api.md field names)."""
    return {
        "batch_id": row["id"],
        "name": row["name"],
        "start_time": iso(row["started_at"]),
        "total_count": row["count_total"],
        "completed_count": row["count_completed"],
        "pass_count": row["count_passed"],
        "fail_count": row["count_failed"],
        "status": row["status"],
        "eta_s": _num(row["progress_eta"]),
    }


def event_to_json(row: Row) -> EventJSON:
    return {
        "seq": row["seq"],
        "type": row["type"],
        "ts": iso(row["ts"]),
        "data": loads_stored(row["data"]),
    }
