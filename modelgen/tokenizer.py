"""A byte-level BPE tokenizer trained on text the project ships, plus its chat template.

Byte-level BPE never meets an unknown character, so any prompt the load generator sends round-trips.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from modelgen.spec import BOS_ID, SPECIAL_TOKENS

__all__ = [
    "CHAT_TEMPLATE",
    "corpus_candidates",
    "find_corpus",
    "tokenizer_config",
    "train_tokenizer",
    "write_tokenizer",
]

REPO = Path(__file__).resolve().parents[1]

# BOS is written by the template itself: vLLM renders chat prompts and tokenizes them without special tokens.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{{ message['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def corpus_candidates() -> list[Path]:
    """Where the training text is looked for, in order: the project's documents, then our own fallback."""
    return [REPO / "data" / "docs.txt", REPO / "loadgen" / "data" / "docs.txt", Path(__file__).with_name("corpus.txt")]


def find_corpus(explicit: Path | None = None) -> Path:
    if explicit is not None:
        if not explicit.is_file():
            raise FileNotFoundError(f"corpus {explicit} does not exist")
        return explicit
    for path in corpus_candidates():
        if path.is_file() and path.stat().st_size > 0:
            return path
    raise FileNotFoundError("no training text found (looked in: " + ", ".join(map(str, corpus_candidates())) + ")")


def train_tokenizer(text: str, vocab_size: int) -> Tokenizer:
    """Train BPE on `text`; the vocabulary is filled to exactly `vocab_size` so every model id decodes."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((line for line in text.splitlines() if line.strip()), trainer=trainer)
    # A random-weight model can emit any id below vocab_size; a small corpus leaves gaps we fill.
    missing = vocab_size - tok.get_vocab_size()
    if missing > 0:
        tok.add_tokens([f"<reserved_{i}>" for i in range(missing)])
    if tok.get_vocab_size() != vocab_size:
        raise RuntimeError(f"tokenizer has {tok.get_vocab_size()} tokens, expected {vocab_size}")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", BOS_ID)]
    )
    return tok


def tokenizer_config(max_length: int) -> dict[str, Any]:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "</s>",
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }


def write_tokenizer(tok: Tokenizer, out: Path, max_length: int) -> None:
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(max_length), indent=2) + "\n")
