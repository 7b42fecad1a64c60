"""Arrival schedules (Poisson, gamma, constant, traces), their options, and the dispatcher's accounting."""

from __future__ import annotations

import itertools
import json
import statistics
import time
from pathlib import Path

import gevent
import gevent.event
import pytest

from analysis.kstest import exponential_cdf, gamma_cdf, ks_test
from loadgen.alarm import make_alarm
from loadgen.arrivals import (
    ArrivalError,
    ArrivalKind,
    ArrivalSpec,
    arrival_offsets,
    load_trace,
    trace_arrivals,
)
from loadgen.openloop import ArrivalSummary, OpenLoop, Ticket
from loadgen.traffic import TrafficSettings


def gaps(spec: ArrivalSpec, n: int) -> list[float]:
    offsets = list(itertools.islice(arrival_offsets(spec), n + 1))
    return [b - a for a, b in itertools.pairwise(offsets)]


def test_poisson_gaps_are_exponential_with_the_rate() -> None:
    sample = gaps(ArrivalSpec(50.0, ArrivalKind.POISSON, seed=7), 3000)
    _, p = ks_test(sample, exponential_cdf(50.0))
    assert p > 0.05
    assert statistics.fmean(sample) == pytest.approx(1 / 50, rel=0.05)


def test_gamma_gaps_follow_the_burstiness_shape_and_not_the_exponential() -> None:
    sample = gaps(ArrivalSpec(50.0, ArrivalKind.GAMMA, burstiness=0.5, seed=3), 3000)
    _, p_gamma = ks_test(sample, gamma_cdf(0.5, (1 / 50) / 0.5))
    _, p_exp = ks_test(sample, exponential_cdf(50.0))
    assert p_gamma > 0.05
    assert p_exp < 1e-6
    cv = statistics.pstdev(sample) / statistics.fmean(sample)
    assert cv == pytest.approx(2**0.5, rel=0.1)  # gamma CV = 1/sqrt(shape)


def test_constant_arrivals_are_evenly_spaced_and_processes_interleave() -> None:
    spec = ArrivalSpec(10.0, ArrivalKind.CONSTANT)
    assert gaps(spec, 100) == pytest.approx([0.1] * 100)
    shares = [spec.for_process(i, 2) for i in range(2)]
    assert [s.rate_per_s for s in shares] == [5.0, 5.0]
    merged = sorted(o for s in shares for o in itertools.islice(arrival_offsets(s), 50))
    assert [b - a for a, b in itertools.pairwise(merged)] == pytest.approx([0.1] * 99)


def test_processes_get_independent_poisson_streams() -> None:
    a, b = (list(itertools.islice(arrival_offsets(ArrivalSpec(10.0).for_process(i, 2)), 5)) for i in range(2))
    assert a != b


@pytest.mark.parametrize(
    ("rate", "burstiness", "message"),
    [(0.0, 1.0, "--arrival-rate"), (-1.0, 1.0, "--arrival-rate"), (5.0, 0.0, "--burstiness")],
)
def test_non_positive_rate_or_burstiness_is_refused(rate: float, burstiness: float, message: str) -> None:
    with pytest.raises(ArrivalError, match=message):
        ArrivalSpec(rate, ArrivalKind.GAMMA, burstiness)


def test_rate_and_trace_together_or_burstiness_without_gamma_are_refused() -> None:
    with pytest.raises(ArrivalError, match="--arrival-rate and --trace"):
        TrafficSettings(arrival_rate=2.0, trace="t.jsonl").check()
    with pytest.raises(ArrivalError, match=r"--burstiness 0\.5 applies only to --arrival gamma"):
        TrafficSettings(arrival_rate=2.0, burstiness=0.5).check()
    TrafficSettings(arrival_rate=2.0, arrival="gamma", burstiness=0.5).check()
    assert not TrafficSettings().open_loop


