"""The package's layering: what a module may import, checked on the code itself.

- The controller imports no heavy library until the chosen agent or executor needs it (a simulated
  campaign, a greedy search, `arl status` stay light).
- Data flows one way between the runner and the self-evaluation: the runner uses `selfeval`
  (early abort, curves); `selfeval` never imports the runner.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import autoresearch_rl

PACKAGE = Path(autoresearch_rl.__file__).parent
HEAVY = ("torch", "optuna", "ray", "sklearn")


@pytest.mark.parametrize("module", ["autoresearch_rl.loop", "autoresearch_rl.core.loop", "autoresearch_rl.campaign",
                                    "autoresearch_rl.backends.local", "autoresearch_rl.real_campaign",
                                    "autoresearch_rl.cli_core_run"])
def test_importing_the_controller_loads_no_heavy_library(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"import {module} loaded {out.strip()}"


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_selfeval_never_imports_the_runner() -> None:
    offenders = {p.name: sorted(m for m in _imported_modules(p) if m.startswith("autoresearch_rl.runner"))
                 for p in (PACKAGE / "selfeval").glob("*.py")}
    assert not {name: mods for name, mods in offenders.items() if mods}


CONTROLLER = ("loop.py", "loop_config.py", "campaign.py", "real_campaign.py", "cli_core_run.py", "ledger/projection.py",
              "ledger/event_store.py", "core/*.py")


def test_the_controller_stays_readable() -> None:
    """The loop reads top to bottom (at most 300 lines); no controller module passes 400."""
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines())
             for pattern in CONTROLLER for p in PACKAGE.glob(pattern)}
    assert sizes["core/loop.py"] <= 300, sizes
    assert not {name: n for name, n in sizes.items() if n > 400}
