"""Job states, event types and the transitions between states (pure Python)."""

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

    def __str__(self) -> str:
        return self.value


TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled", "lost"})
# States in which a supervisor may own processes.
ACTIVE: frozenset[str] = frozenset({"initializing", "running", "paused", "stopping"})

# to-state -> the states it may be entered from (DESIGN §2). Every transition in the
# store is one conditional UPDATE guarded by exactly these sets.
TRANSITIONS: dict[str, frozenset[str]] = {
    "initializing": frozenset({"pending"}),
    "running": frozenset({"initializing", "paused"}),
    "paused": frozenset({"running"}),
    "stopping": frozenset({"initializing", "running", "paused"}),
    "completed": frozenset({"initializing", "running", "paused"}),
    "failed": frozenset({"initializing", "running", "paused", "stopping"}),
    "cancelled": frozenset({"pending", "stopping"}),
    "lost": frozenset(ACTIVE),
}


def can_transition(current: str, to: str) -> bool:
    return current in TRANSITIONS.get(to, frozenset())
