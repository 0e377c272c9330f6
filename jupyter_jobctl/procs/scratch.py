"""A job attempt's scratch folders in the temp dir (a notebook kernel's sockets).

Named after the job and attempt, so the supervisor removes what a worker killed by a
signal could not (a worker removes its own when it ends normally).
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile

# a kernel's Unix socket paths must stay under ~100 bytes: a short prefix of the id
_ID_CHARS = 12


def _prefix(job_id: str, attempt: int) -> str:
    return f"jobctl-{job_id[:_ID_CHARS]}-{attempt}-"


def make_dir(job_id: str, attempt: int) -> str:
    """A new private folder of this attempt's."""
    return tempfile.mkdtemp(prefix=_prefix(job_id, attempt))


def remove_dirs(job_id: str, attempt: int) -> None:
    """Remove every scratch folder of this attempt that is left."""
    pattern = os.path.join(glob.escape(tempfile.gettempdir()), _prefix(job_id, attempt) + "*")
    for path in glob.glob(pattern):
        shutil.rmtree(path, ignore_errors=True)
