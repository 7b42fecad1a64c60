"""Engine math against hand-computed values: step time, KV capacity, queueing, preemption, physics."""

from __future__ import annotations

import dataclasses
import statistics

import pytest

from simulator.engine import BLOCK_SIZE_TOKENS, Engine, simulate, step_cost
from simulator.profiles import Profile, load_profiles

# Round numbers so every term can be checked by hand.
TOY = Profile(
    name="toy",
    description="toy",
    gpu="toy",
    gpu_memory_gib=10.0,
    memory_bandwidth_gb_s=100.0,
    peak_tflops=10.0,
    bandwidth_efficiency=1.0,
    compute_efficiency=1.0,
    gpu_memory_utilization=1.0,
    runtime_overhead_gib=0.0,
    step_overhead_ms=1.0,
    model="toy",
    params_b=1.0,
    unquantized_params_b=0.0,
    num_layers=2,
    hidden_size=64,
    num_attention_heads=2,
    num_kv_heads=1,
    head_dim=32,
    weight_bytes_per_param=2.0,
    kv_bytes_per_element=2.0,
    dequant_factor=1.0,
    max_model_len=4096,
    max_num_seqs=8,
    max_num_batched_tokens=512,
)


def test_derived_sizes_by_hand() -> None:
    assert TOY.weight_bytes == 2e9
    assert TOY.kv_bytes_per_token == 2 * 2 * 1 * 32 * 2  # K+V × layers × kv_heads × head_dim × bytes = 256
    assert TOY.kv_capacity_tokens == (10 * 1024**3 - 2_000_000_000) // 256 == 34_130_540


def test_step_cost_by_hand() -> None:
    cost = step_cost(TOY, [(100, 1)])  # one decode with 100 tokens of context
    assert cost.weights_s == pytest.approx(2e9 / 100e9)  # 20 ms
    assert cost.kv_s == pytest.approx(101 * 256 / 100e9)
    linear = 2 * 1e9 * 1
    attention = 4 * 2 * (2 * 32) * 1 * (100 + 1)  # 4 × layers × q_dim × (query, key) pairs
    assert cost.compute_s == pytest.approx((linear + attention) / 10e12)
    assert cost.overhead_s == pytest.approx(0.001)
    assert cost.total_s == pytest.approx(0.02 + 101 * 256 / 100e9 + (linear + attention) / 10e12 + 0.001)


def test_step_cost_empty_batch_is_free() -> None:
    assert step_cost(TOY, []).total_s == 0.0


def test_dequant_factor_scales_only_quantized_linear_flops() -> None:
    quant = dataclasses.replace(TOY, dequant_factor=1.5, unquantized_params_b=0.25)
    base = step_cost(TOY, [(0, 1000)])
    slow = step_cost(quant, [(0, 1000)])
    linear = 2 * 1000 * 1e9
    assert slow.compute_s - base.compute_s == pytest.approx(0.5 * 0.75 * linear / 10e12)


def test_chunked_prefill_and_first_token() -> None:
    engine = Engine.from_profile(TOY)  # budget 512 tokens per step
    engine.add(1, prompt_tokens=1000, output_tokens=3)
    first = engine.step()
    assert (first.num_scheduled_tokens, first.emitted) == (512, [])
    second = engine.step()
    assert (second.num_scheduled_tokens, second.emitted) == (488, [1])  # prefill done: first token sampled
    assert engine.step().emitted == [1]
    last = engine.step()
    assert last.emitted == [1] and last.finished == [1] and not engine.has_work() and engine.used_blocks == 0


def test_max_num_seqs_makes_requests_wait() -> None:
    engine = Engine.from_profile(TOY, max_num_seqs=2)
    for k in range(3):
        engine.add(k, prompt_tokens=10, output_tokens=2)
    assert sorted(engine.step().emitted) == [0, 1]
    assert len(engine.waiting) == 1 and len(engine.running) == 2
    result = engine.step()
    assert sorted(result.finished) == [0, 1]
    assert engine.step().emitted == [2]


def test_full_kv_cache_queues_then_preempts_and_recomputes() -> None:
    # 4 blocks of 16 tokens: two 20-token prompts take 2 blocks each, then decoding needs a fifth block.
    engine = Engine.from_profile(TOY, kv_capacity_tokens=4 * BLOCK_SIZE_TOKENS)
    engine.add(1, prompt_tokens=20, output_tokens=20)
    engine.add(2, prompt_tokens=20, output_tokens=20)
    engine.add(3, prompt_tokens=20, output_tokens=1)
    assert sorted(engine.step().emitted) == [1, 2]
    assert [s.seq_id for s in engine.waiting] == [3]  # no KV room: waits
    for _ in range(200):
        if not engine.has_work():
            break
        engine.step()
    assert not engine.has_work()
    assert engine.num_preemptions >= 1 and engine.used_blocks == 0


def test_latency_grows_with_concurrency_and_prompt_length() -> None:
    profile = load_profiles()["rtx2000-ada-16gb-bf16"]

    def mean_e2e(concurrency: int, prompt: int) -> float:
        timings = simulate(Engine.from_profile(profile), [(0.0, prompt, 64)] * concurrency)
        return statistics.mean(t.e2e_s for t in timings)

    assert mean_e2e(1, 128) < mean_e2e(8, 128) < mean_e2e(32, 128)
    assert mean_e2e(8, 128) < mean_e2e(8, 1024) < mean_e2e(8, 4096)


def test_awq_vs_bf16_at_32_streams_of_256_tokens() -> None:
    profiles = load_profiles()
    bf16, awq = profiles["rtx2000-ada-16gb-bf16"], profiles["rtx2000-ada-16gb-awq"]
    requests = [(0.0, 512, 256)] * 32

    def run(profile: Profile) -> tuple[float, float, float]:
        timings = simulate(Engine.from_profile(profile), requests)
        end_s = max(t.finish_s for t in timings)
        return 32 * 256 / end_s, statistics.mean(t.tpot_s for t in timings), statistics.mean(t.ttft_s for t in timings)

    bf16_tok_s, bf16_tpot, bf16_ttft = run(bf16)
    awq_tok_s, awq_tpot, awq_ttft = run(awq)
    # 4-bit weights: ~3.5x fewer bytes per step, so decode steps are shorter and throughput higher...
    assert awq.weight_bytes < bf16.weight_bytes / 2.5
    assert awq_tpot < bf16_tpot and awq_tok_s > 1.1 * bf16_tok_s
    # ...while compute-bound prefill pays the dequant cost, and the freed memory holds more KV.
    assert awq_ttft > bf16_ttft
    assert awq.kv_capacity_tokens > 1.4 * bf16.kv_capacity_tokens
    # The gap closes (here: reverses) once the batch is large enough to be compute-bound.
    bf16_one = step_cost(bf16, [(512, 1)]).total_s / step_cost(awq, [(512, 1)]).total_s
    bf16_big = step_cost(bf16, [(512, 1)] * 256).total_s / step_cost(awq, [(512, 1)] * 256).total_s
    assert bf16_one > 2.0 > bf16_big
