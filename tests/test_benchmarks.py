"""The benchmarks cannot rot: every script answers ``--help``, and ``run_all.py --smoke``
runs the engine's and the server's figures tiny, collecting each script's own rows into
the results table.

Real processes, a real server, SQLite. The numbers of a smoke run mean nothing; what is
checked is that every step ran and produced its figures. The full run is ``make bench``;
``run_all.py --smoke`` alone runs every step tiny (jupyter-scheduler, PostgreSQL too).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "common")


def run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=BENCH.parent, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help(script: str) -> None:
    proc = run(str(BENCH / f"{script}.py"), "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage:"), proc.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("step", "figures"), [("engine", {1, 2, 3, 5}), ("server", {1, 2, 4, 6, 8, 9})]
)
def test_run_all_smoke_writes_the_figures(tmp_path: Path, step: str, figures: set[int]) -> None:
    out = tmp_path / "RESULTS.md"
    proc = run(str(BENCH / "run_all.py"), "--smoke", f"--only={step}", f"--out={out}", timeout=540)
    assert proc.returncode == 0, "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
    text = out.read_text()
    rows = [line.split(" | ") for line in text.splitlines() if re.match(r"^\| \d \| ", line)]
    assert {int(r[0].strip("| ")) for r in rows} == figures, text
    assert not [r for r in rows if "no data" in r[-1]], text
    assert "## Problems the scripts reported\n\nnone\n" in text, text
