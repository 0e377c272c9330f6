"""The example notebooks run, as saved, with nbval against a real Jupyter server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_example_notebooks_run_against_a_real_server(real_server: Callable) -> None:
    server = real_server()
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == [
        "01_quickstart.ipynb",
        "02_test_batches.ipynb",
        "03_survive_restarts.ipynb",
        "04_notebook_jobs.ipynb",
    ]
    env = {**os.environ, "JOBCTL_URL": server.url, "JOBCTL_TOKEN": server.token}
    copies = set(NOTEBOOKS.glob("examples/*.*.ipynb"))  # 04's notebook job leaves its copy
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "--nbval-lax",
                "--nbval-cell-timeout=300",
                *names,
            ],
            cwd=NOTEBOOKS,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        for made in set(NOTEBOOKS.glob("examples/*.*.ipynb")) - copies:
            made.unlink()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout.splitlines()[-1]
