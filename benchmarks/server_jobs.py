"""Job targets for ``server_bench.py``, run by real workers with ``cwd`` = this directory.

Each is a ``training`` target (``server_jobs:<name>``) taking the job's ``config``.
"""

from __future__ import annotations

import time
from typing import Any

from jupyter_jobctl import runtime as jc

TICK_PREFIX = "tick"  # ticker lines: "tick <i> t=<time.time() when job.log was called>"


def cooperative(config: dict[str, Any]) -> None:
    """Checkpoints every ``sleep`` seconds (default 5 ms) until stopped."""
    job = jc.current()
    pause = float(config.get("sleep", 0.005))
    while True:
        job.checkpoint()
        time.sleep(pause)


def ticker(config: dict[str, Any]) -> None:
    """Logs ``rate`` lines/s for ``seconds``; each line carries the wall time of its log call."""
    job = jc.current()
    # push latency is delivery, not start-up: wait until the runtime's database connection
    # (opened in the background while the job's code already runs) takes writes
    job.flush()
    rate = float(config.get("rate", 20.0))
    count = int(float(config.get("seconds", 5.0)) * rate)
    period = 1.0 / rate
    due = time.monotonic()
    for i in range(count):
        job.checkpoint()
        job.log(f"{TICK_PREFIX} {i} t={time.time():.6f}")
        due += period
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def firehose(config: dict[str, Any]) -> None:
    """Logs about ``rate`` lines/s (in 10 ms chunks) until stopped: background event load."""
    job = jc.current()
    chunk = max(1, int(float(config.get("rate", 1000.0)) / 100))
    due = time.monotonic()
    i = 0
    while True:
        job.checkpoint()
        for _ in range(chunk):
            job.log(f"load line {i} with some padding to look like real training output")
            i += 1
        due += 0.01
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            due = time.monotonic()  # fell behind (CPU-bound): do not try to catch up


def burst(config: dict[str, Any]) -> None:
    """Logs ``count`` lines as fast as it can, then returns (the job completes)."""
    job = jc.current()
    for i in range(int(config.get("count", 20_000))):
        job.log(f"replay line {i:06d} loss=0.{i % 997:03d} accuracy=0.{i % 991:03d}")
