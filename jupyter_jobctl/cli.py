"""``jupyter jobctl``: the verbs of ``%jobctl`` from a terminal (console script ``jupyter-jobctl``).

Exit status: 0 on success, 1 for an API error (its sentence, one line on stderr), 2 for a
usage error (usage and one line on stderr), 130 when interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from jupyter_jobctl.kernel.client import JobctlClient, JobctlError
from jupyter_jobctl.kernel.commands import CLI_PROG, Commands, HelpShown, UsageError, parse
from jupyter_jobctl.kernel.discovery import find_server

EXIT_OK, EXIT_API_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        ns = parse(args, notebook=False)
        server = find_server(ns.url, ns.token)
        with JobctlClient(server.url, server.token) as client:
            Commands(
                client,
                echo=_out,
                warn=_err,
                show=None,
                cwd=os.getcwd(),
                notebook=False,
            ).run(ns)
    except HelpShown:
        return EXIT_OK
    except UsageError as exc:
        _err(f"{exc.usage.rstrip()}\n{CLI_PROG}: error: {exc}")
        return EXIT_USAGE
    except JobctlError as exc:
        _err(" ".join(str(exc).split()))
        return EXIT_API_ERROR
    except KeyboardInterrupt:
        _err("Interrupted.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `jupyter jobctl logs ID | head`
        sys.stderr.close()
        return EXIT_OK
    return EXIT_OK


def _out(text: str) -> None:
    print(text, flush=True)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
