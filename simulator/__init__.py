"""Embedded default target: a vLLM-compatible OpenAI API server driven by a continuous-batching GPU model."""
