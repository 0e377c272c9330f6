"""Main of a job's worker process: ``python -m jupyter_jobctl.worker JOB_ID ATTEMPT``.

Started by the supervisor in its own process group, with JOBCTL_DB_URL in the environment.
It attaches the runtime, runs the target (a training function or script, or pytest for a
test batch), and turns a stop into a clean unwind. The supervisor records the final state.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import runpy
import signal
import sys
import traceback
from typing import Any

from . import runtime
from .runtime import Cancelled

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


def _run_pytest(job_id: str, attempt: int, store: Any, args: list[str]) -> int:
    """Run pytest with the jobctl plugin; a run that finished (even with failures) is 0."""
    import pytest

    from . import pytest_plugin

    code = int(pytest.main([*args, "-p", "jupyter_jobctl.pytest_plugin"]))
    pytest_plugin.ensure_summary(code)
    if code in (0, 1):
        return 0  # the batch completed; failures are in its results and counts
    store.set_reason(
        job_id,
        attempt,
        f"pytest exit code {code}: {pytest_plugin.EXIT_MEANING.get(code, 'failed')}.",
    )
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job_id, attempt = argv[0], int(argv[1])
    db_url = os.environ["JOBCTL_DB_URL"]

    from .store import Store

    store = Store(db_url)
    row = store.get_row(job_id)
    spec = json.loads(row["spec"])
    job = runtime.attach(job_id, attempt, db_url, spec.get("config", {}))
    code = 0
    try:
        if store.mark_running(job_id, attempt) != "running":
            raise Cancelled("start")
        if row["kind"] == "test_batch":
            code = _run_pytest(job_id, attempt, store, spec.get("args", []))
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
        if job.should_stop() or _stop_pending(store, job_id):
            job.log("[CANCELLATION] interrupted by SIGINT", stream="jobctl")
        else:
            store.set_reason(job_id, attempt, "Interrupted by SIGINT.")
        code = EXIT_INTERRUPTED
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:
        traceback.print_exc()
        sys.stderr.flush()
        store.set_reason(job_id, attempt, f"{type(exc).__name__}: {exc}")
        code = 1
    finally:
        runtime.detach()
        store.close()
    return code


def _unwinding() -> None:
    """The stop was accepted: a late SIGINT rung must not cut the clean-up short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_pending(store: Any, job_id: str) -> bool:
    ctl = store.control(job_id)
    return ctl is not None and ctl[2] is not None


if __name__ == "__main__":
    sys.exit(main())
