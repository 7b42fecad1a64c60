"""Write the BF16 model and its AWQ twin under one folder, skipping the work when nothing changed.

Layout: OUT/tiny-llama-bf16/, OUT/tiny-llama-awq/, OUT/manifest.json (inputs digest, file hashes).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from modelgen.spec import ModelSpec, awq_quantization_config, generation_config, hf_config
from modelgen.tokenizer import REPO, find_corpus, train_tokenizer, write_tokenizer

__all__ = ["AWQ_NAME", "BF16_NAME", "MANIFEST", "build", "inputs_digest", "is_current"]

BF16_NAME = "tiny-llama-bf16"
AWQ_NAME = "tiny-llama-awq"
MANIFEST = "manifest.json"


def inputs_digest(spec: ModelSpec, corpus: Path) -> str:
    """Everything the output depends on: the corpus, the spec and this package's own source."""
    h = hashlib.sha256()
    h.update(corpus.read_bytes())
    h.update(json.dumps(spec.as_dict(), sort_keys=True).encode())
    for src in sorted(Path(__file__).parent.glob("*.py")):
        h.update(src.name.encode() + src.read_bytes())
    return h.hexdigest()


def is_current(out: Path, digest: str) -> bool:
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    files_there = all((out / name / "model.safetensors").is_file() for name in (BF16_NAME, AWQ_NAME))
    return manifest.get("inputs_digest") == digest and files_there


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _write_model(dest: Path, config: dict[str, Any], tensors: dict[str, Any], tokenizer: Any, spec: ModelSpec) -> None:
    from safetensors.torch import save_file

    dest.mkdir(parents=True)
    _write_json(dest / "config.json", config)
    _write_json(dest / "generation_config.json", generation_config())
    save_file(tensors, str(dest / "model.safetensors"), metadata={"format": "pt"})
    write_tokenizer(tokenizer, dest, spec.max_position_embeddings)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(out: Path, corpus: Path | None = None, spec: ModelSpec | None = None, force: bool = False) -> dict[str, Any]:
    """Build both models into `out` (replacing what is there) unless they are current; return the manifest."""
    spec = spec or ModelSpec()
    corpus = find_corpus(corpus)
    digest = inputs_digest(spec, corpus)
    if not force and is_current(out, digest):
        manifest: dict[str, Any] = json.loads((out / MANIFEST).read_text())
        manifest["rebuilt"] = False
        return manifest

    # Torch and vLLM are imported only when there is work to do: the up-to-date check stays instant.
    from modelgen.awq import awq_twin
    from modelgen.weights import random_llama_weights

    tokenizer = train_tokenizer(corpus.read_text(encoding="utf-8"), spec.vocab_size)
    weights = random_llama_weights(spec)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    _write_model(staging / BF16_NAME, hf_config(spec), weights, tokenizer, spec)
    awq_config = {**hf_config(spec), "quantization_config": awq_quantization_config()}
    _write_model(staging / AWQ_NAME, awq_config, awq_twin(weights), tokenizer, spec)
    manifest = {
        "inputs_digest": digest,
        "corpus": str(corpus.relative_to(REPO)) if corpus.is_relative_to(REPO) else str(corpus),
        "spec": spec.as_dict(),
        "models": {"bf16": BF16_NAME, "awq": AWQ_NAME},
        "files": {str(p.relative_to(staging)): _sha256(p) for p in sorted(staging.rglob("*")) if p.is_file()},
    }
    _write_json(staging / MANIFEST, manifest)
    # Swap in whole, so a crash mid-build never leaves a half-written model that looks current.
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(out)
    return {**manifest, "rebuilt": True}
