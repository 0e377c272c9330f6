"""Validation of job requests: kind, name and spec, per kind (pure Python).

Every error is a :class:`SpecError` naming the offending field, e.g.
``spec.config.epochs must be a positive integer``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from typing import Any

from jupyter_jobctl.core import notebooks
from jupyter_jobctl.core.errors import SpecError
from jupyter_jobctl.core.jsonsafe import check_request
from jupyter_jobctl.core.states import JobKind

DEMO_TARGET = "jupyter_jobctl.examples.train:main"
MAX_NAME = 200
MAX_ARGS = 1000
MAX_STRING = 4096

_TARGET_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV_PREFIX = "JOBCTL_"  # the job's env never overrides jobctl's own variables
# where a job may run, in Dask's own terms (worker resources, worker restrictions): every kind
# accepts them; an executor that cannot place jobs refuses them (Executor.check_placement)
PLACEMENT = ("resources", "workers")
MAX_PLACEMENT = 64
_RESOURCE_RE = re.compile(r"^[A-Za-z_][\w.\-]{0,63}$")

DEMO_MODES = ("smoke_test", "full")
DEMO_OPTIMIZERS = ("adam", "sgd", "rmsprop")
DEMO_DEFAULTS: dict[str, Any] = {
    "mode": "smoke_test",
    "epochs": 5,
    "batch_size": 32,
    "learning_rate": 0.001,
    "optimizer": "adam",
    "seed": 0,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string(value: Any, field: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise SpecError(field, f"{field} must be a string.")
    if not allow_empty and not value.strip():
        raise SpecError(field, f"{field} must not be empty.")
    if len(value) > MAX_STRING:
        raise SpecError(field, f"{field} is longer than {MAX_STRING} characters.")
    if "\x00" in value:
        raise SpecError(field, f"{field} must not contain NUL characters.")
    return value


def _string_list(value: Any, field: str, *, allow_empty: bool) -> list[str]:
    if not isinstance(value, list):
        raise SpecError(field, f"{field} must be a list of strings.")
    if not allow_empty and not value:
        raise SpecError(field, f"{field} must not be empty.")
    if len(value) > MAX_ARGS:
        raise SpecError(field, f"{field} has more than {MAX_ARGS} items.")
    return [_string(v, f"{field}[{i}]", allow_empty=True) for i, v in enumerate(value)]


def _check_keys(obj: dict[str, Any], allowed: set[str], prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            names = ", ".join(sorted(allowed))
            raise SpecError(
                f"{prefix}.{key}", f"{prefix}.{key} is not a known field (expected: {names})."
            )


def resolve_path(path: str, base_dir: str | None, field: str) -> str:
    """``path`` made absolute: a relative one is taken from ``base_dir`` (the server's
    ``root_dir``; this process's working directory when None) and must stay in it."""
    base = os.path.abspath(base_dir or os.getcwd())
    if os.path.isabs(path):
        return os.path.normpath(path)
    resolved = os.path.normpath(os.path.join(base, path))
    if os.path.commonpath([base, resolved]) != base:
        raise SpecError(
            field,
            f"{field} {path!r} leads out of the server's root directory {base!r}; "
            f"a relative {field} is taken from there and must stay inside it.",
        )
    return resolved


def resolve_cwd(cwd: str, base_dir: str | None) -> str:
    """``spec.cwd`` as an absolute directory (see :func:`resolve_path`)."""
    resolved = resolve_path(cwd, base_dir, "spec.cwd")
    if not os.path.isdir(resolved):
        base = os.path.abspath(base_dir or os.getcwd())
        where = "" if os.path.isabs(cwd) else f" (taken from {base!r})"
        raise SpecError("spec.cwd", f"spec.cwd {cwd!r}{where} is not an existing directory.")
    return resolved


def _placement(spec: dict[str, Any], out: dict[str, Any]) -> None:
    if spec.get("resources") is not None:
        wanted = spec["resources"]
        if not isinstance(wanted, dict) or not wanted:
            raise SpecError(
                "spec.resources",
                'spec.resources must be an object naming resources and amounts, e.g. {"GPU": 1}.',
            )
        if len(wanted) > MAX_PLACEMENT:
            raise SpecError("spec.resources", f"spec.resources names more than {MAX_PLACEMENT}.")
        for key, amount in wanted.items():
            if not _RESOURCE_RE.match(key):
                raise SpecError(
                    f"spec.resources.{key}",
                    f"spec.resources: {key!r} is not a resource name (letters, digits, _ . -).",
                )
            number = isinstance(amount, (int, float)) and not isinstance(amount, bool)
            if not number or not math.isfinite(amount) or amount <= 0:
                raise SpecError(
                    f"spec.resources.{key}", f"spec.resources.{key} must be a positive number."
                )
        out["resources"] = dict(wanted)
    if spec.get("workers") is not None:
        workers = spec["workers"]
        if isinstance(workers, str):
            workers = [workers]
        names = _string_list(workers, "spec.workers", allow_empty=False)
        if len(names) > MAX_PLACEMENT:
            raise SpecError("spec.workers", f"spec.workers names more than {MAX_PLACEMENT}.")
        for i, name in enumerate(names):
            if not name.strip():
                raise SpecError(f"spec.workers[{i}]", f"spec.workers[{i}] must not be empty.")
        out["workers"] = names


def _common(spec: dict[str, Any], out: dict[str, Any], base_dir: str | None = None) -> None:
    _placement(spec, out)
    if spec.get("cwd") is not None:
        out["cwd"] = resolve_cwd(_string(spec["cwd"], "spec.cwd"), base_dir)
    if spec.get("env") is not None:
        env = spec["env"]
        if not isinstance(env, dict):
            raise SpecError("spec.env", "spec.env must be an object mapping names to strings.")
        for k, v in env.items():
            if not _ENV_NAME_RE.match(k):
                raise SpecError(f"spec.env.{k}", f"spec.env: {k!r} is not a valid variable name.")
            if k.startswith(RESERVED_ENV_PREFIX):
                raise SpecError(
                    f"spec.env.{k}",
                    f"spec.env.{k}: names starting with {RESERVED_ENV_PREFIX} are jobctl's own "
                    "settings (database, handshake, niceness) and cannot be set by a job.",
                )
            _string(v, f"spec.env.{k}", allow_empty=True)
        out["env"] = dict(env)


def validate_demo_config(config: dict[str, Any], prefix: str = "spec.config") -> dict[str, Any]:
    """Check the demo trainer's config and fill in defaults."""
    if not isinstance(config, dict):
        raise SpecError(prefix, f"{prefix} must be an object.")
    _check_keys(config, set(DEMO_DEFAULTS), prefix)
    out = {**DEMO_DEFAULTS, **config}
    if out["mode"] not in DEMO_MODES:
        raise SpecError(f"{prefix}.mode", f"{prefix}.mode must be one of: {', '.join(DEMO_MODES)}.")
    for key, top in (("epochs", 100_000), ("batch_size", 65_536)):
        if not _is_int(out[key]) or out[key] <= 0:
            raise SpecError(f"{prefix}.{key}", f"{prefix}.{key} must be a positive integer.")
        if out[key] > top:
            raise SpecError(f"{prefix}.{key}", f"{prefix}.{key} must be at most {top}.")
    lr = out["learning_rate"]
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr) or lr <= 0:
        raise SpecError(
            f"{prefix}.learning_rate", f"{prefix}.learning_rate must be a positive number."
        )
    if lr > 10:
        raise SpecError(f"{prefix}.learning_rate", f"{prefix}.learning_rate must be at most 10.")
    if out["optimizer"] not in DEMO_OPTIMIZERS:
        raise SpecError(
            f"{prefix}.optimizer",
            f"{prefix}.optimizer must be one of: {', '.join(DEMO_OPTIMIZERS)}.",
        )
    if not _is_int(out["seed"]):
        raise SpecError(f"{prefix}.seed", f"{prefix}.seed must be an integer.")
    return out


