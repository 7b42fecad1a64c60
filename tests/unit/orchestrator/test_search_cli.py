"""`loadgen search` refuses bad input before starting anything: exit 2 with a message naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.grid import GridRunner
from orchestrator.scenario import DEFAULT_POOL, ScenarioError, scenario_from_text
from orchestrator.search import SearchPlan
from orchestrator.searchrun import SearchLine, SearchRunner, attempt_scenario
from runformat.search import Over, parse_slo

REPO = Path(__file__).resolve().parents[3]
SMOKE = str(REPO / "scenarios" / "smoke.toml")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slo", "ttft_p99_ms<=1500"], "SLO 'ttft_p99_ms<=1500': unknown metric"),
        (["--slo", "ttft_p95_ms=>1500"], "SLO 'ttft_p95_ms=>1500': expected METRIC<=NUMBER"),
        (["--slo", "ttft_p95_ms<=1500", "--max", "4", "--start", "8"], "--max 4 is below the first probe (8 users)"),
        (["--slo", "ttft_p95_ms<=1500", "--max", "0.5"], "--max 0.5 is below the first probe (1 users)"),
        (["--slo", "ttft_p95_ms<=1500", "--pool", "8"], "applies to a rate search only"),
        (["--slo", "ttft_p95_ms<=1500", "--over", "rate", "--start", "4", "--max", "2"], "(4 req/s)"),
        ([], "no SLO given"),
        (["--slo", "ttft_p95_ms<=1500", "--only", "target=NOPE"], "no target × workload × max_new_tokens matches"),
    ],
)
def test_bad_input_is_exit_2_with_a_message(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["search", SMOKE, "--out", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not any(tmp_path.iterdir())  # nothing started, no run directory


BASE = """
[scenario]
duration_s = "auto"
max_duration_s = 20
min_duration_s = 4
target_ci_pct = 8
[[targets]]
label = "A"
url = "http://127.0.0.1:1"
[[workloads]]
name = "batch"
locustfile = "locustfiles/batch.py"
concurrency = [1]
max_new_tokens = [8]
"""


def test_the_search_table_is_validated_and_parsed() -> None:
    text = BASE + '[search]\nslo = ["ttft_p95_ms<=1500", "error_rate<=0.01"]\nover = "concurrency"\nmax = 64\n'
    search = scenario_from_text(text, "s.toml", "s").search
    assert [s.text for s in search.slos] == ["ttft_p95_ms<=1500", "error_rate<=0.01"]
    assert search.over is Over.CONCURRENCY and search.max_load == 64 and search.start is None
    for table, message in [
        ('[search]\nslo = ["tpot<=3"]\n', "s.toml: [search].slo: SLO 'tpot<=3': unknown metric"),
        ('[search]\nover = "users"\n', "[search].over: 'users' is not one of concurrency, rate"),
        ("[search]\nsteps = 3\n", "[search]: unknown key 'steps'"),
        ("[search]\nmax = 0\n", "[search].max: expected a number > 0"),
    ]:
        with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")):
            scenario_from_text(BASE + table, "s.toml", "s")


def test_a_rerun_attempt_runs_longer_with_a_tighter_ci() -> None:
    scenario = scenario_from_text(BASE, "s.toml", "s")
    assert attempt_scenario(scenario, 1) == scenario
    second = attempt_scenario(scenario, 2)
    assert (second.duration_s, second.target_ci_pct, second.min_duration_s) == (40.0, 4.0, 20.0)
    third = attempt_scenario(scenario, 3)
    assert (third.duration_s, third.target_ci_pct, third.min_duration_s) == (80.0, 2.0, 40.0)


def test_a_rate_probe_is_an_open_loop_cell_over_the_plan_or_workload_pool(tmp_path: Path) -> None:
    def probe_cell(text: str, plan: SearchPlan) -> tuple[int, float | None, str]:
        scenario = scenario_from_text(text, "s.toml", "s")
        runner = SearchRunner(GridRunner(scenario, tmp_path), plan, (parse_slo("ttft_p95_ms<=1500"),), judge=None)  # type: ignore[arg-type]
        cell = runner.cell(SearchLine(scenario.targets[0], scenario.workloads[0], 8), 2.5)
        return cell.users, cell.rate, cell.relpath.as_posix()

    rate = SearchPlan(over=Over.RATE, start=0.5, max_load=64, min_step=0.1)
    assert probe_cell(BASE, rate) == (DEFAULT_POOL, 2.5, "A/batch/r2.5_m8")  # closed-loop workload: default pool
    open_loop = BASE.replace("concurrency = [1]", "concurrency = [4, 16]\nrates = [1.0]")
    assert probe_cell(open_loop, rate) == (16, 2.5, "A/batch/r2.5_c16_m8")  # its largest pool
    assert probe_cell(open_loop, SearchPlan(over=Over.RATE, start=0.5, pool=3))[:2] == (3, 2.5)  # [search].pool
    assert probe_cell(BASE, SearchPlan(start=2, max_load=8)) == (2, None, "A/batch/c2_m8")  # concurrency: users


def test_the_search_table_takes_a_pool() -> None:
    assert scenario_from_text(BASE + '[search]\nover = "rate"\npool = 12\n', "s.toml", "s").search.pool == 12
    with pytest.raises(ScenarioError, match=r"\[search\].pool: expected a number > 0"):
        scenario_from_text(BASE + "[search]\npool = 0\n", "s.toml", "s")


def test_a_resume_keeps_the_subset_the_search_ran(tmp_path: Path) -> None:
    import json

    from orchestrator.searchcli import _resume
    from tests.unit.orchestrator.test_scenario import MINIMAL

    scenario = scenario_from_text(MINIMAL, "t.toml", "t")
    plan = SearchPlan(over=Over.CONCURRENCY, start=4.0, max_load=64.0)
    searcher = SearchRunner(
        GridRunner(scenario, tmp_path),
        plan,
        (parse_slo("p95_latency_ms<=3000"),),
        lambda _: None,  # type: ignore[arg-type, return-value]
        only={"workload": "chat"},
    )
    (tmp_path / "search.json").write_text(json.dumps(searcher.record))
    (tmp_path / "scenario.toml").write_text(MINIMAL)
    _, slos, resumed_plan, only = _resume(tmp_path)
    assert only == {"workload": "chat"}
    assert [s.text for s in slos] == ["p95_latency_ms<=3000"] and resumed_plan.start == 4.0
