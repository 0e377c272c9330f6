"""Main of a job's worker process: ``python -m jupyter_jobctl.procs.worker JOB_ID ATTEMPT``.

Started by the supervisor in its own process group, with JOBCTL_DB_URL in the environment
(and usually the job's plan and a handshake socket, see :mod:`handshake`). It attaches the
runtime, tells the supervisor it is ready, runs the target (a training function or script,
or pytest for a test batch), and turns a stop into a clean unwind. The supervisor records
the final state. SQLAlchemy is imported by the runtime's thread, not before the job starts.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import json
import os
import runpy
import signal
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

from jupyter_jobctl import runtime
from jupyter_jobctl.core.errors import StorageError
from jupyter_jobctl.core.states import JobKind
from jupyter_jobctl.procs import handshake, title
from jupyter_jobctl.runtime import Cancelled

if TYPE_CHECKING:
    from jupyter_jobctl.db.store import Store

EXIT_CANCELLED = 0  # a cooperative cancel is a clean exit; the job's status says "cancelled"
EXIT_INTERRUPTED = 130
REASON_PATIENCE = 60.0  # seconds a failure's reason is retried through a database outage


def _call_target(target: str, config: dict[str, Any]) -> Any:
    if target.endswith(".py"):
        sys.argv = [target]
        return runpy.run_path(target, run_name="__main__")
    module_name, func_name = target.split(":", 1)
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        wants_config = len(inspect.signature(func).parameters) > 0
    except (TypeError, ValueError):
        wants_config = True
    return func(config) if wants_config else func()


def _run_pytest(job: runtime.Job, stores: _LazyStore, args: list[str]) -> int:
    """Run pytest with the jobctl plugin; a run that finished (even with failures) is 0, a
    stopped one pytest's ``interrupted`` code, 2 (the job is then ``cancelled``)."""
    import pytest

    code = int(pytest.main([*args, "-p", "jupyter_jobctl.pytest_plugin"]))
    # imported only now: pytest imports it for ``-p`` itself, with its assertion rewriting
    # (imported before, pytest warned "Module already imported so cannot be rewritten")
    from jupyter_jobctl import pytest_plugin

    if job.should_stop():
        _unwinding()
    pytest_plugin.ensure_summary(code)
    if code in (0, 1):
        return 0  # the batch completed; failures are in its results and counts
    if job.should_stop():
        return code  # stopped: the summary says so; the supervisor records `cancelled`
    job_id, attempt = job.id, job.attempt
    stores.set_reason(
        job_id,
        attempt,
        f"pytest exit code {code}: {pytest_plugin.EXIT_MEANING.get(code, 'failed')}.",
    )
    return code


