"""Rules import-linter cannot check: who spawns processes, who speaks SQL."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "jupyter_jobctl"


def _sources() -> dict[str, str]:
    return {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in PACKAGE.rglob("*.py")}


def test_only_processes_module_spawns_or_signals() -> None:
    pattern = re.compile(
        r"\b(subprocess\.(Popen|run|call)|os\.kill|os\.killpg|pidfd_send_signal|os\.fork)\("
    )
    offenders = [
        name
        for name, text in _sources().items()
        if pattern.search(text) and name != "procs/processes.py"
    ]
    assert offenders == []


def test_only_store_speaks_sql() -> None:
    pattern = re.compile(r"\b(from sqlalchemy import|import sqlalchemy|\.execute\(|sqlite3)\b")
    allowed = {
        "db/store.py",
        "db/models.py",
        "db/migrations/env.py",
        "db/migrations/versions/0001_initial.py",
        "db/migrations/versions/0004_log_limit.py",
    }
    offenders = [
        name for name, text in _sources().items() if pattern.search(text) and name not in allowed
    ]
    assert offenders == []
