"""What the benchmark scripts share: statistics, the report and how it is printed and
written, the machine, ``jupyter server`` subprocesses, clean-up of job processes, options.

Imported by the scripts in this directory (run as ``benchmarks/<script>.py``, so this
directory is on ``sys.path``); not a job target (those are ``*_jobs.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

API = "/jobctl/api"
TIMEOUT = 120.0  # generous: a loaded 2-CPU machine must not turn a slow run into a crash
# jobctl's statuses as its API reports them (the scripts look at it from outside)
TERMINAL = frozenset({"completed", "failed", "cancelled", "lost"})
ACTIVE = ("initializing", "running", "paused", "stopping")

# the demo trainer (a few epochs in smoke-test mode): the job the start figures time
DEMO_SPEC: dict[str, Any] = {
    "target": "jupyter_jobctl.examples.train:main",
    "config": {
        "mode": "smoke_test",
        "epochs": 5,
        "batch_size": 2,
        "learning_rate": 0.001,
        "optimizer": "adam",
    },
}


# ---------------------------------------------------------------------------- statistics


def percentile(values: Iterable[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default); NaN for no samples."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class Row:
    """One figure: a distribution of seconds, shown and written in ms."""

    key: str
    label: str
    samples: list[float]  # seconds
    versus: str | None = None  # key of the row this one's p50 is divided by (ratio)

    def summary(self) -> dict[str, Any]:
        ms = [v * 1000.0 for v in self.samples]
        return {
            "label": self.label,
            "n": len(ms),
            "p50_ms": percentile(ms, 50),
            "p95_ms": percentile(ms, 95),
            "p99_ms": percentile(ms, 99),
            "max_ms": max(ms) if ms else math.nan,
        }


@dataclass
class Report:
    """The figures, the checks (single values), what looked wrong, the server log's findings."""

    rows: list[Row] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    server_log: list[str] = field(default_factory=list)

    def add(self, key: str, label: str, samples: list[float], versus: str | None = None) -> None:
        self.rows.append(Row(key, label, samples, versus))

    def check(self, key: str, value: Any) -> None:
        self.checks[key] = value

    def problem(self, text: str) -> None:
        self.problems.append(text)
        print(f"  ! {text}", flush=True)  # as it happens: a long run may be cut short

    def ratio(self, row: Row) -> float | None:
        """p50 of ``row`` over p50 of the row it is compared with; None if either is empty."""
        base = next((r for r in self.rows if r.key == row.versus), None)
        if base is None or not base.samples or not row.samples:
            return None
        return percentile(row.samples, 50) / percentile(base.samples, 50)

    def json_doc(self) -> dict[str, Any]:
        """The figures, checks, problems and server log as the server benchmarks write them."""
        return {
            "figures": {row.key: row.summary() for row in self.rows},
            "checks": self.checks,
            "problems": self.problems,
            "server_log": self.server_log,
        }


@dataclass
class Run:
    """How the figures' part of a run ended (see ``recorded``)."""

    report: Report
    interrupted: bool = False
    crashed: bool = False

    def exit_status(self) -> int:
        """0 when nothing looked wrong, 1 when something did, 130 when interrupted."""
        return 130 if self.interrupted else 1 if self.report.problems else 0