def _training(spec: dict[str, Any], base_dir: str | None) -> dict[str, Any]:
    _check_keys(spec, {"target", "config", "cwd", "env", *PLACEMENT}, "spec")
    if "target" not in spec:
        raise SpecError(
            "spec.target", "spec.target is required (a 'pkg.module:function' or a .py path)."
        )
    target = _string(spec["target"], "spec.target")
    if not (_TARGET_RE.match(target) or target.endswith(".py")):
        raise SpecError(
            "spec.target",
            "spec.target must be 'pkg.module:function' or a path to a .py script.",
        )
    config = spec.get("config", {})
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise SpecError("spec.config", "spec.config must be an object.")
    if target == DEMO_TARGET:
        config = validate_demo_config(config)
    out: dict[str, Any] = {"target": target, "config": config}
    _common(spec, out, base_dir)
    return out


def _command(spec: dict[str, Any], base_dir: str | None) -> dict[str, Any]:
    _check_keys(spec, {"argv", "cwd", "env", *PLACEMENT}, "spec")
    if "argv" not in spec:
        raise SpecError("spec.argv", "spec.argv is required (the program and its arguments).")
    argv = _string_list(spec["argv"], "spec.argv", allow_empty=False)
    if not argv[0]:
        raise SpecError("spec.argv[0]", "spec.argv[0] must name a program.")
    out: dict[str, Any] = {"argv": argv}
    _common(spec, out, base_dir)
    return out


