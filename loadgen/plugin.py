"""Locust event glue: options, per-process runtime (request log, client health, LLM stats), master merge, web UI.

`install(events)` is called once when `loadgen.users` is imported, because Locust fires its
command-line-parser hook before any user class or environment exists.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import sys
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import gevent.lock
from locust.env import Environment
from locust.event import Events
from locust.runners import MasterRunner, WorkerRunner

from loadgen.apis import get_api
from loadgen.client import GenerationOutcome, LLMClient, ServerState
from loadgen.clienthealth import ClientHealth
from loadgen.datasets import DatasetRequest, load_dataset
from loadgen.htmlreport import install_html_section
from loadgen.live import itl_from_trace
from loadgen.llmstats import LLMStats
from loadgen.openloop import OpenLoop
from loadgen.openloop_setup import begin_arrivals, check_open_loop, finish_open_loop, start_open_loop
from loadgen.options import DEFAULT_HOST, Credential, Settings, add_arguments, is_loopback, origin
from loadgen.recordship import RecordCollector, ShippingSink
from loadgen.requestlog import CsvRecordSink, process_tag
from loadgen.runsummary import install_json_section, llm_summary, summary_lines
from loadgen.shipglue import install_master, install_worker, live_workers, shipping_sink
from loadgen.untilci import MESSAGE as UNTIL_CI_MESSAGE
from loadgen.untilci import StopRule, UntilCI
from loadgen.webui import install_llm_tab
from loadgen.workloads import (
    DEFAULT_CHARS_PER_TOKEN,
    HashBlocks,
    PromptFitter,
    PromptShape,
    WorkloadError,
    chars_per_token,
    load_texts,
    shared_prefix_groups,
    unique_tag,
)
from runformat.layout import llm_stats_file

__all__ = ["LoadgenRuntime", "install", "runtime_for"]

logger = logging.getLogger(__name__)

_runtimes: weakref.WeakKeyDictionary[Environment, LoadgenRuntime] = weakref.WeakKeyDictionary()
_installed: set[int] = set()
_CSV_INTERVAL_S = 2.0
_FIRST_TOKEN_TICK_S = 0.25
console_logger = logging.getLogger("locust.stats_logger")


class LoadgenRuntime:
    """Everything one Locust process shares between its LLM users."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.settings = Settings.from_options(environment.parsed_options)
        # The key and its host as given at start: options can change later (web UI form, the master's
        # forwarded options), the key's destination must not.
        own_host = environment.host or getattr(environment.parsed_options, "host", None)
        is_worker = isinstance(environment.runner, WorkerRunner)
        self.credential = Credential(self.settings.api_key, own_host or (None if is_worker else DEFAULT_HOST))
        self._withheld: set[str] = set()
        self.stats = LLMStats()
        self.server = ServerState()
        self.sink: CsvRecordSink | ShippingSink | None = None
        self.collector: RecordCollector | None = None  # a master's: the workers' shipped records
        self.ack_signal: Any = None
        self.health: ClientHealth | None = None
        self._texts: dict[str, list[str]] = {}
        self._datasets: dict[str, list[DatasetRequest]] = {}
        self._greenlets: list[gevent.Greenlet] = []
        self._user_seq = 0
        self._model_lock = gevent.lock.Semaphore()
        self._fitter: PromptFitter | None = None
        self._calibrated = False
        self._ratio = DEFAULT_CHARS_PER_TOKEN
        self._tag_tokens = 0
        self._shared_prefix: tuple[str, ...] = ()
        self._shape: PromptShape | None = None
        self._blocks: HashBlocks | None = None
        self.until_ci: UntilCI | None = None
        self.open_loop: OpenLoop | None = None
        self._csv_writer: gevent.Greenlet | None = None
        self._live_ticker: gevent.Greenlet | None = None
        self.started_at_s: float | None = None
        self.stopped_at_s: float | None = None

    @property
    def worker_id(self) -> str:
        runner = self.environment.runner
        return runner.client_id if isinstance(runner, WorkerRunner) else process_tag()

    def auth_headers(self, url: str) -> dict[str, str]:
        """The Authorization header for a user pointed at `url`; none (and one warning) for another host."""
        headers = self.credential.headers_for(url)
        if not headers and self.credential.key and url not in self._withheld:
            self._withheld.add(url)
            logger.warning(
                "not sending the API key to %s: it was given for %s (enter one for the new host to send one)",
                origin(url),
                origin(self.credential.host or ""),
            )
        return headers

    def refresh_settings(self) -> None:
        """Re-read the options (the web UI or the master may have changed them). A key that differs from the
        one given at start was entered in the web UI: it belongs to the host entered with it."""
        options = self.environment.parsed_options
        settings = Settings.from_options(options)
        entered = getattr(options, "api_key", None)
        if entered and entered != self.credential.key:
            self.credential = Credential(entered, self.environment.host or DEFAULT_HOST)
        self.settings = dataclasses.replace(settings, api_key=self.credential.key)

    def next_user_id(self) -> str:
        self._user_seq += 1
        return str(self._user_seq)

    # -- workloads ----------------------------------------------------------------------------------

    def texts(self, source: str | Path) -> list[str]:
        key = str(source)
        if key not in self._texts:
            self._texts[key] = load_texts(source)
        return self._texts[key]

    def dataset(self, path: str) -> list[DatasetRequest]:
        if path not in self._datasets:
            self._datasets[path] = load_dataset(path)
        return self._datasets[path]

    def model(self, client: LLMClient) -> str:
        """--model, else the server's first model (asked once per process; failures are retried)."""
        if self.settings.model:
            return self.settings.model
        with self._model_lock:
            if self.server.model is None:
                self.server.model = client.discover_model()
            return self.server.model

    def _calibrate(self, client: LLMClient, model: str, sample_texts: list[str]) -> None:
        """Once per process (under the model lock): chars per token from /tokenize when the server has
        it, and how many tokens the unique tag takes, so the prompt budget can hold it."""
        if self._calibrated:
            return
        sample = "\n\n".join(sample_texts[:3])[:20_000]
        count = client.count_tokens(sample, model)
        ratio = chars_per_token(sample, count or 0)
        self.server.chars_per_token = ratio
        logger.info("prompt length calibration: %.2f chars/token (%s)", ratio, "/tokenize" if count else "default")
        self._tag_tokens = 0
        if self.settings.unique_prompts:
            tag = unique_tag()
            with_tag = client.count_tokens(tag + sample, model) if count else None
            self._tag_tokens = with_tag - count if with_tag and count else math.ceil(len(tag) / ratio)
        if self.settings.shared_prefix_tokens:
            fitter = PromptFitter(self.settings.shared_prefix_tokens, ratio)
            self._shared_prefix = shared_prefix_groups(sample_texts, fitter, self.settings.traffic.prefix_groups)
        self._ratio = ratio
        self._calibrated = True

    def fitter(self, client: LLMClient, model: str, sample_texts: list[str]) -> PromptFitter | None:
        """The --prompt-tokens fitter, calibrated once; its target leaves room for the unique tag."""
        target = self.settings.prompt_tokens
        if not target:
            return None
        with self._model_lock:
            if self._fitter is None:
                self._calibrate(client, model, sample_texts)
                self._fitter = PromptFitter(max(1, target - self._tag_tokens), self._ratio)
            return self._fitter

    def fitter_for(
        self, client: LLMClient, model: str | None, sample_texts: list[str], prompt_tokens: int
    ) -> PromptFitter:
        """A fitter to `prompt_tokens` (a trace row's input_length), calibrated once like --prompt-tokens."""
        with self._model_lock:
            if model is not None:
                self._calibrate(client, model, sample_texts)
            return PromptFitter(max(1, prompt_tokens - self._tag_tokens), self._ratio)

    def hash_blocks(self, client: LLMClient, model: str | None, sample_texts: list[str]) -> HashBlocks:
        """The trace's hash-id blocks (--trace-block-tokens each, --trace-salt), calibrated once like
        --prompt-tokens, so every process builds the same block for an id."""
        with self._model_lock:
            if model is not None:
                self._calibrate(client, model, sample_texts)
            traffic = self.settings.traffic
            fitter = PromptFitter(traffic.trace_block_tokens, self._ratio)
            if self._blocks is None or self._blocks.fitter != fitter:
                self._blocks = HashBlocks(tuple(sample_texts), fitter, traffic.trace_salt or "")
            return self._blocks

    def prompt_shape(self, client: LLMClient | None, model: str | None, sample_texts: list[str]) -> PromptShape:
        """What precedes every new prompt: the shared prefix (--shared-prefix-tokens), then a unique tag."""
        if self._shape is None:
            with self._model_lock:
                if self.settings.shared_prefix_tokens and client is not None and model is not None:
                    self._calibrate(client, model, sample_texts)
                elif self.settings.shared_prefix_tokens and not self._shared_prefix:
                    fitter = PromptFitter(self.settings.shared_prefix_tokens)
                    groups = self.settings.traffic.prefix_groups
                    self._shared_prefix = shared_prefix_groups(sample_texts, fitter, groups)
                self._shape = PromptShape(unique=self.settings.unique_prompts, shared_prefixes=self._shared_prefix)
        return self._shape

    # -- recording ----------------------------------------------------------------------------------

    def start_recording(self) -> None:
        """Open this process's request log (if a prefix is known) and start the 1 s health/flush ticker."""
        self.refresh_settings()
        runner = self.environment.runner
        if self.sink is None and self.settings.request_log:
            if isinstance(runner, WorkerRunner) and not self.settings.worker_local_records:
                self.sink = shipping_sink(runner, self)
                logger.info("request log: shipped to the master")
            else:
                self.sink = CsvRecordSink(
                    self.settings.request_log,
                    emit_lag=self.settings.record_emit_lag,
                    drops=self.settings.traffic.open_loop,
                )
                logger.info("request log: %s", self.sink.paths["requests"])
        if self.health is None:
            self.health = ClientHealth(active_users=lambda: self._runner_user_count())
            self._spawn(self.health.run_ticker)
            self._spawn(self._tick_every_second)

    def _runner_user_count(self) -> int:
        runner = self.environment.runner
        return runner.user_count if runner is not None else 0

    def _tick_every_second(self) -> None:
        while True:
            gevent.sleep(1.0)
            if self.health is not None and self.sink is not None:
                self.sink.write_client(self.health.sample())
            if self.sink is not None:
                self.sink.flush()

    def record(self, outcome: GenerationOutcome, request_type: str, name: str, fire_event: bool = True) -> None:
        """Report one finished request to Locust, the LLM stats and the request log."""
        rec = outcome.record
        if fire_event:
            elapsed_ms = rec.e2e_ms
            if elapsed_ms is None or not rec.success:
                elapsed_ms = max(0.0, (time.perf_counter() - rec.t_send_s) * 1000.0)
            self.environment.events.request.fire(
                request_type=request_type,
                name=name,
                response_time=elapsed_ms,
                response_length=rec.output_tokens,
                exception=None if rec.success else LLMRequestError(rec.error or "failed"),
                context={"request_id": rec.request_id},
            )
        if rec.success and rec.e2e_ms is not None:
            self.stats.log_completed(
                request_type, name, rec.e2e_ms, rec.tpot_ms, itl_from_trace(rec.arrivals_ms, rec.counts)
            )
        if self.sink is not None:
            self.sink.write_request(rec)
        if self.until_ci is not None:
            self.until_ci.record(rec)

    def request_started(self) -> None:
        """A request is about to be sent: a shipping worker counts it, so the master can count losses."""
        if isinstance(self.sink, ShippingSink):
            self.sink.request_started()

    def record_lag_ms(self, lag_ms: float) -> None:
        if self.health is not None:
            self.health.record_lag_ms(lag_ms)

    def flush(self) -> None:
        if self.sink is not None:
            self.sink.flush()

    def close(self) -> None:
        finish_open_loop(self, self.open_loop)
        self.open_loop = None
        for g in self._greenlets:
            g.kill(block=False)
        self._greenlets.clear()
        if self.sink is not None:
            # No health row at shutdown: it would cover a partial second of stopping users and writing
            # files, with 0 active users, inside the window, and make a healthy cell look client-bound.
            self.sink.close()
            self.sink = None
        self.health = None
        self._csv_writer = None
        self._live_ticker = None

    def _spawn(self, fn: Callable[[], None]) -> None:
        self._greenlets.append(gevent.spawn(fn))

    # -- the live LLM view ---------------------------------------------------------------------------------

    def start_live(self) -> None:
        """TTFTs logged as first tokens arrive (every process that sends); the rolling tok/s sampled once a
        second where the view is shown (local or master)."""
        self.started_at_s, self.stopped_at_s = time.time(), None
        self.stats.rate.clear()
        self.stats.sample(self.started_at_s)  # the window starts at zero: the first prompt's tokens count
        if self._live_ticker is None:
            self._live_ticker = gevent.spawn(self._tick_live)
            self._greenlets.append(self._live_ticker)

    def _tick_live(self) -> None:
        shows_view = not isinstance(self.environment.runner, WorkerRunner)
        ticks = 0
        while True:
            gevent.sleep(_FIRST_TOKEN_TICK_S)
            self.stats.log_first_tokens()
            ticks += 1
            if shows_view and ticks % round(1.0 / _FIRST_TOKEN_TICK_S) == 0 and self.stopped_at_s is None:
                self.stats.sample(time.time())

    def stop_live(self) -> None:
        """Stop: the rolling rates and the run's window end freeze here."""
        self.stats.log_first_tokens()
        if self.started_at_s is not None and self.stopped_at_s is None:
            self.stopped_at_s = time.time()
            self.stats.freeze(self.stopped_at_s)

    def window_start_s(self) -> float | None:
        """The start of the run's window: the test's start, or in open loop the arrival schedule's (the
        pool's spawning before it offers no load, and would understate every rate)."""
        runner = self.environment.runner
        start = self.started_at_s or (runner.stats.start_time if runner is not None else None)
        schedule = self.stats.schedule_start_s
        return schedule if schedule is not None and (start is None or schedule > start) else start

    def llm_rows(self) -> list[dict[str, Any]]:
        return self.stats.rows(run_start_s=self.window_start_s())

    def summary(self) -> dict[str, Any] | None:
        """The run's LLM summary (None before any test started)."""
        if self.started_at_s is None:
            return None
        end_s = self.stopped_at_s or time.time()
        runner = self.environment.runner
        failures = runner.stats.total.num_failures if runner is not None else 0
        host = self.environment.host or getattr(self.environment.parsed_options, "host", None) or DEFAULT_HOST
        endpoint = f"POST {host.rstrip('/')}{get_api(self.settings.api).path}"
        start_s = self.window_start_s() or self.started_at_s
        open_loop = self.stats.schedule_start_s is not None
        return llm_summary(self.llm_rows(), failures, (start_s, end_s), [endpoint], open_loop=open_loop)

    def print_summary(self) -> None:
        summary = self.summary()
        if summary is None:
            return
        for line in summary_lines(summary):
            console_logger.info(line)
        console_logger.info("")

    # -- LLM stats CSV (master or local process) ---------------------------------------------------------

    def write_llm_csv(self) -> None:
        prefix = getattr(self.environment.parsed_options, "csv_prefix", None)
        if not prefix:
            return
        path = llm_stats_file(prefix)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            self.stats.write_csv(f, self.llm_rows())
        tmp.replace(path)

    def start_llm_csv_writer(self) -> None:
        """Rewrite PREFIX_llm_stats.csv every few seconds, like Locust's own CSVs (master or local)."""
        if self._csv_writer is None and getattr(self.environment.parsed_options, "csv_prefix", None):
            self._csv_writer = gevent.spawn(self._write_llm_csv_forever)
            self._greenlets.append(self._csv_writer)

    def _write_llm_csv_forever(self) -> None:
        while True:
            gevent.sleep(_CSV_INTERVAL_S)
            self.write_llm_csv()


