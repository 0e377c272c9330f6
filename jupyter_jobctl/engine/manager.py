"""JobManager: the single entry point for the server, the CLI, the magics and tests.

It validates requests, drives the store's transitions, launches supervisors through an
executor and reconciles jobs whose processes vanished. It holds no job state of its own:
a job keeps running, and stays stoppable, after the manager (or its process) is gone.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_jobctl.core.errors import Conflict, DatabaseUnavailable, SpecError, StorageError
from jupyter_jobctl.core.specs import validate_job
from jupyter_jobctl.core.states import EventType, JobKind, JobState, TestOutcome
from jupyter_jobctl.db.listen import ChangeListener
from jupyter_jobctl.db.models import EventJSON, JobJSON, JobRow
from jupyter_jobctl.db.store import DEFAULT_MAX_LOG_BYTES as DEFAULT_MAX_LOG_BYTES
from jupyter_jobctl.db.store import Store, request_hash
from jupyter_jobctl.engine.executors import Executor, make_executor

log = logging.getLogger("jupyter_jobctl")

# /health's ``db`` when reads work but writes do not, by DatabaseUnavailable.cause
WRITE_PROBLEMS = {
    "disk_full": "disk full",
    "locked": "locked",
    "read_only": "read-only",
    "unreachable": "unreachable",
    "failed": "write failed",
}

# An initializing job gets this long to show a supervisor before it can be called lost
# (Ray PR #34223: recovery must not race a freshly started job).
START_GRACE = 30.0
# A supervisor no executor here can see (another host, a Dask worker) is lost when its
# heartbeat is this many intervals old, and never sooner than REMOTE_STALE_MIN seconds
REMOTE_STALE_BEATS = 4
REMOTE_STALE_MIN = 4.0

# (the class below has a method named ``list``: inside it, the builtin needs another name)
JobPage = list[JobJSON]
EventPage = list[EventJSON]
Result = dict[str, Any]  # one test's result: the result event's data with its seq and ts
RawEvents = list[tuple[int, str, float, str]]  # (seq, type, ts, data as stored JSON text)
Results = list[Result]
NodeIds = list[str]
Batches = list[dict[str, Any]]  # GET /batches/active entries
Changes = list[tuple[float, JobJSON]]  # (updated_at, job)
Reconciled = dict[str, list[str]]  # "adopted" | "waiting" | a terminal state -> job ids


@dataclass
class StopPolicy:
    """The stop ladder's timings, copied onto each job when it starts.

    See docs/architecture.md, "The stop ladder".
    """

    interrupt_after: float = 0.5
    stop_grace: float = 3.0
    kill_grace: float = 2.0
    heartbeat_interval: float = 1.0


def _without_paths(args: list[str], cwd: str | None) -> list[str]:
    """pytest args minus the test paths, so options (-k, -n, --nbval-lax …) carry over."""
    base = Path(cwd) if cwd else Path.cwd()
    kept: list[str] = []
    for arg in args:
        target = arg.split("::", 1)[0]
        if not arg.startswith("-") and target and (base / target).exists():
            continue
        kept.append(arg)
    return kept


def _parse_status_filter(status: str | list[str] | None) -> list[JobState] | None:
    if status is None or status == "":
        return None
    values = status.split(",") if isinstance(status, str) else list(status)
    known = sorted(s.value for s in JobState)
    states: list[JobState] = []
    for value in values:
        if value not in known:
            raise SpecError("status", f"status {value!r} is not one of: {', '.join(known)}.")
        states.append(JobState(value))
    return states


class JobManager:
    def __init__(
        self,
        db_url: str | None = None,
        *,
        policy: StopPolicy | None = None,
        executor: Executor | None = None,
        executor_name: str = "local",
        executor_class: type[Executor] | None = None,
        executor_options: dict[str, Any] | None = None,
        migrate: bool = True,
        job_nice: int = 0,
        base_dir: str | None = None,
        max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
        tolerate_outage: bool = False,
    ) -> None:
        self.store = Store(db_url)
        self.db_url = self.store.url
        # where a relative spec.cwd starts (the server's root_dir; else the process's cwd)
        self.base_dir = base_dir
        self.max_log_bytes = max_log_bytes  # per job attempt; 0: no limit
        self._migrated = not migrate
        if migrate:  # a server starts even while its database is down (/health says so)
            self.migrate(tolerate=tolerate_outage)
        self.policy = policy or StopPolicy()
        self.executor: Executor = executor or make_executor(
            executor_name,
            executor_class,
            log_dir=self.store.log_dir(),
            job_nice=job_nice,
            **(executor_options or {}),
        )
        self._reconciler: threading.Thread | None = None
        self._closing = threading.Event()

    def migrate(self, *, tolerate: bool = False) -> bool:
        """Bring the schema to head; with ``tolerate``, an unreachable database is logged
        (and retried by :meth:`health` and the reconciler) instead of raised."""
        if self._migrated:
            return True
        try:
            self.store.upgrade()
        except DatabaseUnavailable as exc:
            if not tolerate:
                raise
            log.warning("jobctl: the job database cannot be migrated yet: %s", exc)
            return False
        self._migrated = True
        return True

    # ------------------------------------------------------------ commands

    def create(
        self,
        kind: Any,
        spec: Any,
        name: Any = None,
        *,
        start: bool = False,
        idempotency_key: str | None = None,
    ) -> tuple[JobJSON, bool]:
        """Validate and insert a job (``pending``); with ``start`` also start it.

        Returns ``(job, created)``; ``created`` is False when the idempotency key matched an
        earlier identical request, whose job is returned unchanged.
        """
        kind, name, clean = validate_job(kind, spec, name, base_dir=self.base_dir)
        self.executor.check_placement(clean)  # before anything is written
        body_hash = request_hash([kind, name, clean, bool(start)]) if idempotency_key else None
        job, created = self.store.create_job(
            kind, name, clean, idempotency_key=idempotency_key, body_hash=body_hash
        )
        if created and start:
            job = self.start(job["id"])
        return job, created

    def start(self, job_id: str) -> JobJSON:
        p = self.policy
        row = self.store.start_job(
            job_id,
            interrupt_after=p.interrupt_after,
            stop_grace=p.stop_grace,
            kill_grace=p.kill_grace,
            heartbeat_interval=p.heartbeat_interval,
            max_log_bytes=self.max_log_bytes,
        )
        try:
            spec = json.loads(row["spec"])
            kind = JobKind(row["kind"])
            self.executor.launch(job_id, row["attempt"], self.db_url, kind, spec, row["name"])
        except OSError as exc:
            self.store.finish(
                job_id,
                row["attempt"],
                JobState.FAILED,
                reason=f"Could not launch the supervisor: {exc}.",
            )
        return self.store.get_job(job_id)

    def stop(self, job_id: str) -> JobJSON:
        """Immediate: the job becomes ``stopping`` (the supervisor sees it and runs the stop
        ladder); a pending job becomes ``cancelled``. Again on a ``stopping`` job: accepted,
        nothing more happens. On a finished job: :class:`Conflict` naming its state."""
        job = self.store.request_stop(job_id)
        if job["status"] == JobState.STOPPING:
            row = self.store.get_row(job_id)
            if row["supervisor_pid"] is None:
                waiting = self.executor.waiting(row)
                if waiting is not None:  # queued on a cluster: no supervisor to run a ladder
                    self._cancel_queued(row, {})
                    job = self.store.get_job(job_id)
        return job

    def _cancel_queued(self, row: JobRow, outcome: Reconciled) -> None:
        self.executor.withdraw(row)
        if self.store.finish(
            row["id"],
            row["attempt"],
            JobState.CANCELLED,
            reason="Stopped while it waited for a place on the cluster; it never ran.",
            logs=["[CANCELLATION] stopped while queued: the job never started"],
            expect_status=[JobState.STOPPING.value],
        ):
            outcome.setdefault(JobState.CANCELLED.value, []).append(row["id"])

    def pause(self, job_id: str) -> JobJSON:
        return self.store.request_pause(job_id)

    def resume(self, job_id: str) -> JobJSON:
        return self.store.request_resume(job_id)

    def delete(self, job_id: str) -> None:
        self.store.delete_job(job_id)
        self.executor.forget(job_id)  # its supervisor logs go with it

    # ------------------------------------------------------------ queries

    def get(self, job_id: str) -> JobJSON:
        return self.store.get_job(job_id)

    def list(
        self,
        *,
        status: str | list[str] | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[JobPage, str | None]:
        statuses = _parse_status_filter(status)
        if kind is not None and kind not in {k.value for k in JobKind}:
            names = ", ".join(k.value for k in JobKind)
            raise SpecError("kind", f"kind must be one of: {names}.")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise SpecError("limit", "limit must be an integer from 1 to 1000.")
        return self.store.list_jobs(status=statuses, kind=kind, limit=limit, cursor=cursor)

    def events(
        self, job_id: str, after: int = 0, limit: int = 500, type_: EventType | str | None = None
    ) -> EventPage:
        if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= 2**53:
            raise SpecError("after", "after must be an integer from 0 to 2**53.")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise SpecError("limit", "limit must be an integer from 1 to 1000.")
        return self.store.events_after(job_id, after, limit, type_)

    def events_raw(self, job_id: str, after: int, limit: int) -> RawEvents:
        """Events as stored (data is JSON text), for the streams."""
        return self.store.events_raw(job_id, after, limit)

    def results(
        self,
        job_id: str,
        outcome: TestOutcome | str | None = None,
        after: int = 0,
        limit: int = 500,
    ) -> tuple[Results, int | None]:
        """A batch's per-test results (``result`` events), optionally of one outcome."""
        if outcome is not None and outcome not in {o.value for o in TestOutcome}:
            names = ", ".join(o.value for o in TestOutcome)
            raise SpecError("outcome", f"outcome must be one of: {names}.")
        self.events(job_id, after, limit)  # validates paging and that the job exists
        found: Results = []
        cursor = after
        while len(found) < limit:
            page = self.store.events_after(job_id, cursor, 1000, EventType.RESULT)
            if not page:
                return found, None
            for event in page:
                cursor = event["seq"]
                if outcome is None or event["data"].get("outcome") == outcome:
                    found.append({"seq": event["seq"], "ts": event["ts"], **event["data"]})
                    if len(found) == limit:
                        break
        return found, cursor

    def rerun(self, job_id: str, only: str | None = None) -> JobJSON:
        """A new job with the same spec; ``only="failed"`` reruns a batch's failed tests."""
        row = self.store.get_row(job_id)
        spec = json.loads(row["spec"])
        if only is not None:
            if only != "failed":
                raise SpecError("only", 'only must be "failed" (or left out to rerun everything).')
            if row["kind"] != JobKind.TEST_BATCH:
                raise SpecError("only", 'only="failed" applies to test batches.')
            nodeids: NodeIds = []
            for bad in (TestOutcome.FAILED, TestOutcome.ERROR):
                page, nxt = self.results(job_id, bad, 0, 1000)
                while True:
                    nodeids += [r["nodeid"] for r in page if r.get("nodeid")]
                    if nxt is None:
                        break
                    page, nxt = self.results(job_id, bad, nxt, 1000)
            if not nodeids:
                raise Conflict(f"Job {job_id} has no failed tests to rerun.", row["status"])
            spec["args"] = _without_paths(spec.get("args", []), spec.get("cwd")) + sorted(
                set(nodeids), key=nodeids.index
            )
        name = row["name"] if only is None else f"{row['name']} (failed only)"
        job, _ = self.create(row["kind"], spec, name, start=True)
        return job

    def active_batches(self) -> Batches:
        return self.store.active_batches()

    def changed_since(self, since: float) -> Changes:
        return self.store.changed_since(since)

    def health(self) -> dict[str, str]:
        """``ok``, or ``degraded`` with what fails: reads (``db: unreachable``) or writes (a
        tiny real commit, and on SQLite the free space of the database's disk)."""
        try:
            self.store.ping()
            if not self.migrate(tolerate=True):
                raise DatabaseUnavailable("The job database's schema could not be brought up.")
        except Exception as exc:
            reason = str(exc) if isinstance(exc, StorageError) else "The job database failed."
            return {"status": "degraded", "db": "unreachable", "reason": reason}
        problem = self.store.probe_write()
        if problem is not None:
            return {
                "status": "degraded",
                "db": WRITE_PROBLEMS[problem.cause],
                "reason": str(problem),
            }
        return {"status": "ok", "db": "ok"}

    def listen(self, on_change: Callable[[str | None], None]) -> ChangeListener | None:
        """Be called when any process changes a job (PostgreSQL NOTIFY); None on SQLite."""
        return self.store.listen(on_change)

    def epoch(self) -> str:
        return self.store.epoch()

    # ------------------------------------------------------------ reconciliation

    def reconcile(self) -> Reconciled:
        """Re-adopt jobs whose supervisor lives; end the others with a reason.

        A job is only declared gone when its recorded processes are gone *and* its
        heartbeat is stale (or never came and the start grace has passed).
        """
        self.executor.reap()
        outcome: Reconciled = {
            "adopted": [],
            JobState.LOST.value: [],
            JobState.FAILED.value: [],
            JobState.CANCELLED.value: [],
            "waiting": [],
        }
        now = time.time()
        for row in self.store.active_rows():
            if self.executor.adopt(row):
                outcome["adopted"].append(row["id"])
                continue
            interval = row["heartbeat_interval"] or self.policy.heartbeat_interval
            last = row["heartbeat_at"] or row["started_at"] or row["created_at"]
            if row["supervisor_pid"] is None:
                waiting = self.executor.waiting(row)
                if waiting is not None and waiting.gone:
                    self._end_unstarted(row, waiting.reason, outcome)
                    continue
                if waiting is not None and row["status"] == JobState.STOPPING:
                    self._cancel_queued(row, outcome)
                    continue
                if waiting is not None:  # queued on a cluster: say why, however long
                    if row["reason"] != waiting.reason:
                        self.store.set_reason(row["id"], row["attempt"], waiting.reason, log=True)
                    outcome["waiting"].append(row["id"])
                    continue
                if now - (row["started_at"] or now) < START_GRACE:
                    outcome["waiting"].append(row["id"])
                    continue
            elif self.executor.is_alive(row) is None:  # not ours to see: its heartbeat decides
                if now - last < max(REMOTE_STALE_BEATS * interval, REMOTE_STALE_MIN):
                    outcome["adopted"].append(row["id"])
                    continue
            elif now - last < 3 * interval:
                outcome["waiting"].append(row["id"])
                continue
            self._end_orphan(row, outcome)
        return outcome

    def _end_unstarted(self, row: JobRow, reason: str, outcome: Reconciled) -> None:
        if self.store.finish(
            row["id"],
            row["attempt"],
            JobState.FAILED,
            reason=reason,
            logs=[f"[jobctl] {reason}"],
            expect_status=[row["status"]],
        ):
            log.warning("job %s failed to start: %s", row["id"], reason)
            outcome[JobState.FAILED.value].append(row["id"])

    def _end_orphan(self, row: JobRow, outcome: Reconciled) -> None:
        worker_alive = self.executor.worker_alive(row)
        killed = self.executor.clean_up(row)
        to: JobState
        unseen = row["supervisor_pid"] is not None and self.executor.is_alive(row) is None
        if unseen:
            age = time.time() - (row["heartbeat_at"] or row["started_at"] or time.time())
            reason = (
                f"The job's supervisor on {row['host'] or 'another machine'} stopped sending "
                f"heartbeats {age:.0f} s ago (its machine or Dask worker died, or lost the "
                "database); no exit was recorded."
            )
            to = JobState.LOST
        elif worker_alive:
            reason = (
                "The job's supervisor process died while the worker still ran; the worker "
                f"was killed ({killed} process(es))."
            )
            to = JobState.FAILED
        elif row["supervisor_pid"] is None:
            reason = "The job's supervisor never started (no heartbeat within the start grace)."
            to = JobState.LOST
        elif row["status"] == JobState.STOPPING:
            reason = "Stopped by request; its processes ended before an exit was recorded."
            to = JobState.CANCELLED
        else:
            reason = (
                "The job's supervisor and worker processes are gone and no exit was recorded "
                "(killed, or the machine restarted)."
            )
            to = JobState.LOST
        failed_write = self.store.last_write_error
        if failed_write is not None and time.time() - failed_write[0] < 600:
            # the database was failing lately: that is likely why no exit was recorded
            reason = f"{reason[:-1]}; the job database was failing then: {failed_write[1]}"
        if self.store.finish(
            row["id"],
            row["attempt"],
            to,
            reason=reason,
            logs=[f"[jobctl] {reason}"],
            expect_status=[row["status"]],
        ):
            log.warning("job %s marked %s: %s", row["id"], to.value, reason)
            outcome[to.value].append(row["id"])

    def apply_retention(self, days: float) -> int:
        """Delete terminal jobs (and their events) that finished more than ``days`` ago."""
        if days <= 0:
            return 0
        expired = self.store.expire_finished_before(time.time() - days * 86400)
        for job_id in expired:
            self.executor.forget(job_id)
        return len(expired)

    def run_reconciler(self, interval: float | None = None, retention_days: float = 0) -> None:
        """Reconcile (and apply retention) now and then every ``interval`` s in a daemon thread."""
        every = interval or 3 * self.policy.heartbeat_interval

        def loop() -> None:
            failing = False
            while not self._closing.is_set():
                try:
                    if self.migrate(tolerate=True):
                        self.reconcile()
                        self.apply_retention(retention_days)
                    if failing:
                        log.warning("jobctl: the job database works again")
                    failing = False
                except StorageError as exc:  # an outage: say it once, retry quietly
                    if not failing:
                        log.warning("jobctl: reconciliation paused: %s", exc)
                    failing = True
                except Exception:  # keep the loop alive; the next pass retries
                    log.exception("reconcile failed")
                self._closing.wait(every)

        self._reconciler = threading.Thread(target=loop, name="jobctl-reconciler", daemon=True)
        self._reconciler.start()

    def warm(self) -> None:
        """Get ready to start jobs fast (the local executor's launcher imports once)."""
        self.executor.warm(self.db_url)

    def close(self) -> None:
        """Release database connections and the launcher. Running jobs are not touched."""
        self._closing.set()
        if self._reconciler is not None:
            self._reconciler.join(timeout=5)
        self.executor.close()
        self.store.close()


def default_db_url() -> str:
    from jupyter_jobctl.db.store import default_db_url as _default

    return _default()
