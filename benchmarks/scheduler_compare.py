"""Side by side, same run, same machine: jupyter_jobctl against jupyter-scheduler.

Run from the repository root:

    .venv/bin/python benchmarks/scheduler_compare.py               # 20 start runs, 10 000 rows
    .venv/bin/python benchmarks/scheduler_compare.py --smoke       # 3 runs, 500 rows, < 2 min
    .venv/bin/python benchmarks/scheduler_compare.py --json /tmp/compare.json [--keep]

jupyter-scheduler (PyPI ``jupyter-scheduler``, plus ``ipykernel`` to run its notebooks)
lives in its own virtual environment, ``<cache dir>/scheduler-venv`` (default
``benchmarks/.cache/``; the script writes a ``.gitignore`` there so git ignores it). It is
created on the first run (``python3 -m venv`` + ``uv pip install``, or pip when uv is not
found) and reused afterwards while it imports fine.

Both products run as real ``python -m jupyter_server`` subprocesses on 127.0.0.1, each
with a free port, a token, its own temporary root, database and Jupyter
runtime/data/config directories. Figures:

1. start: jobctl ``POST /jobctl/api/jobs`` (demo trainer, ``start: true``) until a poll of
   ``GET /jobctl/api/jobs/{id}`` says ``running``, against jupyter-scheduler
   ``POST /scheduler/jobs`` (a one-cell notebook) until ``GET /scheduler/jobs/{id}`` says
   ``IN_PROGRESS``. Polls every ~2 ms on one keep-alive connection. A/B interleaved, the
   order alternating, one warm-up each not counted. Between runs the jobctl job is
   stopped and the notebook job left to complete, both waited for. Also shown: the
   create request alone, and each product's own record of the same interval (jobctl:
   ``running`` event ts - ``created_at``; scheduler: ``start_time`` - ``create_time``),
   which no polling can distort.
2. list: first page of ``GET /jobs`` with N rows in each database (filled directly, timed
   apart): jobctl ``?limit=50`` against scheduler ``?max_items=50``; also the scheduler's
   own UI page (25), its server default page (1000) and jobctl's largest page (1000).
   It runs first, while each database holds exactly N jobs; figure 1 follows on them.

Bytecode: the venv's modules are compiled once (pip does so, uv does not) and both servers
run without PYTHONDONTWRITEBYTECODE, as on a user's machine; otherwise every spawned job
process compiles its imports from source and start figures measure the compiler.

Whatever happens, every jobctl job is stopped through the API, running scheduler jobs
are stopped, both servers' process groups are killed, and any process still carrying
this run's environment marker is SIGKILLed (and reported).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from common import ACTIVE as JOBCTL_ACTIVE
from common import API as JOBCTL_API
from common import (
    DEMO_SPEC,
    TIMEOUT,
    ApiError,
    JupyterServer,
    Report,
    cpus,
    exit_on_sigterm,
    fill_jobctl,
    keep_or_remove,
    kill_pids,
    loadavg,
    pids_with_env,
    print_checks,
    print_problems,
    recorded,
    sizes_from,
    token_auth,
    write_json,
)
from common import TERMINAL as JOBCTL_TERMINAL

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEFAULT_CACHE = BENCH_DIR / ".cache"
SLOW_POLL = 0.02  # seconds between looks while waiting for a job to end (not timed)
MARKER_ENV = "SCHEDULER_COMPARE_RUN"

JOBCTL_CREATE = {"kind": "training", "spec": DEMO_SPEC, "start": True}

SCHED_DONE = frozenset({"COMPLETED", "FAILED"})
NOTEBOOK_NAME = "hello.ipynb"
NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": "print('hello')",
        }
    ],
    "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}

# runs in the scheduler venv: prints the versions that matter, fails if anything is missing
VERSIONS_SCRIPT = """
import json, platform
import ipykernel, jupyter_scheduler, jupyter_server, nbconvert, sqlalchemy
print(json.dumps({
    "jupyter_scheduler": jupyter_scheduler.__version__,
    "jupyter_server": jupyter_server.__version__,
    "ipykernel": ipykernel.__version__,
    "nbconvert": nbconvert.__version__,
    "sqlalchemy": sqlalchemy.__version__,
    "python": platform.python_version(),
}))
"""

# runs in the scheduler venv: COMPLETED job rows through jupyter_scheduler.orm, one transaction
SCHEDULER_FILL_SCRIPT = """
import json, sys, time, uuid
from sqlalchemy import create_engine, insert
from jupyter_scheduler.models import OUTPUT_FILENAME_TEMPLATE, Status
from jupyter_scheduler.orm import Job, create_tables

