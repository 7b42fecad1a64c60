"""Round-to-nearest 4-bit AWQ quantization of BF16 Linear weights, packed in AutoAWQ's GEMM layout.

No activation-aware scaling search: the weights are random, so there is nothing to calibrate on; what
matters is that the checkpoint holds real 4-bit codes that vLLM's AWQ kernels dequantize.
"""

from __future__ import annotations

import torch

from modelgen.spec import AWQ_GROUP_SIZE
from modelgen.weights import LINEAR_SUFFIXES

__all__ = ["BITS", "awq_twin", "dequantize", "quantize_rtn"]

BITS = 4
MAX_CODE = 2**BITS - 1


def quantize_rtn(weight: torch.Tensor, group_size: int = AWQ_GROUP_SIZE) -> tuple[torch.Tensor, ...]:
    """nn.Linear weight [out, in] -> (codes [in, out] uint8, zeros [in/g, out] uint8, scales [in/g, out] bf16).

    Asymmetric per group of `group_size` input rows, per output column, as AWQ with zero_point=True.
    Scales are bf16, the dtype the twin is served in (AutoAWQ writes fp16; vLLM would cast it on load).
    """
    w = weight.to(torch.float32).t().contiguous()  # AWQ stores [in, out]
    size_k, size_n = w.shape
    if size_k % group_size:
        raise ValueError(f"input width {size_k} is not a multiple of the group size {group_size}")
    groups = w.reshape(size_k // group_size, group_size, size_n)
    w_min = groups.amin(dim=1).clamp(max=0.0)
    w_max = groups.amax(dim=1).clamp(min=0.0)
    scales = ((w_max - w_min) / MAX_CODE).clamp(min=1e-8).to(torch.bfloat16)
    # The rounded scale is what the kernel will use, so codes are computed against it.
    s = scales.to(torch.float32)
    zeros = torch.round(-w_min / s).clamp(0, MAX_CODE)
    codes = torch.round(groups / s[:, None, :]) + zeros[:, None, :]
    codes = codes.clamp(0, MAX_CODE).reshape(size_k, size_n)
    return codes.to(torch.uint8), zeros.to(torch.uint8), scales


def dequantize(codes: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Inverse of `quantize_rtn`, back to nn.Linear's [out, in] float32 (for tests and error reports)."""
    group_size = codes.shape[0] // zeros.shape[0]
    z = zeros.to(torch.float32).repeat_interleave(group_size, dim=0)
    s = scales.to(torch.float32).repeat_interleave(group_size, dim=0)
    return ((codes.to(torch.float32) - z) * s).t().contiguous()


def awq_twin(weights: dict[str, torch.Tensor], group_size: int = AWQ_GROUP_SIZE) -> dict[str, torch.Tensor]:
    """Replace each decoder Linear `X.weight` with `X.qweight`/`X.qzeros` (int32) and `X.scales` (bf16)."""
    # Imported here: vLLM's import is slow and only the build needs its packer.
    from vllm.model_executor.layers.quantization.utils.quant_utils import awq_pack

    out: dict[str, torch.Tensor] = {}
    for name, tensor in weights.items():
        base = name.removesuffix(".weight")
        if not base.endswith(LINEAR_SUFFIXES):
            out[name] = tensor
            continue
        codes, zeros, scales = quantize_rtn(tensor, group_size)
        size_k, size_n = codes.shape
        out[f"{base}.qweight"] = awq_pack(codes.to(torch.int32), BITS, size_k, size_n)
        out[f"{base}.qzeros"] = awq_pack(zeros.to(torch.int32), BITS, size_k // group_size, size_n)
        out[f"{base}.scales"] = scales
    return out
