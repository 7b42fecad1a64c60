"""`vllm bench serve`, unchanged, plus a record of its own per-token timestamps (for `benchmarks/run_all.py`).

Run with the vLLM venv's interpreter: `.venv-vllm/bin/python benchmarks/vllm_peer.py OUT.json ARGS...`
where ARGS are `vllm bench serve` arguments. The benchmark's request function, parsing and timing code
run as shipped; two names in its module are wrapped so that, for every token-carrying event, the
timestamp it takes (`time.perf_counter()`, right after its `json.loads`) is paired with the simulator's
`sim_emit_ns` — both read CLOCK_MONOTONIC on Linux — and each finished request's start time, TTFT and
inter-token gaps are kept. The wrappers add well under a microsecond per event. On SIGTERM, SIGINT or
normal exit the record is written to OUT.json.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

OUT = sys.argv[1]
ARGS = sys.argv[2:]

_real_loads = json.loads
_real_perf = time.perf_counter
_pending: list[tuple[int, bool]] = []  # (sim_emit_ns, first of its request) of the token event just parsed
_seen: set[str] = set()
delays: list[tuple[int, int, bool]] = []  # (arrival_ns, arrival_ns - sim_emit_ns, first token)
requests: list[list[Any]] = []  # [start_s, ttft_s, [itl_s ...]]


class _JsonShim:
    JSONDecodeError = json.JSONDecodeError

    def __getattr__(self, name: str) -> Any:
        return getattr(json, name)

    @staticmethod
    def loads(s: Any, *args: Any, **kwargs: Any) -> Any:
        obj = _real_loads(s, *args, **kwargs)
        if type(obj) is dict and obj.get("choices") and "sim_emit_ns" in obj:
            emit_ns = obj["sim_emit_ns"]
            if _pending and _pending[0][0] == emit_ns:
                return obj  # the same event parsed twice (its SSE splitter checks completeness with loads)
            rid = obj.get("id")
            first = rid not in _seen
            if first:
                _seen.add(rid)
            _pending[:] = [(emit_ns, first)]
        return obj


class _TimeShim:
    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def perf_counter() -> float:
        t = _real_perf()
        if _pending:
            emit_ns, first = _pending.pop()
            t_ns = int(t * 1e9)
            delays.append((t_ns, t_ns - emit_ns, first))
        return t


def _dump(*_: Any) -> None:
    with open(OUT, "w") as f:
        json.dump({"requests": requests, "delays": delays}, f)


def _on_signal(signum: int, frame: Any) -> None:
    _dump()
    os._exit(0)


def main() -> None:
    assert time.get_clock_info("perf_counter").implementation == time.get_clock_info("monotonic").implementation
    from vllm.benchmarks.lib import endpoint_request_func as erf
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as bench_main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    erf.json = _JsonShim()  # type: ignore[assignment]
    erf.time = _TimeShim()  # type: ignore[assignment]
    for name, func in list(erf.ASYNC_REQUEST_FUNCS.items()):

        async def wrapped(*a: Any, _func: Any = func, **kw: Any) -> Any:
            out = await _func(*a, **kw)
            if out.success:
                requests.append([out.start_time, out.ttft, list(out.itl)])
            return out

        erf.ASYNC_REQUEST_FUNCS[name] = wrapped
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    parser = FlexibleArgumentParser(prog="vllm bench serve")
    add_cli_args(parser)
    try:
        bench_main(parser.parse_args(ARGS))
    finally:
        _dump()


if __name__ == "__main__":
    main()
