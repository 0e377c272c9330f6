"""The Jupyter server extension: configuration (``c.JobCtl.*``), routes, and lifetimes.

On start it migrates the database, reconciles jobs (re-adopting those whose supervisor
lives, ending the others with a reason) and begins tailing events for the streams. On
shutdown it stops tailing. It never waits for or kills running jobs: they belong to their
supervisors and keep running while no server does.
"""

from __future__ import annotations

import asyncio
import gc
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Integer, TraitError, Type, Unicode, default, validate

from jupyter_jobctl.core.errors import StorageError
from jupyter_jobctl.core.states import JobState
from jupyter_jobctl.engine.manager import DEFAULT_MAX_LOG_BYTES, JobManager, StopPolicy
from jupyter_jobctl.server.handlers import ROUTES, NotFoundHandler, url_pattern
from jupyter_jobctl.server.hub import EventHub
from jupyter_jobctl.server.stream import WS_ROUTES

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

FREEZE_AFTER = 5.0  # seconds after start: other extensions and first requests have loaded


class JobCtl(ExtensionApp):
    name = "jupyter_jobctl"
    description = "Supervised, persistent, stoppable jobs for Jupyter."

    db_url = Unicode(
        help="SQLAlchemy URL of the job database. Default: a SQLite file under the Jupyter "
        "data directory. PostgreSQL: postgresql+psycopg://user@host/db",
    ).tag(config=True)
    interrupt_after = Float(0.5, help="Seconds after a stop request before SIGINT.").tag(
        config=True
    )
    stop_grace = Float(3.0, help="Seconds after a stop request before SIGTERM.").tag(config=True)
    kill_grace = Float(2.0, help="Seconds after SIGTERM before SIGKILL.").tag(config=True)
    heartbeat_interval = Float(1.0, help="Supervisor heartbeat period in seconds.").tag(config=True)
    retention_days = Integer(0, help="Delete finished jobs after this many days (0: keep).").tag(
        config=True
    )
    executor = Unicode(
        "local",
        help="Where jobs run, by name: 'local' (per-job supervisors on this machine), "
        "'dask' (tasks on the Dask cluster at dask_address; use a shared PostgreSQL db_url) "
        "or 'dask-local' (a LocalCluster started with the server, for trying it out).",
    ).tag(config=True)
    dask_address = Unicode(
        "",
        help="The Dask scheduler's address for executor 'dask', e.g. tcp://scheduler:8786.",
    ).tag(config=True)
    dask_start_timeout = Float(
        0.0,
        help="Seconds a job may wait on the Dask cluster for a worker (busy cluster, no worker "
        "with its resources) before it fails; 0: as long as it takes (it shows why it waits).",
    ).tag(config=True)
    listen = Bool(
        True,
        help="With PostgreSQL, LISTEN for the NOTIFY every change sends, so that the streams "
        "of this server follow jobs written by any server or machine at once (False: the "
        "tail poll alone, every tail_interval).",
    ).tag(config=True)
    listen_poll_interval = Float(
        0.5,
        help="With PostgreSQL, LISTEN/NOTIFY wakes the streams when any server or worker "
        "writes; the database is then polled only this often, as the fallback.",
    ).tag(config=True)
    executor_class = Type(
        None,
        klass="jupyter_jobctl.engine.executors.base.Executor",
        allow_none=True,
        help="Your own Executor subclass; overrides `executor` when set.",
    ).tag(config=True)
    max_concurrent_replays = Integer(
        8, help="Database pages read for streams at once (replays, slow clients); others wait."
    ).tag(config=True)
    stream_heartbeat = Float(
        10.0, help="Seconds of silence before a stream sends a heartbeat."
    ).tag(config=True)
    send_timeout = Float(
        10.0, help="A stream client that does not take a page in this long is closed (1013)."
    ).tag(config=True)
    job_nice = Integer(
        0,
        min=0,
        max=19,
        help="Niceness added to job processes (0-19): with jobs saturating the CPU, a higher "
        "value keeps the server (and so Stop, streams, /health) and kernels responsive.",
    ).tag(config=True)
    freeze_startup_heap = Bool(
        False,
        help="Opt-in: 5 s after the server started, call gc.freeze(), which exempts every "
        "object alive then (those of the whole Jupyter server and of every extension, not "
        "only jobctl's) from cyclic garbage collection for the life of the process. Full "
        "collections then take milliseconds instead of 40-180 ms pauses that stall every "
        "request and stream, but cyclic garbage that already exists then (any extension's) "
        "is never collected.",
    ).tag(config=True)
    db_threads = Integer(8, help="Threads for database work (kept off the event loop).").tag(
        config=True
    )
    tail_interval = Float(0.025, help="Seconds between looks at the database for new events.").tag(
        config=True
    )
    max_log_bytes_per_job = Integer(
        DEFAULT_MAX_LOG_BYTES,
        min=0,
        help="Most bytes of log one job stores (0: no limit). Past it a '[jobctl] log "
        "truncated' line is stored, then nothing more of the log until the job ends, when "
        "its last MiB is stored: a job that floods its output cannot fill the database.",
    ).tag(config=True)

    @validate("executor")
    def _valid_executor(self, proposal: Any) -> str:
        from jupyter_jobctl.engine.executors import EXECUTORS

        if proposal["value"] not in EXECUTORS:
            known = ", ".join(sorted(EXECUTORS))
            raise TraitError(f"c.JobCtl.executor must be one of: {known}.")
        return str(proposal["value"])

    @default("db_url")
    def _default_db_url(self) -> str:
        from jupyter_jobctl.engine.manager import default_db_url

        return default_db_url()

    def initialize_settings(self) -> None:
        policy = StopPolicy(
            interrupt_after=self.interrupt_after,
            stop_grace=self.stop_grace,
            kill_grace=self.kill_grace,
            heartbeat_interval=self.heartbeat_interval,
        )
        self.manager = JobManager(
            self.db_url,
            policy=policy,
            executor_name=self.executor,
            executor_class=self.executor_class,
            executor_options=self._executor_options(),
            job_nice=self.job_nice,
            base_dir=self._root_dir(),
            max_log_bytes=self.max_log_bytes_per_job,
            tolerate_outage=True,
        )
        self.db_pool = ThreadPoolExecutor(self.db_threads, thread_name_prefix="jobctl-db")
        self.health_pool = ThreadPoolExecutor(1, thread_name_prefix="jobctl-health")
        settings: dict[str, Any] = {
            "jobctl_manager": self.manager,
            "jobctl_db_pool": self.db_pool,
            "jobctl_health_pool": self.health_pool,
            "jobctl_max_replays": self.max_concurrent_replays,
            "jobctl_heartbeat": self.stream_heartbeat,
            "jobctl_send_timeout": self.send_timeout,
        }
        self.settings.update(settings)
        assert self.serverapp is not None  # set by ExtensionApp before initialize_settings
        self.hub = EventHub(
            self.manager,
            self.serverapp.web_app.settings,
            self.tail_interval,
            listen=self.listen,
            listen_poll_interval=self.listen_poll_interval,
        )
        self.settings["jobctl_hub"] = self.hub
        self.log.info("jobctl: job database %s", self.manager.db_url)
        # before the first request: re-adopt live jobs, end those whose processes are gone
        try:
            outcome = self.manager.reconcile()
        except StorageError as exc:  # disk full, database down: load anyway, /health says so
            self.log.warning("jobctl: reconciliation failed at start (retried later): %s", exc)
            return
        self.log.info(
            "jobctl: re-adopted %d job(s); %d lost, %d failed",
            len(outcome["adopted"]),
            len(outcome[JobState.LOST]),
            len(outcome[JobState.FAILED]),
        )

    def _executor_options(self) -> dict[str, Any]:
        if self.executor_class is not None or not self.executor.startswith("dask"):
            return {}
        options: dict[str, Any] = {"start_timeout": self.dask_start_timeout}
        if self.executor == "dask":
            options["address"] = self.dask_address or None
        return options

    def _root_dir(self) -> str | None:
        """The server's root_dir: where a relative spec.cwd starts, as in Jupyter."""
        root = getattr(self.serverapp, "root_dir", None)
        return str(root) if root else None

    def initialize_handlers(self) -> None:
        for path, handler in ROUTES + WS_ROUTES:
            self.handlers.append((url_pattern(path), handler))
        self.handlers.append((r"jobctl/api/(?P<path>.*)", NotFoundHandler))

    async def _start_jupyter_server_extension(self, serverapp: ServerApp) -> None:
        self.manager.run_reconciler(retention_days=self.retention_days)
        self.hub.ensure_started()
        self.db_pool.submit(self.manager.warm)  # the first job should not wait for imports
        if self.freeze_startup_heap:
            asyncio.get_running_loop().call_later(FREEZE_AFTER, _freeze_startup_heap)

    async def stop_extension(self) -> None:
        await self.hub.stop()
        self.db_pool.shutdown(wait=False, cancel_futures=True)
        self.health_pool.shutdown(wait=False, cancel_futures=True)
        self.manager.close()


def _freeze_startup_heap() -> None:
    """Exempt every object alive now from future cyclic collections.

    A Jupyter server holds ~10^6 long-lived objects (modules, handlers, traitlets); each
    full collection walked all of them: 40-180 ms pauses, several a minute under stream
    load (measured with gc.callbacks). Objects made from now on are collected as usual. No
    collection first: that alone is a 0.3 s pause, to free a little start-up garbage.
    """
    gc.freeze()
