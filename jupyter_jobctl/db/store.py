"""The only module that speaks SQL: engines, migrations, transitions, events, queries.

Every write runs in a short transaction that first locks the job row (``BEGIN IMMEDIATE``
on SQLite, ``SELECT … FOR UPDATE`` on PostgreSQL), so a job's ``seq`` is allocated in
commit order and transitions are compare-and-set: ``UPDATE … WHERE status IN (…)``.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import math
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import RowMapping, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from jupyter_jobctl.core import jsonsafe
from jupyter_jobctl.core.errors import (
    Conflict,
    DatabaseUnavailable,
    JobNotFound,
    SpecError,
    StorageError,
)
from jupyter_jobctl.core.states import (
    ACTIVE,
    TERMINAL,
    TRANSITIONS,
    EventType,
    JobKind,
    JobState,
    state_values,
)
from jupyter_jobctl.db.listen import ChangeListener
from jupyter_jobctl.db.models import (
    EventJSON,
    JobJSON,
    JobRow,
    batch_to_json,
    event_to_json,
    events,
    job_to_json,
    jobs,
    meta,
)

MAX_EVENT_BYTES = 64 * 1024
CHANNEL = "jobctl_changes"  # NOTIFY'd with a job's id by every change (see db/listen.py)
MAX_LOG_LINE = 8 * 1024
MAX_PAGE = 1000
BUSY_TIMEOUT_MS = 15_000
PROBE_BUSY_MS = 1_000  # /health's write probe waits this long for a lock, not 15 s
PROBE_EVERY = 1.0  # seconds: /health commits at most this often (its answer is reused)
MIN_FREE_BYTES = 1 << 20  # below this free on a SQLite database's disk, /health says so
DEFAULT_MAX_LOG_BYTES = 64 << 20  # per job (c.JobCtl.max_log_bytes_per_job); 0: no limit
LOG_TAIL_BYTES = 1 << 20  # of a truncated log, the newest lines kept and stored at its end
# statfs types on which SQLite's WAL (shared memory + POSIX locks) is unsafe
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "fuse.sshfs", "ceph", "9p", "afs"}
)
MOUNTS_FILE = "/proc/self/mounts"  # Linux only, like the rest of the package
CREATE_ATTEMPTS = 3  # inserts of one job that may lose an idempotency-key race

# the states as SQL parameters: plain strings, whatever the driver does with str enums
_TERMINAL = state_values(TERMINAL)
_ACTIVE = state_values(ACTIVE)
_ENTERED_FROM = {to: state_values(sources) for to, sources in TRANSITIONS.items()}

# an event to append: (type, data); the type is an EventType or any other string
EventItem = tuple[str, dict[str, Any]]
_LOG = EventType.LOG.value  # bound once: compared for every event appended
# what mark_running answers for a stale attempt or a finished job
Gone = Literal["gone"]
GONE: Gone = "gone"


class ProcessIdentity(Protocol):
    """A process as the store records it (``procs.processes.Identity`` is one)."""

    @property
    def pid(self) -> int: ...

    @property
    def start(self) -> int: ...

    @property
    def boot(self) -> str: ...


# ---------------------------------------------------------------- database location checks


def filesystem_type(path: str | os.PathLike[str], mounts_file: str = MOUNTS_FILE) -> str | None:
    """The file system type of the mount holding ``path`` (longest mount-point prefix)."""
    target = os.path.realpath(path)
    best, fstype = "", None
    try:
        with open(mounts_file) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ")
                inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, fstype = mount, parts[2]
    except OSError:
        return None
    return fstype


def _mount_point(path: str | os.PathLike[str], mounts_file: str = MOUNTS_FILE) -> str | None:
    """The mount point holding ``path`` (longest prefix in the mounts table), or None."""
    target = os.path.realpath(path)
    best: str | None = None
    try:
        with open(mounts_file) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ")
                inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                if inside and (best is None or len(mount) >= len(best)):
                    best = mount
    except OSError:
        return None
    return best


def check_local_path(db_path: Path, mounts_file: str = MOUNTS_FILE) -> None:
    fstype = filesystem_type(db_path.parent, mounts_file)
    if fstype in NETWORK_FILESYSTEMS:
        raise StorageError(
            f"The job database {str(db_path)!r} is on a network file system ({fstype}), where "
            "SQLite's WAL mode loses or corrupts data. Set c.JobCtl.db_url to a file on a local "
            "disk (for example sqlite:////tmp/jobctl.db) or to PostgreSQL "
            "(postgresql+psycopg://user@host/db)."
        )


def default_db_url() -> str:
    from jupyter_core.paths import jupyter_data_dir

    return f"sqlite:///{Path(jupyter_data_dir()) / 'jobctl' / 'jobctl.db'}"


# ---------------------------------------------------------------- engines


def _sqlite_engine(url: str, *, write: bool) -> Engine:
    engine = create_engine(url, pool_size=4, max_overflow=8)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (SQLAlchemy's SQLite recipe)
        cur = dbapi_conn.cursor()
        mode = cur.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal" and ":memory:" not in url:
            raise StorageError(
                f"SQLite refused WAL mode for {url} (got {mode!r}); set c.JobCtl.db_url."
            )
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # deferred read-then-write transactions get SQLITE_BUSY at once despite busy_timeout
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _now() -> float:
    return time.time()


def new_job_id() -> str:
    return uuid.uuid4().hex


def request_hash(payload: Any) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _dumps(data: Any) -> str:
    """Strict JSON text: what a job reports may hold NaN/Infinity (named, see jsonsafe)."""
    return jsonsafe.dumps(data, separators=(",", ":"), default=str)


def _finite_latest(values: dict[str, Any]) -> dict[str, Any]:
    """Typed number columns (progress) hold no NaN/Infinity: a non-finite one is NULL."""
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            values[key] = None
    return values


def _mib(size: float) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    return line.rstrip(".")[:300]


class _DroppedLog:
    """The newest log lines of a job past its limit (this process's), and what was dropped."""

    __slots__ = ("bytes", "dropped_bytes", "dropped_lines", "items")

    def __init__(self) -> None:
        self.items: deque[tuple[EventItem, int]] = deque()
        self.bytes = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0

    def add(self, item: EventItem, size: int) -> None:
        self.items.append((item, size))
        self.bytes += size
        self.dropped_lines += 1
        self.dropped_bytes += size
        while self.bytes > LOG_TAIL_BYTES and len(self.items) > 1:
            self.bytes -= self.items.popleft()[1]


def _capped(type_: str, data: Any) -> str:
    text = _dumps(data)
    if len(text) > MAX_EVENT_BYTES:
        text = _dumps({"truncated": True, "bytes": len(text), "type": type_})
    return text


def split_log_line(line: str) -> list[str]:
    """Long log lines become several events so one job cannot starve others."""
    if len(line) <= MAX_LOG_LINE:
        return [line]
    return [line[i : i + MAX_LOG_LINE] for i in range(0, len(line), MAX_LOG_LINE)]


def log_event(line: str, stream: str = "jobctl") -> EventItem:
    return (EventType.LOG.value, {"line": line, "stream": stream})


def _encode_cursor(created_at: float, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at!r}|{job_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|", 1)
        return float(created), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise SpecError("cursor", "cursor is not a value returned by a previous page.") from exc


def preload_driver(url: str) -> None:
    """Import the SQLAlchemy dialect and database driver of ``url`` without connecting.

    The launcher calls this once, so the supervisors it forks start with them loaded.
    """
    make_url(url).get_dialect().import_dbapi()


class Store:
    """Jobs and their events in SQLite (WAL) or PostgreSQL, through one code path."""

    def __init__(self, url: str | None = None, *, mounts_file: str = MOUNTS_FILE) -> None:
        self.url = url or default_db_url()
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            db = parsed.database or ""
            if db and db != ":memory:":
                path = Path(db).expanduser()
                check_local_path(path, mounts_file)
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                if not path.exists():
                    # the database is the control bus: only its owner may read or write it
                    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
                    os.close(fd)
            self._write = _sqlite_engine(self.url, write=True)
            self._read = _sqlite_engine(self.url, write=False)
        else:
            self._write = create_engine(self.url, pool_size=4, max_overflow=8, pool_pre_ping=True)
            self._read = self._write
        self.host = socket.gethostname()
        self._write_lock: AbstractContextManager[Any] = (
            threading.Lock() if self.dialect == "sqlite" else nullcontext()
        )
        # what a person is told the database is: its file, or the PostgreSQL server
        if self.dialect == "sqlite":
            self.where = make_url(self.url).database or ":memory:"
        else:
            self.where = f"PostgreSQL {parsed.host or 'localhost'}:{parsed.port or 5432}"
            self.where += f"/{parsed.database or ''}"
        # the outcome of this process's last write: (time.time(), error) after a failure
        self.last_write_error: tuple[float, DatabaseUnavailable] | None = None
        self._dropped: dict[str, _DroppedLog] = {}  # per job: log lines past its limit
        self._probed: tuple[float, DatabaseUnavailable | None] | None = None  # (when, outcome)

    # ------------------------------------------------------------ lifecycle

    def log_dir(self) -> Path:
        """Where supervisors write their own diagnostics: beside a SQLite file, else temp."""
        if self.dialect == "sqlite":
            db = make_url(self.url).database or ""
            if db and db != ":memory:":
                return Path(db).expanduser().parent / "logs"
        import tempfile

        return Path(tempfile.gettempdir()) / f"jobctl-logs-{os.getuid()}"

    def upgrade(self) -> None:
        """Apply Alembic migrations up to head (idempotent; safe from several processes)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self._db_errors(write=True), self._write.connect() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_lock(727001)")
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
                with conn.begin():
                    found = conn.execute(select(meta.c.value).where(meta.c.key == "epoch")).first()
                    if found is None:
                        conn.execute(insert(meta).values(key="epoch", value=uuid.uuid4().hex))
            finally:
                if self.dialect == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_unlock(727001)")
                    conn.commit()

    def epoch(self) -> str:
        with self._reading() as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == "epoch")).scalar()
        return str(value)

    def close(self) -> None:
        self._write.dispose()
        if self._read is not self._write:
            self._read.dispose()

    # ------------------------------------------------------------ transaction helpers

    def unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        """A database failure as one sentence a person understands (no SQL, no URL)."""
        orig = getattr(exc, "orig", None) or exc
        low = str(orig).lower()
        sqlstate = str(getattr(orig, "sqlstate", "") or "")
        code = getattr(orig, "errno", None)
        if (
            "disk is full" in low
            or "no space left" in low
            or sqlstate == "53100"
            or code == errno.ENOSPC
            or ("i/o error" in low and self._disk_nearly_full())
        ):
            return DatabaseUnavailable(
                f"The disk holding the job database is full ({self.disk()}): nothing can be "
                "written until space is freed there.",
                "disk_full",
            )
        if "database is locked" in low or "database table is locked" in low:
            return DatabaseUnavailable(
                f"The job database {self.where} is locked by another process (waited "
                f"{BUSY_TIMEOUT_MS // 1000} s for it).",
                "locked",
            )
        if "readonly" in low or "read-only" in low or code in (errno.EROFS, errno.EACCES):
            return DatabaseUnavailable(
                f"The job database {self.where} cannot be written (read-only: "
                f"{_first_line(orig)}).",
                "read_only",
            )
        invalidated = isinstance(exc, DBAPIError) and exc.connection_invalidated
        if (
            invalidated
            or isinstance(exc, PoolTimeout)
            or sqlstate.startswith(("08", "57P"))
            or "connection" in low
            or "server closed" in low
        ):
            return DatabaseUnavailable(
                f"The job database {self.where} cannot be reached ({_first_line(orig)}).",
                "unreachable",
            )
        return DatabaseUnavailable(
            f"The job database {self.where} failed ({_first_line(orig)}).", "failed"
        )

    def _free_bytes(self) -> int | None:
        """Free bytes on a SQLite database's disk (None: not a file, or unknown)."""
        if self.dialect != "sqlite" or self.where == ":memory:":
            return None
        try:
            st = os.statvfs(Path(self.where).expanduser().parent)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    def _disk_nearly_full(self) -> bool:
        free = self._free_bytes()
        return free is not None and free < MIN_FREE_BYTES

    def disk(self) -> str:
        """The disk of a SQLite database as a person finds it: the file and its mount."""
        if self.dialect != "sqlite":
            return f"the disk of {self.where}"
        path = Path(self.where).expanduser()
        mount = _mount_point(path.parent)
        return f"{path}, on the file system mounted at {mount}" if mount else str(path)

    @contextmanager
    def _db_errors(self, write: bool = False) -> Iterator[None]:
        """Turn the driver's errors into :class:`DatabaseUnavailable` (an IntegrityError,
        which create_job retries, passes); remember how this process's writes went."""
        try:
            yield
        except IntegrityError:
            raise
        except (DBAPIError, PoolTimeout) as exc:
            error = self.unavailable(exc)
            if write:
                self.last_write_error = (_now(), error)
            raise error from exc
        if write:
            self.last_write_error = None

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        # SQLite has one writer and its busy handler retries by sleeping, unfairly: threads of
        # this process queue on a lock instead, so concurrent requests get no long tail
        with self._db_errors(write=True), self._write_lock, self._write.begin() as conn:
            yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._db_errors(), self._read.connect() as conn:
            yield conn

    def probe_write(self) -> DatabaseUnavailable | None:
        """What keeps writes from working now, or None: a real, tiny commit (waiting at most
        ``PROBE_BUSY_MS`` for a lock), and on SQLite the free space of the database's disk."""
        free = self._free_bytes()
        if free is not None and free < MIN_FREE_BYTES:
            error = DatabaseUnavailable(
                f"The disk holding the job database is full ({self.disk()}; "
                f"{free // 1024} KiB free): writes fail until space is freed there.",
                "disk_full",
            )
            self.last_write_error = (_now(), error)
            return error
        probed = self._probed
        if probed is not None and time.monotonic() - probed[0] < PROBE_EVERY:
            return probed[1]  # a health poller gets no commit of its own every time
        problem = self._probe_commit()
        self._probed = (time.monotonic(), problem)
        return problem

    def _probe_commit(self) -> DatabaseUnavailable | None:
        try:
            with self._db_errors(write=True), self._write_lock, self._write.connect() as conn:
                raw: Any = conn.connection.dbapi_connection
                if self.dialect == "sqlite":
                    raw.execute(f"PRAGMA busy_timeout={PROBE_BUSY_MS}")
                try:
                    with conn.begin():
                        conn.execute(
                            update(meta).where(meta.c.key == "epoch").values(value=meta.c.value)
                        )
                finally:
                    if self.dialect == "sqlite":
                        raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except DatabaseUnavailable as exc:
            return exc
        return None

    def _lock(self, conn: Connection, job_id: str) -> RowMapping:
        stmt = select(jobs).where(jobs.c.id == job_id)
        if self.dialect == "postgresql":
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).mappings().first()
        if row is None:
            raise JobNotFound(job_id)
        return row

    def _append(
        self,
        conn: Connection,
        row: RowMapping,
        items: Sequence[EventItem],
        latest: dict[str, Any] | None = None,
        ts: float | None = None,
        dropped: list[tuple[EventItem, int]] | None = None,
    ) -> int:
        """Append events to a locked job row, allocating gapless seqs; returns the new last_seq.

        Given ``dropped``, the job's log limit (``log_limit``) applies: log lines past it
        (but jobctl's own) are not stored but put in ``dropped``; the first of them becomes
        one ``[jobctl] log truncated`` line.
        """
        ts = _now() if ts is None else ts
        expanded: list[tuple[str, str]] = []
        limit = row["log_limit"] if dropped is not None else None
        stored = row["log_bytes"] or 0
        for item_type, data in items:
            type_ = str(item_type)  # an EventType's value: the column holds plain strings
            if type_ == _LOG and len(data.get("line", "")) > MAX_LOG_LINE:
                parts = [
                    (type_, _capped(type_, {**data, "line": part}))
                    for part in split_log_line(data["line"])
                ]
            else:
                parts = [(type_, _capped(type_, data))]
            if limit and type_ == _LOG and data.get("stream") != "jobctl":
                size = sum(len(text) for _, text in parts)
                if stored + size > limit:
                    assert dropped is not None
                    if stored <= limit:  # the first line past the limit: say so, once
                        note = log_event(self._truncated_line(limit))[1]
                        expanded.append((_LOG, _capped(_LOG, note)))
                        stored = limit + 1
                    dropped.append(((type_, data), size))
                    continue
                stored += size
            expanded.extend(parts)
        first: int = row["last_seq"] + 1
        last: int = row["last_seq"] + len(expanded)
        values = dict(latest or {})
        if stored != (row["log_bytes"] or 0):
            values["log_bytes"] = stored
        conn.execute(
            update(jobs)
            .where(jobs.c.id == row["id"])
            .values(last_seq=last, updated_at=ts, **values)
        )
        self._notify(conn, row["id"])
        if expanded:
            conn.execute(
                insert(events),
                [
                    {"job_id": row["id"], "seq": first + i, "type": t, "ts": ts, "data": d}
                    for i, (t, d) in enumerate(expanded)
                ],
            )
        return last

    def _notify(self, conn: Connection, job_id: str) -> None:
        """PostgreSQL: wake every server LISTENing (:mod:`~jupyter_jobctl.db.listen`) when
        this transaction commits; the same job twice in one transaction is sent once."""
        if self.dialect == "postgresql":
            conn.execute(
                text("SELECT pg_notify(:channel, :job)"), {"channel": CHANNEL, "job": job_id}
            )

    def listen(self, on_change: Callable[[str | None], None]) -> ChangeListener | None:
        """Call ``on_change(job_id)`` from a thread whenever a job changes in any process
        (``None``: look at everything, after a reconnection); None on SQLite, which has no
        push (the tail poll is the way there)."""
        if self.dialect != "postgresql":
            return None
        return ChangeListener(self._listening, on_change)

    def _listening(self) -> Any:
        """A connection of its own (not the pool's), in autocommit, LISTENing on CHANNEL."""
        import psycopg

        libpq = make_url(self.url).set(drivername="postgresql")
        conn = psycopg.connect(
            libpq.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
        )
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    @staticmethod
    def _truncated_line(limit: int) -> str:
        return (
            f"[jobctl] log truncated: this job's log reached {_mib(limit)} "
            "(c.JobCtl.max_log_bytes_per_job); what it prints from now on is not stored, "
            f"except its last {_mib(LOG_TAIL_BYTES)}, stored when the job ends."
        )

    def _keep_dropped(self, job_id: str, dropped: list[tuple[EventItem, int]]) -> None:
        if dropped:
            log = self._dropped.setdefault(job_id, _DroppedLog())
            for item, size in dropped:
                log.add(item, size)

    def flush_log_tail(self, job_id: str, attempt: int | None) -> int:
        """Store the newest lines this process dropped past the job's log limit (at its end),
        after a line saying how much was left out; returns how many lines were stored."""
        log = self._dropped.get(job_id)
        if log is None or not log.items:
            self._dropped.pop(job_id, None)
            return 0
        kept = [item for item, _ in log.items]
        note = (
            f"[jobctl] log truncated: {log.dropped_lines - len(kept)} lines "
            f"({_mib(log.dropped_bytes - log.bytes)}) past the job's log limit were not "
            f"stored; its last {len(kept)} lines follow."
        )
        with self._tx() as conn:
            row = self._lock(conn, job_id)
            if attempt is not None and row["attempt"] != attempt:
                return 0
            self._append(conn, row, [log_event(note), *kept])
        del self._dropped[job_id]
        return len(kept)

    def _set_status(
        self,
        conn: Connection,
        row: RowMapping,
        to: JobState,
        logs: Iterable[str] = (),
        values: dict[str, Any] | None = None,
    ) -> None:
        """The one state transition: guarded by TRANSITIONS, recorded as a status event."""
        if row["status"] not in TRANSITIONS[to]:
            raise Conflict(
                f"Job {row['id']} is {row['status']} and cannot become {to}.", row["status"]
            )
        ts = _now()
        vals = {"status": to.value, "updated_at": ts, **(values or {})}
        if to in TERMINAL:
            vals.setdefault("finished_at", ts)
        result = conn.execute(
            update(jobs)
            .where(jobs.c.id == row["id"], jobs.c.status.in_(_ENTERED_FROM[to]))
            .values(**vals)
        )
        if result.rowcount != 1:  # pragma: no cover - the row lock makes this unreachable
            raise Conflict(f"Job {row['id']} changed state concurrently.", row["status"])
        items = [log_event(line) for line in logs]
        items.append((EventType.STATUS.value, {"status": to.value, "from": row["status"]}))
        self._append(conn, row, items, ts=ts)

    # ------------------------------------------------------------ create / read

    def create_job(
        self,
        kind: JobKind | str,
        name: str,
        spec: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        body_hash: str | None = None,
    ) -> tuple[JobJSON, bool]:
        """Insert a pending job. With an idempotency key, a repeat returns the first job.

        Two requests with the same key can race on PostgreSQL: the loser's insert fails on
        the unique key and its next attempt finds the winner's job. Only that race is
        retried, a few times; an insert that keeps failing is a :class:`StorageError`.
        """
        for _ in range(CREATE_ATTEMPTS):
            try:
                return self._insert_job(JobKind(kind), name, spec, idempotency_key, body_hash)
            except IntegrityError as exc:
                failure = exc
        raise StorageError(
            f"The job could not be stored: {CREATE_ATTEMPTS} inserts violated a constraint of "
            f"the database ({failure.orig})."
        ) from failure

    def _insert_job(
        self,
        kind: JobKind,
        name: str,
        spec: dict[str, Any],
        idempotency_key: str | None,
        body_hash: str | None,
    ) -> tuple[JobJSON, bool]:
        job_id = new_job_id()
        ts = _now()
        with self._tx() as conn:
            if idempotency_key is not None:
                found = (
                    conn.execute(select(jobs).where(jobs.c.idempotency_key == idempotency_key))
                    .mappings()
                    .first()
                )
                if found is not None:
                    if found["request_hash"] != body_hash:
                        raise Conflict(
                            "This Idempotency-Key was already used for a different request; "
                            "use a new key for a new job."
                        )
                    return job_to_json(found), False
            conn.execute(
                insert(jobs).values(
                    id=job_id,
                    kind=kind.value,
                    name=name,
                    status=JobState.PENDING.value,
                    spec=_dumps(spec),
                    idempotency_key=idempotency_key,
                    request_hash=body_hash,
                    attempt=0,
                    created_at=ts,
                    updated_at=ts,
                    last_seq=0,
                    metrics="{}",
                )
            )
            row = self._lock(conn, job_id)
            status = {"status": JobState.PENDING.value, "from": None}
            self._append(conn, row, [(EventType.STATUS.value, status)], ts=ts)
        return self.get_job(job_id), True

    def get_row(self, job_id: str) -> JobRow:
        with self._reading() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        if row is None:
            raise JobNotFound(job_id)
        return cast(JobRow, dict(row))

    def get_job(self, job_id: str) -> JobJSON:
        return job_to_json(self.get_row(job_id))

    def control(self, job_id: str) -> tuple[str, int, float | None] | None:
        """The cheap poll a running job does: (status, attempt, stop_requested_at)."""
        with self._reading() as conn:
            row = conn.execute(
                select(jobs.c.status, jobs.c.attempt, jobs.c.stop_requested_at).where(
                    jobs.c.id == job_id
                )
            ).first()
        return None if row is None else (row[0], row[1], row[2])

    def list_jobs(
        self,
        *,
        status: Sequence[JobState | str] | None = None,
        kind: JobKind | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[JobJSON], str | None]:
        """Newest first, keyset-paged on (created_at, id)."""
        limit = max(1, min(int(limit), MAX_PAGE))
        stmt = select(jobs)
        if status:
            stmt = stmt.where(jobs.c.status.in_([str(s) for s in status]))
        if kind:
            stmt = stmt.where(jobs.c.kind == str(kind))
        if cursor:
            created, job_id = _decode_cursor(cursor)
            stmt = stmt.where(
                (jobs.c.created_at < created)
                | ((jobs.c.created_at == created) & (jobs.c.id < job_id))
            )
        stmt = stmt.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit + 1)
        with self._reading() as conn:
            rows = conn.execute(stmt).mappings().all()
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = _encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
        return [job_to_json(r) for r in rows], nxt

    def changed_since(self, since: float) -> list[tuple[float, JobJSON]]:
        """(updated_at, job) for jobs written at or after ``since`` (what the tailer fans out)."""
        with self._reading() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.updated_at >= since)).mappings().all()
        return [(r["updated_at"], job_to_json(r)) for r in rows]

    def active_batches(self) -> list[dict[str, Any]]:
        stmt = (
            select(jobs)
            .where(jobs.c.kind == JobKind.TEST_BATCH.value, jobs.c.status.in_(_ACTIVE))
            .order_by(jobs.c.started_at)
        )
        with self._reading() as conn:
            return [batch_to_json(r) for r in conn.execute(stmt).mappings().all()]

    def ping(self) -> None:
        with self._reading() as conn:
            conn.exec_driver_sql("SELECT 1")

    def active_rows(self) -> list[JobRow]:
        with self._reading() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.status.in_(_ACTIVE))).mappings().all()
        return [cast(JobRow, dict(r)) for r in rows]

    @staticmethod
    def _require_job(conn: Connection, job_id: str) -> None:
        """An empty page of events: the job has none yet, or there is no such job (404)."""
        if conn.execute(select(jobs.c.id).where(jobs.c.id == job_id)).first() is None:
            raise JobNotFound(job_id)

    def events_after(
        self, job_id: str, after: int = 0, limit: int = 500, type_: EventType | str | None = None
    ) -> list[EventJSON]:
        limit = max(1, min(int(limit), MAX_PAGE))
        stmt = select(events).where(events.c.job_id == job_id, events.c.seq > after)
        if type_:
            stmt = stmt.where(events.c.type == str(type_))
        stmt = stmt.order_by(events.c.seq).limit(limit)
        with self._reading() as conn:
            rows = conn.execute(stmt).mappings().all()
            if not rows:
                self._require_job(conn, job_id)
        return [event_to_json(r) for r in rows]

    def events_raw(self, job_id: str, after: int, limit: int) -> list[tuple[int, str, float, str]]:
        """(seq, type, ts, data as stored JSON text): streams splice the text, never re-encode.

        The hottest read of a busy server (every stream page), so it goes through the driver's
        cursor: SQLAlchemy's result rows cost ~0.7 µs more per event (measured).
        """
        mark = "?" if self.dialect == "sqlite" else "%s"
        sql = (
            "SELECT seq, type, ts, data FROM events"
            f" WHERE job_id = {mark} AND seq > {mark} ORDER BY seq LIMIT {mark}"
        )
        with self._reading() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(sql, (job_id, after, limit))
                rows: list[tuple[int, str, float, str]] = list(cursor.fetchall())
            finally:
                cursor.close()
            if not rows:
                self._require_job(conn, job_id)
        return rows

    def count_events(self, job_id: str) -> int:
        with self._reading() as conn:
            return int(
                conn.execute(select(func.count()).where(events.c.job_id == job_id)).scalar() or 0
            )

    # ------------------------------------------------------------ control (server side)

    def start_job(
        self,
        job_id: str,
        *,
        interrupt_after: float,
        stop_grace: float,
        kill_grace: float,
        heartbeat_interval: float,
        max_log_bytes: int | None = DEFAULT_MAX_LOG_BYTES,
    ) -> JobRow:
        """pending -> initializing with a new attempt; the caller then launches the supervisor.

        ``max_log_bytes`` (0 or None: no limit) bounds what the attempt's log may store."""
        with self._tx() as conn:
            row = self._lock(conn, job_id)
            if row["status"] != JobState.PENDING.value:
                raise Conflict(
                    f"Job {job_id} is {row['status']}; only a pending job can be started.",
                    row["status"],
                )
            self._set_status(
                conn,
                row,
                JobState.INITIALIZING,
                values={
                    "attempt": row["attempt"] + 1,
                    "started_at": _now(),
                    "interrupt_after": interrupt_after,
                    "stop_grace": stop_grace,
                    "kill_grace": kill_grace,
                    "heartbeat_interval": heartbeat_interval,
                    "log_limit": max_log_bytes or None,
                },
            )
        return self.get_row(job_id)

    def request_stop(self, job_id: str) -> JobJSON:
        """Idempotent: pending -> cancelled at once; else stopping, with persisted deadlines."""
        with self._tx() as conn:
            row = self._lock(conn, job_id)
            status = row["status"]
            if status in TERMINAL:
                raise Conflict(f"Job {job_id} is already {status}; it cannot be stopped.", status)
            if status == JobState.PENDING:
                self._set_status(
                    conn,
                    row,
                    JobState.CANCELLED,
                    logs=[
                        "[STOP] Stop request received",
                        "[CANCELLATION] cancelled before it started",
                    ],
                    values={"stop_requested_at": _now(), "reason": "Cancelled before it started."},
                )
            elif status != JobState.STOPPING:
                now = _now()
                interrupt = row["interrupt_after"] or 0.0
                grace = row["stop_grace"] or 0.0
                self._set_status(
                    conn,
                    row,
                    JobState.STOPPING,
                    logs=["[STOP] Stop request received", "[STOP] Cancellation flag set"],
                    values={
                        "stop_requested_at": now,
                        "interrupt_at": now + interrupt,
                        "term_at": now + max(grace, interrupt),
                        "kill_at": now + max(grace, interrupt) + (row["kill_grace"] or 0.0),
                    },
                )
        return self.get_job(job_id)

    def request_pause(self, job_id: str) -> JobJSON:
        return self._simple_transition(
            job_id, JobState.PAUSED, JobState.RUNNING, "[PAUSE] Pause requested"
        )

    def request_resume(self, job_id: str) -> JobJSON:
        return self._simple_transition(
            job_id, JobState.RUNNING, JobState.PAUSED, "[PAUSE] Resume requested"
        )

    def _simple_transition(
        self, job_id: str, to: JobState, required: JobState, line: str
    ) -> JobJSON:
        with self._tx() as conn:
            row = self._lock(conn, job_id)
            if row["status"] != required:
                verb = "paused" if to == JobState.PAUSED else "resumed"
                raise Conflict(
                    f"Job {job_id} is {row['status']}; only a {required} job can be {verb}.",
                    row["status"],
                )
            self._set_status(conn, row, to, logs=[line])
        return self.get_job(job_id)

    def delete_job(self, job_id: str) -> None:
        with self._tx() as conn:
            row = self._lock(conn, job_id)
            if row["status"] not in TERMINAL:
                raise Conflict(
                    f"Job {job_id} is {row['status']}; stop it before deleting it.", row["status"]
                )
            conn.execute(delete(events).where(events.c.job_id == job_id))
            conn.execute(delete(jobs).where(jobs.c.id == job_id))

    def delete_finished_before(self, cutoff: float) -> int:
        """Retention: remove terminal jobs that finished before ``cutoff`` (never active ones)."""
        return len(self.expire_finished_before(cutoff))

    def expire_finished_before(self, cutoff: float) -> list[str]:
        """:meth:`delete_finished_before`, returning the ids of the jobs it removed."""
        with self._tx() as conn:
            ids = [
                str(r[0])
                for r in conn.execute(
                    select(jobs.c.id).where(
                        jobs.c.status.in_(_TERMINAL), jobs.c.finished_at < cutoff
                    )
                )
            ]
            if ids:
                conn.execute(delete(events).where(events.c.job_id.in_(ids)))
                conn.execute(delete(jobs).where(jobs.c.id.in_(ids)))
        return ids

    # ------------------------------------------------------ fenced writes (supervisor, worker)

    def _fenced(self, conn: Connection, job_id: str, attempt: int) -> RowMapping | None:
        row = self._lock(conn, job_id)
        if row["attempt"] != attempt or row["status"] in TERMINAL:
            return None
        return row

    def record_process(
        self,
        job_id: str,
        attempt: int,
        role: Literal["supervisor", "worker"],
        pid: int,
        start: int,
        boot_id: str,
    ) -> bool:
        """Remember a supervisor's or worker's identity (boot id + pid + start ticks).

        The supervisor's is its claim on the attempt: False (nothing written) when another
        supervisor has it already, so a task a cluster runs twice runs the job once."""
        values: dict[str, Any] = {f"{role}_pid": pid, f"{role}_start": start, "boot_id": boot_id}
        if role == "supervisor":
            values.update(host=self.host, heartbeat_at=_now())
        with self._tx() as conn:
            row = self._fenced(conn, job_id, attempt)
            if row is None:
                return False
            if role == "supervisor" and row["supervisor_pid"] is not None:
                mine = (row["supervisor_pid"], row["supervisor_start"], row["host"])
                if mine != (pid, start, self.host):
                    return False
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
        return True

    def set_worker_stopped(self, job_id: str, attempt: int, stopped: bool) -> None:
        with self._tx() as conn:
            if self._fenced(conn, job_id, attempt) is not None:
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(worker_stopped=stopped))

    def heartbeat(self, job_id: str, attempt: int) -> bool:
        with self._tx() as conn:
            result = conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.attempt == attempt,
                    jobs.c.status.not_in(_TERMINAL),
                )
                .values(heartbeat_at=_now())
            )
        return result.rowcount == 1

    def append_events(
        self,
        job_id: str,
        attempt: int | None,
        items: Sequence[EventItem],
        latest: dict[str, Any] | None = None,
    ) -> int | None:
        """Append a batch of events (and latest-field updates) in one transaction.

        Fenced: returns None and writes nothing when ``attempt`` is stale or the job is
        terminal, so a declared-dead process can never add to a finished job. Log lines past
        the job's log limit are kept back (see :meth:`flush_log_tail`).
        """
        dropped: list[tuple[EventItem, int]] = []
        with self._tx() as conn:
            row: RowMapping | None
            if attempt is None:
                row = self._lock(conn, job_id)
                if row["status"] in TERMINAL:
                    return None
            else:
                row = self._fenced(conn, job_id, attempt)
                if row is None:
                    return None
            values = _finite_latest(dict(latest or {}))
            if "metrics" in values and isinstance(values["metrics"], dict):
                merged = jsonsafe.loads_stored(row["metrics"] or "{}")
                if not isinstance(merged, dict):
                    merged = {}
                merged.update(values["metrics"])
                values["metrics"] = _capped(EventType.METRIC.value, merged)
            last = self._append(conn, row, items, values, dropped=dropped)
        self._keep_dropped(job_id, dropped)
        return last

    def set_reason(self, job_id: str, attempt: int, reason: str, *, log: bool = False) -> None:
        """The job's reason; with ``log`` also a ``[jobctl]`` line, so that open streams
        (which carry events, not row changes) show it too."""
        with self._tx() as conn:
            row = self._fenced(conn, job_id, attempt)
            if row is not None:
                values = {"reason": reason[:2000], "updated_at": _now()}
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
                if log:
                    self._append(conn, row, [log_event(f"[jobctl] {reason}")])
                else:
                    self._notify(conn, job_id)

    def mark_running(
        self, job_id: str, attempt: int, worker: ProcessIdentity | None = None
    ) -> JobState | Gone:
        """initializing -> running for this attempt; returns the status the job has afterwards
        (``"gone"`` for a stale attempt or a finished job). Given the ``worker`` (a command
        job runs once its process exists), its identity is recorded in the same transaction.
        """
        with self._tx() as conn:
            row = self._fenced(conn, job_id, attempt)
            if row is None:
                return GONE
            identity: dict[str, Any] = {}
            if worker is not None:
                identity = {"worker_pid": worker.pid, "worker_start": worker.start}
                identity["boot_id"] = worker.boot
            if row["status"] == JobState.INITIALIZING:
                self._set_status(conn, row, JobState.RUNNING, values=identity)
                return JobState.RUNNING
            if identity:
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(**identity))
            return JobState(row["status"])

    def finish(
        self,
        job_id: str,
        attempt: int | None,
        to: JobState | str,
        *,
        reason: str | None = None,
        exit_code: int | None = None,
        signal: str | None = None,
        logs: Iterable[str] = (),
        expect_status: Iterable[str] | None = None,
    ) -> bool:
        """Record a terminal state once. The first committed terminal write wins."""
        to = JobState(to)
        with self._tx() as conn:
            row = self._lock(conn, job_id)
            if row["status"] in TERMINAL:
                return False
            if attempt is not None and row["attempt"] != attempt:
                return False
            if expect_status is not None and row["status"] not in set(expect_status):
                return False
            if row["status"] not in TRANSITIONS[to]:
                return False
            values: dict[str, Any] = {"exit_code": exit_code, "signal": signal}
            if reason is not None:
                values["reason"] = reason
            self._set_status(conn, row, to, logs=logs, values=values)
        return True
