"""Unique prompts by default, an explicit shared prefix when asked, and the prefix-cache counters."""

from __future__ import annotations

from loadgen.workloads import PromptFitter, PromptShape, shared_prefix_text, unique_tag
from orchestrator.scrape import prefix_cache_delta
from simulator.prefixcache import PrefixCache
from simulator.tokenizer import tokenize

DOC = " ".join(f"word{i}" for i in range(400))


def test_tags_differ_and_lead_the_prompt() -> None:
    tags = {unique_tag() for _ in range(1000)}
    assert len(tags) == 1000
    shaped = PromptShape().apply("Summarize this.")
    assert shaped.startswith("[") and shaped.endswith("] Summarize this.")
    assert PromptShape(unique=False).apply("text") == "text"


def test_every_tag_costs_the_same_tokens() -> None:
    """The budget leaves room for one tag's tokens, measured once: any other tag must cost the same."""
    counts = {len(tokenize(unique_tag() + "Summarize this.")) for _ in range(500)}
    assert len(counts) == 1


def test_fit_cuts_at_the_word_boundary_nearest_the_target() -> None:
    text = "aaaa bbbbbbbbbbbbbbbbbbbb cc"  # boundaries at 4 and 25
    assert PromptFitter(6, chars_per_token=1.0).fit(text, []) == "aaaa"  # 6 is nearer 4 than 25
    assert PromptFitter(22, chars_per_token=1.0).fit(text, []) == "aaaa bbbbbbbbbbbbbbbbbbbb"  # nearer 25
    assert PromptFitter(2, chars_per_token=1.0).fit(text, []) == "aa"  # no boundary past half: a hard cut


def test_shared_prefix_is_identical_and_comes_first() -> None:
    texts = [DOC, "second text"]
    prefix = shared_prefix_text(texts, PromptFitter(32))
    assert prefix == shared_prefix_text(list(texts), PromptFitter(32))
    assert 100 <= len(prefix) <= 32 * 4 + len(" word20\n\n")  # the nearest boundary may be a word past
    a, b = PromptShape(shared_prefixes=(prefix,)).apply("x"), PromptShape(shared_prefixes=(prefix,)).apply("x")
    assert a.startswith(prefix) and b.startswith(prefix) and a != b


def test_simulated_prefix_cache_counts_whole_leading_blocks() -> None:
    cache = PrefixCache(capacity_blocks=1000)
    prompt = DOC
    n = len(DOC.split()) * 2 + 1  # word + number pieces, plus BOS
    assert cache.lookup(prompt, n) == 0
    assert cache.lookup(prompt, n) == (n - 1) // 16 * 16  # the last token is never a hit
    assert cache.lookup("[0a1b2c] " + prompt, n + 5) == 0  # a different first token: nothing shared
    shared = " ".join(DOC.split()[:40])  # 80 pieces + BOS = 5 full blocks, then the texts diverge
    assert cache.lookup(shared + " other words here " * 20, 200) == 80


def test_simulated_prefix_cache_forgets_least_recently_used_blocks() -> None:
    cache = PrefixCache(capacity_blocks=4)
    cache.lookup(DOC, 801)
    assert cache.lookup(DOC, 801) == 0  # 50 blocks do not fit in 4


def test_prefix_cache_delta_needs_both_counters() -> None:
    first = {"prefix_cache_hits_total": 10.0, "prefix_cache_queries_total": 100.0}
    last = {"prefix_cache_hits_total": 25.0, "prefix_cache_queries_total": 1100.0}
    assert prefix_cache_delta(first, last) == {"hits": 15, "queries": 1000}
    assert prefix_cache_delta({}, last) is None
    assert prefix_cache_delta(None, last) is None
