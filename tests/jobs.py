"""Importable job targets for the tests and the benchmarks (run by real workers with
cwd = this directory): ``{"target": "jobs:<name>", "config": {...}, "cwd": <here>}``.

Also a script: ``python jobs.py stubborn [PIDFILE]`` ignores SIGINT and SIGTERM and keeps
a child process, for the SIGKILL rung of the stop ladder.

A target given ``"ready": true`` waits until its database connection takes writes, then
logs ``READY``: a stop requested after that line meets the job in its steady state.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from jupyter_jobctl import runtime as jc

READY = "ready"
TICK = "tick"  # ticker lines: "tick <i> t=<time.time() when job.log was called>"


def _mark(config: dict, key: str, text: str) -> None:
    if config.get(key):
        Path(config[key]).write_text(text)


def _ready(config: dict) -> None:
    if config.get("ready"):
        jc.current().flush()  # the connection is opened in the background at start-up
        print(READY, flush=True)


def cooperative(config: dict) -> None:
    """Loops on checkpoints (every ``sleep`` s) until stopped; with ``progress`` (default)
    through ``job.progress()`` with a metric every 20 steps. Its finally block proves a
    clean unwind."""
    job = jc.current()
    _mark(config, "pid_file", str(os.getpid()))
    pause = config.get("sleep", 0.01)
    try:
        _ready(config)
        steps = range(config.get("steps", 10**9))
        if config.get("progress", True):
            for i in job.progress(steps, unit="step"):
                time.sleep(pause)
                if i % 20 == 0:
                    job.metric(step=i, value=i)
        else:
            for _ in steps:
                job.checkpoint()
                time.sleep(pause)
    finally:
        _mark(config, "finally_file", "unwound")


def sleeper(config: dict) -> None:
    """Blocked in time.sleep: only SIGINT gets it out."""
    _mark(config, "pid_file", str(os.getpid()))
    try:
        _ready(config)
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


def report_environment(config: dict) -> None:
    """Writes what the job's code sees of jobctl's start-up plumbing (it should see none)."""
    import json

    seen = {
        "env": sorted(k for k in os.environ if k.startswith("JOBCTL_")),
        "running": jc.current().id is not None,
    }
    Path(config["out"]).write_text(json.dumps(seen))


# ---------------------------------------------------------------- the benchmarks' load


def ticker(config: dict) -> None:
    """Logs ``rate`` lines/s for ``seconds``; each line carries the wall time of its call."""
    job = jc.current()
    job.flush()  # push latency is delivery, not start-up
    rate = float(config.get("rate", 20.0))
    due = time.monotonic()
    for i in range(int(float(config.get("seconds", 5.0)) * rate)):
        job.checkpoint()
        job.log(f"{TICK} {i} t={time.time():.6f}")
        due += 1.0 / rate
        time.sleep(max(0.0, due - time.monotonic()))


def firehose(config: dict) -> None:
    """Logs about ``rate`` lines/s (in 10 ms chunks) until stopped: background event load."""
    job = jc.current()
    chunk = max(1, int(float(config.get("rate", 1000.0)) / 100))
    due, i = time.monotonic(), 0
    while True:
        job.checkpoint()
        for _ in range(chunk):
            job.log(f"load line {i} with some padding to look like real training output")
            i += 1
        due += 0.01
        if (delay := due - time.monotonic()) > 0:
            time.sleep(delay)
        else:
            due = time.monotonic()  # fell behind (CPU-bound): do not try to catch up


def burst(config: dict) -> None:
    """Logs ``count`` lines as fast as it can, then returns (the job completes)."""
    job = jc.current()
    for i in range(int(config.get("count", 20_000))):
        job.log(f"replay line {i:06d} loss=0.{i % 997:03d} accuracy=0.{i % 991:03d}")


def flood(config: dict) -> None:
    """Reports events as fast as the store takes them, until stopped: ``chunk`` log lines
    and a metric, then ``job.flush()`` in this thread, so the job goes exactly as fast as the
    database accepts its batches (the reporter thread alone would let the queue grow)."""
    job = jc.current()
    chunk, i = int(config.get("chunk", 200)), 0
    while True:
        for _ in range(chunk):
            job.log(f"ingest line {i:08d} loss=0.{i % 997:03d} accuracy=0.{i % 991:03d}")
            i += 1
        job.metric(step=i, loss=(i % 997) / 997)
        job.checkpoint()
        job.flush()


def stubborn(pid_file: str | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    if pid_file:
        Path(pid_file).write_text(f"{os.getpid()} {child.pid}")
    print(READY, flush=True)
    while True:
        time.sleep(0.1)


if __name__ == "__main__" and sys.argv[1] == "stubborn":
    stubborn(sys.argv[2] if len(sys.argv) > 2 else None)
