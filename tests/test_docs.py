"""The README links only files inside the repository, and every one of them exists (a fresh clone reads it offline)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_links_only_files_inside_the_repo() -> None:
    targets = [t for t in LINK.findall((ROOT / "README.md").read_text()) if not t.startswith("#")]
    assert targets, "the README links its documents"
    outside = [t for t in targets if "://" in t or t.startswith(("/", "..")) or "../" in t]
    assert not outside, f"links outside the repository: {outside}"
    missing = [t for t in targets if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"links to missing files: {missing}"
