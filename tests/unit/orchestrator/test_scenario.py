"""Scenario validation and grid expansion (dry-run level, no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.scenario import (
    GridOverrides,
    ScenarioError,
    expand,
    load_scenario,
    parse_users,
    scenario_from_text,
    with_overrides,
    with_target_urls,
)
from orchestrator.seedenv import scenario_from_env

REPO = Path(__file__).resolve().parents[3]

MINIMAL = """
[scenario]
duration_s = 10
warmup_s = 2

[[targets]]
label = "A"
url = "http://127.0.0.1:9"

[[targets]]
label = "B"
url = "http://127.0.0.1:10"

[[workloads]]
name = "batch"
locustfile = "locustfiles/batch.py"
concurrency = [16, 32]
max_new_tokens = [256]

[[workloads]]
name = "chat"
locustfile = "locustfiles/chat.py"
concurrency = [16]
max_new_tokens = [128]
"""


@pytest.mark.parametrize("name", ["day004_quant_vs_bf16", "day004_practice_reps", "smoke"])
def test_shipped_scenarios_validate(name: str) -> None:
    scenario = load_scenario(REPO / "scenarios" / f"{name}.toml")
    assert scenario.name == name
    assert expand(scenario)


def test_day004_matches_the_seed_tier2_grid() -> None:
    cells = expand(load_scenario(REPO / "scenarios" / "day004_quant_vs_bf16.toml"))
    got = {(c.target.label, c.workload.name, c.users, c.max_new_tokens) for c in cells}
    for label in ("RTX2000-16GB-BF16", "RTX2000-16GB-QUANT"):
        assert {(label, "batch", u, 256) for u in (16, 32)} <= got
        assert {(label, "chat", u, 128) for u in (16, 32)} <= got
    assert len(cells) == 8


def test_interleaved_order_alternates_targets_and_paths_are_stable() -> None:
    text = MINIMAL.replace("warmup_s = 2", 'warmup_s = 2\norder = "interleaved"\nrepeats = 2')
    cells = expand(scenario_from_text(text, "x.toml", "x"))
    assert [c.target.label for c in cells[:4]] == ["A", "B", "A", "B"]
    assert len(cells) == 2 * 2 * 3
    assert str(cells[0].relpath) == "A/batch/c16_m256_r0"


def test_sequential_order_and_only_filter() -> None:
    scenario = scenario_from_text(MINIMAL, "x.toml", "x")
    cells = expand(scenario)
    assert [c.target.label for c in cells] == ["A"] * 3 + ["B"] * 3
    assert str(cells[0].relpath) == "A/batch/c16_m256"
    only = expand(scenario, {"target": "B", "users": "32"})
    assert [(c.target.label, c.users) for c in only] == [("B", 32)]
    with pytest.raises(ScenarioError, match=r"--only colour=...: unknown key \(allowed: target"):
        expand(scenario, {"colour": "red"})


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (("duration_s = 10", "duration_s = 10\nfoo = 1"), r"\[scenario\]: unknown key 'foo' \(allowed: .*duration_s"),
        (
            ("duration_s = 10", 'duration_s = "ten"'),
            r'\[scenario\].duration_s: expected a number of seconds or "auto", got \'ten\'',
        ),
        (('url = "http://127.0.0.1:9"', 'url = "127.0.0.1:9"'), r"\[\[targets\]\] #1.url: expected http"),
        (("concurrency = [16, 32]", "concurrency = [0]"), r"#1.concurrency: expected a non-empty list of positive"),
        (('name = "chat"', 'name = "chat"\napi = "grpc"'), r"#2.api: 'grpc' is not one of completions, chat"),
        (("[scenario]", "[scenaro]\n[scenario]"), r"unknown table 'scenaro'"),
        (("warmup_s = 2", "warmup_s = 20"), r"duration_s > warmup_s"),
    ],
)
def test_invalid_scenarios_name_file_key_and_allowed(mutation: tuple[str, str], message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as info:
        scenario_from_text(MINIMAL.replace(*mutation, 1), "bad.toml", "bad")
    assert str(info.value).startswith("bad.toml")


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[scenario\n")
    with pytest.raises(ScenarioError, match=r"bad.toml: not valid TOML"):
        load_scenario(bad)


def test_target_url_override() -> None:
    scenario = with_target_urls(scenario_from_text(MINIMAL, "x.toml", "x"), {"B": "http://127.0.0.1:55/"})
    assert [t.url for t in scenario.targets] == ["http://127.0.0.1:9", "http://127.0.0.1:55"]
    with pytest.raises(ScenarioError, match=r"no such target .*targets: A, B"):
        with_target_urls(scenario, {"C": "http://x:1"})


def test_grid_overrides_apply_to_every_workload() -> None:
    scenario = scenario_from_text(MINIMAL, "x.toml", "x")
    overrides = GridOverrides(duration_s=30, warmup_s=5, users=parse_users("2,4"), spawn_rate=3)
    changed = with_overrides(scenario, overrides)
    assert (changed.duration_s, changed.warmup_s, changed.spawn_rate) == (30, 5, 3)
    assert {(c.workload.name, c.users) for c in expand(changed)} == {(w, u) for w in ("batch", "chat") for u in (2, 4)}
    assert overrides.recorded() == {"duration_s": 30, "warmup_s": 5, "users": [2, 4], "spawn_rate": 3}
    assert GridOverrides.from_recorded(overrides.recorded()) == overrides
    assert with_overrides(scenario, GridOverrides()) == scenario  # no flag, nothing replaced


def test_a_duration_override_turns_the_auto_stopping_rule_off() -> None:
    auto = load_scenario(REPO / "scenarios" / "smoke.toml")
    assert auto.auto_duration
    fixed = with_overrides(auto, GridOverrides(duration_s=7, warmup_s=2))
    assert not fixed.auto_duration and fixed.duration_s == 7 and fixed.min_duration_s == 0
    assert with_overrides(auto, GridOverrides(warmup_s=3)).auto_duration  # the cap and rule stay


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (GridOverrides(duration_s=0), r"--duration 0: expected seconds > 0"),
        (GridOverrides(duration_s=float("nan")), r"--duration nan: expected seconds > 0"),
        (GridOverrides(warmup_s=10), r"--warmup 10: expected 0 <= warm-up < duration \(10 s\)"),
        (GridOverrides(duration_s=4, warmup_s=-1), r"--warmup -1"),
        (GridOverrides(spawn_rate=0), r"--spawn-rate 0: expected users per second > 0"),
    ],
)
def test_bad_grid_overrides_name_the_flag(overrides: GridOverrides, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        with_overrides(scenario_from_text(MINIMAL, "x.toml", "x"), overrides)


@pytest.mark.parametrize("text", ["0", "a,2", "", "4,,8", "-2"])
def test_bad_users_lists(text: str) -> None:
    with pytest.raises(ScenarioError, match=rf"--users {text}: expected positive integers"):
        parse_users(text)


def test_seed_environment_interface() -> None:
    env = {"URL": "http://127.0.0.1:8000/v1/completions", "GPU_NAME": "RTX2000-16GB-BF16", "OUT_CSV": "/tmp/o.csv"}
    scenario, out = scenario_from_env(env)
    cells = expand(scenario)
    assert [(c.target.label, c.target.url, c.workload.api, c.users, c.max_new_tokens) for c in cells] == [
        ("RTX2000-16GB-BF16", "http://127.0.0.1:8000", "completions", 16, 256),
        ("RTX2000-16GB-BF16", "http://127.0.0.1:8000", "completions", 32, 256),
    ]
    assert out == Path("/tmp/o.csv")
    chat, _ = scenario_from_env({**env, "URL": "http://h:1/v1/chat/completions", "CONCURRENCY": "8,16"})
    assert [(c.workload.api, c.users) for c in expand(chat)] == [("chat", 8), ("chat", 16)]
    with pytest.raises(ScenarioError, match="CONCURRENCY"):
        scenario_from_env({**env, "CONCURRENCY": "many"})


def test_workload_options_are_checked() -> None:
    ok = MINIMAL.replace('name = "chat"', 'name = "chat"\noptions = { prompt_tokens = 512, ignore_eos = false }')
    scenario = scenario_from_text(ok, "x.toml", "x")
    assert dict(scenario.workloads[1].options) == {"prompt_tokens": 512, "ignore_eos": False}
    bad = MINIMAL.replace('name = "chat"', 'name = "chat"\noptions = { prompt_token = 512 }')
    with pytest.raises(
        ScenarioError, match=r"#2.options: unknown key 'prompt_token' \(allowed: .*chat_turns, dataset, docs"
    ):
        scenario_from_text(bad, "x.toml", "x")
    ranged = MINIMAL.replace('name = "chat"', 'name = "chat"\noptions = { output_range_ratio = 0.5 }')
    assert dict(scenario_from_text(ranged, "x.toml", "x").workloads[1].options) == {"output_range_ratio": 0.5}
    with pytest.raises(ScenarioError, match=r"x.toml: \[\[workloads\]\] #2.options.output_range_ratio: expected"):
        scenario_from_text(ranged.replace("0.5", "1.0"), "x.toml", "x")


def test_auto_duration_runs_until_the_ci_target_capped_at_max_duration(tmp_path: Path) -> None:
    from orchestrator.grid import locust_command

    auto = MINIMAL.replace("duration_s = 10", 'duration_s = "auto"\nmax_duration_s = 300\nmin_duration_s = 30')
    sc = scenario_from_text(auto, "s.toml", "s")
    assert sc.auto_duration and sc.target_ci_pct == 5.0 and sc.duration_s == 300 and sc.min_duration_s == 30
    cmd = locust_command(sc, expand(sc)[0], tmp_path, "m")
    assert cmd[cmd.index("-t") + 1] == "300s" and cmd[cmd.index("--until-ci") + 1] == "5"
    assert cmd[cmd.index("--warmup") + 1] == "2" and cmd[cmd.index("--min-duration") + 1] == "30"
    fixed = scenario_from_text(MINIMAL, "s.toml", "s")
    assert not fixed.auto_duration and "--until-ci" not in locust_command(fixed, expand(fixed)[0], tmp_path, "m")


@pytest.mark.parametrize(
    ("replacement", "message"),
    [
        ('duration_s = "auto"', "needs max_duration_s"),
        ('duration_s = "long"', 'expected a number of seconds or "auto"'),
        ("duration_s = 10\ntarget_ci_pct = 5", 'only apply with duration_s = "auto"'),
        ('duration_s = "auto"\nmax_duration_s = 60\ntarget_ci_pct = 0', "target_ci_pct: expected a percentage"),
        ('duration_s = "auto"\nmax_duration_s = 60\nmin_duration_s = 90', "min_duration_s"),
    ],
)
def test_auto_duration_errors(replacement: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(")):
        scenario_from_text(MINIMAL.replace("duration_s = 10", replacement), "s.toml", "s")


def test_distributed_cells_are_master_runs_that_wait_for_their_workers(tmp_path: Path) -> None:
    from orchestrator.grid import locust_command

    text = MINIMAL + '\n[distributed]\nexpect_workers = 3\nmaster_bind_host = "10.0.0.5"\nmaster_bind_port = 6000\n'
    scenario = scenario_from_text(text, "s.toml", "s")
    cmd = locust_command(scenario, expand(scenario)[0], tmp_path, "m")
    joined = " ".join(cmd)
    assert "--master --expect-workers 3 --master-bind-host 10.0.0.5 --master-bind-port 6000" in joined
    assert "--expect-workers-max-wait 300" in joined  # a cell whose workers never come fails, it does not hang
    assert "--processes" not in cmd
    default = scenario_from_text(MINIMAL + "\n[distributed]\nexpect_workers = 2\n", "s.toml", "s")
    assert default.distributed is not None
    assert (default.distributed.master_bind_host, default.distributed.master_bind_port) == ("0.0.0.0", 5557)
    patient = scenario_from_text(MINIMAL + "\n[distributed]\nexpect_workers = 2\nworkers_wait_s = 900\n", "s.toml", "s")
    assert "--expect-workers-max-wait 900" in " ".join(locust_command(patient, expand(patient)[0], tmp_path, "m"))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[distributed]\n", "missing required key 'expect_workers'"),
        ("[distributed]\nexpect_workers = 0\n", "expect_workers: expected an integer >= 1"),
        ("[distributed]\nexpect_workers = 2\nmaster_bind_port = 70000\n", "expected a TCP port"),
        ("[distributed]\nexpect_workers = 2\nhosts = 3\n", "unknown key"),
        ("[distributed]\nexpect_workers = 2\nworkers_wait_s = 0\n", "workers_wait_s: expected whole seconds >= 1"),
    ],
)
def test_distributed_errors(table: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario_from_text(MINIMAL + "\n" + table, "s.toml", "s")


def test_distributed_excludes_local_processes() -> None:
    text = MINIMAL.replace("warmup_s = 2", "warmup_s = 2\nworkers = 2") + "\n[distributed]\nexpect_workers = 2\n"
    with pytest.raises(ScenarioError, match="exclude each other"):
        scenario_from_text(text, "s.toml", "s")


def test_local_processes_meet_on_the_port_the_grid_picked(tmp_path: Path) -> None:
    from orchestrator.grid import locust_command

    sc = scenario_from_text(MINIMAL.replace("warmup_s = 2", "warmup_s = 2\nworkers = 2"), "s.toml", "s")
    cmd = " ".join(locust_command(sc, expand(sc)[0], tmp_path, "m", local_port=41234))
    assert "--processes 2 --master-bind-port 41234 --master-port 41234" in cmd
    assert "--master-port" not in locust_command(sc, expand(sc)[0], tmp_path, "m")  # dry run: no port yet
