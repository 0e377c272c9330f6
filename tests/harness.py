"""Real processes for the tests and the benchmarks: a ``jupyter server`` subprocess, a
throw-away PostgreSQL cluster, waiting on conditions, and clean-up of job processes.

Imported by the root ``conftest.py`` and by ``benchmarks/`` (which put the repository root
on ``sys.path``). It imports nothing of ``jupyter_jobctl``: the benchmarks also start
servers of another product in another virtual environment with it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

API = "/jobctl/api"
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, what: str = "condition") -> T:
    """Poll until ``predicate()`` is truthy (returned); fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------- processes


def pids_with_env(wanted: Callable[[bytes], bool]) -> list[int]:
    """Processes (but this one) with an environment entry (b"NAME=value") ``wanted`` takes.

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


def job_pids(db_url_prefix: str) -> list[int]:
    """Job processes (supervisors, workers) whose ``JOBCTL_DB_URL`` starts with the prefix."""
    entry = f"JOBCTL_DB_URL={db_url_prefix}".encode()
    return pids_with_env(lambda item: item.startswith(entry))


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


def merge_options(defaults: Sequence[str], given: Sequence[str]) -> list[str]:
    """``defaults`` then ``given``; an option in ``given`` replaces its default (traitlets
    refuses the same option twice)."""
    names = {a.split("=", 1)[0] for a in given}
    return [*(a for a in defaults if a.split("=", 1)[0] not in names), *given]


def jobctl_options(db_url: str, **jobctl: object) -> list[str]:
    """The server options of the extension on ``db_url``, each keyword a ``--JobCtl.`` one."""
    return [
        "--ServerApp.jpserver_extensions={'jupyter_jobctl': True}",
        f"--JobCtl.db_url={db_url}",
        *(f"--JobCtl.{name}={value}" for name, value in jobctl.items()),
    ]


class JupyterServer:
    """``python -m jupyter_server`` on a free port of 127.0.0.1 with a fresh token, in its own
    process group; Jupyter's runtime/data/config dirs and the log are under ``home``.

    ``options`` are server options (``--Class.trait=value``; see ``jobctl_options``), ``app``
    the module run (``jupyterlab`` for the whole lab);
    ``health`` is the route polled until it answers 200; ``prefix`` is put before the
    paths given to ``request``. Job processes started by the server live in their own
    sessions: ``kill`` and ``stop`` end the server, not them (see ``job_pids``).
    """

    start_timeout = 120.0  # generous: a loaded 2-CPU machine must not fail a start

    def __init__(
        self,
        home: Path,
        options: Sequence[str] = (),
        *,
        root: Path | None = None,
        python: str | Path = sys.executable,
        health: str = f"{API}/health",
        prefix: str = API,
        env: dict[str, str] | None = None,
        port: int | None = None,
        name: str = "jupyter",
        app: str = "jupyter_server",  # or "jupyterlab"
    ) -> None:
        self.home, self.root = Path(home), Path(root or home)
        self.python, self.health, self.prefix, self.name = Path(python), health, prefix, name
        self.port = port or free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.extra_env = dict(env or {})
        self.log_path = self.home / f"server-{self.port}.log"
        self.argv = [
            str(self.python), "-m", app, "--no-browser", "--ip=127.0.0.1",
            *merge_options(
                [
                    f"--port={self.port}", "--ServerApp.port_retries=0",
                    f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
                    *(["--allow-root"] if os.geteuid() == 0 else []),
                ],
                options,
            ),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def option(self, name: str) -> str | None:
        """The value the server gets for ``--name`` (None when not given)."""
        found = [a.split("=", 1)[1] for a in self.argv if a.startswith(f"{name}=")]
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCTL_")}
        for name, sub in (("RUNTIME", "runtime"), ("DATA", "data"), ("CONFIG", "config")):
            env[f"JUPYTER_{name}_DIR"] = str(self.home / sub)
        return {**env, **self.extra_env}

    def start(self, timeout: float | None = None) -> float:
        """Start and poll the health route until 200; returns the seconds it took."""
        t0 = time.perf_counter()
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.home,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self._healthy, timeout or self.start_timeout, f"{self.name}: {self.health}")
        return time.perf_counter() - t0

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} server exited ({self.proc.returncode}):\n{self.tail()}"
            )
        req = urllib.request.Request(self.url + self.health, headers=self.auth)
        with contextlib.suppress(OSError, ValueError):  # not listening yet, or an error page
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status == 200
        return False

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> tuple[int, Any]:
        """Blocking JSON request to ``prefix + path`` with the token (unless ``headers``
        say otherwise); returns (status, decoded body or None)."""
        data = None if body is None else json.dumps(body).encode()
        hdrs = {**self.auth, "Content-Type": "application/json", **(headers or {})}
        req = urllib.request.Request(self.url + self.prefix + path, data, hdrs, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9 the server's whole process group (a crash, as far as the jobs can tell)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the server's process group, SIGKILL it if it lingers."""
        if self.proc is not None:
            end_group(self.proc, grace)
            with contextlib.suppress(ProcessLookupError):  # stragglers of the group
                os.killpg(self.proc.pid, signal.SIGKILL)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


