"""Request datasets (--dataset): ShareGPT-format JSON, or JSONL/CSV rows with a prompt and an output length.

ShareGPT: a JSON list of {"conversations": [{"from": "human"|"gpt", "value": ...}, ...]}; the first human
turn is the prompt, the reply recorded after it sets that request's max_tokens (its length in tokens at
the calibrated characters per token), later human turns are replayed as follow-ups with --chat-turns.
Conversations without a human turn followed by a reply are skipped, as `vllm bench serve` does.
JSONL / CSV: `prompt` per row and optional `output_tokens` (else --max-new-tokens). Loading is strict:
a file that is not one of these, or has no usable row, raises `WorkloadError` naming file and line.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadgen.workloads import WorkloadError, jsonl_objects

__all__ = ["DatasetRequest", "load_dataset"]

_HUMAN = {"human", "user"}
_REPLY = {"gpt", "assistant", "chatgpt", "bard", "model"}


@dataclass(frozen=True)
class DatasetRequest:
    """One request of a dataset: the prompt, its output length (tokens, or characters of a recorded reply
    to convert once the ratio is known), and later human turns for multi-turn replay."""

    prompt: str
    output_tokens: int | None = None
    reply_chars: int | None = None
    follow_ups: tuple[str, ...] = ()

    def max_tokens(self, chars_per_token: float, default: int) -> int:
        if self.output_tokens is not None:
            return self.output_tokens
        if self.reply_chars is not None:
            return max(1, math.ceil(self.reply_chars / chars_per_token))
        return default


def load_dataset(path: str | Path) -> list[DatasetRequest]:
    p = Path(path)
    where = f"--dataset {p}"
    try:
        raw = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{where}: cannot be read ({exc})") from exc
    suffix = p.suffix.lower()
    if suffix == ".json":
        rows = _sharegpt(raw, where)
    elif suffix == ".jsonl":
        rows = _jsonl(raw, where)
    elif suffix == ".csv":
        rows = _csv(raw, where)
    else:
        raise WorkloadError(
            f"{where}: unknown format {suffix or '(no extension)'!r}; expected ShareGPT-format .json, "
            "or .jsonl / .csv with a 'prompt' field"
        )
    if not rows:
        raise WorkloadError(f"{where}: no usable rows (expected prompts, or conversations with a human turn)")
    return rows


def _sharegpt(raw: str, where: str) -> list[DatasetRequest]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise WorkloadError(f"{where}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
    if not isinstance(data, list):
        raise WorkloadError(f"{where}: expected a JSON list of conversations (ShareGPT format)")
    rows = []
    for i, item in enumerate(data):
        turns = item.get("conversations", item.get("conversation")) if isinstance(item, dict) else None
        if not isinstance(turns, list):
            raise WorkloadError(f'{where}: conversation #{i + 1}: expected an object with a "conversations" list')
        row = _conversation(turns)
        if row is not None:
            rows.append(row)
    return rows


def _conversation(turns: list[Any]) -> DatasetRequest | None:
    """The first human turn with the reply after it; None when there is no such pair."""
    pairs = [
        (str(t.get("from", t.get("role", ""))).lower(), t.get("value", t.get("content")))
        for t in turns
        if isinstance(t, dict)
    ]
    for k, (speaker, text) in enumerate(pairs[:-1]):
        reply_speaker, reply = pairs[k + 1]
        if speaker in _HUMAN and isinstance(text, str) and text.strip() and reply_speaker in _REPLY:
            follow = tuple(v for s, v in pairs[k + 2 :] if s in _HUMAN and isinstance(v, str) and v.strip())
            return DatasetRequest(text, reply_chars=len(reply) if isinstance(reply, str) else None, follow_ups=follow)
    return None


def _row(obj: dict[str, Any], where: str) -> DatasetRequest | None:
    prompt = obj.get("prompt")
    if not isinstance(prompt, str):
        raise WorkloadError(f"{where}: expected a string 'prompt'")
    output = obj.get("output_tokens")
    if output in (None, ""):
        tokens = None
    else:
        try:
            tokens = int(str(output))
        except ValueError:
            tokens = 0
        if tokens < 1:
            raise WorkloadError(f"{where}: output_tokens: expected an integer >= 1, got {output!r}")
    return DatasetRequest(prompt, output_tokens=tokens) if prompt.strip() else None


def _jsonl(raw: str, where: str) -> list[DatasetRequest]:
    rows = []
    for lineno, obj in jsonl_objects(raw, where):
        if not isinstance(obj, dict):
            raise WorkloadError(f"{where}:{lineno}: expected an object with a 'prompt'")
        row = _conversation(obj["conversations"]) if isinstance(obj.get("conversations"), list) else None
        row = row or (_row(obj, f"{where}:{lineno}") if "conversations" not in obj else None)
        if row is not None:
            rows.append(row)
    return rows


def _csv(raw: str, where: str) -> list[DatasetRequest]:
    reader = csv.DictReader(io.StringIO(raw, newline=""))
    if not reader.fieldnames or "prompt" not in reader.fieldnames:
        found = ", ".join(reader.fieldnames or []) or "none"
        raise WorkloadError(f"{where}: no 'prompt' column (columns found: {found})")
    rows = []
    for lineno, record in enumerate(reader, 2):
        row = _row(dict(record), f"{where}:{lineno}")
        if row is not None:
            rows.append(row)
    return rows
