"""Launcher: ``python -m jupyter_jobctl.procs.launcher DB_URL``, a warm fork server for supervisors.

Starting a supervisor as a fresh Python costs an interpreter start plus SQLAlchemy's import
(~200 ms here) before it can record the job as running. The local executor therefore keeps
one launcher per server: a single-threaded process that imported the supervisor, the store
and the database driver once, and forks a supervisor per job on request (~1 ms). The worker
is still a fresh ``exec`` of Python (it carries the job's environment marker and none of the
server's state).

Protocol on stdin/stdout, one JSON object per line: the launcher says ``{"ready": pid}``
once warm; each request ``{"job_id", "attempt", "db_url", "env", "cwd", "log", "launch"}``
gets ``{"pid": n}`` or ``{"error": "..."}``. End of stdin (the server is gone, cleanly or
not) ends the launcher; supervisors it forked live on in their own sessions.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
from functools import partial
from typing import Any

from jupyter_jobctl.db.store import preload_driver
from jupyter_jobctl.procs import processes, supervisor, title

REAP_EVERY = 1.0  # seconds: finished supervisors are collected at least this often


def _send(message: dict[str, Any]) -> None:
    os.write(1, json.dumps(message).encode() + b"\n")


def _reap(logs: dict[int, str | None]) -> None:
    """Collect finished supervisors; drop their diagnostics file when it stayed empty."""
    while logs:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            logs.clear()
            return
        if pid == 0:
            return
        path = logs.pop(pid, None)
        if path is not None:
            try:
                if os.path.getsize(path) == 0:
                    os.unlink(path)
            except OSError:
                pass


def _fork(request: dict[str, Any]) -> int:
    run = partial(
        supervisor.run_attempt,
        request["job_id"],
        int(request["attempt"]),
        request["db_url"],
        request.get("launch"),
    )
    return processes.fork_detached(
        run, env=request["env"], cwd=request.get("cwd"), output=request.get("log")
    )


def serve() -> None:
    logs: dict[int, str | None] = {}
    pending = b""
    _send({"ready": os.getpid()})
    while True:
        _reap(logs)
        readable, _, _ = select.select([0], [], [], REAP_EVERY)
        if not readable:
            continue
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return  # the server closed our stdin: it is gone
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            try:
                request = json.loads(line)
                pid = _fork(request)
            except Exception as exc:  # a bad request or fork failure: say so, keep serving
                _send({"error": f"{type(exc).__name__}: {exc}"})
                continue
            logs[pid] = request.get("log")
            _send({"pid": pid})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Ctrl-C in the server's terminal reaches our process group too: the server decides
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    title.set_title("launcher")  # in ps, not the database URL of its command line
    preload_driver(argv[0])
    serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
