"""Executors on a Dask cluster: ``c.JobCtl.executor = "dask"`` (an existing scheduler at
``c.JobCtl.dask_address``) or ``"dask-local"`` (a ``LocalCluster`` for trying it out).

Each attempt is one Dask task (:func:`jupyter_jobctl.procs.dask_task.run_attempt`) running
the job's usual supervisor on a Dask worker, submitted with ``fire_and_forget`` so that it
outlives this server. Everything else goes through the shared database as for a local job:
the supervisor heartbeats and watches the stop flag there, any server sees and stops any
job, and a job whose supervisor stops heartbeating is lost. Dask's own placement is
passed through: ``spec.resources`` (worker resources, e.g. ``{"GPU": 1}``) and
``spec.workers`` (worker addresses or names). Dask itself reaches Slurm, PBS or Kubernetes
(dask-jobqueue, dask-kubernetes): jobctl has no cluster code of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from jupyter_jobctl.core.errors import SpecError
from jupyter_jobctl.core.states import JobKind
from jupyter_jobctl.engine.executors.base import Executor, Row, Waiting
from jupyter_jobctl.engine.executors.local import same_boot_identity
from jupyter_jobctl.procs import dask_task, processes

log = logging.getLogger("jupyter_jobctl")

CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler
SUBMIT_GRACE = 10.0  # seconds a just-submitted task may be unknown to the scheduler


def task_key(job_id: str, attempt: int) -> str:
    """The attempt's Dask key: the same from every server, so any of them can find it."""
    return f"jobctl-{job_id}-{attempt}"


def _missing_dask() -> SpecError:
    return SpecError(
        "executor",
        "The Dask executors need the distributed package: pip install 'jupyter-jobctl[dask]'.",
    )


