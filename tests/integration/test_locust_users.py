"""Both users at 16 and 32 users, multi-turn chat, --processes 2, and bad --docs input."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.locustrun import generation_tokens_total, run_locust

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("locustfile", "name", "users", "api"),
    [
        ("batch.py", "batch /v1/completions", 16, "completions"),
        ("batch.py", "batch /v1/chat/completions", 32, "chat"),
        ("chat.py", "chat /v1/completions", 32, "completions"),
        ("chat.py", "chat /v1/chat/completions", 16, "chat"),
    ],
)
def test_users_against_the_default_profile(  # type: ignore[no-untyped-def]
    sim, tmp_path: Path, locustfile: str, name: str, users: int, api: str
) -> None:
    run = run_locust(tmp_path, locustfile, sim.url, "--api", api, "--max-new-tokens", "24", users=users, run_time="5s")
    assert run.proc.returncode == 0, run.output[-3000:]
    reqs = run.requests()
    assert len(reqs) >= users and reqs.success.all(), reqs.error.value_counts()
    assert (reqs.output_tokens == 24).all() and (reqs.api == api).all()
    assert reqs.user_id.nunique() == users
    assert (reqs.prompt_tokens > 0).all()
    # Locust's end-of-run JSON, not its CSV: a batch request can outlast the CSV's last write
    entry = next(e for e in run.final_json()["stats"] if e["name"] == name)
    assert entry["num_requests"] > 0 and entry["total_content_length"] == 24 * entry["num_requests"]
    assert "Traceback" not in run.output


def test_multi_turn_chat_resends_history(sim, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = run_locust(
        tmp_path, "chat.py", sim.url, "--api", "chat", "--chat-turns", "3", "--max-new-tokens", "16",
        users=2, run_time="4s",
    )  # fmt: skip
    assert run.proc.returncode == 0, run.output[-3000:]
    reqs = run.requests()
    assert reqs.success.all()
    # Later turns carry the earlier ones, so prompts grow within a conversation.
    per_user = reqs.sort_values("t_send_s").groupby("user_id").prompt_tokens.apply(list)
    assert any(p[1] > p[0] for p in per_user if len(p) >= 2)


def test_processes_2_merges_stats_and_keeps_every_record(sim, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = generation_tokens_total(sim.url)
    run = run_locust(
        tmp_path, "batch.py", sim.url, "--processes", "2", "--max-new-tokens", "16", users=8, run_time="6s"
    )
    after = generation_tokens_total(sim.url)
    assert run.proc.returncode == 0, run.output[-3000:]
    assert len(run.request_files()) == 2 and len(run.request_files("client")) == 2
    reqs = run.requests()
    assert reqs.success.all() and reqs.worker_id.nunique() == 2
    assert after - before == reqs.output_tokens.sum()
    # The master merges the workers' LLM stats. Like Locust's own, they can miss requests that end more
    # than 0.5 s after -t (the master waits that long for final worker reports); request logs cannot.
    llm = {r["name"]: r for r in run.llm_stats()}
    stats = {r["Name"]: r for r in run.locust_stats()}
    assert 0 < int(llm["Aggregated"]["requests"]) <= len(reqs)
    assert 0 < int(stats["Aggregated"]["Request Count"]) <= len(reqs)


@pytest.mark.parametrize(("content", "message"), [(None, "does not exist"), ("", "contains no texts")])
def test_bad_docs_stop_the_run_at_start(tmp_path: Path, content: str | None, message: str) -> None:
    docs = tmp_path / "my_docs.txt"
    if content is not None:
        docs.write_text(content)
    run = run_locust(tmp_path, "batch.py", "http://127.0.0.1:9", "--docs", str(docs), run_time="30s", timeout_s=30)
    assert run.proc.returncode != 0
    assert str(docs) in run.proc.stderr and message in run.proc.stderr
