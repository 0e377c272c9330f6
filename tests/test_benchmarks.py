"""The benchmarks cannot rot: ``benchmarks/run_all.py --smoke`` runs every script tiny.

Real processes, a real server, SQLite and PostgreSQL, jupyter-scheduler in its cached venv
(created from PyPI on the first run). The numbers of a smoke run mean nothing; what is
checked is that every step ran and produced its figures.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(900)
def test_run_all_smoke_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--smoke", f"--out={out}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,
    )
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
    assert proc.returncode == 0, tail
    text = out.read_text()
    rows = [line for line in text.splitlines() if re.match(r"^\| \d \| ", line)]
    figures = {int(line.split("|")[1]) for line in rows}
    assert figures == set(range(1, 10)), text
    assert not [r for r in rows if r.rstrip().endswith("| no data |")], text
    assert {"SQLite", "PostgreSQL"} <= {line.split("|")[3].strip() for line in rows}
