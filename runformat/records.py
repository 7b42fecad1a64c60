"""The records a Locust process writes and analysis reads: columns in order, with type, unit and meaning.

One definition for both sides (the writer in `loadgen.requestlog`, the reader in `analysis.loading`).
Meanings follow docs/METRICS.md; `kind` is how a value parses: text, number, integer, or flag (exactly
FLAG_TRUE / FLAG_FALSE).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CLIENT_COLUMNS",
    "CLIENT_RECORD",
    "CLIENT_SCHEMA",
    "DROP_COLUMNS",
    "DROP_RECORD",
    "DROP_SCHEMA",
    "EMIT_LAG_COLUMNS",
    "FLAG_FALSE",
    "FLAG_TRUE",
    "INTERRUPTED_PREFIX",
    "REQUEST_COLUMNS",
    "REQUEST_RECORD",
    "REQUEST_SCHEMA",
    "TOKEN_COLUMNS",
    "TOKEN_RECORD",
    "TOKEN_SCHEMA",
    "Column",
    "TokensSource",
]

FLAG_TRUE, FLAG_FALSE = "1", "0"
# An error that begins so marks a stream the load generator cut off itself (the user stopped at the end
# of the run): the test's doing, never counted as the server's failure.
INTERRUPTED_PREFIX = "interrupted:"


class TokensSource(StrEnum):
    """Where a record's output_tokens came from."""

    USAGE = "usage"  # the server's usage.completion_tokens
    EVENTS = "events"  # no usage sent: token-carrying events counted
    SUSPECT = "suspect"  # usage contradicted the events or exceeded max_tokens: events counted, flagged


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # text | number | integer | flag
    unit: str
    meaning: str


REQUEST_RECORD: tuple[Column, ...] = (
    Column("request_id", "text", "", "unique id of the request"),
    Column("target_label", "text", "", "the target's label (scenario) or its host"),
    Column("workload", "text", "", "workload name (batch, chat, ...)"),
    Column("api", "text", "", "completions or chat"),
    Column("max_new_tokens", "integer", "tokens", "max_tokens asked for"),
    Column("start_wall_s", "number", "s (Unix time)", "wall-clock time at t_send"),
    Column("t_send_s", "number", "s", "perf_counter immediately before the request is written"),
    Column("ttft_ms", "number", "ms", "first token-carrying event − t_send"),
    Column("e2e_ms", "number", "ms", "last token-carrying event − t_send"),
    Column("tpot_ms", "number", "ms", "(e2e − ttft) / (output_tokens − 1)"),
    Column("itl_mean_ms", "number", "ms", "mean per-token inter-token latency"),
    Column("itl_p99_ms", "number", "ms", "p99 per-token inter-token latency of this request"),
    Column("prompt_tokens", "integer", "tokens", "server usage.prompt_tokens"),
    Column("output_tokens", "integer", "tokens", "server usage.completion_tokens (see tokens_source)"),
    Column("tokens_source", "text", "", "usage, events or suspect (TokensSource)"),
    Column("finish_reason", "text", "", "the server's final finish_reason"),
    Column("http_status", "integer", "", "HTTP status of the response"),
    Column("success", "flag", "", "METRICS.md success: 1 or 0"),
    Column("error", "text", "", "failure reason; INTERRUPTED_PREFIX for streams the test cut off"),
    Column("user_id", "text", "", "the Locust user within its process"),
    Column("worker_id", "text", "", "<host>-<pid> of the process, or the Locust worker id"),
    Column("retry_after_s", "number", "s", "Retry-After the server sent with a 429/503, if any"),
    Column("scheduled_wall_s", "number", "s (Unix time)", "open loop: when the arrival schedule wanted it sent"),
    Column("schedule_lag_ms", "number", "ms", "open loop: t_send − scheduled time (queueing delay included)"),
)
TOKEN_RECORD: tuple[Column, ...] = (
    Column("request_id", "text", "", "the request"),
    Column("arrivals_ms", "text", "ms", "space-separated arrival offsets of token-carrying events from t_send"),
    Column("counts", "text", "tokens", "tokens per event when any event carried more than one, else empty"),
)
CLIENT_RECORD: tuple[Column, ...] = (
    Column("wall_s", "number", "s (Unix time)", "end of the one-second sample"),
    Column("cpu_pct", "number", "%", "this process's CPU over the sample"),
    Column("dispatch_lag_p99_ms", "number", "ms", "p99 event-loop dispatch lag over the sample"),
    Column("dispatch_lag_max_ms", "number", "ms", "largest dispatch lag over the sample"),
    Column("active_users", "integer", "", "users running at the end of the sample"),
)
REQUEST_COLUMNS = tuple(c.name for c in REQUEST_RECORD)
TOKEN_COLUMNS = tuple(c.name for c in TOKEN_RECORD)
CLIENT_COLUMNS = tuple(c.name for c in CLIENT_RECORD)
EMIT_LAG_COLUMNS = ("request_id", "emit_lag_us")
DROP_RECORD: tuple[Column, ...] = (
    Column("scheduled_wall_s", "number", "s (Unix time)", "open loop: an arrival that found every user busy"),
)
DROP_COLUMNS = tuple(c.name for c in DROP_RECORD)
DROP_SCHEMA = {c.name: c.kind for c in DROP_RECORD}
REQUEST_SCHEMA = {c.name: c.kind for c in REQUEST_RECORD}
TOKEN_SCHEMA = {c.name: c.kind for c in TOKEN_RECORD}
CLIENT_SCHEMA = {c.name: c.kind for c in CLIENT_RECORD}