@contextlib.contextmanager
def recorded(report: Report) -> Iterator[Run]:
    """Turn an interruption or a crash into a problem, so the report is still printed."""
    run = Run(report)
    try:
        yield run
    except (KeyboardInterrupt, SystemExit) as exc:
        run.interrupted = True
        report.problem(f"interrupted ({type(exc).__name__}): the figures are incomplete")
    except Exception as exc:
        run.crashed = True
        report.problem(f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------- output


def print_table(report: Report) -> None:
    """Every figure (p50/p95/p99/max in ms), the checks, the server log, the problems."""
    print()
    print(f"{'figure':<52} {'n':>6} {'p50':>9} {'p95':>9} {'p99':>9} {'max':>9}   (ms)")
    print("-" * 103)
    for row in report.rows:
        s = row.summary()
        print(
            f"{s['label']:<52} {s['n']:>6} {s['p50_ms']:>9.1f} {s['p95_ms']:>9.1f} "
            f"{s['p99_ms']:>9.1f} {s['max_ms']:>9.1f}"
        )
    print_checks(report, 34)
    if report.server_log:
        print("  server log (first distinct error/warning lines):")
        for text in report.server_log:
            print(f"    {text}")
    print_problems(report)


def print_checks(report: Report, width: int) -> None:
    print("\nchecks:")
    for key, value in report.checks.items():
        print(f"  {key:<{width}} {value}")


def print_problems(report: Report) -> None:
    print()
    if report.problems:
        print(f"problems ({len(report.problems)}):")
        for text in report.problems:
            print(f"  - {text}")
    else:
        print("problems: none")


def write_json(path: str, doc: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"wrote {path}")


def keep_or_remove(tmp: Path, keep: bool, kept: str) -> None:
    """``--keep`` leaves the temp dir (logs, databases) to look at; prints ``kept`` then."""
    if keep:
        print(kept)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- the machine


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo; "" when there is none."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return ""


def cpus() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    """The machine and the server side's versions, as the server benchmarks report them."""
    import jupyter_server
    import psutil
    import tornado

    return {
        **cpus(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "loadavg_at_start": loadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tornado": tornado.version,
        "jupyter_server": jupyter_server.__version__,
    }


# ---------------------------------------------------------------------------- options


SizesT = TypeVar("SizesT")


def add_run_options(parser: argparse.ArgumentParser, only_help: str) -> None:
    """--smoke, --json, --keep and --only, as the server benchmarks take them."""
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: finishes in < 60 s")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp dir (server log, database)"
    )
    parser.add_argument("--only", default="", help=only_help)


def add_server_arg(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help=f"extra jupyter server option, e.g. --server-arg={example}",
    )


def add_size_options(parser: argparse.ArgumentParser, sizes: Any) -> None:
    """One option per field of the ``sizes`` dataclass: ``stop_jobs`` -> ``--stop-jobs``."""
    for name, value in asdict(sizes).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=None)


def sizes_from(args: argparse.Namespace, full: SizesT, smoke: SizesT) -> SizesT:
    """The full or --smoke sizes (a copy), each one given on the command line replacing its own."""
    sizes = type(full)(**asdict(smoke if args.smoke else full))
    for name in asdict(sizes):
        if getattr(args, name, None) is not None:
            setattr(sizes, name, getattr(args, name))
    return sizes


# ---------------------------------------------------------------------------- processes


def exit_on_sigterm(signum: int, _frame: Any) -> None:
    """A plain ``kill`` unwinds through main()'s clean-up, so no job outlives the benchmark."""
    raise SystemExit(128 + signum)


def pids_with_env(wanted: Callable[[bytes], bool]) -> list[int]:
    """Processes (but this one) with an environment entry (b"NAME=value") that ``wanted`` takes.

    The environment is how job processes are found: supervisors and workers inherit it, and
    they may have left the process group of whatever started them.
    """
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{name}/environ", "rb") as fh:
                if any(wanted(item) for item in fh.read().split(b"\0")):
                    found.append(int(name))
    return found


def job_pids(db_url: str) -> list[int]:
    """Processes (supervisors, workers) carrying this database in their environment."""
    entry = f"JOBCTL_DB_URL={db_url}".encode()
    return pids_with_env(lambda item: item == entry)


