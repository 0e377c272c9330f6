"""The repository's own docs: generated API reference current, links inside the repo."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_api_reference_is_generated_from_the_openapi_document() -> None:
    check = [sys.executable, str(REPO / "scripts" / "make_api_docs.py"), "--check"]
    result = subprocess.run(check, cwd=REPO)
    assert result.returncode == 0, "docs/api.md is stale: run python scripts/make_api_docs.py"


def test_readme_links_resolve_inside_the_repository() -> None:
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert "docs/architecture.md" in local and "docs/api.md" in local
    missing = [link for link in local if not (REPO / link).exists()]
    assert missing == []
    assert "../shared" not in readme, "the README must not point outside the repository"