db_url, rows, base_ms, notebook, env_name = sys.argv[1:6]
t0 = time.perf_counter()
create_tables(db_url)
records = []
for i in range(int(rows)):
    job_id = str(uuid.uuid4())
    created = int(base_ms) + i * 1000
    records.append({
        "job_id": job_id, "name": f"job{i}", "input_filename": notebook,
        "runtime_environment_name": env_name, "runtime_environment_parameters": None,
        "output_formats": ["ipynb"], "tags": None, "parameters": None,
        "output_filename_template": OUTPUT_FILENAME_TEMPLATE, "job_definition_id": None,
        "status": Status.COMPLETED.value, "status_message": None,
        "create_time": created, "update_time": created + 5000,
        "start_time": created + 3000, "end_time": created + 5000,
        "url": f"/jobs/{job_id}", "pid": 100000 + i, "idempotency_token": None,
        "package_input_folder": None, "packaged_files": [],
    })
engine = create_engine(db_url)
with engine.begin() as conn:
    conn.execute(insert(Job.__table__), records)
engine.dispose()
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


# ---------------------------------------------------------------------------- sizes


@dataclass
class Sizes:
    runs: int = 20  # start runs per product (plus one warm-up each)
    rows: int = 10_000  # jobs in each database for the list figure
    gets: int = 30  # timed GETs per list variant (after warm-up)
    warmup_gets: int = 3
    poll: float = 0.002  # seconds between status polls in the start figure


SMOKE = Sizes(runs=3, rows=500)


# ---------------------------------------------------------------------------- scheduler venv


def find_uv() -> str | None:
    candidates = [
        shutil.which("uv"),
        REPO / ".venv" / "bin" / "uv",
        Path(sys.executable).parent / "uv",
    ]
    for cand in candidates:
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return None


