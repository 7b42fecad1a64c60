"""Quality metrics against hand-computed cases: tokens, LCS, ROUGE-L, divergence, summaries and cost."""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest

from analysis.quality import per_prompt_table, quality_adjusted_cost, summary_table, worst_examples
from analysis.textsim import (
    compare_texts,
    first_divergence,
    lcs_length,
    pieces,
    rouge_l_f1,
    rouge_tokens,
    token_agreement,
)


def _lcs_dp(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def test_pieces_round_trip_and_split() -> None:
    text = "The cat, 2024 cats!  ok"
    assert pieces(text) == ["The", " cat", ",", " 202", "4", " cats", "!", " ", " ok"]
    assert "".join(pieces(text)) == text
    assert rouge_tokens("The Cat's 2 hats!") == ["the", "cat", "s", "2", "hats"]


def test_lcs_hand_cases_and_random_against_dynamic_programming() -> None:
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # the textbook example (BCBA)
    assert lcs_length([], list("abc")) == 0
    assert lcs_length(list("abc"), list("abc")) == 3
    rng = random.Random(7)
    for _ in range(200):
        a = [rng.choice("abcd") for _ in range(rng.randrange(0, 70))]
        b = [rng.choice("abcd") for _ in range(rng.randrange(0, 70))]
        assert lcs_length(a, b) == _lcs_dp(a, b)


def test_rouge_l_hand_computed() -> None:
    # reference 6 words, candidate 4, LCS "the cat on mat" = 4 → P = 1, R = 4/6, F = 2·1·(2/3)/(5/3) = 0.8
    ref = rouge_tokens("the cat sat on the mat")
    cand = rouge_tokens("the cat on mat")
    assert rouge_l_f1(ref, cand) == pytest.approx(0.8)
    assert rouge_l_f1([], []) == 1.0
    assert rouge_l_f1(["a"], ["b"]) == 0.0


def test_divergence_and_agreement() -> None:
    assert first_divergence(["a", "b", "c"], ["a", "x", "c"]) == 1
    assert first_divergence(["a", "b"], ["a", "b"]) is None
    assert first_divergence(["a", "b"], ["a", "b", "c"]) == 2  # a prefix ends at its length
    assert token_agreement(["a", "b", "c", "d"], ["a", "x", "c"]) == pytest.approx(2 / 4)
    sim = compare_texts(" One two three.", " One two four five.")
    assert (sim.exact_match, sim.first_divergence_token, sim.reference_tokens, sim.candidate_tokens) == (
        False,
        2,
        4,
        5,
    )
    assert sim.length_ratio == pytest.approx(5 / 4)
    # ROUGE words: one two three / one two four five → LCS 2, P = 2/4, R = 2/3, F = 2·(1/2)(2/3)/(7/6) = 4/7
    assert sim.rouge_l_f1 == pytest.approx(4 / 7)


def _outputs() -> pd.DataFrame:
    rows = [
        # reference side: its output and the reference's own logprob scores (sum over 4 tokens)
        ("REF", "p1", 16, " a b c d", -4.0, 4),
        ("REF", "p2", 16, " a b c d", -2.0, 4),
        ("REF", "p3", 16, " x y", -1.0, 2),
        # candidate: p1 identical, p2 diverges at token 2, p3 failed
        ("CAND", "p1", 16, " a b c d", -6.0, 4),
        ("CAND", "p2", 16, " a b z w", -4.0, 4),
        ("CAND", "p3", 16, None, math.nan, math.nan),
    ]
    frame = pd.DataFrame(
        rows, columns=["target_label", "prompt_id", "max_new_tokens", "text", "ref_logprob_sum", "ref_scored_tokens"]
    )
    frame["ref_mean_logprob"] = frame["ref_logprob_sum"] / frame["ref_scored_tokens"]
    frame["error"] = [None, None, None, None, None, "HTTP 500: boom"]
    frame["workload"] = "chat"
    frame["prompt"] = "q"
    return frame


def test_per_prompt_summary_and_worst() -> None:
    table = per_prompt_table(_outputs(), "REF", threshold=0.8)
    assert list(table["prompt_id"]) == ["p1", "p2", "p3"]
    p1, p2, p3 = (table.iloc[i] for i in range(3))
    assert bool(p1["exact_match"]) and pd.isna(p1["first_divergence_token"]) and p1["rouge_l_f1"] == 1.0
    assert p1["delta_mean_logprob"] == pytest.approx(-0.5)  # −6/4 − (−4/4)
    assert p1["perplexity_ratio"] == pytest.approx(math.exp(0.5))
    assert p2["first_divergence_token"] == 2 and p2["rouge_l_f1"] == pytest.approx(0.5)  # LCS 2 of 4 and 4
    assert not p2["accepted"] and p3["error"] == "HTTP 500: boom" and not p3["accepted"]
    summary = summary_table(table)
    overall = summary[summary["workload"] == "all"].iloc[0]
    assert overall["prompts"] == 3 and overall["errors"] == 1
    assert overall["exact_match_rate"] == pytest.approx(0.5)
    assert overall["acceptance_rate"] == pytest.approx(1 / 3)  # a failed request is not accepted
    # token-weighted: (−6 − 4) − (−4 − 2) = −4 over 8 tokens
    assert overall["delta_mean_logprob"] == pytest.approx(-0.5)
    worst = worst_examples(table, 1)
    assert list(worst["prompt_id"]) == ["p2"]
    # p1 matches the reference exactly and p3 failed: neither is an example, however many are asked for
    assert list(worst_examples(table, 5)["prompt_id"]) == ["p2"]


def test_quality_adjusted_cost_divides_by_acceptance() -> None:
    cost = pd.DataFrame(
        {
            "target_label": ["REF", "CAND", "CAND"],
            "workload": ["chat", "chat", "batch"],
            "concurrency": [16, 16, 32],
            "max_new_tokens": [16, 16, 256],
            "usd_per_1m_tokens": [1.0, 0.6, 0.5],
        }
    )
    summary = summary_table(per_prompt_table(_outputs(), "REF", threshold=0.8))
    adjusted = quality_adjusted_cost(cost, summary, "REF")
    assert list(adjusted["acceptance_rate"]) == pytest.approx([1.0, 1 / 3, 1 / 3])  # batch: the overall rate
    assert list(adjusted["quality_adjusted_usd_per_1m_tokens"]) == pytest.approx([1.0, 1.8, 1.5])
