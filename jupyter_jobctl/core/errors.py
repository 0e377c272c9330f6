"""Domain errors shared by every layer. The HTTP layer maps them to status codes in one place."""

from __future__ import annotations


class JobctlError(Exception):
    """Base class: ``str(error)`` is a sentence a person understands."""


class SpecError(JobctlError, ValueError):
    """A job request is invalid; ``field`` names the offending part (``spec.config.epochs``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class JobNotFound(JobctlError, LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"No job with id {job_id!r} exists.")
        self.job_id = job_id


class Conflict(JobctlError):
    """The request is valid but not in the job's current state (e.g. stopping a completed job)."""

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class StorageError(JobctlError):
    """The database cannot be used as configured (e.g. SQLite on a network file system)."""


class DatabaseUnavailable(StorageError):
    """A database call failed: unreachable, locked, its disk full. ``str()`` is one sentence
    (never SQL); ``cause`` is ``"disk_full"``, ``"locked"``, ``"unreachable"``,
    ``"read_only"`` or ``"failed"``. Writers retry these: the database usually comes back."""

    def __init__(self, message: str, cause: str = "failed") -> None:
        super().__init__(message)
        self.cause = cause
