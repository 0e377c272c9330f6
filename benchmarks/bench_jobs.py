"""Job targets for ``engine_bench.py``, run by real workers with ``cwd`` = this directory.

Each target prints ``READY_LINE`` once it is in its steady state, so the benchmark can
request the stop only when the path it measures (checkpoint, SIGINT, SIGKILL) is armed.
"""

from __future__ import annotations

import time
from typing import Any

from jupyter_jobctl import runtime as jc

READY_LINE = "bench-ready"

# A `command` job for the SIGKILL rung: ignores SIGINT and SIGTERM, then sleeps forever.
STUBBORN_SCRIPT = (
    "import signal, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    f"print({READY_LINE!r}, flush=True)\n"
    "while True:\n"
    "    time.sleep(1)\n"
)


def cooperative(config: dict[str, Any]) -> None:
    """Checkpoints every ~5 ms until stopped (the cooperative stop path)."""
    job = jc.current()
    pause = float(config.get("sleep", 0.005))
    job.checkpoint()
    # steady state: the runtime's database connection (opened in the background while the
    # job's code already runs) is up, so the job's last words on a stop are not held up
    job.flush()
    print(READY_LINE, flush=True)
    while True:
        job.checkpoint()
        time.sleep(pause)


def sleeper(config: dict[str, Any]) -> None:
    """Blocked in time.sleep with no checkpoint: only the SIGINT rung gets it out."""
    jc.current().flush()  # steady state, as above
    print(READY_LINE, flush=True)
    time.sleep(float(config.get("seconds", 600)))
