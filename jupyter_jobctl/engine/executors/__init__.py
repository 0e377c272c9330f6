"""Executors by name: ``c.JobCtl.executor = "local" | "dask" | "dask-local"``."""

from __future__ import annotations

import importlib
from typing import Any

from jupyter_jobctl.core.errors import SpecError
from jupyter_jobctl.engine.executors.base import Executor, Waiting

# name -> "module:Class", imported on demand so an unused executor costs no import
EXECUTORS: dict[str, str] = {
    "local": "jupyter_jobctl.engine.executors.local:LocalExecutor",
    "dask": "jupyter_jobctl.engine.executors.dask:DaskExecutor",
    "dask-local": "jupyter_jobctl.engine.executors.dask:DaskLocalExecutor",
}


def executor_class(name: str) -> type[Executor]:
    """The class registered under ``name``; a clear error for an unknown name."""
    try:
        path = EXECUTORS[name]
    except KeyError:
        known = ", ".join(sorted(EXECUTORS))
        raise SpecError("executor", f"There is no executor {name!r}; known: {known}.") from None
    module, _, attr = path.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise TypeError(f"{path} is not an Executor subclass.")
    return cls


def make_executor(
    name: str = "local", cls: type[Executor] | None = None, **options: Any
) -> Executor:
    """An executor of class ``cls`` (a user's own) or else of the one named ``name``."""
    return (cls or executor_class(name))(**options)


__all__ = ["EXECUTORS", "Executor", "Waiting", "executor_class", "make_executor"]
