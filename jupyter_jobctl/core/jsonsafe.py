"""Strict JSON, whatever a job reports or a client sends (pure Python).

Python's ``json`` writes ``NaN`` and ``Infinity``, which are not JSON (a browser's
``JSON.parse`` fails on them), and recurses without bound. Here:

* **Non-finite numbers** become strings wherever a value is free-form (metrics, config,
  event data): ``NaN`` -> ``"NaN"``, ``inf`` -> ``"Infinity"``, ``-inf`` -> ``"-Infinity"``
  (the names the protobuf JSON mapping uses). A typed number field (a job's ``progress``,
  a batch's ``eta_s``) that would be non-finite is ``null``: see :func:`finite_or_none`.
* **Nesting** is bounded: a request deeper than :data:`MAX_DEPTH` is refused
  (:func:`check_request`); a stored or reported value deeper than that is cut there, the cut
  part replaced by :data:`TOO_DEEP`.
* **Lone UTF-16 surrogates** (``"\\ud800"`` is valid JSON syntax but no Unicode text: UTF-8,
  PostgreSQL and environment variables refuse it) are refused in requests.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from jupyter_jobctl.core.errors import SpecError

MAX_DEPTH = 64  # objects and lists inside each other, the outermost counting 1
NAN, INFINITY, MINUS_INFINITY = "NaN", "Infinity", "-Infinity"
TOO_DEEP = f"[jobctl: nested more than {MAX_DEPTH} levels deep; not shown]"
_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str from json.loads: always a lone one


def finite_name(value: float) -> float | str:
    """A float as strict JSON holds it: itself when finite, else its name."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return NAN
    return INFINITY if value > 0 else MINUS_INFINITY


def finite_or_none(value: Any) -> Any:
    """For typed number fields: a non-finite float is ``None``; anything else as it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def sanitize(value: Any, depth: int = 1) -> Any:
    """A copy that strict JSON can encode: non-finite floats named, keys as strings,
    containers nested deeper than :data:`MAX_DEPTH` replaced by :data:`TOO_DEEP`."""
    if isinstance(value, float):
        return finite_name(value)
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            return TOO_DEEP
        return {_key(k): sanitize(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if depth > MAX_DEPTH:
            return TOO_DEEP
        return [sanitize(v, depth + 1) for v in value]
    return value


def _key(key: Any) -> Any:
    if isinstance(key, float):
        return str(finite_name(key))
    return key


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that never writes NaN/Infinity and never fails on depth."""
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except (ValueError, RecursionError):  # non-finite, circular or too deep: clean a copy
        return json.dumps(sanitize(value), allow_nan=False, **kwargs)


def loads_stored(text: str) -> Any:
    """Stored JSON text back to Python; a value too deep to decode here becomes TOO_DEEP."""
    try:
        return json.loads(text)
    except RecursionError:
        return TOO_DEEP


def needs_cleaning(text: str) -> bool:
    """Whether stored JSON text may hold a non-finite number (cheap; false positives are
    strings that merely contain the words, which re-encoding leaves as they are)."""
    return "NaN" in text or "Infinity" in text


def clean_text(text: str) -> str:
    """Stored JSON text as strict JSON (re-encoded only when it may need it)."""
    if not needs_cleaning(text):
        return text
    return dumps(loads_stored(text), separators=(",", ":"))


# ------------------------------------------------------------------ requests


def _part(key: str) -> str:
    # a field name must itself be valid text: a lone surrogate is shown as its escape
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    name = _part(str(key))
    return f"{path}.{name}" if path else name


def _outer(path: str) -> str:
    """The field to name for a too-deep value: the first two levels of its path
    (``spec.config``), not the hundred below them."""
    parts = re.findall(r"\.?[^.\[]+|\[\d+\]", path)
    return "".join(parts[:2]) or "body"


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]')


def too_deep_field(text: str | bytes) -> str:
    """The field to name for JSON text too deep to parse here (``json.loads`` raised
    RecursionError): a scan of its tokens, no recursion. ``body`` if it cannot tell."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    stack: list[list[Any]] = []  # [kind, key or index]
    last_string: str | None = None
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "{[":
            if len(stack) >= MAX_DEPTH:
                path = ""
                for _, key in stack[:2]:
                    if key is not None:
                        path = _join(path, key)
                return _outer(path) if path and not path.startswith("[") else "body"
            stack.append(["{", None] if token == "{" else ["[", 0])
        elif token in "}]":
            if stack:
                stack.pop()
        elif token == ":":
            if stack and stack[-1][0] == "{" and last_string is not None:
                try:
                    stack[-1][1] = json.loads(last_string)
                except ValueError:
                    stack[-1][1] = "?"
        elif token == ",":
            if stack and stack[-1][0] == "[":
                stack[-1][1] += 1
        else:
            last_string = token
            continue
        last_string = None
    return "body"


def check_request(value: Any, field: str = "") -> None:
    """Refuse what strict JSON or the job's processes cannot carry, naming the field.

    Nesting deeper than :data:`MAX_DEPTH`, non-finite numbers (``NaN``/``Infinity`` tokens,
    which Python's parser accepts) and lone surrogates in strings or keys raise
    :class:`SpecError`. Iterative: a deep value cannot exhaust the stack here.
    """
    stack: list[tuple[Any, str, int]] = [(value, field, 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                name = path or "body"
                raise SpecError(
                    name,
                    f"{name} contains a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff "
                    "escape), which is not text; send valid Unicode.",
                )
        elif isinstance(item, float):
            if not math.isfinite(item):
                name = path or "body"
                raise SpecError(
                    name,
                    f"{name} must be a finite number: NaN and Infinity are not JSON.",
                )
        elif isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                name = _outer(path)
                raise SpecError(name, f"{name} is nested more than {MAX_DEPTH} levels deep.")
            if isinstance(item, dict):
                for key, sub in item.items():
                    sub_path = _join(path, key)
                    if isinstance(key, str) and _SURROGATE.search(key):
                        raise SpecError(
                            sub_path,
                            f"{sub_path}: the name contains a lone UTF-16 surrogate, "
                            "which is not text; send valid Unicode.",
                        )
                    stack.append((sub, sub_path, depth + 1))
            else:
                stack.extend((sub, _join(path, i), depth + 1) for i, sub in enumerate(item))
