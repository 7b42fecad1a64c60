"""Deterministic pseudo-logprobs for `logprobs`, `echo` and `prompt_logprobs` on /v1/completions.

A token's logprob is a pure function of (previous piece, piece): two servers score the same text the
same way, except that a server with `drift` > 0 (a quantized twin) subtracts up to `drift` nats more per
token, so its mean logprob is lower by about drift / 2 — finite and non-zero, as real drift is.
Shapes follow vLLM's CompletionLogProbs (text_offset, token_logprobs, tokens, top_logprobs) and
prompt_logprobs (per prompt token: None for the first, else {token_id: {logprob, rank, decoded_token}}).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from simulator.textgen import unit_hash
from simulator.tokenizer import BOS, piece_id, pieces

__all__ = ["LogprobModel", "completion_choice_extras"]


@dataclass(frozen=True)
class LogprobModel:
    """How one server scores tokens: `drift` nats of extra, token-dependent penalty, salted by `salt`."""

    drift: float = 0.0
    salt: str = ""

    def logprob(self, previous: str, piece: str) -> float:
        base = -(0.02 + 3.0 * unit_hash("lp", previous, piece) ** 2)
        if self.drift:
            base -= self.drift * unit_hash("drift", self.salt, previous, piece)
        return round(base, 6)


def _prompt_pieces(prompt_text: str, prompt_tokens: int) -> list[str]:
    # A string prompt gets BOS (add_special_tokens); a token-id prompt is rendered as its ids, one per token.
    split = pieces(prompt_text)
    if len(split) + 1 == prompt_tokens:
        return [BOS, *split]
    return prompt_text.split(" ")[:prompt_tokens]


def completion_choice_extras(
    model: LogprobModel,
    prompt_text: str,
    prompt_tokens: int,
    output_texts: list[str],
    logprobs: int | None,
    echo: bool,
    prompt_logprobs: int | None,
) -> dict[str, Any]:
    """The choice fields vLLM fills for these options: text (echo), logprobs, prompt_logprobs."""
    extras: dict[str, Any] = {}
    prompt = _prompt_pieces(prompt_text, prompt_tokens)
    if echo:
        extras["text"] = prompt_text + "".join(output_texts)
    want_prompt = prompt_logprobs if prompt_logprobs is not None else (logprobs if echo else None)
    prompt_lps: list[float | None] = [None] + [model.logprob(a, b) for a, b in itertools.pairwise(prompt)]
    if want_prompt is not None:
        extras["prompt_logprobs"] = [
            None if lp is None else {str(piece_id(tok)): {"logprob": lp, "rank": 1, "decoded_token": tok}}
            for tok, lp in zip(prompt, prompt_lps, strict=True)
        ]
    if logprobs is not None:
        tokens = [*prompt, *output_texts] if echo else list(output_texts)
        previous = prompt[-1] if prompt else ""
        out_lps: list[float | None] = []
        for tok in output_texts:
            out_lps.append(model.logprob(previous, tok))
            previous = tok
        token_lps = [*prompt_lps, *out_lps] if echo else out_lps
        offsets, pos = [], 0
        for tok in tokens:
            offsets.append(pos)
            pos += len(tok)
        extras["logprobs"] = {
            "text_offset": offsets,
            "token_logprobs": token_lps,
            "tokens": tokens,
            "top_logprobs": [None if lp is None else {tok: lp} for tok, lp in zip(tokens, token_lps, strict=True)],
        }
    return extras
