"""Prompt sources: load documents or prompts from .txt/.jsonl/.csv, and fit texts to a target token length.

Loading is strict: a missing, unreadable or empty source raises `WorkloadError` naming the path, so a run
stops at start instead of sending empty prompts.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DATA_DIR",
    "DEFAULT_CHARS_PER_TOKEN",
    "FOLLOW_UPS",
    "MOONCAKE_BLOCK_TOKENS",
    "PROMPT_SHAPES",
    "SUMMARIZE_INSTRUCTION",
    "HashBlocks",
    "PromptFitter",
    "PromptShape",
    "WorkloadError",
    "WorkloadPrompts",
    "chars_per_token",
    "chat_opening",
    "draw_output_tokens",
    "load_texts",
    "shared_prefix_groups",
    "shared_prefix_text",
    "summarize_prompt",
    "unique_tag",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_CHARS_PER_TOKEN = 4.0
MOONCAKE_BLOCK_TOKENS = 512  # tokens per hash id in Mooncake's traces

# Second and later turns of a multi-turn chat ask about the previous answer.
FOLLOW_UPS = (
    "Can you give a concrete example of that?",
    "Summarize your last answer in two sentences.",
    "What is the most common mistake people make here?",
    "How would you explain this to a twelve-year-old?",
    "What would change if the budget were cut in half?",
    "Which of those points matters most, and why?",
)

# The batch workload's instruction (locustfiles/batch.py and the quality pass send the same prompt).
SUMMARIZE_INSTRUCTION = "Summarize the following document in a few concise paragraphs for a busy reader."

_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n[ \t]*\n+")


class WorkloadError(ValueError):
    """A prompt source that cannot be used; the message names the path and what is wrong."""


def load_texts(path: str | Path) -> list[str]:
    """Texts from `.txt` (split on lines `---`, else on blank lines), `.jsonl` ({"text": ...} per line)
    or `.csv` (a `text` column). Empty texts are dropped; no text at all is an error."""
    p = Path(path)
    if not p.is_file():
        raise WorkloadError(f"prompt source {str(path)!r} does not exist or is not a file")
    suffix = p.suffix.lower()
    try:
        raw = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"prompt source {str(path)!r} cannot be read: {exc}") from exc
    if suffix == ".jsonl":
        texts = _from_jsonl(raw, p)
    elif suffix == ".csv":
        texts = _from_csv(raw, p)
    elif suffix in (".txt", ".md", ""):
        texts = _from_txt(raw)
    else:
        raise WorkloadError(f"prompt source {str(path)!r}: unknown format {suffix!r}; use .txt, .jsonl or .csv")
    texts = [t.strip() for t in texts if t and t.strip()]
    if not texts:
        raise WorkloadError(f"prompt source {str(path)!r} contains no texts")
    return texts


def _from_txt(raw: str) -> list[str]:
    raw = raw.replace("\r\n", "\n")
    if _SEPARATOR.search(raw):
        return _SEPARATOR.split(raw)
    return _BLANK_LINES.split(raw)


def jsonl_objects(raw: str, where: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of every non-blank line of a JSONL text; `where` names it in errors."""
    for lineno, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise WorkloadError(f"{where}:{lineno}: not valid JSON ({exc.msg})") from exc


def _from_jsonl(raw: str, p: Path) -> list[str]:
    texts = []
    for lineno, obj in jsonl_objects(raw, str(p)):
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise WorkloadError(f'{p}:{lineno}: expected an object with a string "text" field')
        texts.append(obj["text"])
    return texts


def _from_csv(raw: str, p: Path) -> list[str]:
    reader = csv.DictReader(io.StringIO(raw, newline=""))
    if not reader.fieldnames or "text" not in reader.fieldnames:
        found = ", ".join(reader.fieldnames or []) or "none"
        raise WorkloadError(f"{p}: no 'text' column (columns found: {found})")
    return [row.get("text") or "" for row in reader]


