"""GuideLLM's `guidellm run`, unchanged, plus a record of when it sees each token event (for run_all.py).

Run with the GuideLLM venv's interpreter: `.cache/peers/guidellm/bin/python benchmarks/guidellm_peer.py
run ARGS...` with PEER_DELAY_DIR set. Its HTTP backend stamps every SSE line with `time.time()` and then
parses it with `json.loads`; those two names in its modules are wrapped so that the stamp is paired with a
CLOCK_MONOTONIC reading and the event's `sim_emit_ns` (DelayLog, one file per process). The patch sits at
module level because GuideLLM's workers are spawned processes, which import this file as `__mp_main__`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from guidellm.backends.openai import http as _http
from guidellm.backends.openai import request_handlers as _handlers
from peer_results import DelayLog

_json = _handlers.json
_log = DelayLog(Path(os.environ["PEER_DELAY_DIR"]))
_arrival_ns = 0


class _TimeShim:
    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def time() -> float:
        global _arrival_ns
        _arrival_ns = time.perf_counter_ns()
        return time.time()


class _JsonShim:
    def __getattr__(self, name: str) -> Any:
        return getattr(_json, name)

    @staticmethod
    def loads(s: Any, *args: Any, **kwargs: Any) -> Any:
        obj = _json.loads(s, *args, **kwargs)
        if type(obj) is dict and obj.get("choices") and "sim_emit_ns" in obj:
            _log.add(_arrival_ns, obj["sim_emit_ns"], obj.get("id"))
        return obj


_http.time = _TimeShim()  # type: ignore[assignment]
_handlers.json = _JsonShim()  # type: ignore[assignment]

if __name__ == "__main__":
    assert time.get_clock_info("perf_counter").implementation == time.get_clock_info("monotonic").implementation
    from guidellm.__main__ import cli

    sys.exit(cli())
