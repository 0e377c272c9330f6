"""Job targets for the hardening tests (outages, strict JSON, bounds), run by real workers
with cwd = this directory: ``{"target": "hostile_jobs:<name>", "config": {...}}``."""

from __future__ import annotations

import math
import sys
import time

from jupyter_jobctl import runtime as jc

LINE = "count"  # counter lines: "count <i>"


def counter(config: dict) -> None:
    """Logs ``count`` numbered lines (and a metric each ``metric_every``), one per ``sleep``
    s, through ``job.log`` and, with ``print``, every other one on stdout: events from both
    writers (the runtime's store and the supervisor's pipes)."""
    job = jc.current()
    n = int(config.get("count", 100))
    pause = float(config.get("sleep", 0.01))
    every = int(config.get("metric_every", 10))
    for i in job.progress(range(n), unit="line"):
        if config.get("print") and i % 2:
            print(f"{LINE} {i}", flush=True)
        else:
            job.log(f"{LINE} {i}")
        if i % every == 0:
            job.metric(step=i, value=i)
        time.sleep(pause)
    job.log("done")


def diverging(config: dict) -> None:
    """A training whose loss diverges: NaN and infinities in metrics, progress and events."""
    job = jc.current()
    job.metric(step=1, loss=math.nan, grad=math.inf, low=-math.inf, fine=0.5)
    job.set_progress(math.nan, total=math.inf, unit="step", checkpoint=False)
    job.event("metric", {"nested": {"values": [1.0, math.nan, math.inf]}, "ok": 1})
    job.log("diverged")
    job.flush()
    if config.get("wait"):
        while True:  # until stopped: the stream tests watch it live
            job.checkpoint()
            time.sleep(0.02)


def flood_stdout(config: dict) -> None:
    """Prints ``lines`` lines of ``width`` characters, then one ``long`` character line with
    no newline (a job that floods its log); the last line printed is ``the end``."""
    width = int(config.get("width", 100))
    row = "y" * width
    for i in range(int(config.get("lines", 1000))):
        print(f"{i:08d} {row}")
    long = int(config.get("long", 0))
    chunk = "z" * (1 << 16)
    for _ in range(long // len(chunk)):
        sys.stdout.write(chunk)
    sys.stdout.write("\nthe end\n")
    sys.stdout.flush()