@dataclass(frozen=True)
class PromptFitter:
    """Cuts or extends texts to about `target_tokens`, using a calibrated characters-per-token ratio."""

    target_tokens: int
    chars_per_token: float = DEFAULT_CHARS_PER_TOKEN

    @property
    def target_chars(self) -> int:
        return max(1, round(self.target_tokens * self.chars_per_token))

    def fit(self, text: str, filler: list[str], *, at_most: bool = False) -> str:
        """`text` cut at a word boundary near the target, or extended with `filler` texts (cycled);
        `at_most`: never past the target (a hash-id block, which must fit its trace's block size)."""
        want = self.target_chars
        out = text
        i = 0
        while len(out) < want and filler:
            out = f"{out}\n\n{filler[i % len(filler)]}"
            i += 1
            if i > 10_000:
                break
        if len(out) <= want:
            return out
        # The word boundary nearest the target (so cuts err as often long as short), if one lies within
        # half the target of it; else a hard cut at the target.
        before = out.rfind(" ", want // 2 + 1, want + 1)
        after = -1 if at_most else out.find(" ", want, want + want // 2)
        near = [c for c in (before, after) if c != -1]
        cut = min(near, key=lambda c: abs(c - want)) if near else want
        return out[:cut].rstrip()


def chars_per_token(sample: str, token_count: int) -> float:
    """Calibration from one tokenized sample; falls back to the default for a useless sample."""
    if token_count <= 0 or not sample:
        return DEFAULT_CHARS_PER_TOKEN
    return len(sample) / token_count


def summarize_prompt(document: str) -> str:
    """The batch-summarization prompt for one document."""
    return f"{SUMMARIZE_INSTRUCTION}\n\n{document}\n\nSummary:"


def chat_opening(text: str) -> list[dict[str, str]]:
    """A conversation's first turn."""
    return [{"role": "user", "content": text}]


@dataclass(frozen=True)
class WorkloadPrompts:
    """How a workload turns one source text into a prompt, and where its texts come from by default.

    The locustfiles' users and the quality pass both build prompts through these, so the quality pass
    sends exactly what the load test sends (without the per-request uniqueness tag)."""

    default_source: str  # a file in DATA_DIR
    build: Callable[[str], str | list[dict[str, str]]]


PROMPT_SHAPES: dict[str, WorkloadPrompts] = {
    "batch": WorkloadPrompts("docs.txt", summarize_prompt),
    "chat": WorkloadPrompts("chat_prompts.jsonl", chat_opening),
}


def draw_output_tokens(rng: random.Random, nominal: int, ratio: float) -> int:
    """max_tokens for one request: `nominal`, or uniform over [floor(n*(1-r)), ceil(n*(1+r))] (at least 1)."""
    if not ratio:
        return nominal
    return rng.randint(max(1, math.floor(nominal * (1 - ratio))), math.ceil(nominal * (1 + ratio)))


def unique_tag() -> str:
    """A short random tag (`[048213907311] `) that makes a prompt unique from its first token on.

    Random bits, not a seeded draw: tags must differ across processes, workers and runs, because a
    server's prefix cache outlives a run. Twelve decimal digits, not hex: tokenizers split digit runs
    the same way whatever the digits, so every tag costs the same number of tokens and the prompt
    budget that leaves room for one tag fits them all (hex tags ranged 6-12 tokens on Llama-style
    pre-tokenization).
    """
    return f"[{secrets.randbelow(10**12):012d}] "


def shared_prefix_text(texts: list[str], fitter: PromptFitter) -> str:
    """The identical prefix every prompt starts with under --shared-prefix-tokens (deterministic)."""
    return fitter.fit(texts[0], texts[1:] or texts) + "\n\n"


def shared_prefix_groups(texts: list[str], fitter: PromptFitter, groups: int) -> tuple[str, ...]:
    """`groups` different prefixes (--prefix-groups), deterministic; one group is `shared_prefix_text`'s.
    Each group starts from another text and with its own marker, so no two share a first token."""
    if groups <= 1:
        return (shared_prefix_text(texts, fitter),)
    out = []
    for g in range(groups):
        rotated = texts[g % len(texts) :] + texts[: g % len(texts)]
        out.append(shared_prefix_text([f"[system {g + 1}] {rotated[0]}", *rotated[1:]], fitter))
    return tuple(out)


@dataclass(frozen=True)
class PromptShape:
    """What goes in front of every new prompt: the shared prefix (if asked), then a unique tag."""

    unique: bool = True
    shared_prefixes: tuple[str, ...] = ()  # one is chosen per prompt (--prefix-groups)

    def apply(self, text: str) -> str:
        prefix = self.shared_prefixes[secrets.randbelow(len(self.shared_prefixes))] if self.shared_prefixes else ""
        return f"{prefix}{unique_tag() if self.unique else ''}{text}"


@dataclass(frozen=True)
class HashBlocks:
    """Prompts from a trace row's `hash_ids` (Mooncake's format: each id names one block of the prompt).

    A block's text depends only on its id (and the run's salt): it starts with a marker naming the id, then
    source text cut to `fitter.target_tokens`. So rows whose first k ids are equal send prompts whose first
    k blocks are identical — a prefix cache sees exactly the sharing the trace records — and the prompts
    part within the next block's marker. Deterministic, so every process builds the same block for an id.
    """

    texts: tuple[str, ...]
    fitter: PromptFitter  # target_tokens: tokens per block
    salt: str = ""

    def block(self, hash_id: int) -> str:
        start = hash_id % len(self.texts)
        rotated = [*self.texts[start:], *self.texts[:start]]
        marker = f"[{hash_id}{'#' + self.salt if self.salt else ''}] "
        return self.fitter.fit(marker + rotated[0], rotated[1:] or rotated, at_most=True) + "\n"

    def prompt(self, hash_ids: tuple[int, ...], input_tokens: int, tail: str = "") -> str:
        """The blocks of `hash_ids` cut to about `input_tokens` tokens (a last, partial block is a prefix of
        the full one). Where the ids cover fewer tokens, `tail` (a fresh, unshared text) and source text
        fill the rest."""
        ratio = self.fitter.chars_per_token
        want = PromptFitter(input_tokens, ratio).target_chars
        shared = "".join(self.block(h) for h in hash_ids)
        if len(shared) >= want:
            return shared[:want]
        rest = PromptFitter(max(1, round((want - len(shared)) / ratio)), ratio)
        return shared + rest.fit(tail + self.texts[0], list(self.texts))
