"""The verbs of ``%jobctl`` and ``jupyter jobctl``: one parser, one implementation.

Both front ends call :func:`parse` and then :meth:`Commands.run`; they differ only in their
host: a notebook displays a job's view where a terminal prints a line, and ``attach`` (show
the views of jobs again) exists only in a notebook. Bad arguments raise :class:`UsageError`
(usage + one line), API errors :class:`~jupyter_jobctl.kernel.client.JobctlError` (the
server's sentence); neither front end shows a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from .client import ACTIVE_STATES, TERMINAL_STATES, Event, Job, JobctlClient, JobctlError

DEMO_TARGET = "jupyter_jobctl.examples.train:main"
# the demo trainer's config when nothing is given (docs/architecture.md, the seed scenario)
TRAIN_DEFAULTS: dict[str, Any] = {
    "mode": "smoke_test",
    "epochs": 5,
    "batch_size": 2,
    "learning_rate": 0.001,
    "optimizer": "adam",
}
# a cell runs as ``python -c <cell>``; past this size an argument no longer fits an exec()
MAX_CELL_BYTES = 100_000
COUNT_KEYS = ("total", "completed", "passed", "failed", "skipped")
CLI_PROG = "jupyter jobctl"
MAGIC_PROG = "%jobctl"
# options that belong to ``run``/``test`` themselves, before the program's own arguments
_PASS_THROUGH_OWN = {"--name": True, "--cwd": True, "--url": True, "--token": True, "--json": False}


class UsageError(Exception):
    """Bad arguments: ``usage`` is the verb's usage line, the message one line of reason."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class HelpShown(Exception):
    """``--help`` printed its text; nothing more to do."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so a kernel never sees ``SystemExit``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage())

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            raise UsageError(message.strip(), self.format_usage())
        raise HelpShown()


@dataclass(frozen=True)
class Verb:
    name: str
    help: str
    notebook_only: bool = False


VERBS = (
    Verb("list", "list jobs, newest first"),
    Verb("show", "show one job's state"),
    Verb("train", "start a training job (the demo trainer unless --target)"),
    Verb("run", "run a program (or, as %%%%jobctl run, the cell) as a job"),
    Verb("test", "run pytest as a test batch"),
    Verb("notebook", "run a notebook (.ipynb) as a job, in a kernel of its own"),
    Verb("stop", "stop a job (or --all active jobs)"),
    Verb("pause", "pause a job at its next checkpoint"),
    Verb("resume", "resume a paused job"),
    Verb("attach", "show the views of a job or of every active job again", notebook_only=True),
    Verb("logs", "print a job's log (--follow: until it ends)"),
    Verb("rerun", "run a job again (--failed: only a batch's failed tests)"),
    Verb("delete", "delete a finished job and its events"),
)


def _add_globals(parser: argparse.ArgumentParser, verb: bool) -> None:
    """``--url``, ``--token`` and ``--json``, before or after the verb (the verb's copies are
    hidden from its usage and never override a value given before the verb)."""
    default = argparse.SUPPRESS if verb else None

    def shown(text: str) -> str:
        return argparse.SUPPRESS if verb else text

    parser.add_argument("--url", default=default, help=shown("the Jupyter server (default: found)"))
    parser.add_argument("--token", default=default, help=shown("its API token (or JOBCTL_TOKEN)"))
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if verb else False,
        help=shown("print the API's objects as JSON"),
    )


def build_parser(*, notebook: bool) -> argparse.ArgumentParser:
    """The one parser of both front ends (``notebook`` adds the notebook-only verbs)."""
    parser = _Parser(
        prog=MAGIC_PROG if notebook else CLI_PROG,
        description="Start, watch and stop jupyter_jobctl jobs.",
        epilog="The server: --url/--token, else JOBCTL_URL/JOBCTL_TOKEN, else the Jupyter "
        "server this runs under (a kernel or terminal of it), else the only one running.",
    )
    _add_globals(parser, verb=False)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub: dict[str, argparse.ArgumentParser] = {}
    for verb in VERBS:
        if verb.notebook_only and not notebook:
            continue
        added: argparse.ArgumentParser = verbs.add_parser(
            verb.name, help=verb.help, description=verb.help
        )
        _add_globals(added, verb=True)
        sub[verb.name] = added

    p = sub["list"]
    p.add_argument("--status", help="a state, a comma list of states, or 'active'")
    p.add_argument("--kind", choices=("training", "test_batch", "command", "notebook"))
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")

    for name in ("show", "pause", "resume", "delete"):
        sub[name].add_argument("job_id", metavar="ID", help="a job id (or a unique prefix)")

    p = sub["train"]
    p.add_argument("--name", help="the job's name")
    p.add_argument("--mode", help="smoke_test (default) or full")
    p.add_argument("--epochs", type=int, help="default 5")
    p.add_argument("--batch-size", type=int, dest="batch_size", help="default 2")
    p.add_argument("--lr", type=float, dest="learning_rate", help="learning rate, default 0.001")
    p.add_argument("--optimizer", help="adam (default), sgd, rmsprop")
    p.add_argument("--target", help=f"pkg.mod:func or path/to/train.py (default {DEMO_TARGET})")
    p.add_argument("--config", help="a JSON object merged into the config (flags win)")
    p.add_argument("--cwd", help="working directory (default: the current one)")

    p = sub["run"]
    p.usage = "%(prog)s [--name N] [--cwd DIR] -- ARGV..."
    p.add_argument("--name", help="the job's name")
    p.add_argument("--cwd", help="working directory (default: the current one)")
    p.add_argument("argv", nargs="*", metavar="ARGV", help="the program and its arguments")

    p = sub["test"]
    p.usage = "%(prog)s [--name N] [--cwd DIR] [PYTEST ARGS...]"
    p.add_argument("--name", help="the batch's name")
    p.add_argument("--cwd", help="working directory (default: the current one)")
    p.add_argument("args", nargs="*", metavar="PYTEST_ARGS", help="pytest's arguments")

    p = sub["notebook"]
    p.usage = "%(prog)s PATH [-p NAME VALUE]... [--name N] [--kernel K] [--output PATH] [--cwd DIR]"
    p.add_argument("path", metavar="PATH", help="the notebook (relative: to the current folder)")
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        dest="parameters",
        help="a parameter (papermill's convention); VALUE is read as JSON when it is JSON "
        "(3, 0.1, true, [1, 2]), else taken as a string",
    )
    p.add_argument("--name", help="the job's name (default: the notebook's file name)")
    p.add_argument("--kernel", help="the kernel to run it in (default: the notebook's own)")
    p.add_argument(
        "--output", help="where the executed copy goes (default: beside it, NAME.<id>.ipynb)"
    )
    p.add_argument("--cwd", help="working directory (default: the notebook's folder)")

    p = sub["stop"]
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("job_id", metavar="ID", nargs="?", help="a job id (or a unique prefix)")
    which.add_argument("--all", action="store_true", help="every active job")

    if "attach" in sub:
        sub["attach"].add_argument(
            "job_id", metavar="ID", nargs="?", help="default: every active job"
        )

    p = sub["logs"]
    p.add_argument("job_id", metavar="ID", help="a job id (or a unique prefix)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")

    p = sub["rerun"]
    p.add_argument("job_id", metavar="ID", help="a job id (or a unique prefix)")
    p.add_argument("--failed", action="store_true", help="only the failed tests of a batch")
    parser.verb_parsers = sub  # type: ignore[attr-defined]
    return parser


def parse(argv: Sequence[str] | str, *, notebook: bool) -> argparse.Namespace:
    """Parse a command line (a list, or a string as a magic's line); raises :class:`UsageError`."""
    parser = build_parser(notebook=notebook)
    if isinstance(argv, str):
        try:
            argv = shlex.split(argv)
        except ValueError as exc:
            raise UsageError(f"cannot split the line: {exc}", parser.format_usage()) from None
    ns = parser.parse_args(_split_pass_through(list(argv)))
    if ns.verb is None:
        raise UsageError(
            "choose a verb: " + ", ".join(_verb_names(notebook)), parser.format_usage()
        )
    if ns.verb == "list" and not 1 <= ns.limit <= 1000:
        raise UsageError("--limit must be from 1 to 1000", parser.format_usage())
    return ns


def usage_of(verb: str | None, *, notebook: bool) -> str:
    """The usage line of a verb (or of the whole command)."""
    parser = build_parser(notebook=notebook)
    return parser.verb_parsers.get(verb, parser).format_usage()  # type: ignore[attr-defined]


def _verb_names(notebook: bool) -> list[str]:
    return [v.name for v in VERBS if notebook or not v.notebook_only]


def _split_pass_through(argv: list[str]) -> list[str]:
    """``run``/``test``: jobctl's own options first, then the program's (or pytest's) arguments
    verbatim, so ``test -k smoke tests/`` and ``run -- python -c 1`` need no quoting."""
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":  # global options
        i += 2 if argv[i] in ("--url", "--token") else 1
    if i >= len(argv) or argv[i] not in ("run", "test"):
        return argv
    head, rest = argv[: i + 1], argv[i + 1 :]
    j = 0
    while j < len(rest):
        arg = rest[j]
        if arg == "--":
            return argv
        key = arg.split("=", 1)[0]
        if key in ("-h", "--help"):
            j += 1
        elif key in _PASS_THROUGH_OWN:
            j += 1 if "=" in arg or not _PASS_THROUGH_OWN[key] else 2
        else:
            break
    return head + rest[:j] + ["--"] + rest[j:]


# -- running the verbs ---------------------------------------------------------------------


Show = Callable[[Job], None]


class Commands:
    """Runs parsed verbs against one server.

    ``echo`` prints a line for the user; ``show`` presents a job that was started or
    attached (a notebook displays its view; ``None`` prints a line); ``cwd`` is the directory
    new jobs run in unless ``--cwd`` says otherwise.
    """

    def __init__(
        self,
        client: JobctlClient,
        *,
        echo: Callable[[str], None],
        warn: Callable[[str], None],
        show: Show | None,
        cwd: str,
        notebook: bool,
    ) -> None:
        self.client = client
        self.echo = echo
        self.warn = warn
        self.show_view = show
        self.cwd = cwd
        self.notebook = notebook
        self.as_json = False

    def run(self, ns: argparse.Namespace, cell: str | None = None) -> None:
        self.as_json = bool(getattr(ns, "json", False))
        if cell is not None and ns.verb != "run":
            raise UsageError(
                f"only %%jobctl run takes a cell (got %%jobctl {ns.verb})",
                usage_of("run", notebook=True),
            )
        if ns.verb == "run":
            self.do_run(ns, cell)
        else:
            getattr(self, "do_" + ns.verb)(ns)

    # output

    def emit(self, obj: Any) -> None:
        self.echo(json.dumps(obj, indent=2))

    def present(self, job: Job, verb: str) -> None:
        if self.as_json:
            self.emit(job)
        elif self.show_view is not None:
            self.show_view(job)
        else:
            self.echo(f"{verb} {job['kind']} job {job['id']} {job['name']!r} ({job['status']})")

    # verbs

    def do_train(self, ns: argparse.Namespace) -> None:
        config = dict(TRAIN_DEFAULTS)
        if ns.config is not None:
            try:
                extra = json.loads(ns.config)
            except ValueError as exc:
                raise UsageError(
                    f"--config is not JSON ({exc})", usage_of("train", notebook=self.notebook)
                ) from None
            if not isinstance(extra, dict):
                raise UsageError(
                    "--config must be a JSON object", usage_of("train", notebook=self.notebook)
                )
            config.update(extra)
        for key in ("mode", "epochs", "batch_size", "learning_rate", "optimizer"):
            if getattr(ns, key) is not None:
                config[key] = getattr(ns, key)
        spec = {"target": ns.target or DEMO_TARGET, "config": config, "cwd": ns.cwd or self.cwd}
        self.present(self.client.create_job("training", spec, ns.name, start=True), "Started")

    def do_run(self, ns: argparse.Namespace, cell: str | None) -> None:
        name = ns.name
        if cell is not None:
            if not cell.strip():
                raise UsageError("the cell is empty", usage_of("run", notebook=True))
            if len(cell.encode()) > MAX_CELL_BYTES:
                raise UsageError(
                    f"the cell is over {MAX_CELL_BYTES // 1000} kB; save it as a file and use "
                    "%jobctl run -- python FILE",
                    usage_of("run", notebook=True),
                )
            # the kernel's own Python, unbuffered so prints arrive as they happen
            argv = [sys.executable, "-u", "-c", cell, *ns.argv]
            if name is None:
                first = next((ln.strip() for ln in cell.splitlines() if ln.strip()), "")
                name = ("cell: " + first)[:200]
        else:
            argv = ns.argv
            if not argv:
                raise UsageError(
                    "run needs a program, e.g. run -- python train.py",
                    usage_of("run", notebook=self.notebook),
                )
        spec = {"argv": argv, "cwd": ns.cwd or self.cwd}
        self.present(self.client.create_job("command", spec, name, start=True), "Started")

    def do_test(self, ns: argparse.Namespace) -> None:
        spec = {"args": ns.args, "cwd": ns.cwd or self.cwd}
        self.present(self.client.create_job("test_batch", spec, ns.name, start=True), "Started")

    def do_notebook(self, ns: argparse.Namespace) -> None:
        parameters: dict[str, Any] = {}
        for name, raw in ns.parameters:
            try:
                parameters[name] = json.loads(raw)
            except ValueError:
                parameters[name] = raw  # not JSON: the string as typed
        spec: dict[str, Any] = {"path": self._here(ns.path), "parameters": parameters}
        if ns.kernel:
            spec["kernel"] = ns.kernel
        if ns.output:
            spec["output_path"] = self._here(ns.output)
        if ns.cwd:
            spec["cwd"] = self._here(ns.cwd)
        self.present(self.client.create_job("notebook", spec, ns.name, start=True), "Started")

    def _here(self, path: str) -> str:
        """A path as the user typed it, from where they are (the server's root is elsewhere)."""
        return os.path.normpath(os.path.join(self.cwd, os.path.expanduser(path)))

    def do_list(self, ns: argparse.Namespace) -> None:
        status = ns.status
        if status == "active":
            status = ",".join(ACTIVE_STATES)
        page = self.client.list_jobs(status=status, kind=ns.kind, limit=ns.limit)
        if self.as_json:
            self.emit(page)
            return
        self.echo(format_table(page["jobs"]) if page["jobs"] else "No jobs.")
        if page["next"]:
            self.echo(f"(more jobs: use --limit {min(ns.limit * 2, 1000)} or filter by --status)")

    def do_show(self, ns: argparse.Namespace) -> None:
        job = self.client.get_job(self.client.resolve_id(ns.job_id))
        if self.as_json:
            self.emit(job)
        else:
            self.echo(format_job(job))

    def do_stop(self, ns: argparse.Namespace) -> None:
        if not ns.all:
            job = self.client.stop(self.client.resolve_id(ns.job_id))
            if self.as_json:
                self.emit(job)
            else:
                self.echo(f"Stop requested for job {job['id']} ({job['status']})")
            return
        stopped: list[Job] = []
        for job in list(self.client.iter_jobs(status=ACTIVE_STATES)):
            try:
                stopped.append(self.client.stop(job["id"]))
            except JobctlError as exc:
                if exc.status not in (404, 409):  # it ended (or went) meanwhile: nothing to stop
                    raise
        if self.as_json:
            self.emit(stopped)
        elif not stopped:
            self.echo("No active jobs to stop.")
        else:
            self.echo(f"Stop requested for {len(stopped)} job(s):")
            for job in stopped:
                self.echo(f"  {job['id']} {job['name']!r} ({job['status']})")

    def do_pause(self, ns: argparse.Namespace) -> None:
        self._action("pause", "Pause", ns.job_id)

    def do_resume(self, ns: argparse.Namespace) -> None:
        self._action("resume", "Resume", ns.job_id)

    def _action(self, method: str, word: str, ref: str) -> None:
        job = getattr(self.client, method)(self.client.resolve_id(ref))
        if self.as_json:
            self.emit(job)
        else:
            self.echo(f"{word} requested for job {job['id']} ({job['status']})")

    def do_attach(self, ns: argparse.Namespace) -> None:
        if ns.job_id:
            self.present(self.client.get_job(self.client.resolve_id(ns.job_id)), "Attached")
            return
        jobs = list(self.client.iter_jobs(status=ACTIVE_STATES))
        if not jobs:
            self.echo("No active jobs or batches to attach to (%jobctl list shows the others).")
            return
        if not self.as_json:
            self.echo(f"Attaching to {len(jobs)} active job(s) and batch(es).")
        for job in reversed(jobs):  # oldest first, as they were started
            self.present(job, "Attached")

    def do_logs(self, ns: argparse.Namespace) -> None:
        job_id = self.client.resolve_id(ns.job_id)
        if not ns.follow:
            for event in self.client.iter_events(job_id, type="log"):
                self._log(event)
            return
        status = None
        for frame in self.client.follow(job_id, on_reconnect=self._reconnecting):
            if frame.get("type") == "event" and frame.get("event") == "log":
                self._log(
                    {
                        "seq": frame["seq"],
                        "type": "log",
                        "ts": frame.get("ts"),
                        "data": frame.get("data") or {},
                    }
                )
            elif frame.get("type") == "done":
                status = frame.get("status")
        if status and not self.as_json:
            self.warn(f"Job {job_id} ended: {status}")

    def _log(self, event: Event | dict[str, Any]) -> None:
        if self.as_json:
            self.echo(json.dumps(event))
        else:
            self.echo(str(event["data"].get("line", "")))

    def _reconnecting(self, error: JobctlError) -> None:
        self.warn(f"Reconnecting… ({error})")

    def do_rerun(self, ns: argparse.Namespace) -> None:
        job = self.client.rerun(self.client.resolve_id(ns.job_id), "failed" if ns.failed else None)
        self.present(job, "Started")

    def do_delete(self, ns: argparse.Namespace) -> None:
        job_id = self.client.resolve_id(ns.job_id)
        self.client.delete(job_id)
        if self.as_json:
            self.emit({"id": job_id, "deleted": True})
        else:
            self.echo(f"Deleted job {job_id}")


# -- formatting ----------------------------------------------------------------------------


def format_time(value: str | None) -> str:
    """An API timestamp (ISO 8601 UTC) as local ``YYYY-MM-DD HH:MM:SS``."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_progress(job: Job) -> str:
    """``done/total unit`` (a batch: ``completed/total`` and its failures), ``-`` if unknown."""
    if job.get("kind") == "test_batch":
        counts = job.get("counts") or {}
        if counts.get("total") or counts.get("completed"):
            text = f"{counts.get('completed', 0)}/{counts.get('total') or '?'}"
            return text + (f" ({counts['failed']} failed)" if counts.get("failed") else "")
    progress = job.get("progress") or {}
    done, total = progress.get("done"), progress.get("total")
    if done is None and total is None:
        return "-"
    text = f"{format_number(done or 0)}/{format_number(total) if total is not None else '?'}"
    return text + (f" {progress['unit']}" if progress.get("unit") else "")


def format_table(jobs: Iterable[Job]) -> str:
    """The jobs as aligned columns: id, kind, name, status, progress, created."""
    header = ("ID", "KIND", "NAME", "STATUS", "PROGRESS", "CREATED")
    rows = [
        (
            job["id"],
            job["kind"],
            _clip(job.get("name") or "", 40),
            job["status"],
            format_progress(job),
            format_time(job.get("created_at")),
        )
        for job in jobs
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]
    )


def format_job(job: Job) -> str:
    """One job's state as labelled lines (``show``)."""
    lines = [
        ("id", job["id"]),
        ("name", job.get("name") or ""),
        ("kind", job["kind"]),
        ("status", job["status"]),
        ("attempt", str(job.get("attempt", ""))),
        ("created", format_time(job.get("created_at"))),
        ("started", format_time(job.get("started_at"))),
        ("finished", format_time(job.get("finished_at"))),
    ]
    progress = job.get("progress") or {}
    text = format_progress(job)
    if progress.get("rate"):
        text += f" · {format_number(progress['rate'])}/s"
    eta = progress.get("eta_s")
    if eta is not None and job["status"] not in TERMINAL_STATES:
        text += f" · ETA {format_duration(eta)}"
    lines.append(("progress", text))
    counts = job.get("counts") or {}
    if job["kind"] == "test_batch" or counts.get("total"):
        lines.append(("tests", " · ".join(f"{k} {counts.get(k, 0)}" for k in COUNT_KEYS)))
    if job.get("metrics"):
        lines.append(
            ("metrics", " · ".join(f"{k}={format_number(v)}" for k, v in job["metrics"].items()))
        )
    if "exit_code" in job or "signal" in job:
        lines.append(
            (
                "exit",
                f"signal {job['signal']}" if job.get("signal") else f"code {job.get('exit_code')}",
            )
        )
    if job.get("reason"):
        lines.append(("reason", job["reason"]))
    if job.get("output_path"):
        lines.append(("executed copy", job["output_path"]))
    lines.append(("spec", json.dumps(job.get("spec", {}))))
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in lines)


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
