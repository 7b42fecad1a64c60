"""The report's KPI cards: one per target, figures with their 95% CIs, changes with CI and verdict."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analysis.bundle import Analysis, Options, analyse
from analysis.cost import Headline
from analysis.glance import kpi_cards
from analysis.report import build_context, half_width
from analysis.run import load_run
from analysis.textformat import significant
from tests.unit.analysis.runbuilder import BF16, QUANT, build_run

CELLS = (Headline("Chat", "chat", 16, 128), Headline("Batch", "batch", 32, 256))


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory) -> Analysis:
    run = build_run(tmp_path_factory.mktemp("glance"), failed=((QUANT, "chat", 32),))
    return analyse(load_run(run), Options())


def _cards(a: Analysis, **kw: Any) -> list[dict[str, Any]]:
    return kpi_cards(a.run.capacity, a.cost, CELLS, a.compare, a.baseline, a.candidate, ("BF16", "Quant"), **kw)


def test_one_card_per_target_with_ci_where_the_cell_has_one(analysis: Analysis) -> None:
    cards = _cards(analysis)
    assert [(c["label"], c["role"], c["name"]) for c in cards] == [
        (BF16, "baseline", "BF16"),
        (QUANT, "candidate", "Quant"),
    ]
    quant_chat = cards[1]["cells"][0]
    assert (quant_chat["title"], quant_chat["concurrency"], quant_chat["max_new_tokens"]) == ("Chat", 16, 128)
    row = analysis.run.capacity[
        (analysis.run.capacity["target_label"] == QUANT)
        & (analysis.run.capacity["workload"] == "chat")
        & (analysis.run.capacity["concurrency"] == 16)
    ].iloc[0]
    figures = {f["metric"]: f for f in quant_chat["figures"]}
    assert figures["throughput_tok_s"]["value"] == f"{row['throughput_tok_s']:,.1f}"
    hw = half_width({str(k): v for k, v in row.items()}, "p95_latency_ms")
    assert not math.isnan(hw)
    assert figures["p95_latency_ms"]["ci"] == f"{hw:,.0f}"
    cost = analysis.cost
    usd = cost[(cost["target_label"] == QUANT) & (cost["workload"] == "chat") & (cost["concurrency"] == 16)]
    assert quant_chat["usd_per_1m"] == significant(usd["usd_per_1m_tokens"].iloc[0])  # 3 significant digits
    bf16_chat = cards[0]["cells"][0]
    assert all(f["ci"] is None for f in bf16_chat["figures"])  # this builder's BF16 windows are too short
    assert bf16_chat["adequate"] is False and bf16_chat["why"]


def test_only_the_candidate_carries_changes_each_with_its_verdict(analysis: Analysis) -> None:
    baseline, candidate = _cards(analysis)
    assert all(not cell["changes"] for cell in baseline["cells"])
    changes = candidate["cells"][0]["changes"]
    cmp = analysis.compare
    row = cmp[(cmp["workload"] == "chat") & (cmp["concurrency"] == 16)].iloc[0]
    assert changes[0] == {
        "title": "Throughput",
        "text": row["throughput_tok_s_change"],
        "verdict": row["throughput_tok_s_verdict"],
    }
    assert changes[-1]["title"] == "$/1M savings"
    assert changes[-1]["text"].endswith(row["savings_verdict"])


def test_chosen_cells_and_nearest_tested(analysis: Analysis) -> None:
    cards = kpi_cards(
        analysis.run.capacity,
        analysis.cost,
        (Headline("Chat", "chat", 32, 128), Headline("Batch", "batch", 64, 256)),
        analysis.compare,
    )
    chat, batch = cards[0]["cells"]
    assert (chat["concurrency"], chat["exact"]) == (32, True)
    assert (batch["concurrency"], batch["exact"], batch["wanted"]) == (32, False, "64x256")
    quant_chat32 = cards[1]["cells"][0]  # every request failed there
    assert quant_chat32["has_data"] is False


def test_capacity_under_slo_and_quality_acceptance(analysis: Analysis) -> None:
    search = {
        "unit": "users",
        "rows": [
            {
                "target_label": QUANT,
                "workload": "chat",
                "max_new_tokens": 128,
                "capacity": 24.0,
                "failing_load": 28.0,
                "slos": "ttft_p95_ms<=500",
                "binding_slo": "ttft_p95_ms<=500",
                "stop_reason": "ok",
            },
            {
                "target_label": BF16,
                "workload": "chat",
                "max_new_tokens": 128,
                "capacity": None,
                "failing_load": None,
                "slos": "ttft_p95_ms<=500",
                "binding_slo": "",
                "stop_reason": "fails at 1",
            },
        ],
    }
    quality = pd.DataFrame(
        [{"target_label": QUANT, "workload": "chat", "max_new_tokens": 128, "prompts": 20, "acceptance_rate": 0.85}]
    )
    bf16, quant = _cards(analysis, search=search, quality_summary=quality)
    assert quant["capacity"] == [
        {
            "where": "chat, 128 tok",
            "value": "24 users",
            "detail": "fails at 28; under ttft_p95_ms<=500 (binding: ttft_p95_ms<=500)",
        }
    ]
    assert bf16["capacity"][0]["value"] == "none"
    assert quant["quality"] == [{"where": "chat, 128 tok", "value": "85.0%", "prompts": 20}]
    assert bf16["quality"] == []


def test_report_context_carries_cards_and_key_columns_first(analysis: Analysis, tmp_path: Path) -> None:
    ctx = build_context(analysis, "now")
    assert len(ctx["kpi_cards"]) == 2
    assert ctx["key_columns"][3:8] == [
        "throughput_tok_s",
        "p95_latency_ms",
        "ttft_p95_ms",
        "tpot_p95_ms",
        "usd_per_1m_tokens",
    ]
    assert ctx["column_titles"]["throughput_tok_s"] == "Throughput (tok/s)"
    assert ctx["column_titles"]["p95_latency_ms"] == "p95 latency (ms)"
    assert "repeat" in ctx["detail_columns"] and "repeat" not in ctx["key_columns"]
    rows = ctx["per_target"][0]["rows"]
    assert all("usd_per_1m_tokens" in r for r in rows)
    assert any(r["usd_per_1m_tokens"] is not None for r in rows)
