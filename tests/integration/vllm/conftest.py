"""Fixtures for the real-vLLM tests: one BF16/AWQ server pair per session, always stopped.

Under CI=true a missing vLLM environment or a server that will not start fails the tests: a skipped
real-server check would let a broken pipeline pass. Elsewhere a missing `.venv-vllm` skips them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.vllm.servers import START_TIMEOUT_S, VllmTargets, in_ci, missing_prerequisites, start_targets

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first test to use `vllm_pair` also waits for both servers to start (up to START_TIMEOUT_S), so
    these tests get that much more than the suite's per-test timeout."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.timeout(START_TIMEOUT_S + 480))


def require_vllm() -> None:
    reason = missing_prerequisites()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"CI=true and the real-vLLM tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def vllm_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmTargets]:
    """BF16 and AWQ servers on free loopback ports, for the whole session."""
    require_vllm()
    try:
        pair = start_targets(tmp_path_factory.mktemp("vllm-pair"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield pair
    pair.stop()
