"""Notebook jobs, the parts every process agrees on (pure Python): which file a notebook job
runs, where its executed copy goes, and its parameters.

Parameters follow papermill's convention: they are assigned in a new cell tagged
``injected-parameters``, placed after the first cell tagged ``parameters`` (the notebook's
defaults), or first when there is none. A name must be a Python identifier, not a keyword,
so that the cell is ``name = value`` lines a reader recognises.
"""

from __future__ import annotations

import json
import keyword
import os
import re
from typing import Any

from jupyter_jobctl.core.errors import SpecError

SUFFIX = ".ipynb"
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
MAX_PARAMETERS = 200
MAX_NOTEBOOK_BYTES = 200 * 1024 * 1024  # read once at creation to refuse what is no notebook
_KERNEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def validate_parameters(value: Any, field: str = "spec.parameters") -> dict[str, Any]:
    """A JSON object whose keys are Python identifiers (the values are already strict JSON)."""
    if not isinstance(value, dict):
        raise SpecError(field, f"{field} must be an object mapping parameter names to values.")
    if len(value) > MAX_PARAMETERS:
        raise SpecError(field, f"{field} has more than {MAX_PARAMETERS} parameters.")
    for name in value:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise SpecError(
                f"{field}.{name}",
                f"{field}: {name!r} is not a valid parameter name (a Python identifier, such "
                "as learning_rate, is needed: it becomes a variable of the notebook).",
            )
    return dict(value)


def validate_kernel(value: Any, field: str = "spec.kernel") -> str:
    if not isinstance(value, str) or not _KERNEL_RE.match(value):
        raise SpecError(
            field,
            f"{field} must be the name of an installed Jupyter kernel, such as 'python3'.",
        )
    return value


def parameters_source(parameters: dict[str, Any]) -> str:
    """The injected cell's code. ``repr`` of a JSON value is a Python literal of it."""
    lines = ["# Parameters"]
    lines += [f"{name} = {value!r}" for name, value in parameters.items()]
    return "\n".join(lines) + "\n"


def check_notebook_file(path: str, field: str = "spec.path") -> None:
    """Refuse, with a sentence, a path that is no readable notebook (at creation, not later
    in the job's log)."""
    if not path.endswith(SUFFIX):
        raise SpecError(field, f"{field} must name a notebook file ending in {SUFFIX}.")
    if not os.path.isfile(path):
        raise SpecError(field, f"{field}: there is no notebook at {path!r}.")
    try:
        if os.path.getsize(path) > MAX_NOTEBOOK_BYTES:
            raise SpecError(field, f"{field}: {path!r} is larger than 200 MiB.")
        with open(path, encoding="utf-8") as fh:
            content = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SpecError(field, f"{field}: {path!r} cannot be read as a notebook ({exc}).") from exc
    if not isinstance(content, dict) or not isinstance(content.get("cells"), list):
        raise SpecError(field, f"{field}: {path!r} is JSON but not a notebook (no cells).")


def check_output_path(path: str, notebook: str, field: str = "spec.output_path") -> None:
    if not path.endswith(SUFFIX):
        raise SpecError(field, f"{field} must end in {SUFFIX}.")
    if os.path.abspath(path) == os.path.abspath(notebook):
        raise SpecError(field, f"{field} must differ from spec.path: the input is kept as it is.")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise SpecError(field, f"{field}: the folder {folder!r} does not exist.")


def output_path(spec: dict[str, Any], job_id: str) -> str:
    """Where the executed copy goes: ``spec.output_path``, else beside the input, named
    after it and the job (``train.ipynb`` -> ``train.1a2b3c4d.ipynb``), so every run keeps
    its own copy."""
    given = spec.get("output_path")
    if given:
        return str(given)
    stem = str(spec["path"])[: -len(SUFFIX)]
    return f"{stem}.{job_id[:8]}{SUFFIX}"
