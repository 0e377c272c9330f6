"""Importable job targets for the tests (run by real workers with cwd = this directory).

Also a script: ``python jobs.py stubborn PIDFILE`` ignores SIGINT and SIGTERM and keeps
a child process, for the SIGKILL rung of the stop ladder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from jupyter_jobctl import runtime as jc


def _mark(config: dict, key: str, text: str) -> None:
    if config.get(key):
        Path(config[key]).write_text(text)


def cooperative(config: dict) -> None:
    """Loops on checkpoints until stopped; its finally block proves a clean unwind."""
    job = jc.current()
    _mark(config, "pid_file", str(os.getpid()))
    try:
        for i in job.progress(range(config.get("steps", 10**9)), unit="step"):
            time.sleep(config.get("sleep", 0.01))
            if i % 20 == 0:
                job.metric(step=i, value=i)
    finally:
        _mark(config, "finally_file", "unwound")


def sleeper(config: dict) -> None:
    """Blocked in time.sleep: only SIGINT gets it out."""
    _mark(config, "pid_file", str(os.getpid()))
    try:
        time.sleep(config.get("seconds", 60))
    finally:
        _mark(config, "finally_file", "unwound")


def quick(config: dict) -> int:
    jc.current().log("quick job done")
    print("printed to stdout")
    print("printed to stderr", file=sys.stderr)
    return int(config.get("code", 0))


def crash(config: dict) -> None:
    raise ValueError("boom from the job")


def chatty(config: dict) -> None:
    """Writes many events fast, for ``seconds`` or until ``count`` lines (stream tests)."""
    job = jc.current()
    deadline = time.monotonic() + config.get("seconds", 10)
    count = config.get("count", 10**12)
    i = 0
    while time.monotonic() < deadline and i < count:
        job.log(f"line {i}")
        job.metric(step=i, value=i)
        i += 1
        if i % 50 == 0:
            time.sleep(0.001)
    job.log(f"total {i}")


def stubborn(pid_file: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    Path(pid_file).write_text(f"{os.getpid()} {child.pid}")
    print("stubborn ready", flush=True)
    while True:
        time.sleep(0.1)


if __name__ == "__main__":
    if sys.argv[1] == "stubborn":
        stubborn(sys.argv[2])


def report_environment(config: dict) -> None:
    """Writes what the job's code sees of jobctl's start-up plumbing (it should see none)."""
    import json

    seen = {
        "env": sorted(k for k in os.environ if k.startswith("JOBCTL_")),
        "running": jc.current().id is not None,
    }
    Path(config["out"]).write_text(json.dumps(seen))
