"""The executor interface (DESIGN §8): where a job attempt runs and whether it still lives.

The manager calls only what is declared here, so a new executor (Dask, a user's own)
plugs in without the manager, the server or the front ends changing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from jupyter_jobctl.core.states import JobKind
from jupyter_jobctl.db.models import JobRow

Row = JobRow  # a job row as the store returns it (``Store.get_row``, ``Store.active_rows``)


class Executor(ABC):
    """Launches supervisors and answers for their processes; never writes job state."""

    #: the name users give in ``c.JobCtl.executor``
    name: ClassVar[str]

    @abstractmethod
    def launch(
        self,
        job_id: str,
        attempt: int,
        db_url: str,
        kind: JobKind | str | None = None,
        spec: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        """Start the supervisor of ``attempt`` of the job; return once it is on its way.
        ``kind``, ``spec`` and ``name`` (the job's) save it a database read."""

    @abstractmethod
    def is_alive(self, row: Row) -> bool | None:
        """Whether the job's supervisor lives: None when this executor cannot tell."""

    @abstractmethod
    def worker_alive(self, row: Row) -> bool:
        """Whether the job's worker process still runs (its supervisor may be gone)."""

    @abstractmethod
    def signal(self, row: Row, sig: int) -> bool:
        """Send ``sig`` to the job's worker process group; False when nothing was there."""

    @abstractmethod
    def clean_up(self, row: Row) -> int:
        """Kill what a job left once its supervisor is gone; returns how many processes."""

    def adopt(self, row: Row) -> bool:
        """Take back a job after a server restart: True while its supervisor may live.

        A supervisor this executor cannot see (another host) is given the benefit of the
        doubt: its heartbeat, not this answer, decides when it is lost.
        """
        return self.is_alive(row) is not False

    def warm(self, db_url: str) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Get ready so that the first launch is fast."""

    def reap(self) -> None:  # noqa: B027 - optional hook
        """Collect finished children (local processes), so none linger."""

    def forget(self, job_id: str) -> None:  # noqa: B027 - optional hook
        """The job was deleted (or expired): remove what this executor kept of it (logs)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the executor holds; running jobs are not touched."""
