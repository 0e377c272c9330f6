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
import traceback
from typing import TYPE_CHECKING, Any

from jupyter_jobctl import runtime
from jupyter_jobctl.core.states import JobKind
from jupyter_jobctl.procs import handshake
from jupyter_jobctl.runtime import Cancelled

if TYPE_CHECKING:
    from jupyter_jobctl.db.store import Store

EXIT_CANCELLED = 0  # a cooperative cancel is a clean exit; the job's status says "cancelled"
EXIT_INTERRUPTED = 130


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


def _run_pytest(job_id: str, attempt: int, stores: _LazyStore, args: list[str]) -> int:
    """Run pytest with the jobctl plugin; a run that finished (even with failures) is 0."""
    import pytest

    from jupyter_jobctl import pytest_plugin

    code = int(pytest.main([*args, "-p", "jupyter_jobctl.pytest_plugin"]))
    pytest_plugin.ensure_summary(code)
    if code in (0, 1):
        return 0  # the batch completed; failures are in its results and counts
    stores.get().set_reason(
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

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def _plan(job_id: str, stores: _LazyStore) -> dict[str, Any]:
    """The job's kind and spec: from the supervisor's environment, else from the database."""
    raw = os.environ.pop(handshake.PLAN_ENV, None)
    if raw is not None:
        return dict(json.loads(raw))
    row = stores.get().get_row(job_id)
    return {"kind": row["kind"], "spec": json.loads(row["spec"])}


def _may_start(job_id: str, attempt: int, stores: _LazyStore) -> bool:
    """Become running (through the supervisor when it handed us a handshake socket)."""
    end = handshake.worker_end()
    if end is None:
        return stores.get().mark_running(job_id, attempt) in handshake.RUNNABLE
    if not handshake.ready(end):
        return False
    runtime.listen_for_stop(end)
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job_id, attempt = argv[0], int(argv[1])
    db_url = os.environ["JOBCTL_DB_URL"]
    stores = _LazyStore(db_url)
    plan = _plan(job_id, stores)
    spec = plan["spec"]
    job = runtime.attach(job_id, attempt, db_url, spec.get("config", {}), _freeze_own_heap)
    code = 0
    try:
        if not _may_start(job_id, attempt, stores):
            raise Cancelled("start")  # a stop came before the job's code ran
        if plan["kind"] == JobKind.TEST_BATCH:
            code = _run_pytest(job_id, attempt, stores, spec.get("args", []))
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
            stores.get().set_reason(job_id, attempt, "Interrupted by SIGINT.")
        code = EXIT_INTERRUPTED
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:
        traceback.print_exc()
        sys.stderr.flush()
        stores.get().set_reason(job_id, attempt, f"{type(exc).__name__}: {exc}")
        code = 1
    finally:
        runtime.detach()
        stores.close()
    return code


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
    ctl = store.control(job_id)
    return ctl is not None and ctl[2] is not None


if __name__ == "__main__":
    sys.exit(main())
