"""Side by side, same run, same machine: jupyter_jobctl against jupyter-scheduler.

Run from the repository root:

    .venv/bin/python benchmarks/scheduler_compare.py            # 20 start runs, 10 000 rows
    .venv/bin/python benchmarks/scheduler_compare.py --smoke    # 3 runs, 500 rows, < 2 min

jupyter-scheduler (PyPI `jupyter-scheduler`, and `ipykernel` to run its notebooks) lives in
its own virtual environment, `<cache>/scheduler-venv`, outside the repository: the cache
is `$XDG_CACHE_HOME/jupyter_jobctl` (default `~/.cache/jupyter_jobctl`, or `--cache-dir`).
It is created on the first run (`python3 -m venv` + `uv pip install`, or pip) and reused
while it imports. Its modules are compiled once (pip does so, uv does not): otherwise
every scheduler job process would compile nbconvert & co. and start figures would measure
the compiler.

Both products run as real `python -m jupyter_server` subprocesses on 127.0.0.1 (each its
own port, token, root, database and Jupyter dirs), on one keep-alive client each. Figures:

start (3): jobctl `POST /jobctl/api/jobs` (demo trainer, `start: true`) until a poll of the
   job says `running`, against jupyter-scheduler `POST /scheduler/jobs` (a one-cell
   notebook) until it says `IN_PROGRESS`; polls every 2 ms, A/B interleaved with the order
   alternating, one warm-up each not counted. Between runs the jobctl job is stopped and
   the notebook left to complete.
list (8): the first page of `GET /jobs` with N rows in each database (filled directly):
   jobctl `?limit=50` against scheduler `?max_items=50`, interleaved; it runs first.
notebook (17, 18): the same two-cell notebook (`print`, then `time.sleep(60)`) as a job of
   each. First cell: jobctl create+start until the job reports `cell 1/2` running (its
   kernel is up and the cell was sent), against jupyter-scheduler create until
   `IN_PROGRESS` (it reports nothing per cell: its first cell cannot run before that, so
   the comparison flatters it). Stop, once the sleeping cell runs (jobctl: `cell 2/2`;
   scheduler: a second after `IN_PROGRESS`): jobctl `POST .../stop` until `cancelled`,
   against scheduler `PATCH {"status": "STOPPED"}` until it reads `STOPPED`; interleaved,
   the order alternating. jobctl's stop goes through its ladder (the cell does not
   checkpoint: interrupt at `interrupt_after`, 0.5 s by default); the scheduler's kills.
   Also jobctl alone: stop in a loop that checkpoints (`jc.current().progress(...)`).
   A second after each stop the run's kernel processes are counted (`kernels_left`
   checks: a kernel a stop left running, still computing) and then killed.

Whatever happens, both servers' jobs are stopped, their process groups killed, and any
process carrying this run's environment marker is SIGKILLed (and reported).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    API,
    DEMO_SPEC,
    TERMINAL,
    TIMEOUT,
    ApiError,
    JupyterServer,
    Line,
    Report,
    fill_jobctl,
    finish,
    jobctl_options,
    latency,
    ms,
    parse,
    rate,
    recorded,
    verdict,
)

from tests.harness import kill_pids, pids_with_env

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jupyter_jobctl"
MARKER = "SCHEDULER_COMPARE_RUN"
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
SLEEPER = {
    **NOTEBOOK,
    "cells": [
        {**NOTEBOOK["cells"][0], "source": "print('hello')"},
        {**NOTEBOOK["cells"][0], "source": "import time\ntime.sleep(60)"},
    ],
}
LOOPER = {
    **NOTEBOOK,
    "cells": [
        {
            **NOTEBOOK["cells"][0],
            "source": "import time\nfrom jupyter_jobctl import runtime as jc\n"
            "for step in jc.current().progress(range(10**6), unit='step'):\n"
            "    time.sleep(0.01)",
        }
    ],
}
# runs in the scheduler venv: its versions; fails if anything is missing
VERSIONS = """
import json, platform, ipykernel, jupyter_scheduler, jupyter_server, nbconvert
print(json.dumps({"jupyter_scheduler": jupyter_scheduler.__version__,
    "jupyter_server": jupyter_server.__version__, "python": platform.python_version()}))