def _test_batch(spec: dict[str, Any], base_dir: str | None) -> dict[str, Any]:
    _check_keys(spec, {"args", "cwd", "env", *PLACEMENT}, "spec")
    out: dict[str, Any] = {
        "args": _string_list(spec.get("args", []), "spec.args", allow_empty=True)
    }
    _common(spec, out, base_dir)
    return out


def _notebook(spec: dict[str, Any], base_dir: str | None) -> dict[str, Any]:
    _check_keys(
        spec, {"path", "parameters", "kernel", "cwd", "env", "output_path", *PLACEMENT}, "spec"
    )
    if "path" not in spec:
        raise SpecError("spec.path", "spec.path is required (the notebook to run, a .ipynb file).")
    path = resolve_path(_string(spec["path"], "spec.path"), base_dir, "spec.path")
    notebooks.check_notebook_file(path)
    out: dict[str, Any] = {"path": path}
    params = spec.get("parameters")
    out["parameters"] = {} if params is None else notebooks.validate_parameters(params)
    if spec.get("kernel") is not None:
        out["kernel"] = notebooks.validate_kernel(spec["kernel"])
    if spec.get("output_path") is not None:
        given = _string(spec["output_path"], "spec.output_path")
        target = resolve_path(given, base_dir, "spec.output_path")
        notebooks.check_output_path(target, path)
        out["output_path"] = target
    _common(spec, out, base_dir)
    out.setdefault("cwd", os.path.dirname(path))  # as in Jupyter: the notebook's folder
    return out


_VALIDATORS: dict[JobKind, Callable[[dict[str, Any], str | None], dict[str, Any]]] = {
    JobKind.TRAINING: _training,
    JobKind.COMMAND: _command,
    JobKind.TEST_BATCH: _test_batch,
    JobKind.NOTEBOOK: _notebook,
}


def default_name(kind: JobKind | str, spec: dict[str, Any]) -> str:
    if kind == JobKind.TRAINING:
        return str(spec["target"]).rsplit("/", 1)[-1]
    if kind == JobKind.COMMAND:
        return " ".join(spec["argv"])[:MAX_NAME]
    if kind == JobKind.NOTEBOOK:
        return os.path.basename(str(spec["path"]))[:MAX_NAME]
    return ("pytest " + " ".join(spec["args"])).strip()[:MAX_NAME]


def validate_kind(kind: Any) -> JobKind:
    """The kind of a request, or :class:`SpecError` naming the known ones."""
    if isinstance(kind, str):
        try:
            return JobKind(kind)
        except ValueError:
            pass
    names = ", ".join(k.value for k in _VALIDATORS)
    raise SpecError("kind", f"kind must be one of: {names}.")


def validate_job(
    kind: Any, spec: Any, name: Any = None, *, base_dir: str | None = None
) -> tuple[JobKind, str, dict[str, Any]]:
    """Return ``(kind, name, normalised spec)`` or raise :class:`SpecError`.

    ``base_dir`` is where a relative ``spec.cwd`` starts (the server's ``root_dir``). The
    whole spec must be strict JSON (bounded depth, finite numbers, no lone surrogates).
    """
    job_kind = validate_kind(kind)
    if not isinstance(spec, dict):
        raise SpecError("spec", "spec must be an object.")
    check_request(spec, "spec")
    clean = _VALIDATORS[job_kind](spec, base_dir)
    if name is None:
        name = default_name(job_kind, clean)
    else:
        check_request(name, "name")
        name = _string(name, "name")
        if len(name) > MAX_NAME:
            raise SpecError("name", f"name is longer than {MAX_NAME} characters.")
    return job_kind, name, clean
