"""The benchmarks cannot rot: every script answers ``--help``, and ``run_all.py --smoke``
runs the in-process engine figures and the server's stop/ingest/soak figures tiny, through
run_all's own collection into the results table.

Real processes, a real server, SQLite. The numbers of a smoke run mean nothing; what is
checked is that every step ran and produced its figures. The full run is ``make bench``
(and ``run_all.py --smoke`` with no ``--only`` runs every step tiny, jupyter-scheduler
and PostgreSQL included).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
SCRIPTS = [
    "engine_bench.py",
    "server_bench.py",
    "ingest_soak_bench.py",
    "batch_bench.py",
    "scheduler_compare.py",
    "run_all.py",
]


def run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help(script: str) -> None:
    proc = run([str(BENCH / script), "--help"], 120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage:"), proc.stderr[-2000:]


@pytest.mark.timeout(600)
def test_run_all_smoke_writes_the_engine_and_server_figures(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    proc = run([str(BENCH / "run_all.py"), "--smoke", "--only=engine,ingest", f"--out={out}"], 540)
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
    assert proc.returncode == 0, tail
    text = out.read_text()
    rows = [line for line in text.splitlines() if re.match(r"^\| \d \| ", line)]
    measured = {
        int(line.split("|")[1])
        for line in rows
        if line.split("|")[3].strip() in ("SQLite", "—") and not line.endswith("| no data |")
    }
    assert measured >= {1, 2, 5, 6, 9}, text
