"""Datasets: ShareGPT-format JSON (the shipped sample and real-format edge cases), JSONL and CSV rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgen.datasets import DatasetRequest, load_dataset
from loadgen.workloads import DATA_DIR, PromptFitter, PromptShape, WorkloadError, shared_prefix_groups

SAMPLE = DATA_DIR / "sharegpt_sample.json"


def test_the_shipped_sample_parses_with_varied_output_lengths() -> None:
    rows = load_dataset(SAMPLE)
    assert len(rows) == 24
    lengths = {r.max_tokens(4.0, 128) for r in rows}
    assert len(lengths) > 5 and min(lengths) < 40 < max(lengths)
    assert any(r.follow_ups for r in rows)


def test_sharegpt_records_as_published_parse(tmp_path: Path) -> None:
    # The shape of ShareGPT_V3_unfiltered_cleaned_split.json: ids, a "conversations" list whose turns use
    # from/value, some conversations starting with the model or holding a single turn (skipped).
    data = [
        {"id": "a1", "conversations": [{"from": "human", "value": "Hi there"}, {"from": "gpt", "value": "x" * 40},
                                       {"from": "human", "value": "More?"}, {"from": "gpt", "value": "y"}]},
        {"id": "a2", "conversations": [{"from": "gpt", "value": "I start"}, {"from": "human", "value": "then me"},
                                       {"from": "gpt", "value": "z" * 8}]},
        {"id": "a3", "conversations": [{"from": "human", "value": "alone"}]},
        {"id": "a4", "conversations": []},
        {"id": "a5", "conversation": [{"role": "user", "content": "openai style"},
                                      {"role": "assistant", "content": "ok"}]},
    ]  # fmt: skip
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(data))
    rows = load_dataset(path)
    assert [r.prompt for r in rows] == ["Hi there", "then me", "openai style"]
    assert rows[0] == DatasetRequest("Hi there", reply_chars=40, follow_ups=("More?",))
    assert rows[0].max_tokens(4.0, 99) == 10 and rows[1].max_tokens(4.0, 99) == 2


def test_jsonl_and_csv_rows_with_optional_output_tokens(tmp_path: Path) -> None:
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"prompt": "one", "output_tokens": 7}\n\n{"prompt": "two"}\n')
    assert [(r.prompt, r.max_tokens(4.0, 50)) for r in load_dataset(jsonl)] == [("one", 7), ("two", 50)]
    table = tmp_path / "d.csv"
    table.write_text('prompt,output_tokens\n"a, quoted",3\nb,\n')
    assert [(r.prompt, r.max_tokens(4.0, 50)) for r in load_dataset(table)] == [("a, quoted", 3), ("b", 50)]


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("d.txt", "hello", r"unknown format '\.txt'; expected ShareGPT-format \.json"),
        ("d.json", '{"not": "a list"}', "expected a JSON list of conversations"),
        ("d.json", "[{]", r"d\.json:1: not valid JSON"),
        ("d.json", '[{"conversations": [{"from": "gpt", "value": "only"}]}]', "no usable rows"),
        ("d.jsonl", '{"prompt": "x"}\n{"prompt": "y", "output_tokens": 0}\n', r"d\.jsonl:2: output_tokens"),
        ("d.jsonl", '{"text": "x"}\n', r"d\.jsonl:1: expected a string 'prompt'"),
        ("d.csv", "text\nx\n", r"no 'prompt' column \(columns found: text\)"),
    ],
)
def test_bad_datasets_name_the_file_and_what_is_expected(tmp_path: Path, name: str, body: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(body)
    with pytest.raises(WorkloadError, match=message):
        load_dataset(path)


def test_prefix_groups_are_distinct_and_every_prompt_uses_one_of_them() -> None:
    texts = ["alpha " * 50, "beta " * 50, "gamma " * 50]
    groups = shared_prefix_groups(texts, PromptFitter(20), 4)
    assert len(set(groups)) == 4 and len({g[:12] for g in groups}) == 4
    shape = PromptShape(unique=False, shared_prefixes=groups)
    prompts = [shape.apply("q") for _ in range(200)]
    used = {next(g for g in groups if p.startswith(g)) for p in prompts}
    assert used == set(groups)
    assert shared_prefix_groups(texts, PromptFitter(20), 1) == (shared_prefix_groups(texts, PromptFitter(20), 1)[0],)
