"""Job states, kinds, event types, test outcomes and the transitions between states.

Pure Python. Every enum is str-valued: a member *is* its string (``JobState.RUNNING ==
"running"``, same hash, ``str()`` and f-strings give the value, ``json.dumps`` writes the
value), so JSON and SQL see exactly the strings of the contract (docs/api.md) and a string
read back from the database compares equal to the member. Code that writes a value
out (SQL parameters, JSON built by hand) still passes ``.value``, so no driver ever has to
adapt an enum.
"""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    PENDING = "pending"
    INITIALIZING = "initializing"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"

    def __str__(self) -> str:
        return self.value


class EventType(str, Enum):
    STATUS = "status"
    PROGRESS = "progress"
    METRIC = "metric"
    LOG = "log"
    RESULT = "result"
    COLLECTION = "collection"
    SUMMARY = "summary"

    def __str__(self) -> str:
        return self.value


class JobKind(str, Enum):
    TRAINING = "training"
    TEST_BATCH = "test_batch"
    COMMAND = "command"
    NOTEBOOK = "notebook"

    def __str__(self) -> str:
        return self.value


class TestOutcome(str, Enum):
    """One test's folded outcome in a batch's ``result`` events (the one definition)."""

    __test__ = False  # not a test class, whatever pytest sees in a module importing it

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ERROR = "error"
    XFAILED = "xfailed"
    XPASSED = "xpassed"

    def __str__(self) -> str:
        return str(self.value)


TERMINAL: frozenset[JobState] = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.LOST}
)
# States in which a supervisor may own processes.
ACTIVE: frozenset[JobState] = frozenset(
    {JobState.INITIALIZING, JobState.RUNNING, JobState.PAUSED, JobState.STOPPING}
)

# to-state -> the states it may be entered from (docs/architecture.md). Every transition in the
# store is one conditional UPDATE guarded by exactly these sets.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.INITIALIZING: frozenset({JobState.PENDING}),
    JobState.RUNNING: frozenset({JobState.INITIALIZING, JobState.PAUSED}),
    JobState.PAUSED: frozenset({JobState.RUNNING}),
    JobState.STOPPING: frozenset({JobState.INITIALIZING, JobState.RUNNING, JobState.PAUSED}),
    JobState.COMPLETED: frozenset({JobState.INITIALIZING, JobState.RUNNING, JobState.PAUSED}),
    JobState.FAILED: frozenset(
        {JobState.INITIALIZING, JobState.RUNNING, JobState.PAUSED, JobState.STOPPING}
    ),
    JobState.CANCELLED: frozenset({JobState.PENDING, JobState.STOPPING}),
    JobState.LOST: ACTIVE,
}


def can_transition(current: JobState | str, to: JobState | str) -> bool:
    try:
        target = JobState(to)
    except ValueError:
        return False
    return current in TRANSITIONS.get(target, frozenset())


def state_values(states: frozenset[JobState]) -> list[str]:
    """The plain strings of a set of states, sorted (for SQL ``IN (…)`` and messages)."""
    return sorted(state.value for state in states)