class LLMRequestError(Exception):
    """The failure Locust records for a request; its message is the request log's `error`."""


def runtime_for(environment: Environment) -> LoadgenRuntime:
    rt = _runtimes.get(environment)
    if rt is None:
        rt = _runtimes[environment] = LoadgenRuntime(environment)
    return rt


def install(events: Events) -> None:
    """Register the listeners on Locust's event hooks (idempotent per Events object)."""
    if id(events) in _installed:
        return
    _installed.add(id(events))
    events.init_command_line_parser.add_listener(lambda parser, **_: add_arguments(parser))
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    events.test_stop.add_listener(_on_test_stop)
    events.reset_stats.add_listener(_on_reset_stats)
    events.spawning_complete.add_listener(_on_spawning_complete)
    events.test_stopping.add_listener(_on_test_stopping)
    events.quitting.add_listener(lambda environment, **_: _on_quitting(environment))
    install_json_section(_summary_for_stats)
    install_html_section(lambda environment: runtime_for(environment).summary())


def _summary_for_stats(request_stats: Any) -> dict[str, Any] | None:
    """The LLM section for Locust's JSON output: the summary of the run whose stats these are."""
    for rt in list(_runtimes.values()):
        runner = rt.environment.runner
        if runner is not None and runner.stats is request_stats and not isinstance(runner, WorkerRunner):
            return rt.summary()
    return None


