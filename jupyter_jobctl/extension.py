"""The Jupyter server extension: configuration (``c.JobCtl.*``) and the manager's lifetime.

On start it migrates the database and reconciles jobs (re-adopting those whose supervisor
lives); on shutdown it stops watching. It never waits for or kills running jobs: they
belong to their supervisors. The HTTP/WebSocket routes build on this (DESIGN §6).
"""

from __future__ import annotations

from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Integer, Unicode, default

from .manager import JobManager, StopPolicy


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

    @default("db_url")
    def _default_db_url(self) -> str:
        from .manager import default_db_url

        return default_db_url()

    def initialize_settings(self) -> None:
        policy = StopPolicy(
            interrupt_after=self.interrupt_after,
            stop_grace=self.stop_grace,
            kill_grace=self.kill_grace,
            heartbeat_interval=self.heartbeat_interval,
        )
        self.manager = JobManager(self.db_url, policy=policy)
        self.settings["jobctl_manager"] = self.manager
        self.log.info("jobctl: job database %s", self.manager.db_url)
        # before the first request: re-adopt live jobs, end those whose processes are gone
        outcome = self.manager.reconcile()
        self.log.info(
            "jobctl: re-adopted %d job(s); %d lost, %d failed",
            len(outcome["adopted"]),
            len(outcome["lost"]),
            len(outcome["failed"]),
        )

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        self.manager.run_reconciler(retention_days=self.retention_days)

    async def stop_extension(self) -> None:
        self.manager.close()
