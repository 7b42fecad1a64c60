"""The three programs and their contract: imports flow one way, and the outside-Locust packages never load gevent.

    runformat  ← loadgen        (inside each Locust process)
    runformat  ← orchestrator   (outside Locust; only its CLI may call analysis, for the seed's OUT_CSV)
    runformat  ← analysis       (after the fact)

Checked on the source (ast), so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OURS = {"runformat", "loadgen", "orchestrator", "analysis", "simulator", "modelgen"}
# package → the packages of ours it may import (besides itself)
ALLOWED = {
    "runformat": set(),
    "loadgen": {"runformat"},
    "orchestrator": {"runformat", "loadgen"},  # loadgen's pure prompt builders and API strategies only
    "analysis": {"runformat"},
}
# the single sanctioned crossings: the orchestrator CLI writes the seed's capacity CSV and the end-of-grid
# results through analysis,
# `python -m loadgen grid|quality` forwards to the orchestrator, and the what-if projection runs the
# simulator's pure engine and profiles (the step-time model is defined once, in simulator/)
EXCEPTIONS = {
    ("orchestrator/cli.py", "analysis"),
    ("loadgen/__main__.py", "orchestrator"),
    ("analysis/whatif.py", "simulator"),
    ("analysis/whatif_model.py", "simulator"),
}
# what the orchestrator may use from loadgen: modules that import neither gevent nor locust
ORCHESTRATOR_MAY_USE = {"loadgen.apis", "loadgen.workloads", "loadgen.options", "loadgen.datasets"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_flow_one_way(package: str) -> None:
    bad = []
    for path in sorted((REPO / package).rglob("*.py")):
        rel = str(path.relative_to(REPO))
        for name in _imports(path):
            top = name.split(".")[0]
            if top in OURS and top != package and top not in ALLOWED[package] and (rel, top) not in EXCEPTIONS:
                bad.append(f"{rel} imports {name}")
            if package == "orchestrator" and top == "loadgen" and name not in ORCHESTRATOR_MAY_USE:
                bad.append(f"{rel} imports {name} (the orchestrator may use only {sorted(ORCHESTRATOR_MAY_USE)})")
    assert bad == []


def test_runformat_needs_only_the_standard_library() -> None:
    for path in (REPO / "runformat").rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top in ("runformat", "__future__"), f"{path}: {name}"


@pytest.mark.parametrize("package", ["analysis", "orchestrator", "runformat"])
def test_outside_locust_nothing_loads_gevent_or_locust(package: str) -> None:
    """gevent monkey-patches the process: only the Locust side may bring it in."""
    code = (
        "import importlib, pkgutil, sys\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for m in pkgutil.iter_modules(pkg.__path__):\n"
        "    if m.name != '__main__':\n"
        f"        importlib.import_module({package!r} + '.' + m.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('gevent', 'locust', 'geventhttpclient'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{package} imported: {result.stdout.strip()}"