class DaskExecutor(Executor):
    """Jobs as fire-and-forget tasks on an existing Dask cluster."""

    name = "dask"

    def __init__(
        self,
        address: str | None = None,
        *,
        start_timeout: float = 0.0,
        log_dir: Any = None,
        job_nice: int = 0,
    ) -> None:
        try:
            import distributed  # noqa: F401 - fail at start, not at the first job
        except ImportError:
            raise _missing_dask() from None
        self.address = address
        self.start_timeout = start_timeout  # 0: a queued job waits as long as it takes
        self.job_nice = job_nice
        self._client: Any = None
        self._lock = threading.Lock()
        self._warned_sqlite = False

    # ------------------------------------------------------------ the scheduler

    def scheduler_address(self) -> str:
        if not self.address:
            raise SpecError(
                "dask_address",
                'c.JobCtl.executor = "dask" needs the scheduler\'s address in '
                'c.JobCtl.dask_address (e.g. "tcp://scheduler:8786"), or use "dask-local".',
            )
        return self.address

    def client(self) -> Any:
        """This server's Dask client (made on first use); OSError when unreachable."""
        with self._lock:
            if self._client is None:
                from distributed import Client

                address = self.scheduler_address()
                try:
                    self._client = Client(  # type: ignore[no-untyped-call]
                        address, timeout=CONNECT_TIMEOUT, set_as_default=False
                    )
                except Exception as exc:
                    raise OSError(
                        f"the Dask scheduler at {address} did not answer ({exc})"
                    ) from exc
            return self._client

    def _warn_sqlite(self, db_url: str) -> None:
        if db_url.startswith("sqlite") and not self._warned_sqlite:
            self._warned_sqlite = True
            log.warning(
                "jobctl: the %s executor with a SQLite database: only Dask workers on this "
                "machine can reach it; use a shared PostgreSQL (c.JobCtl.db_url) for a cluster",
                self.name,
            )

    def warm(self, db_url: str) -> None:
        self._warn_sqlite(db_url)
        try:
            self.client()
        except (OSError, SpecError) as exc:
            log.warning("jobctl: %s", exc)

    # ------------------------------------------------------------ the interface

    def check_placement(self, spec: dict[str, Any]) -> None:
        """Dask honours spec.resources and spec.workers itself: nothing to refuse."""

    def launch(
        self,
        job_id: str,
        attempt: int,
        db_url: str,
        kind: JobKind | str | None = None,
        spec: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        from distributed import fire_and_forget

        self._warn_sqlite(db_url)
        spec = spec or {}
        env = {processes.NICE_ENV: str(self.job_nice)} if self.job_nice else {}
        client = self.client()
        try:
            future = client.submit(
                dask_task.run_attempt,
                job_id,
                attempt,
                db_url,
                env,
                key=task_key(job_id, attempt),
                pure=False,
                retries=0,  # a job runs at most once per attempt (the claim guards reruns)
                resources=spec.get("resources"),
                workers=spec.get("workers"),
                allow_other_workers=False,
            )
            fire_and_forget(future)  # type: ignore[no-untyped-call]  # the scheduler keeps it when this client goes away
        except Exception as exc:
            raise OSError(f"Dask did not take the job ({exc})") from exc

    def _ask(self, keys: list[str]) -> dict[str, dict[str, Any] | None] | None:
        """The scheduler's view of these tasks, or None when it does not answer."""
        try:
            found = self.client().run_on_scheduler(dask_task.task_states, keys)
        except Exception as exc:
            log.debug("jobctl: the Dask scheduler did not answer: %s", exc)
            return None
        return dict(found)

    def waiting(self, row: Row) -> Waiting | None:
        key = task_key(row["id"], row["attempt"])
        address = self.address or "the local cluster"
        waited = time.time() - (row["started_at"] or time.time())
        found = self._ask([key])
        if found is None:
            return Waiting(
                f"The Dask scheduler at {address} does not answer; the job starts when a "
                "worker runs its task."
            )
        task = found.get(key)
        if task is None:
            if waited < SUBMIT_GRACE:
                return Waiting(f"Submitted to the Dask cluster at {address}.")
            return Waiting(
                f"The Dask scheduler at {address} no longer knows this job's task "
                "(restarted?); it will not start.",
                gone=True,
            )
        state = task["state"]
        if state == "erred":
            return Waiting(f"The job's Dask task failed: {task['error']}", gone=True)
        if state in ("memory", "forgotten"):
            return Waiting("The job's Dask task ended without starting the job.", gone=True)
        if self.start_timeout and waited > self.start_timeout:
            self.withdraw(row)
            return Waiting(
                f"No Dask worker took the job within {self.start_timeout:.0f} s "
                "(c.JobCtl.dask_start_timeout).",
                gone=True,
            )
        if state == "no-worker":
            wanted = [f"{k}={v:g}" for k, v in task["resources"].items()] + task["workers"]
            return Waiting(
                f"Waiting for a Dask worker with {', '.join(wanted) or 'what it asks'}: none "
                f"of the cluster's {task['workers_total']} worker(s) has it yet."
            )
        if state == "processing":
            return Waiting(f"Starting on Dask worker {task['on'] or '?'}.")
        return Waiting(
            f"Queued on the Dask cluster at {address} (task {state}): its workers are busy."
        )

    def withdraw(self, row: Row) -> None:
        try:
            from distributed import Future

            client = self.client()
            client.cancel([Future(task_key(row["id"], row["attempt"]), client)], force=True)
        except Exception as exc:  # the scheduler is away: its task claims nothing now anyway
            log.debug("jobctl: could not cancel the Dask task of %s: %s", row["id"], exc)

    # A supervisor on a Dask worker of this very machine (same boot) is checked by its
    # process, like a local one; on another machine only its heartbeat tells (None).

    def is_alive(self, row: Row) -> bool | None:
        ident = same_boot_identity(row, "supervisor")
        return None if ident is None else ident.alive()

    def worker_alive(self, row: Row) -> bool:
        ident = same_boot_identity(row, "worker")
        return ident is not None and ident.alive()

    def signal(self, row: Row, sig: int) -> bool:
        ident = same_boot_identity(row, "worker")
        return ident is not None and processes.signal_group(ident, sig)

    def clean_up(self, row: Row) -> int:
        if same_boot_identity(row, "supervisor") is None:
            return 0  # another machine's processes: its supervisor's parent-death signal
        return processes.kill_job_processes(row["id"])

    def close(self) -> None:
        """Close this server's client; the jobs' tasks stay on the scheduler."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close(timeout=5)
            except Exception as exc:
                log.debug("jobctl: closing the Dask client: %s", exc)


class DaskLocalExecutor(DaskExecutor):
    """A ``LocalCluster`` started with the server, for trying the Dask executor out: its
    workers are this server's children, so its jobs end when the server stops."""

    name = "dask-local"

    def __init__(self, address: str | None = None, *, n_workers: int = 2, **kwargs: Any) -> None:
        super().__init__(None, **kwargs)
        self.n_workers = n_workers
        self._cluster: Any = None

    def scheduler_address(self) -> str:
        if self._cluster is None:
            from distributed import LocalCluster

            self._cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=self.n_workers,
                threads_per_worker=4,
                processes=True,
                dashboard_address=None,
                scheduler_port=0,
            )
            self.address = self._cluster.scheduler_address
        return str(self.address)

    def close(self) -> None:
        super().close()
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            try:
                cluster.close(timeout=10)
            except Exception as exc:
                log.debug("jobctl: closing the local Dask cluster: %s", exc)
