"""Tokenizer, text generation, profiles file validation and fault selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.faults import FaultConfig, FaultPicker
from simulator.profiles import ProfileError, load_profiles
from simulator.textgen import generate
from simulator.tokenizer import apply_chat_template, pieces, tokenize

REQUIRED_PROFILES = {
    "rtx2000-ada-16gb-bf16",
    "rtx2000-ada-16gb-awq",
    "l4-24gb-bf16",
    "a100-80gb-bf16",
    "h100-80gb-bf16",
    "h100-80gb-fp8",
    "a100-80gb-awq",
    "h100-80gb-awq",
}


@pytest.mark.parametrize("text", ["Hello, world!!  foo_bar 12345\n\nx", "é ü 日本語 <|eot_id|> a<|x|>", "", "   "])
def test_pieces_concatenate_back(text: str) -> None:
    assert "".join(pieces(text)) == text


def test_tokenize_adds_bos_and_is_stable() -> None:
    assert tokenize("Hello world") == [128000, *tokenize("Hello world", add_special_tokens=False)]
    assert pieces("Hello, world") == ["Hello", ",", " world"]
    assert tokenize("Hello world") == tokenize("Hello world")


def test_chat_template_special_tokens_are_single_pieces() -> None:
    text = apply_chat_template([("user", "hi")])
    assert pieces(text)[:4] == ["<|begin_of_text|>", "<|start_header_id|>", "user", "<|end_header_id|>"]


def test_generation_is_deterministic_and_retokenizes_to_its_length() -> None:
    a = generate("prompt", 7, 100, ignore_eos=True, stop=[])
    assert a == generate("prompt", 7, 100, ignore_eos=True, stop=[])
    assert a != generate("prompt", 8, 100, ignore_eos=True, stop=[])
    assert len(a.token_texts) == 100 and a.finish_reason == "length"
    assert len(pieces(a.text)) == 100


def test_eos_stops_early_at_a_deterministic_point() -> None:
    runs = [generate(f"p{k}", 0, 500, ignore_eos=False, stop=[]) for k in range(20)]
    early = [g for g in runs if g.finish_reason == "stop"]
    assert early, "some prompts must stop early"
    for g in early:
        assert g.token_texts[-1] == "" and g.text.endswith(".")  # EOS after a sentence, no text
        assert g == generate(f"p{runs.index(g)}", 0, 500, ignore_eos=False, stop=[])


def test_stop_string_truncates_before_it() -> None:
    full = generate("prompt", 1, 60, ignore_eos=True, stop=[])
    word = full.token_texts[10]
    stopped = generate("prompt", 1, 60, ignore_eos=True, stop=[word])
    assert stopped.finish_reason == "stop" and stopped.stop_reason == word
    assert word not in stopped.text and full.text.startswith(stopped.text)
    assert full.text.find(word) == len(stopped.text)


def test_packaged_profiles_load() -> None:
    profiles = load_profiles()
    assert set(profiles) >= REQUIRED_PROFILES
    for profile in profiles.values():
        assert profile.sources and profile.kv_capacity_tokens > profile.max_model_len


def test_unknown_profile_key_is_named(tmp_path: Path) -> None:
    text = (Path(__file__).parents[3] / "simulator" / "profiles.toml").read_text()
    path = tmp_path / "p.toml"
    path.write_text(text.replace("gpu_memory_gib = 16.0", "gpu_memory_gib = 16.0\nbandwith_gb_s = 1.0", 1))
    with pytest.raises(ProfileError, match="unknown key 'bandwith_gb_s'"):
        load_profiles(path)


def test_fault_counts_and_rates() -> None:
    every_third = FaultPicker(FaultConfig(reset=3), seed=0)
    assert [every_third.pick() for _ in range(6)] == [None, None, "reset", None, None, "reset"]
    always = FaultPicker(FaultConfig(http_503=1.0, http_429=1.0), seed=0)
    assert always.pick() == "http_503"  # first in precedence wins
    half = FaultPicker(FaultConfig(stall=0.5), seed=1)
    hits = sum(half.pick() == "stall" for _ in range(2000))
    assert 850 < hits < 1150
    with pytest.raises(ValueError):
        FaultConfig(reset=2.5)