"""
# runs in the scheduler venv: COMPLETED job rows through jupyter_scheduler.orm, one transaction
FILL = """
import sys, uuid
from sqlalchemy import create_engine, insert
from jupyter_scheduler.models import OUTPUT_FILENAME_TEMPLATE, Status
from jupyter_scheduler.orm import Job, create_tables

db_url, rows, base_ms, notebook, env_name = sys.argv[1:6]
create_tables(db_url)
records = []
for i in range(int(rows)):
    job_id, created = str(uuid.uuid4()), int(base_ms) + i * 1000
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
"""


@dataclass
class Sizes:
    runs: int = 20  # start runs per product (plus one warm-up each)
    rows: int = 10_000  # jobs in each database for the list figure
    gets: int = 30  # timed GETs per list variant (after 3 warm-up ones)
    notebooks: int = 8  # notebook jobs per product (plus one warm-up each)


SMOKE = Sizes(runs=3, rows=500, gets=10, notebooks=2)


# ---------------------------------------------------------------------------- scheduler venv


def run_logged(argv: list[str], what: str, check: bool = True) -> None:
    print(f"  {what}: {' '.join(argv)}", flush=True)
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode and check:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{tail}")


def scheduler_venv(cache: Path, spec: str) -> tuple[Path, dict[str, str]]:
    """``<cache>/scheduler-venv``'s python and versions, (re)created when it does not import."""
    venv = cache / "scheduler-venv"
    python = venv / "bin" / "python"
    for attempt in (1, 2):
        if python.exists():
            proc = subprocess.run([str(python), "-c", VERSIONS], capture_output=True, text=True)
            if proc.returncode == 0:
                if not (venv / ".bytecode-compiled").exists():  # a stray py2 file must not fail
                    run_logged([str(python), "-m", "compileall", "-q", "-j0", str(venv / "lib")],
                               "compile bytecode", check=False)  # fmt: skip
                    (venv / ".bytecode-compiled").touch()
                print(f"scheduler venv: {venv}", flush=True)
                return python, json.loads(proc.stdout.strip().splitlines()[-1])
        if attempt == 2:
            raise RuntimeError(f"{venv} was installed but does not import jupyter_scheduler")
        print(f"scheduler venv: creating {venv} (first run; needs PyPI)", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        cache.mkdir(parents=True, exist_ok=True)
        run_logged([shutil.which("python3") or sys.executable, "-m", "venv", str(venv)], "venv")
        uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
        install = [uv, "pip", "install", "--python", str(python)] if Path(uv).exists() else None
        run_logged(
            [*(install or [str(python), "-m", "pip", "install"]), spec, "ipykernel"], "install"
        )
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------- HTTP


class Client:
    """Blocking JSON client on one keep-alive connection (the same for both products)."""

    def __init__(self, server: JupyterServer) -> None:
        self.port, self.headers = server.port, {**server.auth, "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)

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

    def json(
        self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200,)
    ) -> Any:
        status, raw = self.raw(method, path, body)
        if status not in expect:
            raise ApiError(f"{method} {path} -> {status} {raw.decode(errors='replace')[:300]}")
        return json.loads(raw) if raw else None

    def poll(self, path: str, done: set[str], poll: float = 0.002) -> tuple[str, float]:
        """GET ``path`` until its status is in ``done``; (the status, perf time seen)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            status = self.json("GET", path)["status"]
            seen = time.perf_counter()
            if status in done or time.monotonic() > deadline:
                return status, seen
            time.sleep(poll)


# ---------------------------------------------------------------------------- figures


def start_jobctl(jc: Client, report: Report, count: bool) -> None:
    t0 = time.perf_counter()
    job = jc.json(
        "POST", f"{API}/jobs", {"kind": "training", "spec": DEMO_SPEC, "start": True}, (201,)
    )
    status, seen = jc.poll(f"{API}/jobs/{job['id']}", {"running", *TERMINAL})
    if status != "running":
        report.problem(f"jobctl start: job {job['id']} reached {status}")
    elif count:
        report.add("start.jobctl", seen - t0)
    jc.json("POST", f"{API}/jobs/{job['id']}/stop", expect=(202, 409))
    jc.poll(f"{API}/jobs/{job['id']}", set(TERMINAL), 0.02)


def start_scheduler(sc: Client, env: str, i: int, report: Report, count: bool) -> None:
    """What the JupyterLab 'Create job' form sends; then the notebook is left to complete."""
    body = {"name": f"hello-{i}", "input_uri": "hello.ipynb", "runtime_environment_name": env}
    t0 = time.perf_counter()
    job_id = sc.json("POST", "/scheduler/jobs", {**body, "output_formats": ["ipynb"]})["job_id"]
    # a new job reads STOPPED at first; a fast notebook may be COMPLETED before a poll sees it run
    status, seen = sc.poll(f"/scheduler/jobs/{job_id}", {"IN_PROGRESS", "COMPLETED", "FAILED"})
    if status == "FAILED" or status not in ("IN_PROGRESS", "COMPLETED"):
        report.problem(f"scheduler start: job {job_id} reached {status}")
    elif count:
        report.add(
            "start.scheduler" if status == "IN_PROGRESS" else "start.scheduler.early", seen - t0
        )
    status, _ = sc.poll(f"/scheduler/jobs/{job_id}", {"COMPLETED", "FAILED"}, 0.02)
    if status == "IN_PROGRESS":
        sc.json("PATCH", f"/scheduler/jobs/{job_id}", {"status": "STOPPED"}, expect=(204,))


def bench_start(jc: Client, sc: Client, env: str, sizes: Sizes, report: Report) -> None:
    print(f"[3] start, {sizes.runs} runs each + 1 warm-up, interleaved", flush=True)
    for i in range(sizes.runs + 1):
        for product in ("jobctl", "scheduler") if i % 2 == 0 else ("scheduler", "jobctl"):
            if product == "jobctl":
                start_jobctl(jc, report, i > 0)
            else:
                start_scheduler(sc, env, i, report, i > 0)


def kernels(marker: str, job_env: bool) -> set[int]:
    """This run's kernel processes: jobctl's carry their job's id (``job_env``), the
    scheduler's do not."""
    entry, job = f"{MARKER}={marker}".encode(), b"JOBCTL_JOB_ID="
    found = set()
    for pid in pids_with_env(lambda item: item == entry):
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if b"ipykernel" in cmd and any(e.startswith(job) for e in env) == job_env:
                found.add(pid)
    return found


def left_after(marker: str, job_env: bool, before: set[int], report: Report, key: str) -> None:
    """Kernels a stop left running, a second after the job said it had ended (then killed,
    so they do not pile up)."""
    time.sleep(1.0)
    left = kernels(marker, job_env) - before
    report.check(key, report.checks.get(key, 0) + len(left))
    kill_pids(left)


def notebook_coop(jc: Client, path: str, report: Report, count: bool) -> None:
    """jobctl alone: stop a notebook whose loop checkpoints (the cooperative rung)."""
    job = jc.json(
        "POST", f"{API}/jobs", {"kind": "notebook", "spec": {"path": path}, "start": True}, (201,)
    )
    url, deadline = f"{API}/jobs/{job['id']}", time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        now = jc.json("GET", url)
        if now["progress"]["unit"] == "step" or now["status"] in TERMINAL:
            break
        time.sleep(0.01)
    t1 = time.perf_counter()
    jc.json("POST", f"{url}/stop", expect=(202, 409))
    status, seen = jc.poll(url, set(TERMINAL))
    if status != "cancelled":
        report.problem(f"jobctl checkpointing notebook {job['id']} ended {status}")
    elif count:
        report.add("notebook_stop_coop.jobctl", seen - t1)


def notebook_jobctl(jc: Client, path: str, marker: str, report: Report, count: bool) -> None:
    t0 = time.perf_counter()
    job = jc.json(
        "POST", f"{API}/jobs", {"kind": "notebook", "spec": {"path": path}, "start": True}, (201,)
    )
    url, deadline = f"{API}/jobs/{job['id']}", time.monotonic() + TIMEOUT
    first = None
    while time.monotonic() < deadline:
        now = jc.json("GET", url)
        seen = time.perf_counter()
        prog = now["progress"]
        if first is None and prog["unit"] == "cell":
            first = seen - t0  # cell 1/2 was sent to the kernel
        if (prog["unit"] == "cell" and (prog["done"] or 0) >= 1) or now["status"] in TERMINAL:
            break
        time.sleep(0.002)
    if now["status"] != "running" or first is None:
        report.problem(f"jobctl notebook {job['id']}: {now['status']}, progress {now['progress']}")
        jc.json("POST", f"{url}/stop", expect=(202, 409))
        return
    t1 = time.perf_counter()
    jc.json("POST", f"{url}/stop", expect=(202,))
    status, seen = jc.poll(url, set(TERMINAL))
    if status != "cancelled":
        report.problem(f"jobctl notebook {job['id']} stopped as {status}")
    elif count:
        report.add("notebook_first_cell.jobctl", first)
        report.add("notebook_stop.jobctl", seen - t1)
    left_after(marker, True, set(), report, "notebook_stop.kernels_left.jobctl")


def notebook_scheduler(
    sc: Client, env: str, i: int, marker: str, report: Report, count: bool
) -> None:
    before = kernels(marker, False)
    body = {"name": f"sleeper-{i}", "input_uri": "sleeper.ipynb", "runtime_environment_name": env}
    t0 = time.perf_counter()
    job_id = sc.json("POST", "/scheduler/jobs", {**body, "output_formats": ["ipynb"]})["job_id"]
    url = f"/scheduler/jobs/{job_id}"
    status, seen = sc.poll(url, {"IN_PROGRESS", "COMPLETED", "FAILED"})
    if status != "IN_PROGRESS":
        report.problem(f"scheduler notebook {job_id} reached {status}")
        return
    first = seen - t0
    time.sleep(1.0)  # its kernel starts meanwhile: the stop hits the sleeping cell
    t1 = time.perf_counter()
    sc.json("PATCH", url, {"status": "STOPPED"}, expect=(204,))
    status, seen = sc.poll(url, {"STOPPED", "COMPLETED", "FAILED"})
    if status != "STOPPED":
        report.problem(f"scheduler notebook {job_id} stopped as {status}")
    elif count:
        report.add("notebook_first_cell.scheduler", first)
        report.add("notebook_stop.scheduler", seen - t1)
    left_after(marker, False, before, report, "notebook_stop.kernels_left.scheduler")


def bench_notebook(
    jc: Client, sc: Client, env: str, root: Path, marker: str, sizes: Sizes, report: Report
) -> None:
    path = str(root / "sleeper.ipynb")
    print(f"[17, 18] notebook jobs, {sizes.notebooks} each + 1 warm-up, interleaved", flush=True)
    for i in range(sizes.notebooks + 1):
        for product in ("jobctl", "scheduler") if i % 2 == 0 else ("scheduler", "jobctl"):
            if product == "jobctl":
                notebook_jobctl(jc, path, marker, report, i > 0)
            else:
                notebook_scheduler(sc, env, i, marker, report, i > 0)
        notebook_coop(jc, str(root / "looper.ipynb"), report, i > 0)


def bench_list(jc: Client, sc: Client, sizes: Sizes, report: Report) -> None:
    print(f"[8] list, {sizes.rows} rows each, {sizes.gets} GETs per product", flush=True)
    variants = {
        "list.jobctl": (jc, f"{API}/jobs?limit=50"),
        "list.scheduler": (sc, "/scheduler/jobs?max_items=50"),
    }
    for i in range(sizes.gets + 3):
        for key, (client, path) in variants.items() if i % 2 else reversed(variants.items()):
            t0 = time.perf_counter()
            status, raw = client.raw("GET", path)
            if status != 200 or len(json.loads(raw)["jobs"]) != 50:
                raise ApiError(f"GET {path} -> {status}, not a page of 50 jobs")
            if i >= 3:
                report.add(key, time.perf_counter() - t0)


def rows(doc: dict[str, Any], backend: str) -> list[Line]:
    fig, out = doc["figures"], []
    ours, theirs = fig.get("start.jobctl"), fig.get("start.scheduler")
    if ours:
        ratio = theirs["p50_ms"] / ours["p50_ms"] if theirs else None
        note = "jupyter-scheduler: no data"
        if ratio:
            note = (
                f"jupyter-scheduler create → IN_PROGRESS p50 {ms(theirs['p50_ms'])}, p99 "
                f"{ms(theirs['p99_ms'])}: jobctl **{ratio:.1f}x** faster (p50)"
            )
        line = latency(
            3, "create+start → `running` over HTTP (demo trainer)", backend, ours, 300, note
        )
        line.goal = "p99 < 300 ms and ≥ 5x faster"
        line.verdict = verdict(None if ratio is None else ours["p99_ms"] < 300 and ratio >= 5)
        out.append(line)
    if (ours := fig.get("list.jobctl")) and (theirs := fig.get("list.scheduler")):
        note = (
            f"jupyter-scheduler `GET /jobs?max_items=50` p50 {ms(theirs['p50_ms'])}: "
            f"{theirs['p50_ms'] / ours['p50_ms']:.1f}x"
        )
        jobs = rate(doc["sizes"]["rows"])
        what = f"`GET /jobs?limit=50` at {jobs} jobs, beside jupyter-scheduler"
        out.append(latency(8, what, backend, ours, 20, note))
    for figure, key, what in (
        (17, "notebook_first_cell", "notebook job: create+start → first cell running"),
        (18, "notebook_stop", "notebook job: stop in a `time.sleep(60)` cell → cancelled"),
    ):
        ours, theirs = fig.get(f"{key}.jobctl"), fig.get(f"{key}.scheduler")
        if ours:
            note = "jupyter-scheduler: no data"
            if theirs:
                ending = "IN_PROGRESS" if key == "notebook_first_cell" else "STOPPED"
                note = (
                    f"jupyter-scheduler → {ending} p50 {ms(theirs['p50_ms'])}, p99 "
                    f"{ms(theirs['p99_ms'])} ({theirs['p50_ms'] / ours['p50_ms']:.2f}x ours)"
                )
            coop = fig.get("notebook_stop_coop.jobctl")
            if key == "notebook_stop" and coop:
                note += f"; a notebook that checkpoints: p50 {ms(coop['p50_ms'])}"
            out.append(latency(figure, what, backend, ours, None, note))
    return out


# ---------------------------------------------------------------------------- main


def clean_up(servers: list[JupyterServer], marker: str, report: Report) -> None:
    """Stop jobctl's jobs through its API, kill both servers, then whatever has the marker."""
    if servers[0].alive():
        with contextlib.suppress(OSError, ApiError):
            jc = Client(servers[0])
            for job in jc.json("GET", f"{API}/jobs?status=initializing,running,paused&limit=1000")[
                "jobs"
            ]:
                jc.json("POST", f"{API}/jobs/{job['id']}/stop", expect=(202, 409))
            deadline = time.monotonic() + 60
            while jc.json("GET", f"{API}/jobs?status=stopping&limit=1")["jobs"]:
                if time.monotonic() > deadline:
                    report.problem("jobctl jobs still stopping after 60 s")
                    break
                time.sleep(0.1)
    for server in servers:
        server.stop()
    entry = f"{MARKER}={marker}".encode()
    deadline = time.monotonic() + 5  # stragglers of the servers' groups, killed just now
    while (left := pids_with_env(lambda item: item == entry)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left := kill_pids(left):
        report.problem(f"{len(left)} process(es) outlived the servers and were killed: {left}")


def options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", type=Path, default=CACHE, help="holds scheduler-venv")
    p.add_argument("--scheduler-spec", default="jupyter-scheduler", help="its pip requirement")


def main(argv: list[str] | None = None) -> int:
    args = parse(__doc__, Sizes(), SMOKE, "start,list,notebook", argv, options)
    sizes, report = args.sizes, Report()
    sched_python, versions = scheduler_venv(args.cache_dir, args.scheduler_spec)
    tmp, marker = Path(tempfile.mkdtemp(prefix="scheduler-compare-")), uuid.uuid4().hex
    # both servers and their jobs carry the marker (found by it at the end); imports cache
    # their bytecode, as on a user's machine (else every job compiles what it imports)
    env = {MARKER: marker, "PYTHONDONTWRITEBYTECODE": ""}
    jobctl_db = f"sqlite:///{tmp / 'jobctl.db'}"
    sched_db = f"sqlite:///{tmp / 'scheduler.sqlite'}"
    (tmp / "root").mkdir()
    (tmp / "root" / "hello.ipynb").write_text(json.dumps(NOTEBOOK))
    (tmp / "root" / "sleeper.ipynb").write_text(json.dumps(SLEEPER))
    (tmp / "root" / "looper.ipynb").write_text(json.dumps(LOOPER))
    jobctl = JupyterServer(tmp / "jobctl", jobctl_options(jobctl_db), env=env, name="jobctl")
    scheduler = JupyterServer(
        tmp / "scheduler",
        [
            "--ServerApp.jpserver_extensions={'jupyter_scheduler': True}",
            f"--SchedulerApp.db_url={sched_db}",
            f"--Scheduler.staging_path={tmp / 'staging'}",
        ],
        root=tmp / "root",
        python=sched_python,
        health="/scheduler/config",
        prefix="",
        env={**env, "PATH": f"{sched_python.parent}{os.pathsep}{os.environ['PATH']}"},
        name="scheduler",
    )
    print(f"jobctl vs {versions}: {sizes}", flush=True)
    try:
        with recorded(report):
            base = time.time() - 3600 - sizes.rows  # an hour+ ago, one a second: history
            report.check("fill.jobctl_s", round(fill_jobctl(jobctl_db, sizes.rows, base), 2))
            fill = [str(sched_python), "-c", FILL, sched_db, str(sizes.rows), str(int(base * 1000))]
            subprocess.run([*fill, "hello.ipynb", "python"], check=True, capture_output=True)
            for server in (jobctl, scheduler):
                report.check(f"{server.name}.server_start_s", round(server.start(), 2))
            jc, sc = Client(jobctl), Client(scheduler)
            env_name = sc.json("GET", "/scheduler/runtime_environments")[0]["name"]
            if not args.only or "list" in args.only:  # first: each database holds `rows` jobs
                bench_list(jc, sc, sizes, report)
            if not args.only or "start" in args.only:
                bench_start(jc, sc, env_name, sizes, report)
            if not args.only or "notebook" in args.only:
                bench_notebook(jc, sc, env_name, tmp / "root", marker, sizes, report)
    finally:
        clean_up([jobctl, scheduler], marker, report)
        shutil.rmtree(tmp, ignore_errors=True)
    return finish(report, args, rows, versions=versions)


if __name__ == "__main__":
    sys.exit(main())
