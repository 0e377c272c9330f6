"""Process titles a person understands in ``ps``/``top``: ``jobctl launcher``,
``jobctl supervisor <job id> <name>``, ``jobctl worker <job id> <name>``.

Tiny on purpose (the worker sets its title before the job starts): os, and setproctitle
when a title is set.
"""

from __future__ import annotations

import os

NOENV = "SPT_NOENV"


def set_title(role: str, job_id: str | None = None, name: str | None = None) -> None:
    """Set this process's title to ``jobctl <role> [<job id> [<name>]]``.

    setproctitle rewrites the command line in place. By default it would also take over the
    memory of the environment, and /proc/PID/environ is how jobctl finds a job's processes
    (its marker, see ``processes.job_processes``): with ``SPT_NOENV`` it leaves it alone, so
    a title longer than the original command line is cut to that length (a long name is).
    """
    title = " ".join(part for part in ("jobctl", role, job_id, name) if part)
    saved = os.environ.get(NOENV)
    try:
        os.environ[NOENV] = "1"  # read when setproctitle first changes a title
        import setproctitle

        setproctitle.setproctitle(" ".join(title.replace("\0", " ").split()))
    except Exception:  # a title is never worth failing a job for (or setproctitle missing)
        pass
    finally:
        if saved is None:  # the job's environment stays the user's
            os.environ.pop(NOENV, None)
        else:
            os.environ[NOENV] = saved