def _on_init(environment: Environment, runner: Any = None, web_ui: Any = None, **_: Any) -> None:
    rt = runtime_for(environment)
    options = environment.parsed_options
    _guard_key(rt, runner, web_ui)
    # Workers (also --processes children, which lose --csv) get the prefix as a forwarded option.
    if (
        isinstance(runner, MasterRunner)
        and options is not None
        and not getattr(options, "request_log", None)
        and getattr(options, "csv_prefix", None)
    ):
        options.request_log = options.csv_prefix
    _check_workloads(environment, rt)
    check_open_loop(environment, rt.settings)
    if isinstance(runner, WorkerRunner):
        install_worker(runner, rt)
        environment.events.report_to_master.add_listener(
            lambda client_id, data, **_: data.__setitem__("llm_stats", rt.stats.report())
        )
    prefix = getattr(options, "request_log", None)
    if isinstance(runner, MasterRunner) and prefix and not getattr(options, "worker_local_records", False):
        rt.collector = install_master(runner, prefix, bool(getattr(options, "record_emit_lag", False)))
    if isinstance(runner, MasterRunner):
        environment.events.worker_report.add_listener(
            lambda client_id, data, **_: rt.stats.merge(data.get("llm_stats") or {}, str(client_id))
        )
    _install_until_ci(environment, runner, rt)
    # `quit` fires after the runner has stopped every user, so interrupted requests are still logged.
    environment.events.quit.add_listener(lambda **_: _on_quit(rt))
    if web_ui is not None:
        install_llm_tab(web_ui, rt.llm_rows, rt.stats)


