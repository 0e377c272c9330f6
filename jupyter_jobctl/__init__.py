"""jupyter_jobctl: supervised, persistent, stoppable jobs for Jupyter.

This module imports nothing heavy: job processes import ``jupyter_jobctl.runtime`` and
must start fast, so every hook imports what it needs inside the function.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension (built by npm from labextension/ at install)."""
    return [{"src": "labextension", "dest": "jupyter-jobctl"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from jupyter_jobctl.server.extension import JobCtl

    return [{"module": "jupyter_jobctl", "app": JobCtl}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_jobctl``: the ``%jobctl`` magics."""
    from jupyter_jobctl.kernel.magics import load_ipython_extension as load

    load(ipython)
