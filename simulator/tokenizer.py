"""Deterministic tokenizer: GPT-2-style pre-tokenization where every piece is one token.

A piece is a Llama-3 special token (`<|...|>`), an optional single space plus a run of letters, an
optional space plus 1-3 digits, an optional space plus a punctuation run, or whitespace. Pieces
concatenate back to the input exactly, so usage counts equal what POST /tokenize returns and
re-tokenizing generated text gives the same count. Ids are stable (CRC-32 of the piece).
"""

from __future__ import annotations

import re
import zlib

__all__ = ["BOS", "EOT", "apply_chat_template", "piece_id", "pieces", "tokenize"]

BOS = "<|begin_of_text|>"
EOT = "<|eot_id|>"
_SPECIAL_IDS = {
    BOS: 128000,
    "<|end_of_text|>": 128001,
    "<|start_header_id|>": 128006,
    "<|end_header_id|>": 128007,
    EOT: 128009,
}
_VOCAB_SIZE = 128000
_SPECIAL = re.compile(r"(<\|[a-z_]{1,40}\|>)")
_PIECE = re.compile(r" ?[^\W\d_]+| ?\d{1,3}| ?[^\s\w]+| ?_+|\s+(?!\S)|\s+")


def pieces(text: str) -> list[str]:
    """Split `text` into token pieces; `"".join(pieces(t)) == t` for every string."""
    if "<|" not in text:
        return _PIECE.findall(text)
    out: list[str] = []
    for k, part in enumerate(_SPECIAL.split(text)):
        if k % 2:
            out.append(part)
        elif part:
            out.extend(_PIECE.findall(part))
    return out


def piece_id(piece: str) -> int:
    special = _SPECIAL_IDS.get(piece)
    if special is not None:
        return special
    return zlib.crc32(piece.encode("utf-8")) % _VOCAB_SIZE


def tokenize(text: str, add_special_tokens: bool = True) -> list[int]:
    """Token ids of `text`; with `add_special_tokens` a BOS id is prepended, as Llama tokenizers do."""
    ids = [piece_id(p) for p in pieces(text)]
    return [_SPECIAL_IDS[BOS], *ids] if add_special_tokens else ids


def apply_chat_template(messages: list[tuple[str, str]]) -> str:
    """Llama-3 chat layout (without the date system preamble) with the assistant generation prompt."""
    parts = [BOS]
    for role, content in messages:
        parts.append(f"<|start_header_id|>{role}<|end_header_id|>\n\n{content}{EOT}")
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)
