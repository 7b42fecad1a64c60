"""`import analysis` and every analysis module leave gevent and locust unimported (gevent patches the process)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import analysis

REPO = Path(__file__).resolve().parents[3]


def _modules() -> list[str]:
    return [
        "analysis",
        *(f"analysis.{m.name}" for m in pkgutil.iter_modules(analysis.__path__) if m.name != "__main__"),
    ]


def test_module_list_is_complete() -> None:
    assert {"analysis.cli", "analysis.report", "analysis.plots", "analysis.compare", "analysis.cost"} <= set(_modules())


def test_no_module_imports_gevent_or_locust() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('gevent', 'locust', 'geventhttpclient'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported: {result.stdout.strip()}"


def test_request_log_columns_are_the_ones_the_load_generator_writes() -> None:
    """analysis keeps its own copy (it must not import the Locust side); the two must never drift."""
    from analysis.loading import REQUEST_COLUMNS as READ
    from loadgen.requestlog import REQUEST_COLUMNS as WRITTEN

    assert list(READ) == list(WRITTEN)