# ---------------------------------------------------------------------------- PostgreSQL


def pg_bin() -> str | None:
    """The newest Debian PostgreSQL's bin directory, or None when it is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    return found[-1] if found else None


class PostgresCluster:
    """A throw-away cluster on a free port of 127.0.0.1 (``fsync=off``), run as the
    ``postgres`` user when we are root (initdb refuses root); databases made on demand."""

    def __init__(self, bin_dir: str, max_connections: int = 300) -> None:
        self.bin_dir, self.max_connections = bin_dir, max_connections
        self.as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.data = ""  # made by start(): a cluster only asked for its version leaves nothing
        self.port = 0
        self.started = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://jobctl@127.0.0.1:{self.port}"

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_pg, *argv], capture_output=True, text=True)

    def version(self) -> str:
        out = subprocess.run([f"{self.bin_dir}/postgres", "--version"], capture_output=True)
        return out.stdout.decode().strip().replace("postgres (PostgreSQL) ", "")

    def start(self) -> PostgresCluster:
        # the postgres user must reach it: not under a caller's private TMPDIR (run_all's)
        self.data = tempfile.mkdtemp(prefix="jobctl-pg-", dir="/tmp" if self.as_pg else None)
        if self.as_pg:
            shutil.chown(self.data, "postgres")
        init = self._run(f"{self.bin_dir}/initdb", "-D", self.data, "-A", "trust", "-U", "jobctl")
        if init.returncode:
            raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
        for _ in range(5):  # another process may take the free port before the server does
            self.port = free_port()
            opts = (
                f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c max_connections={self.max_connections}"
            )
            ctl = f"{self.bin_dir}/pg_ctl"
            run = self._run(
                ctl, "-D", self.data, "-w", "-l", f"{self.data}/log", "-o", opts, "start"
            )
            if run.returncode == 0:
                self.started = True
                return self
        raise RuntimeError(f"pg_ctl start failed: {run.stderr[-2000:]}")

    def create_database(self, prefix: str = "t") -> str:
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"postgresql://jobctl@127.0.0.1:{self.port}/postgres") as conn:
            conn.autocommit = True
            conn.execute(f"CREATE DATABASE {name}")
        return f"{self.url}/{name}"

    def stop(self) -> None:
        if self.started:
            self._run(f"{self.bin_dir}/pg_ctl", "-D", self.data, "-m", "immediate", "stop")
            self.started = False
        if self.data:
            shutil.rmtree(self.data, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------- Dask


class DaskCluster:
    """``dask scheduler`` and named ``dask worker`` processes (no nanny: killing a worker's
    process is the worker dying), each in its own session, on 127.0.0.1; logs under ``home``."""

    def __init__(self, home: Path, python: str | Path = sys.executable) -> None:
        self.home = Path(home)
        self.dask = str(Path(python).parent / "dask")
        self.port = 0
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCTL_")}
        with open(self.home / f"dask-{name}.log", "ab") as log:
            return subprocess.Popen(
                [self.dask, *argv],
                cwd=self.home,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self, workers: Iterable[str] = ("w1", "w2")) -> DaskCluster:
        self.port = free_port()
        self.scheduler = self._spawn(
            "scheduler",
            ["scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"],
        )
        for name in workers:
            self.add_worker(name)
        return self

    def add_worker(self, name: str, resources: str | None = None) -> None:
        argv = ["worker", self.address, "--name", name, "--nthreads", "4", "--no-nanny"]
        argv += ["--host", "127.0.0.1", "--no-dashboard"]
        if resources:
            argv += ["--resources", resources]
        self.workers[name] = self._spawn(name, argv)
        self.wait_for_workers()

    def names(self) -> list[str]:
        """The workers the scheduler knows (asked through a throw-away client)."""
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            info = client.scheduler_info(n_workers=-1) if _takes_n_workers() else None
            info = info or client.scheduler_info()
            return sorted(w.get("name") for w in info["workers"].values())

    def wait_for_workers(self, timeout: float = 120.0) -> None:
        wanted = sorted(n for n, p in self.workers.items() if p.poll() is None)
        wait_for(lambda: self.names() == wanted, timeout, f"dask workers {wanted}")

    def kill_worker(self, name: str) -> None:
        proc = self.workers.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def worker_pid(self, name: str) -> int:
        return self.workers[name].pid

    def stop(self) -> None:
        for proc in [*self.workers.values(), *([self.scheduler] if self.scheduler else [])]:
            end_group(proc, 5.0)
        self.workers.clear()
        self.scheduler = None

    def __enter__(self) -> DaskCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _takes_n_workers() -> bool:
    import inspect

    from distributed import Client

    return "n_workers" in inspect.signature(Client.scheduler_info).parameters
