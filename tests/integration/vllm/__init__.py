"""Tests against the real vLLM CPU build (marker `vllm`); see docs/VLLM.md."""
