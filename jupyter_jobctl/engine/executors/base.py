"""The executor interface: where a job attempt runs and whether it still lives.

See docs/architecture.md, "Executors".

The manager calls only what is declared here, so a new executor (Dask, a user's own)
plugs in without the manager, the server or the front ends changing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from jupyter_jobctl.core.errors import SpecError
from jupyter_jobctl.core.specs import PLACEMENT
from jupyter_jobctl.core.states import JobKind
from jupyter_jobctl.db.models import JobRow

Row = JobRow  # a job row as the store returns it (``Store.get_row``, ``Store.active_rows``)


@dataclass(frozen=True)
class Waiting:
    """Why a started job has no supervisor yet; ``gone``: it never will (its task failed)."""

    reason: str
    gone: bool = False


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

    def check_placement(self, spec: dict[str, Any]) -> None:
        """Refuse (:class:`SpecError`) placement this executor cannot honour; by default any:
        ``resources`` and ``workers`` are Dask's, and a job asking for a GPU must not run
        silently on a machine without one."""
        for key in PLACEMENT:
            if key in spec:
                raise SpecError(
                    f"spec.{key}",
                    f"spec.{key} places a job on a Dask cluster, but this server runs jobs with "
                    f"the {self.name!r} executor; leave spec.{key} out, or start the server "
                    'with c.JobCtl.executor = "dask" (see the README).',
                )

    def waiting(self, row: Row) -> Waiting | None:
        """Why a started job has no supervisor yet, when this executor knows (queued on a
        cluster): the job stays ``initializing`` and shows the reason, or fails with it when
        ``gone``. None: the manager's start grace decides, as for a supervisor that should
        have started at once."""
        return None

    def withdraw(self, row: Row) -> None:  # noqa: B027 - optional hook
        """A queued attempt (see :meth:`waiting`) was stopped: take it off the queue."""

    def adopt(self, row: Row) -> bool:
        """Take back a job after a server restart: True when its supervisor is seen alive.

        False also for a supervisor this executor cannot see (another host, a Dask worker):
        the manager then goes by its heartbeat.
        """
        return self.is_alive(row) is True

    def warm(self, db_url: str) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Get ready so that the first launch is fast."""

    def reap(self) -> None:  # noqa: B027 - optional hook
        """Collect finished children (local processes), so none linger."""

    def forget(self, job_id: str) -> None:  # noqa: B027 - optional hook
        """The job was deleted (or expired): remove what this executor kept of it (logs)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the executor holds; running jobs are not touched."""