def write_trace(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_trace_rows_parse_and_are_split_round_robin_and_scaled(tmp_path: Path) -> None:
    rows = [
        {"timestamp": 1000, "input_length": 10, "output_length": 5, "hash_ids": [1, 2]},
        {"timestamp": 1500, "input_length": 20, "output_length": 6},
        {"timestamp": 3000, "input_length": 30, "output_length": 7},
    ]
    trace = load_trace(write_trace(tmp_path / "t.jsonl", rows))
    assert trace[0].hash_ids == (1, 2)
    assert [a.offset_s for a in trace_arrivals(trace, 0.5)] == [0.0, 0.25, 1.0]
    second = list(trace_arrivals(trace, 1.0, index=1, processes=2))
    assert [(a.offset_s, a.row.input_length if a.row else 0) for a in second] == [(0.5, 20)]


ONE = {"input_length": 1, "output_length": 1}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"timestamp": 5, **ONE}, {"timestamp": 4, **ONE}], r"t.jsonl:2: timestamp 4 is earlier"),
        ([{"timestamp": -1, **ONE}], r"t.jsonl:1: timestamp: expected milliseconds >= 0"),
        ([{"timestamp": 0, "input_length": 0, "output_length": 1}], r"t.jsonl:1: input_length: expected an integer"),
        ([{"timestamp": 0, "input_length": 1}], r"t.jsonl:1: output_length"),
        (["{not json"], r"t.jsonl:1: not valid JSON"),
        ([""], r"no rows"),
    ],
)  # fmt: skip
def test_bad_trace_rows_name_file_line_and_expectation(tmp_path: Path, rows: list[object], message: str) -> None:
    with pytest.raises(ArrivalError, match=message):
        load_trace(write_trace(tmp_path / "t.jsonl", rows))


def summary() -> ArrivalSummary:
    return ArrivalSummary("constant", 1.0, 1.0, 1.0, 0, False, 0, 1)


def ticket(t: float) -> Ticket:
    return Ticket(t, 1000.0 + t)


def test_an_arrival_with_every_user_busy_is_dropped_and_counted() -> None:
    drops: list[float] = []
    loop = OpenLoop([], summary(), on_drop=drops.append)
    got: list[Ticket] = []
    waiter = gevent.spawn(lambda: got.append(loop.take()))
    gevent.sleep(0)  # the user is now idle in take()
    assert loop.idle_users == 1
    assert loop.dispatch(ticket(1.0)) is True
    assert loop.dispatch(ticket(2.0)) is False  # the only user is busy with the first
    waiter.join(timeout=5)
    assert got == [ticket(1.0)]
    assert (loop.summary.scheduled, loop.summary.dropped, drops) == (2, 1, [1002.0])


def test_queue_mode_keeps_arrivals_for_the_next_free_user_in_order() -> None:
    loop = OpenLoop([], summary(), queue=True)
    assert loop.dispatch(ticket(1.0)) and loop.dispatch(ticket(2.0))
    assert [loop.take(), loop.take()] == [ticket(1.0), ticket(2.0)]
    assert loop.summary.dropped == 0


def test_the_dispatcher_hands_arrivals_out_on_schedule() -> None:
    from loadgen.arrivals import Arrival

    loop = OpenLoop([Arrival(0.01 * i) for i in range(5)], summary())
    got: list[Ticket] = []

    def user() -> None:
        for _ in range(5):
            got.append(loop.take())

    g = gevent.spawn(user)
    gevent.sleep(0)
    loop.start()
    assert loop.finished.wait(timeout=5)
    g.join(timeout=5)
    assert [round(t.scheduled_s - got[0].scheduled_s, 6) for t in got] == [0.0, 0.01, 0.02, 0.03, 0.04]
    assert loop.summary.dropped == 0


def test_the_alarm_fires_once_not_before_its_moment_less_its_early_margin() -> None:
    fired: list[float] = []
    done = gevent.event.Event()
    alarm = make_alarm(gevent.get_hub().loop, lambda: (fired.append(time.perf_counter()), done.set()))
    try:
        when_s = time.perf_counter() + 0.02
        alarm.at(when_s)
        assert done.wait(timeout=5)
        gevent.sleep(0.03)  # a second firing would land here
    finally:
        alarm.close()
    assert len(fired) == 1 and fired[0] >= when_s - alarm.early_s


def test_an_arrival_handed_to_a_user_told_to_stop_in_that_instant_counts_as_dropped() -> None:
    from types import SimpleNamespace

    from locust.exception import StopUser
    from locust.user.users import LOCUST_STATE_STOPPING

    from loadgen.users import LLMUser

    drops: list[float] = []
    loop = OpenLoop([], summary(), on_drop=drops.append)
    user = SimpleNamespace(_ticket=None, _due_s=None, _state=None, runtime=SimpleNamespace(open_loop=loop))
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(LLMUser.arrival(user))  # type: ignore[arg-type]
        except StopUser:
            outcome.append("stopped")

    g = gevent.spawn(run)
    gevent.sleep(0)  # idle in take()
    user._state = LOCUST_STATE_STOPPING  # Stop, and in the same instant an arrival is handed over
    assert loop.dispatch(ticket(1.0)) is True
    g.join(timeout=5)
    assert outcome == ["stopped"] and user._ticket is None
    assert (loop.summary.scheduled, loop.summary.dropped, drops) == (1, 1, [1001.0])