def _guard_key(rt: LoadgenRuntime, runner: Any, web_ui: Any) -> None:
    """Keep the key from travelling: the master forwards its options to every process that connects as a
    worker, so the master keeps the key only in its runtime; and say so when an opted-out bind exposes
    a web UI or master port while a key is set."""
    options = rt.environment.parsed_options
    if isinstance(runner, MasterRunner) and options is not None and hasattr(options, "api_key"):
        options.api_key = None
    if not rt.credential.key or options is None:
        return
    exposed = []
    if web_ui is not None and not is_loopback(getattr(options, "web_host", None)):
        exposed.append(f"the web UI (--web-host {getattr(options, 'web_host', '') or '*'})")
    if isinstance(runner, MasterRunner) and not is_loopback(getattr(options, "master_bind_host", None)):
        exposed.append(f"the master port (--master-bind-host {getattr(options, 'master_bind_host', '')})")
    if exposed:
        logger.warning(
            "an API key is set and %s listens beyond this machine: anyone who reaches it can start load; "
            "the key still goes only to %s",
            " and ".join(exposed),
            origin(rt.credential.host or DEFAULT_HOST),
        )


def _install_until_ci(environment: Environment, runner: Any, rt: LoadgenRuntime) -> None:
    """--until-ci: workers record and ship, the master (or the only process) decides and stops."""
    settings = rt.settings
    if not settings.until_ci_pct or runner is None:
        return
    role = "worker" if isinstance(runner, WorkerRunner) else "master" if isinstance(runner, MasterRunner) else "local"
    rule = StopRule(settings.until_ci_pct, settings.warmup_s, settings.min_duration_s)
    options = environment.parsed_options
    prefix = settings.request_log or getattr(options, "request_log", None) or getattr(options, "csv_prefix", None)
    rt.until_ci = UntilCI(environment, role, rule, prefix)
    if role == "master":
        runner.register_message(UNTIL_CI_MESSAGE, rt.until_ci.on_message)
    if role != "worker":
        until_ci = rt.until_ci
        environment.events.quit.add_listener(lambda **_: until_ci.finish("stopped"))


