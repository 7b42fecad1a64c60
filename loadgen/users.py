"""`LLMUser`: the base Locust user for streamed generations; subclasses only choose their prompts.

Importing this module registers the suite's options and event listeners on `locust.events` (Locust
parses the command line before it creates any user, so this cannot wait for one).
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path
from typing import Any, ClassVar

import gevent
from locust import constant, events
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser
from locust.user.task import LOCUST_STATE_RUNNING, LOCUST_STATE_STOPPING, LOCUST_STATE_WAITING

from loadgen import plugin
from loadgen.apis import GenerationParams, LLMApi, Prompt, get_api
from loadgen.backoff import Backoff
from loadgen.client import ClientIdentity, GenerationInterrupted, GenerationOutcome, LLMClient
from loadgen.datasets import DatasetRequest
from loadgen.openloop import Ticket
from loadgen.options import DEFAULT_HOST, Settings
from loadgen.workloads import DATA_DIR, DEFAULT_CHARS_PER_TOKEN, PromptFitter, draw_output_tokens, unique_tag

__all__ = ["LLMUser"]

plugin.install(events)


class LLMUser(FastHttpUser):
    """Streams one generation per task and records it exactly (see METRICS.md).

    Subclasses set `workload`, `default_max_new_tokens`, `default_source` (a file in loadgen/data),
    implement `next_prompt()` (passing each new prompt's text through `fresh()`) and declare a task that
    calls `generate()`. Runs as a closed loop (no
    think time) unless `wait_time` is overridden.
    """

    abstract = True
    host = DEFAULT_HOST
    wait_time = constant(0)

    workload: ClassVar[str] = "llm"
    default_max_new_tokens: ClassVar[int] = 128
    default_source: ClassVar[str] = "docs.txt"

    def __init__(self, environment: Any) -> None:
        self.runtime = plugin.runtime_for(environment)
        self.settings: Settings = self.runtime.settings
        # FastHttpUser builds its connection pool from these; a silent server fails after --request-timeout.
        self.network_timeout = self.connection_timeout = self.settings.request_timeout_s
        super().__init__(environment)
        self.api: LLMApi = get_api(self.settings.api)
        self.user_id = self.runtime.next_user_id()
        self.rng = random.Random(f"{self.workload}-{self.user_id}")
        self.llm = LLMClient(
            self.host or DEFAULT_HOST,
            self.client.client.clientpool.get_client,
            timeout_s=self.settings.request_timeout_s,
            deadline_s=self.settings.deadline_s,
            headers=self.runtime.auth_headers(self.host or DEFAULT_HOST),
            state=self.runtime.server,
            identity=ClientIdentity(
                target_label=self.settings.target_label,
                workload=self.workload,
                user_id=self.user_id,
                worker_id=self.runtime.worker_id,
            ),
            watch=self.runtime.stats.watch(self.request_name),
        )
        self.backoff = Backoff(rng=random.Random(f"backoff-{self.workload}-{self.user_id}"))
        self._due_s: float | None = None
        self._ticket: Ticket | None = None
        self.dataset_row: DatasetRequest | None = None  # the --dataset row the next request sends
        inner_wait = self.wait_time

        def wait_and_remember_due() -> float:
            seconds = float(inner_wait())
            self._due_s = time.perf_counter() + seconds
            return seconds

        self.wait_time = wait_and_remember_due  # type: ignore[method-assign]

    # -- what subclasses provide ------------------------------------------------------------------------

    @classmethod
    def prompt_source(cls, settings: Settings) -> Path:
        """--docs if given, else this workload's file shipped in loadgen/data."""
        return Path(settings.docs) if settings.docs else DATA_DIR / cls.default_source

    def next_prompt(self) -> Prompt:
        raise NotImplementedError

    # -- helpers for subclasses --------------------------------------------------------------------------

    @property
    def max_new_tokens(self) -> int:
        """The nominal max_tokens (--max-new-tokens, else the class default)."""
        return self.settings.max_new_tokens or self.default_max_new_tokens

    def draw_max_new_tokens(self) -> int:
        """This request's max_tokens: a trace row's output_length, else the nominal one or a uniform draw
        around it (--output-range-ratio)."""
        if self._ticket is not None and self._ticket.row is not None:
            return self._ticket.row.output_length
        if self.dataset_row is not None:
            ratio = self.runtime.server.chars_per_token or DEFAULT_CHARS_PER_TOKEN
            return self.dataset_row.max_tokens(ratio, self.max_new_tokens)
        return draw_output_tokens(self.rng, self.max_new_tokens, self.settings.output_range_ratio)

    @property
    def request_name(self) -> str:
        return f"{self.workload} {self.api.path}"

    def arrival(self) -> Ticket | None:
        """Open loop: the arrival this request answers, waiting for one if none was taken yet. None in a
        closed loop."""
        if self._ticket is None and self.runtime.open_loop is not None:
            asked_s = time.perf_counter()
            # Idle until an arrival, like Locust's own wait(): Stop ends a waiting user at once (nothing was
            # sent) instead of waiting --stop-timeout for an arrival that no longer comes.
            if self._state == LOCUST_STATE_STOPPING:
                raise StopUser()
            self._state = LOCUST_STATE_WAITING
            self._ticket = self.runtime.open_loop.take()
            if self._state == LOCUST_STATE_STOPPING:  # handed over in the instant Stop came: never sent
                self.runtime.open_loop.unsent(self._ticket)
                self._ticket = None
                raise StopUser()
            self._state = LOCUST_STATE_RUNNING
            if self._due_s is not None:
                # waiting for the arrival is the schedule, not client lag: due when it was scheduled (or,
                # for a queued arrival already late, when it was asked for: its queueing is server-bound)
                self._due_s = max(self._due_s, self._ticket.scheduled_s, asked_s)
        return self._ticket

    def row_arrival(self) -> Ticket | None:
        """A replayed trace's arrival, waited for before the prompt is built (its row shapes the prompt);
        None otherwise: a rate schedule's request is built ahead of its arrival and waits in `generate`."""
        loop = self.runtime.open_loop
        return self.arrival() if loop is not None and loop.has_rows else None

    def dataset_prompt(self) -> str | None:
        """With --dataset: a random row's prompt (behind the shared prefix and unique tag), its output
        length kept for this request's max_tokens; None without a dataset."""
        path = self.settings.traffic.dataset
        if not path:
            return None
        self.row_arrival()
        rows = self.runtime.dataset(path)
        self.dataset_row = rows[self.rng.randrange(len(rows))]
        return self.fresh(self.dataset_row.prompt)

    def trace_prompt(self) -> str | None:
        """A trace row with hash_ids: its prompt built from the blocks those ids name (`HashBlocks`), with a
        fresh tail where the ids cover less than input_length; None for any other request."""
        ticket = self.row_arrival()
        if ticket is None or ticket.row is None or not ticket.row.hash_ids:
            return None
        blocks = self.runtime.hash_blocks(self.llm, self._model_or_none(), self.texts())
        tail = unique_tag() if self.settings.unique_prompts else ""
        return blocks.prompt(ticket.row.hash_ids, ticket.row.input_length, tail)

    def texts(self) -> list[str]:
        self.row_arrival()
        return self.runtime.texts(self.prompt_source(self.settings))

    def fitter(self) -> PromptFitter | None:
        """Fits texts to --prompt-tokens, or to a trace row's input_length (None without either); calibrates
        on first use."""
        ticket = self.row_arrival()
        if ticket is not None and ticket.row is not None:
            return self.runtime.fitter_for(self.llm, self._model_or_none(), self.texts(), ticket.row.input_length)
        if not self.settings.prompt_tokens:
            return None
        try:
            model = self.runtime.model(self.llm)
        except RuntimeError:
            return PromptFitter(self.settings.prompt_tokens)
        fitter = self.runtime.fitter(self.llm, model, self.texts())
        ratio = self.settings.traffic.prompt_tokens_range_ratio
        if fitter is None or not ratio:
            return fitter
        return dataclasses.replace(fitter, target_tokens=draw_output_tokens(self.rng, fitter.target_tokens, ratio))

    def _model_or_none(self) -> str | None:
        try:
            return self.runtime.model(self.llm)
        except RuntimeError:
            return None

    def fresh(self, text: str) -> str:
        """`text` as the start of a new prompt: behind the shared prefix (--shared-prefix-tokens) and a
        random tag, so that by default no two requests share a first token (--no-unique-prompts: none)."""
        try:
            model: str | None = self.runtime.model(self.llm)
        except RuntimeError:
            model = None
        return self.runtime.prompt_shape(self.llm, model, self.texts()).apply(text)

    # -- the request -------------------------------------------------------------------------------------

    def generate(self, prompt: Prompt, *, collect_text: bool = False) -> GenerationOutcome:
        """Send one streamed request and record it everywhere; returns the outcome (never raises for
        server faults)."""
        max_new_tokens = self.draw_max_new_tokens()
        self.dataset_row = None
        try:
            model = self.runtime.model(self.llm)
        except RuntimeError as exc:
            ticket = self._answer_arrival()
            self.runtime.request_started()
            outcome = self.llm.failed(self.api, self.max_new_tokens, str(exc))
            _stamp_schedule(outcome, ticket)
            self.runtime.record(outcome, "POST", self.request_name)
            self._back_off(outcome)
            return outcome
        params = GenerationParams(
            model=model,
            max_new_tokens=max_new_tokens,
            temperature=self.settings.temperature,
            ignore_eos=self.settings.ignore_eos,
        )
        until_ci = self.runtime.until_ci
        ticket, slot = None, 0

        def ready() -> None:  # the request is built: wait for its arrival (open loop), then send at once
            nonlocal ticket, slot
            ticket = self._answer_arrival()
            # Started once it has its arrival: a user stopped while it waits sends nothing and owes no record.
            self.runtime.request_started()
            slot = until_ci.sending() if until_ci is not None else 0

        if self.runtime.open_loop is None:
            ready()
        try:
            outcome = self.llm.generate(
                self.api,
                prompt,
                params,
                collect_text=collect_text,
                record_emit_lag=self.settings.record_emit_lag,
                ready=ready if self.runtime.open_loop is not None else None,
            )
        except GenerationInterrupted as exc:
            # Stopped mid-request: keep the record (its tokens were generated), then let the kill proceed.
            _stamp_schedule(exc.outcome, ticket)
            self.runtime.record(exc.outcome, "POST", self.request_name, fire_event=False)
            raise gevent.GreenletExit() from None
        finally:
            if until_ci is not None:
                until_ci.finished(slot)
        _stamp_schedule(outcome, ticket)
        self.runtime.record(outcome, "POST", self.request_name)
        self._back_off(outcome)
        return outcome

    def _answer_arrival(self) -> Ticket | None:
        """The arrival this request answers (waiting for it in an open loop), noting how late the request
        starts for the client's health; the next request then waits for a new arrival."""
        ticket = self.arrival()
        self._ticket = None
        if self._due_s is not None:
            self.runtime.record_lag_ms((time.perf_counter() - self._due_s) * 1000.0)
            self._due_s = None
        return ticket

    def _back_off(self, outcome: GenerationOutcome) -> None:
        """After any failure wait (growing with failures in a row, at least the server's Retry-After), so a
        failing target is not hammered; a success resets it."""
        delay_s = self.backoff.delay_s(outcome.success, outcome.record.retry_after_s)
        if delay_s > 0:
            gevent.sleep(delay_s)


def _stamp_schedule(outcome: GenerationOutcome, ticket: Ticket | None) -> None:
    """Open loop: the arrival's scheduled wall time and send − scheduled (perf_counter, so exact) in ms."""
    if ticket is None:
        return
    rec = outcome.record
    rec.scheduled_wall_s = ticket.scheduled_wall_s
    rec.schedule_lag_ms = (rec.t_send_s - ticket.scheduled_s) * 1000.0
