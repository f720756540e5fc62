"""The repository documents itself: nothing in it points at reference files a person who
clones the project does not have."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = ("DESIGN.md", "HANDLE_PROTOCOL.md", "SNMS_API.md", "HOUSE_STYLE.md", "../shared")


def test_no_file_cites_a_reference_outside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    citing = [
        f"{name}: {needle}"
        for name in tracked
        if not name.startswith("tests/fixtures/") and (ROOT / name).is_file()
        for needle in OUTSIDE
        if needle in (ROOT / name).read_text(errors="replace") and name != "tests/test_docs.py"
    ]
    assert citing == []


def test_the_docs_named_in_docstrings_exist() -> None:
    for name in ("architecture.md", "domain.md"):
        assert (ROOT / "docs" / name).is_file()
