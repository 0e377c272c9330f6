"""The HTTP contract: the packaged ``openapi.json`` and request-body validation against it.

Handlers never check body shapes by hand: they name a schema of the document, and a
violation becomes a :class:`SpecError` whose ``field`` is the JSON path of the culprit.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_jobctl.core.errors import SpecError

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

DOCUMENT = Path(__file__).parent / "openapi.json"
_TYPE_WORDS = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "boolean": "true or false",
    "integer": "an integer",
    "number": "a number",
}


@cache
def document() -> dict[str, Any]:
    return json.loads(DOCUMENT.read_text())


@cache
def _validator(schema_name: str) -> Draft202012Validator:
    import jsonschema

    doc = document()
    schema = {**doc["components"]["schemas"][schema_name], "components": doc["components"]}
    # resolve "#/components/..." references inside the one document
    return jsonschema.Draft202012Validator(schema)


def _describe(error: Any) -> tuple[str, str]:  # a jsonschema ValidationError
    path = ".".join(str(p) for p in error.absolute_path)
    validator = error.validator
    if validator == "required":
        missing = error.message.split("'")[1]
        field = f"{path}.{missing}" if path else missing
        return field, f"{field} is required."
    if validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        field = ".".join(filter(None, [path, extra[0] if extra else ""])) or "body"
        return field, f"{field} is not a known field."
    field = path or "body"
    if validator == "enum":
        options = ", ".join(str(v) for v in error.validator_value)
        return field, f"{field} must be one of: {options}."
    if validator == "type":
        kinds = error.validator_value
        kinds = kinds if isinstance(kinds, list) else [kinds]
        words = " or ".join(_TYPE_WORDS.get(str(k), str(k)) for k in kinds if k != "null")
        return field, f"{field} must be {words}."
    if validator in ("minLength", "maxLength"):
        bound = "more" if validator == "minLength" else "fewer"
        return field, f"{field} must be {error.validator_value} characters or {bound}."
    return field, f"{field} is invalid: {error.message}."


def validate_body(schema_name: str, body: Any) -> dict[str, Any]:
    """Check ``body`` against ``components.schemas[schema_name]``; SpecError on a problem."""
    error = next(
        iter(sorted(_validator(schema_name).iter_errors(body), key=lambda e: e.path)), None
    )
    if error is not None:
        field, message = _describe(error)
        raise SpecError(field, message)
    return body


def http_routes() -> set[tuple[str, str]]:
    """(path, METHOD) pairs the document describes, WebSockets as METHOD ``WEBSOCKET``."""
    doc = document()
    routes = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    routes |= {(path, "WEBSOCKET") for path in doc.get("x-websockets", {})}
    return routes
