"""The `[quality]` table, the seeded prompt set, and reading vLLM's echoed prompt logprobs."""

from __future__ import annotations

import pytest

from orchestrator.quality import build_prompts, reference_label, reference_logprobs
from orchestrator.scenario import ScenarioError, scenario_from_text
from tests.unit.orchestrator.test_scenario import MINIMAL


def _scenario(quality: str):  # type: ignore[no-untyped-def]
    return scenario_from_text(MINIMAL + "\n[quality]\n" + quality, "t.toml", "t")


def test_defaults_and_values() -> None:
    assert scenario_from_text(MINIMAL, "t.toml", "t").quality.enabled is False
    s = _scenario('enabled = true\nprompts = 3\nmax_new_tokens = [512]\nreference = "B"\nthreshold = 0.9')
    q = s.quality
    assert (q.enabled, q.prompts, q.max_new_tokens, q.reference, q.threshold) == (True, 3, (512,), "B", 0.9)
    assert reference_label(s) == "B"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 1", "unknown key 'colour'"),
        ('reference = "Z"', "'Z' is not a target (targets: A, B)"),
        ('workloads = ["nope"]', "workloads: unknown ['nope'] (workloads: batch, chat)"),
        ("threshold = 2", "threshold: expected a number in [0, 1]"),
        ("prompts = 0", "prompts: expected an integer >= 1"),
        ('enabled = "yes"', "enabled: expected bool"),
    ],
)
def test_invalid_quality_tables_name_file_and_key(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=r"t.toml: \[quality\]") as info:
        _scenario(text)
    assert message in str(info.value)


def test_prompt_set_is_seeded_and_covers_workloads_and_tokens() -> None:
    s = _scenario("prompts = 4\nseed = 9")
    prompts = build_prompts(s)
    assert prompts == build_prompts(s)  # same seed, same set
    batch = [p for p in prompts if p.workload == "batch"]
    chat = [p for p in prompts if p.workload == "chat"]
    assert len(batch) == 4 and len(chat) == 4  # one max_new_tokens each in MINIMAL
    assert {p.max_new_tokens for p in batch} == {256} and {p.max_new_tokens for p in chat} == {128}
    assert all(isinstance(p.prompt, str) and p.prompt.endswith("Summary:") for p in batch)
    assert all(isinstance(p.prompt, list) and p.prompt[0]["role"] == "user" for p in chat)
    other = build_prompts(_scenario("prompts = 4\nseed = 10"))
    assert [p.prompt_id for p in other] != [p.prompt_id for p in prompts]
    assert len(build_prompts(_scenario("prompts = 2\nmax_new_tokens = [128, 512]"))) == 2 * 2 * 2


def test_reference_logprobs_reads_vllm_echo_layout() -> None:
    # vLLM: echo + logprobs → prompt tokens (BOS first, logprob None), then the generated token(s).
    answer = {
        "choices": [
            {
                "text": "Q: hi\nA: Hello there!",
                "logprobs": {
                    "tokens": ["<|begin_of_text|>", "Q", ":", " hi", "\n", "A", ":", " Hello", " there", "!", " How"],
                    "token_logprobs": [None, -5.0, -1.0, -2.0, -0.5, -0.1, -0.2, -1.5, -0.5, -1.0, -0.3],
                    "text_offset": [0, 17, 18, 19, 22, 23, 24, 25, 31, 37, 38],
                    "top_logprobs": [None] + [{}] * 10,
                },
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1},
    }
    assert reference_logprobs(answer, " Hello there!") == [-1.5, -0.5, -1.0]
    assert reference_logprobs({"choices": [{"text": "x", "logprobs": None}]}, "x") is None
