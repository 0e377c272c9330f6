"""The kernel side of jupyter_jobctl: a client of the server's API, its discovery, the job
views (widgets), the ``%jobctl`` magics and the verbs they share with ``jupyter jobctl``.

Nothing here imports the engine or the server: it all goes through the HTTP/WS API. Names
are imported lazily, so ``from jupyter_jobctl.kernel import JobctlClient`` does not pull in
ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "JobctlClient": "client",
    "JobctlError": "client",
    "find_server": "discovery",
    "ServerInfo": "discovery",
    "DiscoveryError": "discovery",
    "JobWidget": "widgets",
    "BatchWidget": "widgets",
    "JobsWidget": "widgets",
    "CommRelay": "relay",
    "JobctlMagics": "magics",
    "load_ipython_extension": "magics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
