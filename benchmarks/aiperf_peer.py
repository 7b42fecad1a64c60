"""AIPerf's `aiperf profile`, unchanged, plus a record of when it saw each token event (for run_all.py).

Run with the AIPerf venv's interpreter: `.cache/peers/aiperf/bin/python benchmarks/aiperf_peer.py profile
ARGS...` with PEER_DELAY_DIR set. AIPerf's worker stamps every SSE message on arrival
(`time.perf_counter_ns()`, its `perf_ns`) and its record processors parse the messages later; while a
record processor parses one (the completions endpoint's `parse_response`), the parsed JSON's
`sim_emit_ns` is paired with that arrival stamp (DelayLog, one file per process). Nothing runs on the
worker's receive path. The patch sits at module level so that services forked or spawned from here share it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from aiperf.common.models.record_models import SSEMessage
from aiperf.endpoints.openai_completions import CompletionsEndpoint
from peer_results import DelayLog

_log = DelayLog(Path(os.environ["PEER_DELAY_DIR"]))
_get_json = SSEMessage.get_json
_parse_response = CompletionsEndpoint.parse_response
_parsing = False


def _get_json_recorded(self: SSEMessage) -> Any:
    obj = _get_json(self)
    if _parsing and type(obj) is dict and obj.get("choices") and "sim_emit_ns" in obj:
        _log.add(self.perf_ns, obj["sim_emit_ns"], obj.get("id"))
    return obj


def _parse_response_recorded(self: CompletionsEndpoint, response: Any) -> Any:
    global _parsing
    _parsing = True
    try:
        return _parse_response(self, response)
    finally:
        _parsing = False


SSEMessage.get_json = _get_json_recorded  # type: ignore[method-assign]
CompletionsEndpoint.parse_response = _parse_response_recorded  # type: ignore[method-assign]

if __name__ == "__main__":
    assert time.get_clock_info("perf_counter").implementation == time.get_clock_info("monotonic").implementation
    from aiperf.cli import app

    sys.exit(app())
