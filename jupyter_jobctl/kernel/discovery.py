"""Finding the Jupyter server to talk to, from a kernel, a terminal or a script.

Precedence (docs/architecture.md):

1. an explicit ``url`` (and ``token``) — the CLI's ``--url``/``--token``;
2. ``JOBCTL_URL`` / ``JOBCTL_TOKEN``;
3. the running server whose pid is an ancestor of this process (``/proc/<pid>/stat``),
   or the one named by ``JPY_PARENT_PID`` — a kernel started by that server;
4. the server that lists this kernel's id (``kernel-<id>.json`` in ``sys.argv``) in
   ``GET api/kernels`` — still right when a wrapper double-forked the kernel;
5. the only running server.

Running servers are the ``jpserver-<pid>.json`` files in ``jupyter_runtime_dir()`` whose
process is alive. The token comes from ``--token``, ``JOBCTL_TOKEN``, the server's file,
or — under JupyterHub, where the file's token is empty — ``JUPYTERHUB_API_TOKEN``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from jupyter_core.paths import jupyter_runtime_dir

from .client import JobctlError, split_url

KERNEL_FILE = re.compile(r"kernel-([0-9A-Za-z-]+)\.json$")
LOOKUP_TIMEOUT = 3.0


class DiscoveryError(JobctlError):
    """No server could be chosen; the message says what to set."""


@dataclass(frozen=True)
class ServerInfo:
    """The server chosen, its token and how it was found (``source``)."""

    url: str
    token: str
    source: str
    pid: int | None = None
    root_dir: str | None = None


def running_servers(runtime_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The ``jpserver-<pid>.json`` records of servers whose process is alive, newest first."""
    folder = Path(runtime_dir or jupyter_runtime_dir())
    servers = []
    for path in sorted(folder.glob("jpserver-*.json"), key=_mtime, reverse=True):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and _alive(info.get("pid")):
            servers.append(info)
    return servers


def ancestor_pids(pid: int | None = None) -> list[int]:
    """This process's parent, grandparent … up to pid 1 (Linux ``/proc``)."""
    chain: list[int] = []
    current = os.getpid() if pid is None else pid
    while current > 1 and len(chain) < 256:
        parent = _parent_pid(current)
        if parent is None or parent in chain:
            break
        chain.append(parent)
        current = parent
    return chain


def kernel_id_from_argv(argv: Iterable[str] | None = None) -> str | None:
    """The kernel's id from its connection file name (``-f …/kernel-<id>.json``)."""
    for arg in sys.argv if argv is None else argv:
        match = KERNEL_FILE.search(arg)
        if match:
            return match.group(1)
    return None


def find_server(url: str | None = None, token: str | None = None) -> ServerInfo:
    """The server to use, by the precedence in this module's docstring."""
    env_token = os.environ.get("JOBCTL_TOKEN") or None
    if url:
        return _explicit(url, token or env_token, "argument")
    if os.environ.get("JOBCTL_URL"):
        return _explicit(os.environ["JOBCTL_URL"], token or env_token, "JOBCTL_URL")
    servers = running_servers()
    if not servers:
        raise DiscoveryError(
            f"No running Jupyter server was found (no live jpserver-*.json in "
            f"{jupyter_runtime_dir()}); start one, or set JOBCTL_URL and JOBCTL_TOKEN "
            "(or pass --url and --token)."
        )
    by_pid = {info.get("pid"): info for info in servers}
    for pid in ancestor_pids():
        if pid in by_pid:
            return _from_file(by_pid[pid], token or env_token, "ancestor")
    parent = os.environ.get("JPY_PARENT_PID", "")
    if parent.isdigit() and int(parent) in by_pid:
        return _from_file(by_pid[int(parent)], token or env_token, "JPY_PARENT_PID")
    kernel_id = kernel_id_from_argv()
    if kernel_id:
        for info in servers:
            if _lists_kernel(info, kernel_id, token or env_token):
                return _from_file(info, token or env_token, "kernel id")
    if len(servers) == 1:
        return _from_file(servers[0], token or env_token, "only server")
    urls = ", ".join(str(info.get("url")) for info in servers)
    raise DiscoveryError(
        f"{len(servers)} Jupyter servers are running ({urls}) and none of them is this "
        "process's own; choose one with --url/--token or JOBCTL_URL/JOBCTL_TOKEN."
    )


def _explicit(url: str, token: str | None, source: str) -> ServerInfo:
    url, token = split_url(url, token)
    if not token:  # a URL alone: the token of the running server at that URL, if any
        for info in running_servers():
            if split_url(str(info.get("url", "")))[0] == url and info.get("token"):
                token = info["token"]
                break
    return ServerInfo(url, token or os.environ.get("JUPYTERHUB_API_TOKEN", ""), source)


def _from_file(info: dict[str, Any], token: str | None, source: str) -> ServerInfo:
    url = str(info.get("url") or "")
    if info.get("sock") or not url.startswith(("http://", "https://")):
        raise DiscoveryError(
            f"The Jupyter server (pid {info.get('pid')}) listens on a unix socket; "
            "set JOBCTL_URL and JOBCTL_TOKEN to reach it over HTTP."
        )
    token = token or info.get("token") or os.environ.get("JUPYTERHUB_API_TOKEN") or ""
    if not token:
        raise DiscoveryError(
            f"The Jupyter server at {url} has no token (it uses a password login), so this "
            "process cannot authenticate to it; set JOBCTL_TOKEN to an API token of that "
            "server (or start it with a token)."
        )
    url, _ = split_url(url)
    return ServerInfo(url, token, source, info.get("pid"), info.get("root_dir"))


def _lists_kernel(info: dict[str, Any], kernel_id: str, token: str | None) -> bool:
    token = token or info.get("token") or os.environ.get("JUPYTERHUB_API_TOKEN") or ""
    url = str(info.get("url") or "")
    if not url.startswith(("http://", "https://")) or not token:
        return False
    try:
        response = httpx.get(
            url.rstrip("/") + "/api/kernels",
            headers={"Authorization": f"token {token}"},
            timeout=LOOKUP_TIMEOUT,
        )
        kernels = response.json() if response.status_code == 200 else []
    except (httpx.HTTPError, ValueError):
        return False
    return any(isinstance(k, dict) and k.get("id") == kernel_id for k in kernels)


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ")"
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    # /proc, not kill(pid, 0): only procs/processes.py sends signals (tests/test_layering.py)
    return Path(f"/proc/{pid}").exists()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
