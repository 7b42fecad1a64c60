"""Seeded random weights for an untied LlamaForCausalLM, named as Hugging Face checkpoints name them."""

from __future__ import annotations

import torch

from modelgen.spec import ModelSpec

__all__ = ["LINEAR_SUFFIXES", "random_llama_weights"]

# Every Linear of a Llama decoder layer; these are what the AWQ twin quantizes (embeddings and lm_head stay).
LINEAR_SUFFIXES = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)


def _linear_shapes(spec: ModelSpec) -> dict[str, tuple[int, int]]:
    """(out_features, in_features) per linear, as nn.Linear stores them."""
    kv = spec.num_kv_heads * spec.head_dim
    h, i = spec.hidden_size, spec.intermediate_size
    return {
        "self_attn.q_proj": (h, h),
        "self_attn.k_proj": (kv, h),
        "self_attn.v_proj": (kv, h),
        "self_attn.o_proj": (h, h),
        "mlp.gate_proj": (i, h),
        "mlp.up_proj": (i, h),
        "mlp.down_proj": (h, i),
    }


def random_llama_weights(spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Normal(0, init_std) matrices and unit norms, in bfloat16; the same seed gives the same bytes."""
    gen = torch.Generator().manual_seed(spec.seed)

    def normal(*shape: int) -> torch.Tensor:
        # Drawn in float32 then rounded: bf16 sampling paths differ between torch builds, float32 ones do not.
        return (torch.randn(*shape, generator=gen, dtype=torch.float32) * spec.init_std).to(torch.bfloat16)

    ones = torch.ones(spec.hidden_size, dtype=torch.bfloat16)
    weights = {"model.embed_tokens.weight": normal(spec.vocab_size, spec.hidden_size)}
    for layer in range(spec.num_layers):
        prefix = f"model.layers.{layer}."
        for suffix, shape in _linear_shapes(spec).items():
            weights[f"{prefix}{suffix}.weight"] = normal(*shape)
        weights[f"{prefix}input_layernorm.weight"] = ones.clone()
        weights[f"{prefix}post_attention_layernorm.weight"] = ones.clone()
    weights["model.norm.weight"] = ones.clone()
    weights["lm_head.weight"] = normal(spec.vocab_size, spec.hidden_size)
    return weights
