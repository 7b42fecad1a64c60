"""Prompt sources: formats, the shipped data, clear errors naming the path, and prompt fitting."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from loadgen.workloads import (
    DATA_DIR,
    HashBlocks,
    PromptFitter,
    WorkloadError,
    chars_per_token,
    draw_output_tokens,
    load_texts,
)


def test_txt_with_separator_lines(tmp_path: Path) -> None:
    p = tmp_path / "d.txt"
    p.write_text("one\n\nstill one\n---\ntwo\n---  \n\n")
    assert load_texts(p) == ["one\n\nstill one", "two"]


def test_txt_blank_line_blocks(tmp_path: Path) -> None:
    p = tmp_path / "d.txt"
    p.write_text("alpha\nbeta\n\n\ngamma\n")
    assert load_texts(p) == ["alpha\nbeta", "gamma"]


def test_jsonl_and_csv(tmp_path: Path) -> None:
    j = tmp_path / "d.jsonl"
    j.write_text('{"text": "a"}\n\n{"text": "b", "id": 2}\n')
    assert load_texts(j) == ["a", "b"]
    c = tmp_path / "d.csv"
    c.write_text('id,text\n1,"hello, world"\n2,"multi\nline"\n')
    assert load_texts(c) == ["hello, world", "multi\nline"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.txt", None, "does not exist"),
        ("empty.txt", "\n\n---\n", "contains no texts"),
        ("bad.jsonl", '{"text": "ok"}\nnot json\n', ":2: not valid JSON"),
        ("wrong.jsonl", '{"prompt": "x"}\n', ':1: expected an object with a string "text" field'),
        ("cols.csv", "id,body\n1,x\n", "no 'text' column (columns found: id, body)"),
        ("doc.pdf", "x", "unknown format '.pdf'"),
    ],
)
def test_errors_name_the_path(tmp_path: Path, name: str, content: str | None, message: str) -> None:
    p = tmp_path / name
    if content is not None:
        p.write_text(content)
    with pytest.raises(WorkloadError) as info:
        load_texts(p)
    assert str(p) in str(info.value) and message in str(info.value)


def test_shipped_documents_fit_the_contract() -> None:
    docs = load_texts(DATA_DIR / "docs.txt")
    assert len(docs) >= 40
    assert len({d.splitlines()[0] for d in docs}) == len(docs)  # distinct topics
    for doc in docs:
        approx_tokens = len(doc) / 4
        assert 600 <= approx_tokens <= 2000, doc[:60]
    prompts = load_texts(DATA_DIR / "chat_prompts.jsonl")
    assert len(prompts) >= 40 and max(len(p) for p in prompts) < 200


def test_shipped_documents_are_reproducible() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_docs", Path(__file__).parents[3] / "scripts" / "make_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == (DATA_DIR / "docs.txt").read_text(encoding="utf-8")


def test_fitter_cuts_at_a_word_boundary_and_extends() -> None:
    fitter = PromptFitter(target_tokens=5, chars_per_token=4.0)
    cut = fitter.fit("alpha beta gamma delta epsilon zeta", [])
    assert cut == "alpha beta gamma delta"  # 22 characters is nearer the target of 20 than 16
    longer = fitter.fit("hi", ["filler text that is long enough"])
    assert longer.startswith("hi\n\nfiller") and len(longer) <= 20


def test_calibration_ratio() -> None:
    assert chars_per_token("x" * 400, 100) == 4.0
    assert chars_per_token("abc", 0) == 4.0


def test_output_tokens_are_drawn_uniformly_around_the_nominal() -> None:
    rng = random.Random(7)
    assert {draw_output_tokens(rng, 128, 0.0) for _ in range(50)} == {128}
    drawn = [draw_output_tokens(rng, 128, 0.5) for _ in range(20_000)]
    assert min(drawn) == 64 and max(drawn) == 192  # both ends inclusive, as vllm bench serve draws
    assert abs(sum(drawn) / len(drawn) - 128) < 1.0
    assert draw_output_tokens(random.Random(1), 1, 0.9) >= 1
    assert [draw_output_tokens(random.Random(3), 100, 0.2) for _ in range(3)] == [
        draw_output_tokens(random.Random(3), 100, 0.2) for _ in range(3)
    ]


TEXTS = tuple(f"Document {i}: " + " ".join(f"word{i}-{k}" for k in range(400)) for i in range(5))


def test_trace_rows_sharing_their_first_k_hash_ids_share_exactly_those_blocks() -> None:
    blocks = HashBlocks(TEXTS, PromptFitter(64, 4.0))
    full = 4 * 64  # tokens: four whole blocks
    a = blocks.prompt((1, 2, 3, 4), full)
    b = blocks.prompt((1, 2, 9, 4), full)
    shared = blocks.block(1) + blocks.block(2)
    assert a.startswith(shared) and b.startswith(shared)
    # they part at the third block's marker, "[3" against "[9": nothing of block 3 or 9 is shared
    parted_at = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert a[:parted_at] == shared + "["
    assert a == blocks.prompt((1, 2, 3, 4), full) and a != blocks.prompt((5, 2, 3, 4), full)
    # the same id in another position is the same text; different ids differ
    assert blocks.block(4) in a and blocks.block(4) in b and blocks.block(3) != blocks.block(9)
    assert len(blocks.block(1)) == pytest.approx(64 * 4.0, rel=0.05)


def test_a_partial_last_block_is_a_prefix_of_the_full_one_and_uncovered_tokens_get_a_fresh_tail() -> None:
    blocks = HashBlocks(TEXTS, PromptFitter(64, 4.0))
    short = blocks.prompt((1, 2), 64 + 10)
    assert short == (blocks.block(1) + blocks.block(2))[: round(74 * 4.0)]
    long = blocks.prompt((1,), 3 * 64, tail="[tag] ")
    assert long.startswith(blocks.block(1) + "[tag] ")
    assert len(long) == pytest.approx(3 * 64 * 4.0, rel=0.05)


def test_the_salt_makes_a_replays_blocks_differ_from_another_replays() -> None:
    plain, salted = HashBlocks(TEXTS, PromptFitter(64, 4.0)), HashBlocks(TEXTS, PromptFitter(64, 4.0), salt="a1b2")
    assert plain.block(7) != salted.block(7) and salted.block(7) == HashBlocks(TEXTS, plain.fitter, "a1b2").block(7)
    assert salted.block(7).startswith("[7#a1b2] ")