def _check_workloads(environment: Environment, rt: LoadgenRuntime) -> None:
    """Load every LLM user's prompt source now, so a bad --docs stops the run at start, naming the path."""
    for user_class in environment.user_classes or []:
        source_of = getattr(user_class, "prompt_source", None)
        if source_of is None:
            continue
        try:
            rt.texts(source_of(rt.settings))
            if rt.settings.traffic.dataset:
                rt.dataset(rt.settings.traffic.dataset)
        except WorkloadError as exc:
            logger.error("%s", exc)
            sys.stderr.write(f"error: {exc}\n")
            sys.exit(1)


def _on_test_start(environment: Environment, **_: Any) -> None:
    rt = runtime_for(environment)
    rt.stats.clear()
    if not isinstance(environment.runner, MasterRunner):
        rt.start_recording()
        rt.open_loop = start_open_loop(environment, rt)
    if rt.until_ci is None and isinstance(environment.runner, WorkerRunner):
        # A worker started on its own gets --until-ci with the options the master forwards at start.
        _install_until_ci(environment, environment.runner, rt)
    if rt.until_ci is not None:
        rt.until_ci.start()
    rt.start_live()
    if not isinstance(environment.runner, WorkerRunner):
        rt.start_llm_csv_writer()


def _on_spawning_complete(environment: Environment | None = None, **_: Any) -> None:
    """Open loop: arrivals start once the whole pool exists, so a ramp never drops them. Every run: what
    exists now (modules, Locust, the users) leaves the cyclic collector's sight (`gc.freeze`), so its full
    collections walk only what the run allocates since: 26 ms → 4.4 ms at 256 streams, and a pause of the
    event loop is a late read, where several token events share one receive time."""
    gc.freeze()
    for rt in [runtime_for(environment)] if environment is not None else list(_runtimes.values()):
        if rt.open_loop is not None:
            gevent.spawn(begin_arrivals, rt.environment, rt.open_loop, on_start=rt.stats.mark_schedule_start)


