"""``%jobctl`` and ``%%jobctl run`` (``%load_ext jupyter_jobctl``).

The verbs and their arguments are those of ``jupyter jobctl`` (:mod:`.commands`); a job that
is started or attached is shown as its live view. Mistakes print the usage and one line,
API errors the server's sentence — never a traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display

from .client import Job, JobctlClient, JobctlError
from .commands import MAGIC_PROG, Commands, HelpShown, UsageError, parse
from .discovery import find_server
from .widgets import job_view


@magics_class
class JobctlMagics(Magics):
    """The ``%jobctl`` magic of one IPython shell."""

    def __init__(self, shell: Any = None) -> None:
        super().__init__(shell)
        self._clients: dict[tuple[str, str], JobctlClient] = {}

    def client(self, url: str | None = None, token: str | None = None) -> JobctlClient:
        """The client of the server to use now (found again each time: servers come and go)."""
        server = find_server(url, token)
        key = (server.url, server.token)
        if key not in self._clients:
            self._clients[key] = JobctlClient(server.url, server.token)
        return self._clients[key]

    @line_cell_magic
    def jobctl(self, line: str, cell: str | None = None) -> None:
        """Start, watch and stop jobs that outlive this kernel: ``%jobctl --help``.

        ``%jobctl train [--name N] [--mode M] [--epochs N] [--batch-size N] [--lr F]
        [--optimizer O] [--target T] [--config JSON]``, ``%jobctl run [--name N] -- ARGV…``,
        ``%%jobctl run`` (the cell runs as a job, in this kernel's Python), ``%jobctl test
        ARGS…``, ``%jobctl list``, ``%jobctl show ID``, ``%jobctl stop ID|--all``, ``%jobctl
        pause|resume ID``, ``%jobctl attach [ID]`` (every active job's view again, e.g. after a
        kernel restart), ``%jobctl logs ID [--follow]``, ``%jobctl rerun ID [--failed]``,
        ``%jobctl delete ID``.
        """
        try:
            ns = parse(line, notebook=True)
            client = self.client(ns.url, ns.token)
            commands = Commands(
                client,
                echo=print,
                warn=_warn,
                show=lambda job: self._show(job, client),
                # the server starts a kernel in its notebook's directory, and a %cd moves it
                cwd=os.getcwd(),
                notebook=True,
            )
            commands.run(ns, cell)
        except HelpShown:
            pass
        except UsageError as exc:
            _warn(f"{exc.usage.rstrip()}\n{MAGIC_PROG}: error: {exc}")
        except JobctlError as exc:
            _warn(str(exc))
        except KeyboardInterrupt:
            _warn("Interrupted. The job goes on; %jobctl stop ID stops it.")

    @staticmethod
    def _show(job: Job, client: JobctlClient) -> None:
        display(job_view(dict(job), client))


def _warn(text: str) -> None:
    print(text, file=sys.stderr)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_jobctl``: register ``%jobctl``."""
    ipython.register_magics(JobctlMagics)
