"""Deterministic, readable output text: one token piece per generated token.

The output is a pure function of (prompt text, seed): sentences of common English words. Unless
`ignore_eos` is set, generation may end at a sentence boundary with an EOS token (empty text,
finish_reason "stop"), at a point that is also a pure function of (prompt, seed). Stop strings
truncate the text before the stop string, as vLLM does (finish_reason "stop", stop_reason = the string).

Two test hooks: `Divergence` makes a controlled share of prompts' outputs differ from the undiverged text
from a deterministic token position on (a quantized twin's drift); text between `[[echo]]` and
`[[/echo]]` in a prompt is emitted first, verbatim (so a test can make the model "say" markup).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from simulator.tokenizer import pieces

__all__ = ["EOS_PROBABILITY", "Divergence", "Generation", "divergence_point", "generate", "unit_hash"]

_WORD_SOURCE = (
    "the model serves tokens to many users while the scheduler keeps every batch full and the cache warm "
    "a request waits in the queue until memory frees up then it joins the running batch and decodes one "
    "token per step latency grows with load but throughput climbs until the device runs out of bandwidth "
    "quantized weights move fewer bytes so each step is shorter yet the kernel spends extra work on "
    "dequantization long prompts take longer to prefill and short answers finish early system operators "
    "watch the queue depth the cache usage and the time to first token before they add capacity"
)
_WORDS = tuple(_WORD_SOURCE.split())
# Probability that a finished sentence ends the answer (EOS) when ignore_eos is false: ~9 sentences on average.
EOS_PROBABILITY = 0.11
_ECHO = re.compile(r"\[\[echo\]\](.*?)\[\[/echo\]\]", re.DOTALL)


@dataclass(frozen=True)
class Divergence:
    """Outputs of a share `rate` of prompts (chosen by hash of prompt and `seed`) diverge from one token on."""

    rate: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Generation:
    """Token texts in order (EOS is an empty string), why generation ended, and the stop string if any."""

    token_texts: list[str]
    finish_reason: str  # "length" or "stop"
    stop_reason: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.token_texts)


def unit_hash(*parts: str) -> float:
    """A deterministic number in [0, 1) from strings (stable across processes, unlike hash())."""
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def divergence_point(prompt: str, divergence: Divergence, n_tokens: int) -> int | None:
    """The token index from which this prompt's output diverges, or None when it does not (or is empty)."""
    if n_tokens <= 0 or unit_hash("diverge", str(divergence.seed), prompt) >= divergence.rate:
        return None
    return int(unit_hash("position", str(divergence.seed), prompt) * n_tokens)


def _diverge(tokens: list[str], other: list[str], k: int, seed: int) -> list[str]:
    """tokens[:k], then a word unlike tokens[k], then `other`'s tail; same length and EOS as `tokens`."""
    space = " " if tokens[k].startswith(" ") or k > 0 else ""
    start = int(unit_hash("word", str(seed), str(k)) * len(_WORDS))
    word = _WORDS[start]
    if space + word == tokens[k]:
        word = _WORDS[(start + 1) % len(_WORDS)] if _WORDS[(start + 1) % len(_WORDS)] != word else "different"
    out = [*tokens[:k], space + word, *other[k + 1 : len(tokens)]]
    if tokens[-1] == "" and k < len(tokens) - 1:
        out[-1] = ""  # keep the EOS where it was
    return out


def _rng(prompt: str, seed: int) -> random.Random:
    digest = hashlib.blake2b(prompt.encode("utf-8", "surrogatepass"), digest_size=8, key=str(seed).encode()).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _raw_tokens(rng: random.Random, max_tokens: int, leading_space: bool, ignore_eos: bool) -> tuple[list[str], bool]:
    out: list[str] = []
    words = _WORDS
    start = True
    while len(out) < max_tokens:
        length = rng.randint(5, 14)
        for k in range(length):
            word = words[rng.randrange(len(words))]
            if start:
                word = word.capitalize()
                start = False
            space = " " if (out or leading_space) else ""
            out.append(space + word)
            if k == length // 2 and rng.random() < 0.3:
                out.append(",")
            if len(out) >= max_tokens:
                return out[:max_tokens], False
        out.append(".")
        start = True
        if len(out) >= max_tokens:
            return out[:max_tokens], False
        if not ignore_eos and rng.random() < EOS_PROBABILITY:
            out.append("")  # EOS: counts as a generated token, decodes to no text
            return out, True
    return out[:max_tokens], False


def _apply_stop(tokens: list[str], stop: list[str]) -> Generation | None:
    text = "".join(tokens)
    hits = [(pos, s) for s in stop if s and (pos := text.find(s)) >= 0]
    if not hits:
        return None
    pos, stop_str = min(hits)
    end = pos + len(stop_str)
    kept: list[str] = []
    offset = 0
    for piece in tokens:
        # vLLM stops on the token that completes the stop string; text from the stop string on is dropped.
        start = offset
        offset += len(piece)
        kept.append(piece[: max(0, pos - start)] if offset > pos else piece)
        if offset >= end:
            break
    return Generation(kept, "stop", stop_str)


def generate(
    prompt: str,
    seed: int,
    max_tokens: int,
    ignore_eos: bool,
    stop: list[str],
    leading_space: bool = True,
    divergence: Divergence | None = None,
) -> Generation:
    """Generate up to `max_tokens` tokens for `prompt`; deterministic for (prompt, seed, options)."""
    tokens, hit_eos = _raw_tokens(_rng(prompt, seed), max_tokens, leading_space, ignore_eos)
    echo = _ECHO.search(prompt)
    if echo is not None:
        tokens = [*pieces((" " if leading_space else "") + echo.group(1)), *tokens][:max_tokens]
        hit_eos = hit_eos and tokens[-1] == ""
    if divergence is not None and divergence.rate > 0:
        k = divergence_point(prompt, divergence, len(tokens))
        if k is not None:
            other, _ = _raw_tokens(_rng(prompt, seed + 1_000_003), max_tokens, leading_space, True)
            tokens = _diverge(tokens, other, k, divergence.seed)
    stopped = _apply_stop(tokens, stop) if stop else None
    if stopped is not None:
        return stopped
    return Generation(tokens, "stop" if hit_eos else "length")