def kill_pids(pids: Iterable[int]) -> list[int]:
    """SIGKILL each of ``pids``; returns those that were still there to be killed."""
    killed = []
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def end_group(proc: subprocess.Popen[bytes], term_wait: float) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it if ``proc`` outlives ``term_wait``."""
    for sig, wait in ((signal.SIGTERM, term_wait), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
            return


# ---------------------------------------------------------------------------- jupyter server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiError(Exception):
    """An answer the benchmark did not expect from the API it measures."""


def token_auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


class JupyterServer:
    """A ``python -m jupyter_server`` on a free port of 127.0.0.1 with a fresh token, in its
    own process group; Jupyter's runtime/data/config dirs and the log are under ``home``.

    Subclasses add their extension's options (``options``) and environment (``env``).
    """

    name = "jupyter"  # in error messages
    start_timeout = 60.0
    health_timeout = 2.0  # one request to the health route while waiting for the start

    def __init__(
        self,
        home: Path,
        root: Path,
        health: str,
        extra_args: Sequence[str] = (),
        python: str | Path = sys.executable,
    ) -> None:
        self.home = home
        self.root = root
        self.health = health  # the route polled until it answers 200
        self.extra_args = list(extra_args)
        self.python = Path(python)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.log_path = home / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def auth(self) -> dict[str, str]:
        return token_auth(self.token)

    def options(self) -> list[str]:
        """The extension's default options (an option in ``extra_args`` replaces its own)."""
        return []

    def argv(self) -> list[str]:
        # traitlets refuses an option given twice: one in extra_args replaces the default
        given = {a.split("=", 1)[0] for a in self.extra_args}
        defaults = [
            f"--port={self.port}", "--allow-root", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}", *self.options(),
        ]  # fmt: skip
        return [
            str(self.python), "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1",
            *(a for a in defaults if a.split("=", 1)[0] not in given), *self.extra_args,
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("JOBCTL_JOB_ID", None)  # started from inside a job, it must not act as one
        for name, sub in (
            ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("JUPYTER_DATA_DIR", "data"),
            ("JUPYTER_CONFIG_DIR", "config"),
        ):
            env[name] = str(self.home / sub)
        return env

    def start(self, timeout: float | None = None) -> float:
        """Start and poll the health route until 200; returns the seconds it took."""
        timeout = self.start_timeout if timeout is None else timeout
        t0 = time.perf_counter()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv(),
                cwd=self.home,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} server exited ({self.proc.returncode}):\n{self.tail()}"
                )
            if self._healthy():
                return time.perf_counter() - t0
            time.sleep(0.05)
        raise TimeoutError(
            f"{self.name}: {self.health} not 200 within {timeout:.0f} s:\n{self.tail()}"
        )

    def _healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.port}{self.health}"
        req = urllib.request.Request(url, headers=self.auth)
        with contextlib.suppress(OSError, ValueError):  # not listening yet, or an error page
            with urllib.request.urlopen(req, timeout=self.health_timeout) as resp:
                return resp.status == 200
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL it if it lingers."""
        if self.proc is None:
            return
        end_group(self.proc, 15.0)
        with contextlib.suppress(ProcessLookupError):  # stragglers of the group (npm, lsp...)
            os.killpg(self.proc.pid, signal.SIGKILL)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


class CpuMeter:
    """CPU seconds used by this process and the server process over a phase, and its wall time.

    Tells whether a figure is bound by the server or by this (Python) client.
    """

    def __init__(self, server: JupyterServer) -> None:
        import psutil

        self.server = psutil.Process(server.proc.pid) if server.proc else None
        self.t0 = time.perf_counter()
        self.client0 = time.process_time()
        self.server0 = self._server_cpu()

    def _server_cpu(self) -> float:
        if self.server is None:
            return math.nan
        times = self.server.cpu_times()
        return times.user + times.system

    def result(self) -> dict[str, float]:
        return {
            "wall_s": round(time.perf_counter() - self.t0, 2),
            "server_cpu_s": round(self._server_cpu() - self.server0, 2),
            "client_cpu_s": round(time.process_time() - self.client0, 2),
        }


# ---------------------------------------------------------------------------- the database


def fill_jobctl(db_url: str, rows: int, base: float) -> float:
    """N completed command jobs with their status events, as a real run leaves them.

    ``Store.create_job`` costs a transaction per job (~6 ms here: a minute for 10 000), so
    the rows go in with one bulk insert through jobctl's own tables after ``upgrade()``.
    """
    from sqlalchemy import create_engine, insert

    from jupyter_jobctl.db.models import events, jobs
    from jupyter_jobctl.db.store import Store

    t0 = time.perf_counter()
    store = Store(db_url)
    store.upgrade()
    store.close()
    host = socket.gethostname()
    spec = json.dumps({"argv": ["true"]}, separators=(",", ":"))
    job_rows, event_rows = [], []
    trail = [
        ("pending", None),
        ("initializing", "pending"),
        ("running", "initializing"),
        ("completed", "running"),
    ]
    for i in range(rows):
        job_id = uuid.uuid4().hex
        created = base + i
        job_rows.append(
            {
                "id": job_id,
                "kind": "command",
                "name": f"job{i}",
                "status": "completed",
                "spec": spec,
                "attempt": 1,
                "created_at": created,
                "updated_at": created + 2.0,
                "started_at": created + 0.05,
                "finished_at": created + 2.0,
                "last_seq": len(trail),
                "metrics": "{}",
                "exit_code": 0,
                "host": host,
            }
        )
        for seq, (status, before) in enumerate(trail, 1):
            data = json.dumps({"status": status, "from": before}, separators=(",", ":"))
            ts = created + (seq - 1) * 0.5
            event_rows.append(
                {"job_id": job_id, "seq": seq, "type": "status", "ts": ts, "data": data}
            )
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(insert(jobs), job_rows)
        conn.execute(insert(events), event_rows)
    engine.dispose()
    return time.perf_counter() - t0
