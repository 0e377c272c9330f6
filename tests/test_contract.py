"""The HTTP contract: routes <-> openapi.json, a valid document, and schemathesis fuzzing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from jupyter_jobctl.server import openapi
from jupyter_jobctl.server.handlers import ROUTES, allowed_methods, url_pattern
from jupyter_jobctl.server.stream import WS_ROUTES


def test_document_is_valid_openapi() -> None:
    validate(openapi.document())


def test_every_registered_handler_and_method_is_documented(jp_serverapp) -> None:
    registered: set[tuple[str, str]] = set()
    for path, handler in ROUTES:
        registered |= {(path, m) for m in allowed_methods(handler)}
    registered |= {(path, "WEBSOCKET") for path, _ in WS_ROUTES}
    assert registered == openapi.http_routes()
    # and the server really serves exactly these patterns (plus the JSON 404 catch-all)
    patterns = {
        rule.matcher.regex.pattern
        for group in jp_serverapp.web_app.default_router.rules
        for rule in getattr(group.target, "rules", [])
        if "jobctl/api" in rule.matcher.regex.pattern
    }
    for path, _ in ROUTES + WS_ROUTES:
        assert any(p.rstrip("$").endswith(url_pattern(path)) for p in patterns), path


def test_every_documented_operation_names_its_permission() -> None:
    for path, ops in openapi.document()["paths"].items():
        for method, op in ops.items():
            if path != "/health":
                assert op["x-jobctl-permission"] in ("read", "write", "execute"), (method, path)
            assert re.fullmatch(r"[a-z][A-Za-z]+", op["operationId"])


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(real_server, tmp_path: Path) -> None:
    server = real_server()
    st = Path(sys.executable).parent / "st"
    checks = ",".join(
        [
            "not_a_server_error",
            "status_code_conformance",
            "content_type_conformance",
            "response_schema_conformance",
            "negative_data_rejection",
            "unsupported_method",
            "use_after_free",
            "ensure_resource_availability",
        ]
    )
    result = subprocess.run(
        [
            str(st),
            "run",
            f"{server.url}/jobctl/api/openapi.json",
            "--url",
            f"{server.url}/jobctl/api",
            "-H",
            f"Authorization: token {server.token}",
            "--checks",
            checks,
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    summary = result.stdout[-4000:]
    assert result.returncode == 0, summary
    assert "generated" in summary and "failures" not in summary.split("SUMMARY")[-1].lower(), (
        summary
    )


def test_document_matches_its_source() -> None:
    import importlib.util

    source = Path(__file__).parent.parent / "scripts" / "make_openapi.py"
    spec = importlib.util.spec_from_file_location("make_openapi", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == openapi.DOCUMENT.read_text(), "run: python scripts/make_openapi.py"
