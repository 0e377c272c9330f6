"""A notebook job's cells, run in a kernel of its own by nbclient, inside the job's worker.

One ``progress`` per cell (``cell n/total``), each output as log lines as it arrives, and
the executed copy written as it goes (after every cell, and every few seconds of a long
one), so a failed or stopped run still leaves what ran. Code in the notebook reports
through the runtime API: ``jc.current()`` attaches inside the kernel too (the kernel gets
the job's identity in its environment).

The stop ladder reaches the kernel through this process. A notebook that checkpoints stops
cooperatively (the kernel's runtime sees the stop flag); the supervisor's SIGINT rung
(``interrupt_after``) becomes a kernel interrupt, its SIGTERM rung shuts the kernel down
at once. The kernel runs in a session of its own (jupyter_client's choice, so an interrupt
reaches its whole process group); whatever is left after a SIGKILL rung, the supervisor's
clean-up ends (every process carrying the job's id).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

# jsonschema (imported by nbformat) imports rfc3987_syntax when it is installed, only to
# check IRIs, which no notebook schema asks for; that import builds a grammar: 1.5-4 s of
# every notebook job's start here. Without it jsonschema skips that one format.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellExecutionError, DeadKernelError  # noqa: E402
from nbformat import NotebookNode  # noqa: E402

from jupyter_jobctl import runtime  # noqa: E402
from jupyter_jobctl.core import notebooks  # noqa: E402
from jupyter_jobctl.core.states import EventType  # noqa: E402
from jupyter_jobctl.core.timestamps import iso  # noqa: E402
from jupyter_jobctl.procs import handshake, scratch  # noqa: E402

SAVE_EVERY = 2.0  # seconds: the executed copy during a long cell
SHUTDOWN_WAIT = 1.0  # seconds a kernel gets to exit after its shutdown request, then SIGKILL
STOP_RELAY_POLL = 0.005  # seconds: the worker's stop flag, looked at from the event loop
FLUSH_WAIT = 5.0  # seconds for the kernel to write its runtime's queued reports
# run in the kernel before it is shut down: what the notebook's code reported is written now,
# not left to an atexit handler that a slow shutdown (killed after SHUTDOWN_WAIT) never runs
_FLUSH_CODE = (
    "import sys as _jc_sys\n"
    "_jc_rt = _jc_sys.modules.get('jupyter_jobctl.runtime')\n"
    "if _jc_rt is not None and _jc_rt._current is not None: _jc_rt._current.flush()\n"
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_STOP_ERRORS = {"Cancelled", "KeyboardInterrupt"}


class _Lines:
    """Stream text arrives in chunks: log whole lines, the rest when the cell ends."""

    def __init__(self, job: runtime.Job) -> None:
        self.job = job
        self.pending: dict[str, str] = {}

    def add(self, stream: str, text: str) -> None:
        text = self.pending.pop(stream, "") + text
        whole, _, rest = text.rpartition("\n")
        if whole or text.endswith("\n"):
            self.job.log(whole, stream=stream)
        if rest:
            self.pending[stream] = rest

    def flush(self) -> None:
        for stream, rest in self.pending.items():
            self.job.log(rest, stream=stream)
        self.pending.clear()


class _Client(NotebookClient):
    """nbclient's client, telling the job about every output as it comes."""

    on_message: Callable[[dict[str, Any]], None] | None = None

    def output(
        self,
        outs: list[NotebookNode],
        msg: dict[str, Any],
        display_id: str | None,
        cell_index: int,
    ) -> NotebookNode | None:
        out = super().output(outs, msg, display_id, cell_index)
        if self.on_message is not None:
            self.on_message(msg)
        return out


def inject_parameters(nb: NotebookNode, parameters: dict[str, Any]) -> None:
    """papermill's convention: a cell tagged ``injected-parameters`` after the first cell
    tagged ``parameters`` (first in the notebook when there is none); an earlier injected
    cell (a copy of a copy) is replaced."""
    nb.cells = [c for c in nb.cells if notebooks.INJECTED_TAG not in _tags(c)]
    cell = nbformat.v4.new_code_cell(source=notebooks.parameters_source(parameters))
    cell.metadata["tags"] = [notebooks.INJECTED_TAG]
    where = next((i + 1 for i, c in enumerate(nb.cells) if notebooks.PARAMETERS_TAG in _tags(c)), 0)
    nb.cells.insert(where, cell)


def _read(path: str) -> NotebookNode:
    """The notebook, each cell with an id (nbformat 4.5 wants them; older files lack them,
    which made nbformat warn into the job's log and JupyterLab mark the copy as changed)."""
    from nbformat.corpus.words import generate_corpus_id
    from nbformat.validator import MissingIDFieldWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingIDFieldWarning)
        nb = nbformat.read(path, as_version=4)
    if (nb.nbformat, nb.nbformat_minor) < (4, 5):
        nb.nbformat_minor = 5
    for cell in nb.cells:
        if not cell.get("id"):
            cell["id"] = generate_corpus_id()
    return nb


