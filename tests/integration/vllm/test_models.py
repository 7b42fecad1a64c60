"""The generated twin is genuinely quantized: int32-packed 4-bit weights on disk, vLLM's AWQ kernel in
the log, and greedy outputs that differ from BF16's for some prompts."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.integration.vllm.conftest import require_vllm
from tests.integration.vllm.servers import MODELS, VENV, VllmTargets

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PROMPTS = [
    "The history of urban beekeeping",
    "Summarize the following document in a few concise paragraphs.",
    "Capacity planning starts with",
    "Hello",
    "A quantized model stores its weights in fewer bits, so",
    "Time to first token grows when",
]


def safetensors_header(path: Path) -> dict[str, Any]:
    """name -> {dtype, shape}, read from the file's JSON header (no safetensors import in this venv)."""
    with path.open("rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header: dict[str, Any] = json.loads(fh.read(size))
    header.pop("__metadata__", None)
    return header


def test_twin_checkpoint_holds_packed_4bit_weights() -> None:
    require_vllm()
    bf16 = safetensors_header(MODELS / "tiny-llama-bf16" / "model.safetensors")
    awq = safetensors_header(MODELS / "tiny-llama-awq" / "model.safetensors")
    config = json.loads((MODELS / "tiny-llama-awq" / "config.json").read_text())
    assert config["quantization_config"] == {
        "quant_method": "awq",
        "bits": 4,
        "group_size": 128,
        "zero_point": True,
        "version": "gemm",
    }
    assert "quantization_config" not in json.loads((MODELS / "tiny-llama-bf16" / "config.json").read_text())
    assert not config["tie_word_embeddings"]
    for layer in range(config["num_hidden_layers"]):
        for linear in LINEARS:
            part = "mlp" if linear in ("gate_proj", "up_proj", "down_proj") else "self_attn"
            base = f"model.layers.{layer}.{part}.{linear}"
            out_f, in_f = bf16[f"{base}.weight"]["shape"]
            assert bf16[f"{base}.weight"]["dtype"] == "BF16"
            assert f"{base}.weight" not in awq
            # AWQ GEMM layout: [in, out/8] int32 codes, [in/128, out/8] int32 zeros, [in/128, out] scales.
            assert awq[f"{base}.qweight"]["dtype"] == "I32"
            assert awq[f"{base}.qweight"]["shape"] == [in_f, out_f // 8]
            assert awq[f"{base}.qzeros"]["dtype"] == "I32"
            assert awq[f"{base}.qzeros"]["shape"] == [in_f // 128, out_f // 8]
            assert awq[f"{base}.scales"]["shape"] == [in_f // 128, out_f]
    # Embeddings and lm_head stay BF16, as AutoAWQ leaves them.
    assert awq["lm_head.weight"]["dtype"] == "BF16" and awq["model.embed_tokens.weight"]["dtype"] == "BF16"


QUANT_CHECK = """
import torch
from vllm.model_executor.layers.quantization.utils.quant_utils import awq_pack
from modelgen.awq import awq_twin, dequantize, quantize_rtn
from modelgen.spec import ModelSpec
from modelgen.weights import random_llama_weights

w = random_llama_weights(ModelSpec())["model.layers.0.mlp.down_proj.weight"]
codes, zeros, scales = quantize_rtn(w)
assert int(codes.max()) <= 15 and int(zeros.max()) <= 15
err = (dequantize(codes, zeros, scales) - w.float()).abs()
step = scales.float().repeat_interleave(128, dim=0).t()
# Rounding costs at most half a step; only values at a group's edge, where the rounded zero point shifts
# the grid, may be clipped by up to one step.
assert bool((err <= step * 1.001).all()), float((err / step).max())
assert float((err <= step / 2 * 1.001).float().mean()) > 0.99
assert float(err.max()) > 0  # really lossy, not a copy
packed = awq_twin({"model.layers.0.mlp.down_proj.weight": w})["model.layers.0.mlp.down_proj.qweight"]
order = [0, 4, 1, 5, 2, 6, 3, 7]  # inverse of AWQ's [0, 2, 4, 6, 1, 3, 5, 7] interleave
nibbles = torch.stack([(packed >> (4 * i)) & 0xF for i in range(8)], dim=-1)[..., order]
assert torch.equal(nibbles.reshape(codes.shape).to(torch.uint8), codes)
print("ok")
"""


def test_rtn_quantization_error_is_within_half_a_step_and_packing_round_trips() -> None:
    require_vllm()
    done = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", QUANT_CHECK],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_build_is_deterministic(tmp_path: Path) -> None:
    require_vllm()
    done = subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "modelgen", "build", str(tmp_path / "models"), "--force"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    fresh = json.loads((tmp_path / "models" / "manifest.json").read_text())
    cached = json.loads((MODELS / "manifest.json").read_text())
    assert fresh["inputs_digest"] == cached["inputs_digest"]
    assert fresh["files"] == cached["files"]


def test_vllm_serves_the_twin_with_a_quantized_kernel(vllm_pair: VllmTargets) -> None:
    awq_log, bf16_log = vllm_pair.log("awq"), vllm_pair.log("bf16")
    assert "quantization=awq" in awq_log
    assert "Using CPUWNA16LinearKernel for AutoAWQMarlinLinearMethod" in awq_log
    assert "quantization=None" in bf16_log and "CPUWNA16LinearKernel" not in bf16_log


def _greedy(url: str, model: str, prompt: str) -> tuple[str, int]:
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": 16, "temperature": 0}).encode()
    req = urllib.request.Request(f"{url}/v1/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        out = json.load(resp)
    return out["choices"][0]["text"], out["usage"]["prompt_tokens"]


def test_twin_greedy_outputs_differ_from_bf16_for_some_prompts(vllm_pair: VllmTargets) -> None:
    def ask(name: str, prompt: str) -> tuple[str, int]:
        return _greedy(vllm_pair.urls[name], vllm_pair.model(name), prompt)

    pairs = [(ask("bf16", p), ask("awq", p)) for p in PROMPTS]
    assert all(b[1] == a[1] for b, a in pairs)  # one tokenizer: same prompt lengths
    assert any(b[0] != a[0] for b, a in pairs), pairs
    # Greedy decoding is deterministic, so the difference is the weights, not sampling noise.
    assert ask("awq", PROMPTS[0])[0] == pairs[0][1][0]
