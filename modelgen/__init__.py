"""Tiny Llama-class models built offline for real-vLLM tests: a BF16 model and its 4-bit AWQ twin.

`python -m modelgen build OUT_DIR` (inside `.venv-vllm`) writes both, deterministically, from text the
project ships; nothing is downloaded.
"""

__all__: list[str] = []
