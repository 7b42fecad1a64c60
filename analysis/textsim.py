"""Text similarity between a reference output and a candidate's: tokens, LCS, ROUGE-L, divergence.

Tokens are GPT-2-style pre-tokenization pieces (a word with its leading space, a number, a punctuation
run): the same for both sides, so comparisons are fair whatever tokenizer the servers use. ROUGE-L uses
the ROUGE tokenization of Lin (2004) as the `rouge-score` package does without stemming: lowercase,
runs of [a-z0-9] only. LCS length is computed bit-parallel (Hyyrö 2004), O(n·m/word size).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = [
    "Similarity",
    "compare_texts",
    "first_divergence",
    "lcs_length",
    "pieces",
    "rouge_l_f1",
    "rouge_tokens",
    "token_agreement",
]

_PIECE = re.compile(r" ?[^\W\d_]+| ?\d{1,3}| ?[^\s\w]+| ?_+|\s+(?!\S)|\s+")
_NON_ROUGE = re.compile(r"[^a-z0-9]+")


def pieces(text: str) -> list[str]:
    """Token pieces; `"".join(pieces(t)) == t`."""
    return _PIECE.findall(text)


def rouge_tokens(text: str) -> list[str]:
    return _NON_ROUGE.sub(" ", text.lower()).split()


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l_f1(reference: list[str], candidate: list[str]) -> float:
    """F1 of LCS precision (over the candidate) and recall (over the reference); 1.0 for two empty lists."""
    if not reference and not candidate:
        return 1.0
    lcs = lcs_length(reference, candidate)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(candidate), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


def first_divergence(a: list[str], b: list[str]) -> int | None:
    """Index of the first token where the lists differ (a prefix ends at its length); None if equal."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def token_agreement(a: list[str], b: list[str]) -> float:
    """Share of positions (over the longer list) holding the same token in both; 1.0 for two empty lists."""
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    return sum(x == y for x, y in zip(a, b, strict=False)) / longest


@dataclass(frozen=True)
class Similarity:
    exact_match: bool
    first_divergence_token: int | None
    reference_tokens: int
    candidate_tokens: int
    token_agreement: float
    rouge_l_f1: float
    length_ratio: float  # candidate tokens / reference tokens (NaN when the reference is empty)


def compare_texts(reference: str, candidate: str) -> Similarity:
    ref, cand = pieces(reference), pieces(candidate)
    ratio = len(cand) / len(ref) if ref else (1.0 if not cand else math.nan)
    return Similarity(
        exact_match=reference == candidate,
        first_divergence_token=first_divergence(ref, cand),
        reference_tokens=len(ref),
        candidate_tokens=len(cand),
        token_agreement=token_agreement(ref, cand),
        rouge_l_f1=1.0 if reference == candidate else rouge_l_f1(rouge_tokens(reference), rouge_tokens(candidate)),
        length_ratio=ratio,
    )