def _on_test_stopping(environment: Environment, **_: Any) -> None:
    """Open loop: no arrivals while the pool is being stopped (they would count as drops)."""
    rt = runtime_for(environment)
    if rt.open_loop is not None:
        rt.open_loop.stop()


def _on_test_stop(environment: Environment, **_: Any) -> None:
    rt = runtime_for(environment)
    if isinstance(rt.sink, ShippingSink):
        rt.sink.flush(final=True)  # the users are stopped: every record, interrupted ones too, is in
    rt.flush()
    if rt.collector is not None:
        rt.collector.flush()
    if not isinstance(environment.runner, WorkerRunner):
        rt.stop_live()
        rt.write_llm_csv()


def _on_reset_stats(**_: Any) -> None:
    for rt in list(_runtimes.values()):
        rt.stats.reset()


def _on_quitting(environment: Environment) -> None:
    runtime_for(environment).flush()


def _on_quit(rt: LoadgenRuntime) -> None:
    is_worker = isinstance(rt.environment.runner, WorkerRunner)
    if not is_worker:
        rt.stop_live()
        if not getattr(rt.environment.parsed_options, "json", False):
            rt.print_summary()
    rt.close()
    runner = rt.environment.runner
    if rt.collector is not None and isinstance(runner, MasterRunner):
        rt.collector.close(live_workers(runner))
        rt.collector = None
    if not is_worker:
        rt.write_llm_csv()
