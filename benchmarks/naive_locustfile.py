"""The straightforward Locust LLM user, as a baseline for `benchmarks/run_all.py`.

What most hand-written Locust LLM tests do: FastHttpUser, `stream=True`, then per line
`response.stream.readline(b"\n")` (SSE lines end in LF), strip the `data: ` prefix and `json.loads` the
rest, timestamping each token event with `time.perf_counter()` after the parse.
No Locust events per token, no request log.

For the benchmark only, each token event's client delay (arrival on the host-wide monotonic clock −
the simulator's `sim_emit_ns`) and each request's TTFT and inter-token gaps are kept in memory and
written as JSON to $NAIVE_OUT when the process quits.

    NAIVE_OUT=/tmp/naive.json locust -f benchmarks/naive_locustfile.py --headless -u 64 -r 32 \
        --host http://127.0.0.1:8000
"""

from __future__ import annotations

import json
import os
import time

from locust import constant, events, task
from locust.contrib.fasthttp import FastHttpUser

MAX_TOKENS = int(os.environ.get("NAIVE_MAX_TOKENS", "200"))
PROMPT = os.environ.get("NAIVE_PROMPT", "Summarize the following document for a busy reader. " * 12)
_requests: list[list[object]] = []  # [start_monotonic_s, ttft_s, [gap_s, ...], [delay_ns, ...]]


class NaiveUser(FastHttpUser):
    wait_time = constant(0)
    network_timeout = connection_timeout = 120.0

    def on_start(self) -> None:
        self.model = self.client.get("/v1/models").json()["data"][0]["id"]

    @task
    def generate(self) -> None:
        body = {
            "model": self.model,
            "prompt": PROMPT,
            "max_tokens": MAX_TOKENS,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        start = time.perf_counter()
        ttft = None
        last = start
        gaps: list[float] = []
        delays: list[int] = []
        tokens = 0
        with self.client.post("/v1/completions", json=body, stream=True, catch_response=True) as resp:
            while True:
                line = resp.stream.readline(b"\n")
                if not line:
                    break
                line = line.strip()
                if not line.startswith(b"data: "):
                    continue
                payload = line[6:]
                if payload == b"[DONE]":
                    break
                data = json.loads(payload)
                choices = data.get("choices")
                if not choices or not choices[0].get("text"):
                    continue
                now = time.perf_counter()
                if "sim_emit_ns" in data:
                    delays.append(time.monotonic_ns() - data["sim_emit_ns"])
                if ttft is None:
                    ttft = now - start
                else:
                    gaps.append(now - last)
                last = now
                tokens += 1
            if tokens:
                resp.success()
            else:
                resp.failure("no tokens")
        _requests.append([start, ttft, gaps, delays])


@events.quitting.add_listener
def _write_results(environment: object, **_: object) -> None:
    out = os.environ.get("NAIVE_OUT")
    if out:
        with open(out, "w") as f:
            json.dump({"requests": _requests}, f)
