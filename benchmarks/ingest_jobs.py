"""Job targets for ``ingest_soak_bench.py``, run by real workers with ``cwd`` = this directory.

Each is a ``training`` target (``ingest_jobs:<name>``) taking the job's ``config``.
"""

from __future__ import annotations

from typing import Any

from jupyter_jobctl import runtime as jc


def flood(config: dict[str, Any]) -> None:
    """Reports events as fast as the store takes them, until stopped.

    Each round queues ``chunk`` log lines and one metric through the runtime API, then calls
    ``job.flush()``: the write happens in this thread, so the job goes exactly as fast as the
    database accepts its batches (the reporter thread alone would let the queue grow
    without bound when the producer is faster than the store).
    """
    job = jc.current()
    chunk = int(config.get("chunk", 200))
    i = 0
    while True:
        for _ in range(chunk):
            job.log(f"ingest line {i:08d} loss=0.{i % 997:03d} accuracy=0.{i % 991:03d}")
            i += 1
        job.metric(step=i, loss=(i % 997) / 997)
        job.checkpoint()
        job.flush()