class _LazyStore:
    """The worker's own store handle, opened on first use (most jobs never need it)."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self._store: Store | None = None

    def get(self) -> Store:
        if self._store is None:
            from jupyter_jobctl.db.store import Store

            self._store = Store(self.db_url)
        return self._store

    def set_reason(self, job_id: str, attempt: int, reason: str) -> None:
        """Say why the job failed; through a database outage too (retried for a while: the
        supervisor records the end, with the exit code, whatever happens here)."""
        deadline = time.monotonic() + REASON_PATIENCE
        delay = 0.05
        while True:
            try:
                self.get().set_reason(job_id, attempt, reason)
                return
            except StorageError:
                if time.monotonic() + delay > deadline:
                    return
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def _plan(job_id: str, stores: _LazyStore) -> dict[str, Any]:
    """The job's kind, spec and name: from the supervisor's environment, else the database."""
    raw = os.environ.pop(handshake.PLAN_ENV, None)
    if raw is not None:
        return dict(json.loads(raw))
    row = stores.get().get_row(job_id)
    return {"kind": row["kind"], "spec": json.loads(row["spec"]), "name": row["name"]}


def _may_start(job: runtime.Job, stores: _LazyStore) -> bool:
    """Become running (through the supervisor when it handed us a handshake socket)."""
    if job.channel is None:
        return stores.get().mark_running(job.id, job.attempt) in handshake.RUNNABLE
    return job.channel.ready()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job_id, attempt = argv[0], int(argv[1])
    db_url = os.environ["JOBCTL_DB_URL"]
    stores = _LazyStore(db_url)
    plan = _plan(job_id, stores)
    title.set_title("worker", job_id, plan.get("name"))
    spec = plan["spec"]
    # the handshake pair is read from here on: a stop is seen before the job's first statement
    end = handshake.worker_end()
    job = runtime.attach(job_id, attempt, db_url, spec.get("config", {}), _freeze_own_heap, end)
    code = 0
    try:
        if not _may_start(job, stores):
            raise Cancelled("start")  # a stop came before the job's code ran
        if plan["kind"] == JobKind.TEST_BATCH:
            code = _run_pytest(job, stores, spec.get("args", []))
        elif plan["kind"] == JobKind.NOTEBOOK:
            from jupyter_jobctl.procs import notebook  # nbclient: only notebook jobs pay for it

            code = notebook.run(job, spec, lambda why: stores.set_reason(job_id, attempt, why))
        else:
            result = _call_target(spec["target"], spec.get("config", {}))
            if isinstance(result, int) and not isinstance(result, bool):
                code = result
    except Cancelled as exc:
        _unwinding()
        job.log(f"[CANCELLATION] stopped at checkpoint {exc}", stream="jobctl")
        code = EXIT_CANCELLED
    except KeyboardInterrupt:
        _unwinding()
        if job.should_stop() or _stop_pending(stores.get(), job_id):
            job.log("[CANCELLATION] interrupted by SIGINT", stream="jobctl")
        else:
            stores.set_reason(job_id, attempt, "Interrupted by SIGINT.")
        code = EXIT_INTERRUPTED
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:
        traceback.print_exc()
        sys.stderr.flush()
        stores.set_reason(job_id, attempt, f"{type(exc).__name__}: {exc}")
        code = 1
    finally:
        runtime.detach()
        stores.close()
    if job.handed_over:
        _leave(code)  # the store never opened: its thread may be inside SQLAlchemy's import
    return code


def _leave(code: int) -> None:
    """End the worker as the interpreter's exit would, less its finalization.

    A job that ended before its store opened (the supervisor wrote its reports) leaves while
    the reporter thread may still be importing SQLAlchemy: finalizing the interpreter under
    a daemon thread inside an import crashed the worker now and then (SIGSEGV in
    ``Py_FinalizeEx``: 2 to 8 in 240 quick jobs on a loaded machine; the job ended
    ``failed``), and collecting that half-loaded heap is slow. So: the job's own non-daemon
    threads are waited for and the atexit handlers run, as at a normal exit, then the
    process ends. Only the clean-up of objects still alive at exit is skipped (Python does
    not promise it either); what the job's code had released is released already.
    """
    import atexit
    import threading

    try:
        threading._shutdown()  # type: ignore[attr-defined]  # what a normal exit waits for
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code & 0xFF)


def _freeze_own_heap() -> None:
    """Keep the worker's own long-lived objects out of the cyclic garbage collector.

    Called by the reporter thread once the store is open. Everything loaded by then
    (SQLAlchemy, psycopg and its dialect, the engines, this package) lives until the process
    exits. Interpreter shutdown runs several full collections, and over this heap they cost
    100-150 ms of CPU (half that on SQLite, no psycopg), paid after a stopped job returned
    and before the supervisor can record ``cancelled``: with jobs busy on two cores that was
    ~1 s on PostgreSQL. Frozen, shutdown takes ~10 ms. The job's objects are still freed by
    reference counting; only cyclic garbage the job made in its first moments (while the
    store opened) waits for the exit. The store's connections are closed explicitly.
    """
    gc.freeze()


def _unwinding() -> None:
    """The stop was accepted: a late SIGINT rung must not cut the clean-up short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_pending(store: Store, job_id: str) -> bool:
    try:
        ctl = store.control(job_id)
    except StorageError:  # an outage: no stop can have been asked for meanwhile
        return False
    return ctl is not None and ctl[2] is not None


if __name__ == "__main__":
    sys.exit(main())
