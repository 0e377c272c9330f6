"""The only module that spawns or signals processes (used by executors and the supervisor).

A process is identified by boot id + pid + start time in clock ticks since boot (field 22
of /proc/PID/stat), never by pid alone, and signalled through a pidfd taken after the
identity was verified, so a recycled pid is never hit.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import IO, Any

JOB_ENV = "JOBCTL_JOB_ID"
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


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


def _child_setup(die_with_parent: bool) -> None:
    _reset_signals()
    if die_with_parent:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


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
) -> subprocess.Popen[bytes]:
    """Start a process; stdin is always /dev/null (jobs never read the server's terminal)."""
    return subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=new_session,
        process_group=0 if new_group else None,
        preexec_fn=lambda: _child_setup(die_with_parent),
        close_fds=True,
    )


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"