def venv_versions(python: Path) -> dict[str, str] | None:
    """The scheduler venv's versions, or None when it is missing or does not import."""
    if not python.exists():
        return None
    proc = subprocess.run(
        [str(python), "-c", VERSIONS_SCRIPT], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        return None
    with contextlib.suppress(ValueError, IndexError):
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    return None


def run_logged(argv: list[str], what: str, check: bool = True) -> None:
    print(f"  {what}: {' '.join(argv)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        if check:
            raise RuntimeError(f"{what} failed ({proc.returncode}):\n{tail}")
        print(f"  {what}: exit {proc.returncode} (ignored):\n{tail}", flush=True)
    print(f"  {what}: done in {time.perf_counter() - t0:.1f} s", flush=True)


def ensure_bytecode(python: Path, venv: Path) -> None:
    """Compile the venv's modules once, as pip does by default (uv does not).

    With PYTHONDONTWRITEBYTECODE set (as here) nothing is cached at import time, so without
    this every scheduler job process (spawned, not forked) would compile jupyter_server,
    nbconvert & co. from source: seconds per job, which is not what users see.
    """
    stamp = venv / ".bytecode-compiled"
    if stamp.exists():
        return
    argv = [str(python), "-m", "compileall", "-q", "-j", "0", str(venv / "lib")]
    run_logged(argv, "compile bytecode", check=False)  # a stray py2 file must not fail it
    stamp.touch()


def ensure_scheduler_venv(cache_dir: Path, spec: str) -> tuple[Path, dict[str, str]]:
    """Reuse ``<cache>/scheduler-venv`` if it imports; else (re)create it. Returns its python."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    ignore = cache_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# created by benchmarks/scheduler_compare.py\n*\n")
    venv = cache_dir / "scheduler-venv"
    python = venv / "bin" / "python"
    versions = venv_versions(python)
    if versions is not None:
        print(f"scheduler venv: reusing {venv}", flush=True)
        ensure_bytecode(python, venv)
        return python, versions
    print(f"scheduler venv: creating {venv} (first run; needs PyPI)", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    base = shutil.which("python3") or sys.executable
    run_logged([base, "-m", "venv", str(venv)], "create venv")
    packages = [spec, "ipykernel"]
    uv = find_uv()
    if uv:
        run_logged([uv, "pip", "install", "--python", str(python), *packages], "uv pip install")
    else:
        run_logged([str(python), "-m", "pip", "install", *packages], "pip install")
    versions = venv_versions(python)
    if versions is None:
        raise RuntimeError(f"{venv} was installed but does not import jupyter_scheduler")
    ensure_bytecode(python, venv)
    return python, versions


# ---------------------------------------------------------------------------- HTTP


class Client:
    """Blocking JSON client on one keep-alive connection (the same for both products)."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {**token_auth(token), "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)

    def close(self) -> None:
        self.conn.close()

    def raw(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        payload = None if body is None else json.dumps(body)
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=payload, headers=self.headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
                if attempt == 2 or method != "GET":  # never repeat a request that creates
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None, expect: Sequence[int] = (200,)) -> Any:
        status, raw = self.raw(method, path, body)
        if status not in expect:
            text = raw.decode(errors="replace")[:300]
            raise ApiError(f"{method} {path} -> {status} {text}")
        return json.loads(raw) if raw else None


# ---------------------------------------------------------------------------- servers


class Server(JupyterServer):
    """One ``python -m jupyter_server`` subprocess in its own process group and temp dirs."""

    start_timeout = TIMEOUT
    health_timeout = 5.0

    def __init__(
        self, name: str, python: Path, home: Path, extra_args: list[str], health: str, marker: str
    ) -> None:
        super().__init__(home, home / "root", health, extra_args, python)
        self.name = name
        self.marker = marker
        for sub in ("root", "runtime", "data", "config"):
            (home / sub).mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("VIRTUAL_ENV", None)
        # as on a user's machine: imports cache their bytecode (jobctl's own modules change
        # in development; without this every job process would compile them from source)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PATH"] = f"{self.python.parent}{os.pathsep}{env.get('PATH', '')}"
        env[MARKER_ENV] = self.marker
        return env

    def client(self) -> Client:
        return Client(self.port, self.token)

    def zombie_children(self) -> int:
        """Children of the server that exited and were never reaped."""
        if not self.alive() or self.proc is None:
            return 0
        count = 0
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{name}/stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
                if fields[0] == "Z" and int(fields[1]) == self.proc.pid:
                    count += 1
        return count


def jobctl_server(home: Path, python: Path, marker: str) -> Server:
    args = [
        "--ServerApp.jpserver_extensions={'jupyter_jobctl': True}",
        f"--JobCtl.db_url={jobctl_db_url(home)}",
    ]
    return Server("jobctl", python, home, args, f"{JOBCTL_API}/health", marker)


def scheduler_server(home: Path, python: Path, marker: str) -> Server:
    args = [
        "--ServerApp.jpserver_extensions={'jupyter_scheduler': True}",
        f"--SchedulerApp.db_url={scheduler_db_url(home)}",
        f"--Scheduler.staging_path={home / 'staging'}",
    ]
    return Server("scheduler", python, home, args, "/scheduler/config", marker)


def scheduler_db_url(home: Path) -> str:
    return f"sqlite:///{home}/scheduler.sqlite"


def jobctl_db_url(home: Path) -> str:
    return f"sqlite:///{home}/jobctl.db"


# ---------------------------------------------------------------------------- filling


def fill_scheduler(python: Path, db_url: str, rows: int, base: float, env_name: str) -> float:
    """N COMPLETED jobs through jupyter_scheduler.orm, by a helper run in its own venv."""
    argv = [
        str(python),
        "-c",
        SCHEDULER_FILL_SCRIPT,
        db_url,
        str(rows),
        str(int(base * 1000)),
        NOTEBOOK_NAME,
        env_name,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"scheduler fill failed:\n{proc.stderr[-2000:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])


# ---------------------------------------------------------------------------- figure 1: start


@dataclass
class StartRun:
    product: str
    job_id: str = ""
    post_s: float = math.nan  # the create request alone
    start_s: float = math.nan  # create sent -> poll answer showing the target status
    seen: list[str] = field(default_factory=list)  # distinct statuses in the order polled
    outcome: str = "ok"  # ok | completed-before-seen | failed | timeout
    recorded_s: float = math.nan  # the product's own timestamps of the same interval
    final: str = ""


def poll_until(
    client: Client,
    path: str,
    run: StartRun,
    t0: float,
    stop: Callable[[str], str | None],
    poll: float,
) -> dict[str, Any]:
    """Poll ``path`` until ``stop(status)`` names an outcome; records the status sequence."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        job = client.json("GET", path)
        now = time.perf_counter()
        status = job["status"]
        if not run.seen or run.seen[-1] != status:
            run.seen.append(status)
        outcome = stop(status)
        if outcome is not None:
            run.outcome = outcome
            run.start_s = now - t0
            return dict(job)
        if time.monotonic() > deadline:
            run.outcome = "timeout"
            return dict(job)
        time.sleep(poll)


def iso_seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def start_jobctl(client: Client, poll: float) -> StartRun:
    run = StartRun("jobctl")
    t0 = time.perf_counter()
    job = client.json("POST", f"{JOBCTL_API}/jobs", JOBCTL_CREATE, expect=(201,))
    run.post_s = time.perf_counter() - t0
    run.job_id, run.seen = job["id"], [job["status"]]

    def stop(status: str) -> str | None:
        if status == "running":
            return "ok"
        return "failed" if status in JOBCTL_TERMINAL else None

    if job["status"] == "running":
        run.start_s = run.post_s
    else:
        poll_until(client, f"{JOBCTL_API}/jobs/{run.job_id}", run, t0, stop, poll)
    return run


def finish_jobctl(client: Client, run: StartRun) -> None:
    """Stop the job, wait until terminal, read its own running timestamp (not timed)."""
    path = f"{JOBCTL_API}/jobs/{run.job_id}"
    client.json("POST", f"{path}/stop", expect=(202, 409))
    deadline = time.monotonic() + TIMEOUT
    job = client.json("GET", path)
    while job["status"] not in JOBCTL_TERMINAL and time.monotonic() < deadline:
        time.sleep(SLOW_POLL)
        job = client.json("GET", path)
    run.final = job["status"]
    page = client.json("GET", f"{path}/events?type=status&limit=50")
    running = [e for e in page["events"] if e["data"].get("status") == "running"]
    if running:
        run.recorded_s = iso_seconds(running[0]["ts"]) - iso_seconds(job["created_at"])


def scheduler_payload(env_name: str, i: int) -> dict[str, Any]:
    """What the JupyterLab 'Create job' form sends (jupyter_scheduler.models.CreateJob)."""
    return {
        "name": f"hello-{i}",
        "input_uri": NOTEBOOK_NAME,
        "runtime_environment_name": env_name,
        "output_formats": ["ipynb"],
    }


def start_scheduler(client: Client, env_name: str, i: int, poll: float) -> StartRun:
    run = StartRun("scheduler")
    t0 = time.perf_counter()
    created = client.json("POST", "/scheduler/jobs", scheduler_payload(env_name, i))
    run.post_s = time.perf_counter() - t0
    run.job_id = created["job_id"]

    def stop(status: str) -> str | None:
        if status == "IN_PROGRESS":
            return "ok"
        if status == "COMPLETED":
            return "completed-before-seen"
        return "failed" if status == "FAILED" else None  # a new job reads STOPPED at first

    poll_until(client, f"/scheduler/jobs/{run.job_id}", run, t0, stop, poll)
    return run


def finish_scheduler(client: Client, run: StartRun) -> None:
    """Let the notebook complete (stop it after TIMEOUT), read its own start_time."""
    path = f"/scheduler/jobs/{run.job_id}"
    deadline = time.monotonic() + TIMEOUT
    job = client.json("GET", path)
    while job["status"] not in SCHED_DONE and time.monotonic() < deadline:
        time.sleep(SLOW_POLL)
        job = client.json("GET", path)
    if job["status"] == "IN_PROGRESS":
        client.json("PATCH", path, {"status": "STOPPED"}, expect=(204,))
        job = client.json("GET", path)
    run.final = job["status"]
    if job.get("status_message"):
        run.final += f" ({job['status_message'][:120]})"
    if job.get("start_time") is not None:
        run.recorded_s = (job["start_time"] - job["create_time"]) / 1000.0


def one_start(
    product: str, jc: Client, sc: Client, env_name: str, i: int, sizes: Sizes
) -> StartRun:
    if product == "jobctl":
        run = start_jobctl(jc, sizes.poll)
        finish_jobctl(jc, run)
    else:
        run = start_scheduler(sc, env_name, i, sizes.poll)
        finish_scheduler(sc, run)
    return run


def bench_start(jc: Client, sc: Client, env_name: str, sizes: Sizes, report: Report) -> None:
    print(f"figure 1: start, {sizes.runs} runs each + 1 warm-up, interleaved", flush=True)
    runs: dict[str, list[StartRun]] = {"jobctl": [], "scheduler": []}
    for i in range(sizes.runs + 1):
        order = ("jobctl", "scheduler") if i % 2 == 0 else ("scheduler", "jobctl")
        for product in order:
            run = one_start(product, jc, sc, env_name, i, sizes)
            tag = "warm-up" if i == 0 else f"run {i}"
            print(
                f"  {tag:>8} {product:<9} {run.start_s * 1000:9.1f} ms  {run.outcome:<8} "
                f"seen {'>'.join(run.seen)}  end {run.final}",
                flush=True,
            )
            if run.outcome in ("failed", "timeout"):
                report.problem(
                    f"{product} start run {i}: {run.outcome}, seen {run.seen}, end {run.final}"
                )
            if i > 0:
                runs[product].append(run)
    record_start(runs, report)


def record_start(runs: dict[str, list[StartRun]], report: Report) -> None:
    jc, sc = runs["jobctl"], runs["scheduler"]
    ok_jc = [r for r in jc if r.outcome == "ok"]
    ok_sc = [r for r in sc if r.outcome == "ok"]
    early = [r for r in sc if r.outcome == "completed-before-seen"]
    report.add("start.jobctl", "start: jobctl create+start -> running", [r.start_s for r in ok_jc])
    report.add(
        "start.scheduler",
        "start: scheduler create -> IN_PROGRESS",
        [r.start_s for r in ok_sc],
        "start.jobctl",
    )
    if early:
        report.add(
            "start.scheduler.early",
            "start: scheduler create -> COMPLETED (no IN_PROGRESS seen)",
            [r.start_s for r in early],
        )
    report.add(
        "start.jobctl.recorded",
        "  own record: jobctl created_at -> running event",
        [r.recorded_s for r in jc if not math.isnan(r.recorded_s)],
    )
    report.add(
        "start.scheduler.recorded",
        "  own record: scheduler create_time -> start_time",
        [r.recorded_s for r in sc if not math.isnan(r.recorded_s)],
        "start.jobctl.recorded",
    )
    report.add("create.jobctl", "  create request alone: jobctl POST", [r.post_s for r in jc])
    report.add(
        "create.scheduler",
        "  create request alone: scheduler POST",
        [r.post_s for r in sc],
        "create.jobctl",
    )
    for name, group in runs.items():
        report.check(
            f"start.{name}.status_sequences", dict(Counter(">".join(r.seen) for r in group))
        )
        report.check(f"start.{name}.final_status", dict(Counter(r.final for r in group)))
        report.check(f"start.{name}.outcomes", dict(Counter(r.outcome for r in group)))


# ---------------------------------------------------------------------------- figure 2: list


@dataclass
class ListVariant:
    key: str
    label: str
    client: Client
    path: str
    expect: int  # jobs on the page
    versus: str | None = None
    samples: list[float] = field(default_factory=list)
    bytes: int = 0


def list_variants(jc: Client, sc: Client, rows: int) -> list[ListVariant]:
    big = min(1000, rows)
    return [
        ListVariant(
            "list.jobctl.50",
            "list: jobctl GET /jobs?limit=50",
            jc,
            f"{JOBCTL_API}/jobs?limit=50",
            50,
        ),
        ListVariant(
            "list.scheduler.50",
            "list: scheduler GET /jobs?max_items=50",
            sc,
            "/scheduler/jobs?max_items=50",
            50,
            "list.jobctl.50",
        ),
        ListVariant(
            "list.scheduler.25",
            "  scheduler ?max_items=25 (what its UI asks)",
            sc,
            "/scheduler/jobs?max_items=25",
            25,
        ),
        ListVariant(
            "list.jobctl.1000",
            "  jobctl ?limit=1000 (its largest page)",
            jc,
            f"{JOBCTL_API}/jobs?limit=1000",
            big,
        ),
        ListVariant(
            "list.scheduler.default",
            "  scheduler, no max_items (default 1000)",
            sc,
            "/scheduler/jobs",
            big,
            "list.jobctl.1000",
        ),
    ]


def timed_get(variant: ListVariant) -> float:
    t0 = time.perf_counter()
    status, raw = variant.client.raw("GET", variant.path)
    elapsed = time.perf_counter() - t0
    if status != 200:
        raise ApiError(f"GET {variant.path} -> {status} {raw[:300]!r}")
    got = len(json.loads(raw)["jobs"])
    if got != variant.expect:
        raise ApiError(f"GET {variant.path}: {got} jobs on the page, expected {variant.expect}")
    variant.bytes = len(raw)
    return elapsed


def bench_list(jc: Client, sc: Client, sizes: Sizes, report: Report) -> None:
    print(f"figure 2: list, {sizes.rows} rows each, {sizes.gets} GETs per variant", flush=True)
    variants = list_variants(jc, sc, sizes.rows)
    total = sc.json("GET", "/scheduler/jobs?max_items=1")["total_count"]
    report.check("list.scheduler.total_count", total)
    for variant in variants:
        for _ in range(sizes.warmup_gets):
            timed_get(variant)
    for i in range(sizes.gets):
        order = variants if i % 2 == 0 else variants[::-1]
        for variant in order:
            variant.samples.append(timed_get(variant))
    for variant in variants:
        report.add(variant.key, variant.label, variant.samples, variant.versus)
        report.check(f"{variant.key}.bytes", variant.bytes)


# ---------------------------------------------------------------------------- clean-up


def stop_all_jobctl(server: Server, timeout: float = 90.0) -> list[str]:
    """Stop every active jobctl job via the API and wait until none is active."""
    if not server.alive():
        return ["jobctl server not running at clean-up: jobs could not be stopped via the API"]
    client = server.client()
    deadline = time.monotonic() + timeout
    try:
        while True:
            page = client.json(
                "GET", f"{JOBCTL_API}/jobs?status={','.join(JOBCTL_ACTIVE)}&limit=1000"
            )
            active = page["jobs"]
            if not active:
                return []
            if time.monotonic() > deadline:
                return [f"{len(active)} jobctl job(s) still active after {timeout:.0f} s"]
            for job in active:
                if job["status"] != "stopping":
                    client.json("POST", f"{JOBCTL_API}/jobs/{job['id']}/stop", expect=(202, 409))
            time.sleep(0.1)
    except (OSError, ApiError) as exc:
        return [f"jobctl clean-up: {exc}"]
    finally:
        client.close()


def stop_all_scheduler(server: Server) -> list[str]:
    """PATCH every IN_PROGRESS scheduler job to STOPPED (its stop: SIGKILL of the process)."""
    if not server.alive():
        return []
    client = server.client()
    try:
        page = client.json("GET", "/scheduler/jobs?status=IN_PROGRESS")
        for job in page["jobs"]:
            client.json(
                "PATCH", f"/scheduler/jobs/{job['job_id']}", {"status": "STOPPED"}, expect=(204,)
            )
        return []
    except (OSError, ApiError) as exc:
        return [f"scheduler clean-up: {exc}"]
    finally:
        client.close()


def marked_processes(marker: str) -> dict[int, str]:
    """Live (not zombie) processes carrying this run's marker: pid -> command line."""
    entry = f"{MARKER_ENV}={marker}".encode()
    found = {}
    for pid in pids_with_env(lambda item: item == entry):
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if state != "Z":
                found[pid] = cmd.strip()[:160]
    return found


def sweep_marker(marker: str, grace: float = 5.0) -> dict[int, str]:
    """Give stragglers ``grace`` seconds to exit, then SIGKILL them; returns what was killed."""
    deadline = time.monotonic() + grace
    left = marked_processes(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = marked_processes(marker)
    kill_pids(left)
    return left


def outside_groups(marker: str, servers: list[Server], grace: float = 10.0) -> dict[int, str]:
    """Job processes (outside the servers' process groups) still alive after ``grace`` s."""
    groups = {server.proc.pid for server in servers if server.proc is not None}

    def detached() -> dict[int, str]:
        found = {}
        for pid, cmd in marked_processes(marker).items():
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(pid) not in groups:
                    found[pid] = cmd
        return found

    deadline = time.monotonic() + grace
    left = detached()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = detached()
    return left


def clean_up(servers: list[Server], marker: str, report: Report) -> None:
    """Stop jobs through each API, wait for job processes, kill the servers, sweep."""
    for server in servers:
        stop = stop_all_jobctl if server.name == "jobctl" else stop_all_scheduler
        for text in stop(server):
            report.problem(text)
        if server.name == "scheduler":
            report.check("scheduler.zombie_children_at_end", server.zombie_children())
    for pid, cmd in outside_groups(marker, servers).items():
        report.problem(f"job process {pid} still alive 10 s after its job ended: {cmd}")
    for server in servers:
        server.stop()
    leftovers = sweep_marker(marker)
    report.check("leftover_processes_killed", len(leftovers))
    for pid, cmd in leftovers.items():
        report.problem(f"process {pid} outlived the server kill (+5 s) and was killed: {cmd}")


# ---------------------------------------------------------------------------- output


def machine() -> dict[str, Any]:
    return {
        **cpus(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": loadavg(),
    }


def jobctl_versions(python: Path) -> dict[str, str]:
    code = (
        "import json, platform, jupyter_jobctl, jupyter_server, sqlalchemy;"
        "print(json.dumps({'jupyter_jobctl': jupyter_jobctl.__version__,"
        "'jupyter_server': jupyter_server.__version__, 'sqlalchemy': sqlalchemy.__version__,"
        "'python': platform.python_version()}))"
    )
    out = json.loads(
        subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, check=True, cwd=REPO
        ).stdout
    )
    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    if git.returncode == 0:
        out["git"] = git.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    return out


def print_header(info: dict[str, Any], versions: dict[str, Any], sizes: Sizes, smoke: bool) -> None:
    print(f"\njupyter_jobctl vs jupyter-scheduler ({'smoke' if smoke else 'full'} size)")
    print(
        f"machine:   {info['cpu_count']} CPUs (affinity {info['cpu_affinity']}) "
        f"{info['cpu_model']}, load {info['loadavg_at_start']}, {info['platform']}"
    )
    for name, vers in versions.items():
        print(f"{name + ':':<10} " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    print(f"sizes:     {asdict(sizes)}", flush=True)


def fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def print_table(report: Report) -> None:
    print()
    head = f"{'figure':<58} {'n':>4} {'p50':>9} {'p95':>9} {'p99':>9} {'max':>9}  {'ratio':>6}"
    print(head + "   (ms; ratio = scheduler p50 / jobctl p50)")
    print("-" * len(head))
    for row in report.rows:
        s = row.summary()
        ratio = report.ratio(row)
        print(
            f"{s['label']:<58} {s['n']:>4} {fmt(s['p50_ms']):>9} {fmt(s['p95_ms']):>9} "
            f"{fmt(s['p99_ms']):>9} {fmt(s['max_ms']):>9}  "
            f"{'' if ratio is None else f'{ratio:.1f}x':>6}"
        )
    print_checks(report, 40)
    print_problems(report)


def figures_json(report: Report) -> dict[str, Any]:
    """Each figure with its samples (ms) and its ratio to the jobctl figure it is set against."""
    return {
        row.key: {
            **row.summary(),
            "samples_ms": [round(v * 1000.0, 3) for v in row.samples],
            "ratio_p50": report.ratio(row),
            "versus": row.versus,
        }
        for row in report.rows
    }


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--smoke", action="store_true", help="3 start runs, 500 rows")
    p.add_argument("--runs", type=int, help="start runs per product (default 20, smoke 3)")
    p.add_argument("--rows", type=int, help="rows per database for the list (10000, smoke 500)")
    p.add_argument("--gets", type=int, help="timed GETs per list variant (default 30)")
    p.add_argument("--only", default="", help="comma list of figures: start,list (default both)")
    p.add_argument("--json", help="write the numbers to this path")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="holds scheduler-venv")
    p.add_argument("--scheduler-spec", default="jupyter-scheduler", help="pip requirement")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    return p.parse_args(argv)


def prepare(tmp: Path, sched_python: Path, rows: int, report: Report) -> None:
    """The notebook in the scheduler's root, and both databases filled (timed apart)."""
    (tmp / "scheduler" / "root").mkdir(parents=True, exist_ok=True)
    (tmp / "jobctl").mkdir(parents=True, exist_ok=True)
    (tmp / "scheduler" / "root" / NOTEBOOK_NAME).write_text(json.dumps(NOTEBOOK))
    base = time.time() - 3600 - rows  # an hour+ ago, one job a second: history, not news
    print(f"filling both databases with {rows} completed jobs", flush=True)
    secs = fill_jobctl(jobctl_db_url(tmp / "jobctl"), rows, base)
    report.check("fill.jobctl_s", round(secs, 2))
    secs = fill_scheduler(sched_python, scheduler_db_url(tmp / "scheduler"), rows, base, "python")
    report.check("fill.scheduler_s", round(secs, 2))
    print(
        f"  jobctl {report.checks['fill.jobctl_s']} s, "
        f"scheduler {report.checks['fill.scheduler_s']} s",
        flush=True,
    )


def run_figures(servers: dict[str, Server], sizes: Sizes, only: set[str], report: Report) -> None:
    for name, server in servers.items():
        report.check(f"{name}.server_start_s", round(server.start(), 2))
    jc, sc = servers["jobctl"].client(), servers["scheduler"].client()
    try:
        envs = sc.json("GET", "/scheduler/runtime_environments")
        env_name = envs[0]["name"]
        report.check("scheduler.runtime_environment", env_name)
        if not only or "list" in only:  # first, while each database holds exactly `rows` jobs
            bench_list(jc, sc, sizes, report)
        if not only or "start" in only:
            bench_start(jc, sc, env_name, sizes, report)
        report.check("scheduler.zombie_children_after_runs", servers["scheduler"].zombie_children())
    finally:
        jc.close()
        sc.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    sizes = sizes_from(args, Sizes(), SMOKE)
    jobctl_python = REPO / ".venv" / "bin" / "python"
    if not jobctl_python.exists():
        jobctl_python = Path(sys.executable)
    sched_python, sched_versions = ensure_scheduler_venv(
        args.cache_dir.resolve(), args.scheduler_spec
    )
    info = machine()
    versions = {"jobctl": jobctl_versions(jobctl_python), "scheduler": sched_versions}
    print_header(info, versions, sizes, args.smoke)
    tmp = Path(tempfile.mkdtemp(prefix="scheduler-compare-"))
    marker = uuid.uuid4().hex
    servers = {
        "jobctl": jobctl_server(tmp / "jobctl", jobctl_python, marker),
        "scheduler": scheduler_server(tmp / "scheduler", sched_python, marker),
    }
    report = Report()
    t0 = time.perf_counter()
    try:
        with recorded(report) as run:
            prepare(tmp, sched_python, sizes.rows, report)
            run_figures(servers, sizes, {s for s in args.only.split(",") if s}, report)
        if run.crashed:
            for server in servers.values():
                print(f"--- {server.name} server log (tail) ---\n{server.tail()}", flush=True)
    finally:
        clean_up(list(servers.values()), marker, report)
        report.check("total_s", round(time.perf_counter() - t0, 1))
        report.check("loadavg_at_end", loadavg())
        keep_or_remove(tmp, args.keep, f"kept {tmp}")
    print_table(report)
    if args.json:
        figures = figures_json(report)
        doc = {"machine": info, "versions": versions, "sizes": asdict(sizes), "figures": figures}
        write_json(args.json, {**doc, "checks": report.checks, "problems": report.problems})
    return run.exit_status()


if __name__ == "__main__":
    sys.exit(main())