def _tags(cell: NotebookNode) -> list[str]:
    tags = cell.get("metadata", {}).get("tags", [])
    return list(tags) if isinstance(tags, list) else []


class NotebookRun:
    """One attempt of a notebook job. ``run()`` returns the worker's exit code."""

    def __init__(
        self, job: runtime.Job, spec: dict[str, Any], set_reason: Callable[[str], None]
    ) -> None:
        self.job = job
        self.spec = spec
        self.set_reason = set_reason
        self.output_path = notebooks.output_path(spec, job.id)
        self.nb = _read(spec["path"])
        if spec.get("parameters"):
            inject_parameters(self.nb, spec["parameters"])
        self.cells = [i for i, c in enumerate(self.nb.cells) if c.cell_type == "code"]
        self.lines = _Lines(job)
        self.client = _Client(
            self.nb,
            kernel_name=spec.get("kernel", ""),  # "": the notebook's own kernelspec
            timeout=None,  # a training cell may take days
            allow_errors=False,
            shutdown_kernel="graceful",
            resources={"metadata": {"path": spec["cwd"]}},
        )
        self.client.on_message = self._on_message
        self.interrupted = False
        self.terminated = False
        self._task: asyncio.Task[Any] | None = None
        self._interrupting: asyncio.Future[Any] | None = None
        self._saved_at = 0.0
        self._ipc_dir: str | None = None
        self._stop_file: str | None = None
        self.nb.metadata["jobctl"] = {
            "job_id": job.id,
            "attempt": job.attempt,
            "input_path": spec["path"],
            "parameters": spec.get("parameters", {}),
            "status": "running",
            "started_at": iso(time.time()),
        }

    # ------------------------------------------------------------------ outputs

    def _on_message(self, msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            stream = "stderr" if content.get("name") == "stderr" else "stdout"
            self.lines.add(stream, content["text"])
        elif kind in ("execute_result", "display_data"):
            text = content.get("data", {}).get("text/plain")
            if text:
                self.job.log(text, stream="stdout")
        elif kind == "error":
            self.lines.flush()
            trace = [_ANSI.sub("", line) for line in content.get("traceback", [])]
            if self._stopping() and content.get("ename") in _STOP_ERRORS:
                trace = trace[-1:]  # the stop's own unwinding: where it stopped is enough
            for line in trace:
                self.job.log(line, stream="stderr")
        if time.monotonic() - self._saved_at > SAVE_EVERY:
            self.save()

    def save(self, status: str | None = None) -> None:
        """Write the executed copy (atomically: a reader never sees half a notebook)."""
        if status is not None:
            self.nb.metadata["jobctl"].update(status=status, finished_at=iso(time.time()))
        tmp = f"{self.output_path}.{os.getpid()}.tmp"
        try:
            nbformat.write(self.nb, tmp)
            os.replace(tmp, self.output_path)
        except OSError as exc:
            self.job.log(f"[jobctl] the executed copy could not be written: {exc}", stream="jobctl")
        self._saved_at = time.monotonic()

    # ------------------------------------------------------------------ signals

    def _interrupt(self) -> None:
        """The supervisor's SIGINT rung: interrupt the kernel, as JupyterLab's stop button."""
        self.interrupted = True
        km: Any = self.client.km  # an AsyncKernelManager (nbclient's default), typed as sync
        if km is not None and km.has_kernel:
            self.job.log("[CANCELLATION] interrupting the notebook's kernel", stream="jobctl")
            self._interrupting = asyncio.ensure_future(km.interrupt_kernel())

    def _terminate(self) -> None:
        """The supervisor's SIGTERM rung: no more waiting for the cell, end the kernel now."""
        self.terminated = True
        if self._task is not None:
            self._task.cancel()

    # ------------------------------------------------------------------ the run

    def run(self) -> int:
        return asyncio.run(self._main())

    def _stopping(self) -> bool:
        return self.job.should_stop() or self.interrupted or self.terminated

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self._interrupt)
        loop.add_signal_handler(signal.SIGTERM, self._terminate)
        total = len(self.cells)
        self.job.log(
            f"[NOTEBOOK] {self.spec['path']}: {total} code cells; executed copy: "
            f"{self.output_path}",
            stream="jobctl",
        )
        self.save()
        status = "failed"
        relay = asyncio.ensure_future(self._relay_stop())
        try:
            self._task = asyncio.ensure_future(self._start_kernel())
            await self._task
            status = await self._cells(total)
        except asyncio.CancelledError:
            status = "cancelled"
        except DeadKernelError as exc:
            status = "cancelled" if self._stopping() else "failed"
            if status == "failed":
                self.set_reason(f"The notebook's kernel died: {exc}")
        finally:
            relay.cancel()
            self.lines.flush()
            self.save(status)
            # a stopped notebook's cell has unwound already: no need to wait for the kernel's
            # own exit (its process group is killed, its children with it)
            await self._shutdown(at_once=status == "cancelled")
        if status == "completed":
            # the kernel's last reports (a training loop's epochs) may have been written
            # after the last cell's: the job ends showing its cells, all done
            self._progress(total, total)
        return 1 if status == "failed" else 0

    async def _relay_stop(self) -> None:
        """Pass the stop on to the kernel's runtime the moment this worker hears of it."""
        while not self.job.should_stop():
            await asyncio.sleep(STOP_RELAY_POLL)
        if self._stop_file is not None:
            with open(self._stop_file, "w"):
                pass

    async def _start_kernel(self) -> None:
        env = dict(os.environ)
        env.pop(handshake.FD_ENV, None)
        # the kernel's channels on Unix sockets in a folder of the job's: no TCP ports to
        # race for or to expose, and no "running over TCP without encryption" in the log
        self._ipc_dir = scratch.make_dir(self.job.id, self.job.attempt)
        self._stop_file = os.path.join(self._ipc_dir, "stop")
        params = self.spec.get("parameters", {})
        env.update(runtime.kernel_env(self.job.attempt, params, self._stop_file))
        km = self.client.km = self.client.create_kernel_manager()
        km.transport = "ipc"
        km.ip = os.path.join(self._ipc_dir, "kernel")
        try:
            await self.client.async_start_new_kernel(cwd=self.spec["cwd"], env=env)
        except Exception as exc:  # no such kernel, a kernel that dies at start
            raise _KernelFailed(
                f"The notebook's kernel {self.client.kernel_name or 'python3'!r} could not "
                f"be started: {type(exc).__name__}: {exc}"
            ) from exc
        await self.client.async_start_new_kernel_client()

    async def _cells(self, total: int) -> str:
        for n, index in enumerate(self.cells):
            if self._stopping():
                self.job.log(f"[CANCELLATION] stopped before cell {n + 1}", stream="jobctl")
                return "cancelled"
            self._progress(n, total)
            self.job.log(f"[CELL {n + 1}/{total}]", stream="jobctl")
            self._task = asyncio.ensure_future(
                self.client.async_execute_cell(self.nb.cells[index], index)
            )
            try:
                await self._task
            except CellExecutionError as exc:
                self.lines.flush()
                if self._stopping() and exc.ename in _STOP_ERRORS | {"CancelledError"}:
                    self.job.log(
                        f"[CANCELLATION] stopped in cell {n + 1} ({exc.ename})", stream="jobctl"
                    )
                    return "cancelled"
                if self._stopping():
                    return "cancelled"
                self.set_reason(f"Cell {n + 1} of {total} raised {exc.ename}: {exc.evalue}")
                return "failed"
            finally:
                self.lines.flush()
            self.save()
        self._progress(total, total)
        return "completed"

    def _progress(self, done: int, total: int) -> None:
        """``cell n/total``, with no rate or ETA: cells take anything from a millisecond to
        a day, so a rate from the ones done would promise an end that means nothing."""
        data = {"done": done, "total": total, "unit": "cell", "rate": None, "eta_s": None}
        latest = {f"progress_{k}": v for k, v in data.items() if k != "eta_s"}
        self.job.event(EventType.PROGRESS, data, **latest, progress_eta=None)

    async def _shutdown(self, at_once: bool = False) -> None:
        """The kernel goes with the job: asked to, then killed (at once when stopped)."""
        # nbclient's async manager and client, typed by jupyter_client as the sync ones
        kc: Any = self.client.kc
        km: Any = self.client.km
        if kc is not None:
            if not self.terminated:
                try:
                    await asyncio.wait_for(
                        kc.execute_interactive(
                            _FLUSH_CODE, silent=True, store_history=False, timeout=FLUSH_WAIT
                        ),
                        FLUSH_WAIT,
                    )
                except Exception:
                    pass  # a kernel that cannot answer: its atexit handler is the last chance
            kc.stop_channels()
        try:
            if km is not None and km.has_kernel:
                now = at_once or self.terminated
                km.shutdown_wait_time = 0.0 if now else SHUTDOWN_WAIT
                await km.shutdown_kernel(now=now)
        except Exception as exc:
            self.job.log(f"[jobctl] the kernel's shutdown failed: {exc}", stream="jobctl")
        finally:
            if self._ipc_dir is not None:
                shutil.rmtree(self._ipc_dir, ignore_errors=True)


class _KernelFailed(Exception):
    pass


def run(job: runtime.Job, spec: dict[str, Any], set_reason: Callable[[str], None]) -> int:
    """Execute the job's notebook; the worker's exit code (1 when a cell failed)."""
    try:
        nb_run = NotebookRun(job, spec, set_reason)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        set_reason(f"The notebook {spec['path']!r} could not be read: {exc}")
        return 1
    try:
        return nb_run.run()
    except _KernelFailed as exc:
        set_reason(str(exc))
        return 1
