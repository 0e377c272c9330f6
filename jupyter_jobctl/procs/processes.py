"""The only module that spawns or signals processes (used by executors and the supervisor).

A process is identified by boot id + pid + start time in clock ticks since boot (field 22
of /proc/PID/stat), never by pid alone, and signalled through a pidfd taken after the
identity was verified, so a recycled pid is never hit.

Linux only: identities come from /proc (``/proc/PID/stat``, ``/proc/PID/environ``, the boot
id), signals go through pidfds (``os.pidfd_open``, ``signal.pidfd_send_signal``, Linux 5.3+)
and the supervisor's clean-up relies on ``prctl`` (child subreaper, parent-death signal).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import IO, Any

JOB_ENV = "JOBCTL_JOB_ID"
NICE_ENV = "JOBCTL_JOB_NICE"  # the executor tells the supervisor how nice the worker runs
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# Popen(process_group=) is new in Python 3.11; before it the child calls setpgid itself
POPEN_PROCESS_GROUP = sys.version_info >= (3, 11)


@cache
def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:  # pragma: no cover - non-Linux
        return "unknown"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode(errors="replace")
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'
    return raw[raw.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


@dataclass(frozen=True)
class Identity:
    pid: int
    start: int
    boot: str

    @classmethod
    def of(cls, pid: int) -> Identity | None:
        ticks = start_ticks(pid)
        return None if ticks is None else cls(pid, ticks, boot_id())

    def alive(self) -> bool:
        """Same boot, same pid, same start time, and not a zombie."""
        if self.boot != boot_id():
            return False
        fields = _stat_fields(self.pid)
        if not fields or int(fields[19]) != self.start:
            return False
        return fields[0] not in ("Z", "X")

    def pidfd(self) -> int | None:
        """A pidfd for this exact process, or None if it is gone or the pid was reused."""
        if self.boot != boot_id():
            return None
        try:
            fd = os.pidfd_open(self.pid)
        except OSError:
            return None
        # verify after opening: the fd now pins this generation of the pid
        if start_ticks(self.pid) != self.start:
            os.close(fd)
            return None
        return fd

    def send(self, sig: int) -> bool:
        fd = self.pidfd()
        if fd is None:
            return False
        try:
            signal.pidfd_send_signal(fd, sig)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)


def signal_group(leader: Identity, sig: int) -> bool:
    """Signal the process group led by ``leader`` if the leader is still that process.

    killpg has no pidfd form; while the leader exists (even as an unreaped zombie of the
    caller) its pid, and so the group id, cannot be reused.
    """
    if leader.boot != boot_id() or start_ticks(leader.pid) != leader.start:
        return False
    try:
        os.killpg(leader.pid, sig)
        return True
    except OSError:
        return False


def job_processes(job_id: str, exclude: Iterable[int] = ()) -> list[Identity]:
    """Every process carrying the job's environment marker (workers, children, daemons)."""
    marker = f"{JOB_ENV}={job_id}".encode()
    skip = set(exclude) | {os.getpid()}
    found: list[Identity] = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in skip:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        if marker in env.split(b"\0"):
            ident = Identity.of(int(name))
            if ident is not None and ident.alive():
                found.append(ident)
    return found


def kill_job_processes(job_id: str, exclude: Iterable[int] = ()) -> int:
    """SIGKILL every live process marked with the job id; returns how many were signalled."""
    killed = 0
    for ident in job_processes(job_id, exclude):
        if ident.send(signal.SIGKILL):
            killed += 1
    return killed


def _prctl(option: int, value: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - non-Linux
        pass


def become_subreaper() -> None:
    """Orphaned grandchildren of the job re-parent to us, so none escape the clean-up."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def _reset_signals() -> None:
    # a server started in the background (`cmd &`) ignores SIGINT, and children inherit
    # that: without this the SIGINT rung of the stop ladder would silently do nothing
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def _child_setup(die_with_parent: bool, nice: int, new_group: bool = False) -> None:
    if new_group:
        os.setpgid(0, 0)  # what Popen(process_group=0) does, first thing in the child
    _reset_signals()
    if die_with_parent:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if nice:
        os.nice(nice)  # inherited by everything the job starts


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    new_session: bool = False,
    new_group: bool = False,
    die_with_parent: bool = False,
    stdout: int | IO[Any] | None = subprocess.DEVNULL,
    stderr: int | IO[Any] | None = subprocess.DEVNULL,
    stdin: int | None = subprocess.DEVNULL,
    pass_fds: Sequence[int] = (),
    nice: int = 0,
) -> subprocess.Popen[bytes]:
    """Start a process; stdin is /dev/null unless a pipe is asked for (jobs never read the
    server's terminal). ``new_group``: the child leads a process group of its own."""
    group: dict[str, Any] = {}
    if new_group and POPEN_PROCESS_GROUP:
        group["process_group"] = 0
    setpgid = new_group and not POPEN_PROCESS_GROUP
    return subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=new_session,
        preexec_fn=lambda: _child_setup(die_with_parent, nice, setpgid),
        close_fds=True,
        pass_fds=tuple(pass_fds),
        **group,
    )


def fork_detached(
    run: Callable[[], int],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    output: str | None = None,
) -> int:
    """Fork a child in its own session that runs ``run()`` and exits with its result.

    For the launcher only: a single-threaded process with the supervisor's modules already
    imported, so a supervisor starts in a millisecond instead of a Python start-up plus
    SQLAlchemy's import. ``output`` (appended to) receives the child's stdout and stderr.
    Returns the child's pid in the parent.
    """
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setsid()
        _reset_signals()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as a fresh Python has it
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDWR)
        sink = null
        if output is not None:
            try:
                sink = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError:
                pass  # a missing diagnostics file never stops a job
        os.dup2(null, 0)
        os.dup2(sink, 1)
        os.dup2(sink, 2)
        if cwd:
            try:
                os.chdir(cwd)
            except OSError:
                pass
        os.environ.clear()
        os.environ.update(env)
        code = run()
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(
            code if isinstance(code, int) else 1
        )  # never return into the launcher's loop, never run its atexit hooks


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"
