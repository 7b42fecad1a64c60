"""The shape of the generated model and the Hugging Face config files that describe it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "AWQ_GROUP_SIZE",
    "BOS_ID",
    "EOS_ID",
    "SPECIAL_TOKENS",
    "ModelSpec",
    "awq_quantization_config",
    "generation_config",
    "hf_config",
]

# Special tokens first, so their ids are fixed (0..5) whatever the corpus.
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>")
BOS_ID, EOS_ID = 1, 2
# vLLM's AWQ kernels need every quantized input width to be a multiple of the group size.
AWQ_GROUP_SIZE = 128


@dataclass(frozen=True)
class ModelSpec:
    """About 5M parameters: large enough to exercise batching and paged attention, small enough for 2 cores."""

    hidden_size: int = 256
    intermediate_size: int = 768
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 4
    vocab_size: int = 4096
    max_position_embeddings: int = 4096
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    init_std: float = 0.02
    seed: int = 20261101

    def __post_init__(self) -> None:
        for name in ("hidden_size", "intermediate_size"):
            if getattr(self, name) % AWQ_GROUP_SIZE:
                raise ValueError(f"{name}={getattr(self, name)} must be a multiple of {AWQ_GROUP_SIZE} for AWQ")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("hidden_size must split evenly into heads, and heads into kv heads")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hf_config(spec: ModelSpec) -> dict[str, Any]:
    """config.json of a plain (untied) LlamaForCausalLM in bfloat16."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "head_dim": spec.head_dim,
        "vocab_size": spec.vocab_size,
        "max_position_embeddings": spec.max_position_embeddings,
        "rms_norm_eps": spec.rms_norm_eps,
        "rope_theta": spec.rope_theta,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "initializer_range": spec.init_std,
        "tie_word_embeddings": False,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "torch_dtype": "bfloat16",
        "use_cache": True,
    }


def awq_quantization_config() -> dict[str, Any]:
    """What AutoAWQ writes for 4-bit GEMM checkpoints; vLLM picks its AWQ method from this."""
    return {"quant_method": "awq", "bits": 4, "group_size": AWQ_GROUP_SIZE, "zero_point": True, "version": "gemm"}


def generation_config() -> dict[str, Any]:
    # No sampling defaults here: vLLM would apply them to every request and hide the client's settings.
    return {"bos_token_id": BOS_ID, "eos_token_id": EOS_ID}
