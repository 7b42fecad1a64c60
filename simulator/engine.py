"""Continuous-batching engine model: a vLLM-V1-like scheduler in discrete steps, timed by a roofline.

Pure: no I/O and no clock. `Engine.step()` schedules one forward pass and returns how long it takes;
the caller (the server, or `simulate` with a virtual clock) advances time.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from simulator.profiles import Profile

__all__ = ["BLOCK_SIZE_TOKENS", "Engine", "SimulatedTiming", "StepCost", "StepResult", "simulate", "step_cost"]

BLOCK_SIZE_TOKENS = 16  # vLLM's default KV block size


@dataclass(frozen=True)
class StepCost:
    """The roofline terms of one step, in seconds (their sum is the step time)."""

    weights_s: float
    kv_s: float
    compute_s: float
    overhead_s: float

    @property
    def total_s(self) -> float:
        return self.weights_s + self.kv_s + self.compute_s + self.overhead_s


def step_cost(profile: Profile, batch: Iterable[tuple[int, int]]) -> StepCost:
    """Time of one forward pass over `batch` = (context_tokens_before, new_tokens) per sequence.

    Memory: every step streams all weights once, and each sequence reads its KV (context) and writes
    KV for its new tokens. Compute: 2 FLOPs per parameter per new token (linear layers, the quantized
    part scaled by `dequant_factor`) plus attention 4 × layers × q_dim FLOPs per (query, key) pair.
    Terms are summed (no overlap assumed), which is conservative and keeps each term visible.
    """
    bandwidth_b_s = profile.memory_bandwidth_gb_s * 1e9 * profile.bandwidth_efficiency
    peak_flop_s = profile.peak_tflops * 1e12 * profile.compute_efficiency
    q_dim = profile.num_attention_heads * profile.head_dim
    new_tokens = 0
    kv_tokens = 0
    attention_pairs = 0.0
    for context, new in batch:
        new_tokens += new
        kv_tokens += context + new
        attention_pairs += new * (context + (new + 1) / 2.0)
    if new_tokens == 0:
        return StepCost(0.0, 0.0, 0.0, 0.0)
    quantized_params = (profile.params_b - profile.unquantized_params_b) * 1e9
    linear_flops = 2.0 * new_tokens * (quantized_params * profile.dequant_factor + profile.unquantized_params_b * 1e9)
    attention_flops = 4.0 * profile.num_layers * q_dim * attention_pairs
    return StepCost(
        weights_s=profile.weight_bytes / bandwidth_b_s,
        kv_s=kv_tokens * profile.kv_bytes_per_token / bandwidth_b_s,
        compute_s=(linear_flops + attention_flops) / peak_flop_s,
        overhead_s=profile.step_overhead_ms / 1e3,
    )


@dataclass
class _Seq:
    seq_id: int
    prompt_tokens: int
    output_tokens: int  # tokens this request will generate in total (decided by the text generator)
    generated: int = 0
    computed: int = 0  # tokens whose KV is in cache (prompt + generated, minus what a preemption dropped)
    blocks: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.generated


@dataclass(frozen=True)
class StepResult:
    """What one step did: its duration, which sequences got a token, which finished."""

    duration_s: float
    cost: StepCost
    emitted: list[int]  # seq ids that produced one new token this step (first tokens included)
    finished: list[int]
    num_scheduled_tokens: int
    num_preempted: int


@dataclass
class Engine:
    """Scheduler state: FCFS waiting queue, running list, KV blocks; `step()` advances one iteration."""

    profile: Profile
    max_num_seqs: int
    max_num_batched_tokens: int
    kv_capacity_tokens: int
    waiting: deque[_Seq] = field(default_factory=deque)
    running: list[_Seq] = field(default_factory=list)
    used_blocks: int = 0
    num_preemptions: int = 0

    @classmethod
    def from_profile(
        cls,
        profile: Profile,
        max_num_seqs: int | None = None,
        max_num_batched_tokens: int | None = None,
        kv_capacity_tokens: int | None = None,
    ) -> Engine:
        return cls(
            profile=profile,
            max_num_seqs=max_num_seqs or profile.max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens or profile.max_num_batched_tokens,
            kv_capacity_tokens=kv_capacity_tokens or profile.kv_capacity_tokens,
        )

    @property
    def total_blocks(self) -> int:
        return self.kv_capacity_tokens // BLOCK_SIZE_TOKENS

    @property
    def kv_usage(self) -> float:
        """Fraction of KV blocks in use (vllm:kv_cache_usage_perc is this fraction, 0..1)."""
        return self.used_blocks / self.total_blocks if self.total_blocks else 0.0

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def add(self, seq_id: int, prompt_tokens: int, output_tokens: int) -> None:
        """Queue a request that will generate exactly `output_tokens` (>= 1) tokens."""
        self.waiting.append(_Seq(seq_id, prompt_tokens, max(1, output_tokens)))

    def abort(self, seq_id: int) -> None:
        """Drop a request (client went away): frees its KV blocks."""
        for seq in self.running:
            if seq.seq_id == seq_id:
                self.running.remove(seq)
                self.used_blocks -= seq.blocks
                return
        for seq in self.waiting:
            if seq.seq_id == seq_id:
                self.waiting.remove(seq)
                self.used_blocks -= seq.blocks
                return

    def _grow(self, seq: _Seq, new_tokens: int) -> bool:
        need = math.ceil((seq.computed + new_tokens) / BLOCK_SIZE_TOKENS) - seq.blocks
        if need <= 0:
            return True
        if self.used_blocks + need > self.total_blocks:
            return False
        seq.blocks += need
        self.used_blocks += need
        return True

    def _preempt(self, seq: _Seq) -> None:
        # vLLM V1 recompute preemption: drop all KV; the request re-prefills prompt + generated tokens later.
        self.running.remove(seq)
        self.used_blocks -= seq.blocks
        seq.blocks = 0
        seq.computed = 0
        self.waiting.appendleft(seq)
        self.num_preemptions += 1

    def _schedule(self) -> tuple[list[tuple[_Seq, int]], int]:
        budget = self.max_num_batched_tokens
        scheduled: list[tuple[_Seq, int]] = []
        preempted = 0
        # Running requests first (decodes and unfinished chunked prefills), oldest first.
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            new = min(seq.total_tokens - seq.computed, budget)
            while not self._grow(seq, new):
                victim = self.running[-1]  # the most recently admitted request loses its KV
                self._preempt(victim)
                preempted += 1
                if victim is seq:
                    break
            else:
                scheduled.append((seq, new))
                budget -= new
                i += 1
                continue
            break  # seq itself was preempted; nothing after it is left running
        # Then admit waiting requests FCFS while there is budget, a free slot and KV room.
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs and not preempted:
            seq = self.waiting[0]
            new = min(seq.total_tokens - seq.computed, budget)
            if not self._grow(seq, new):
                break
            self.waiting.popleft()
            self.running.append(seq)
            scheduled.append((seq, new))
            budget -= new
        return scheduled, preempted

    def step(self) -> StepResult:
        """Schedule and 'run' one iteration; returns its duration and the sequences that emitted a token."""
        scheduled, preempted = self._schedule()
        cost = step_cost(self.profile, ((seq.computed, new) for seq, new in scheduled))
        emitted: list[int] = []
        finished: list[int] = []
        for seq, new in scheduled:
            seq.computed += new
            if seq.computed < seq.total_tokens:
                continue  # chunked prefill not finished: no token sampled yet
            seq.generated += 1
            emitted.append(seq.seq_id)
            if seq.generated >= seq.output_tokens:
                finished.append(seq.seq_id)
                self.running.remove(seq)
                self.used_blocks -= seq.blocks
        return StepResult(
            duration_s=cost.total_s,
            cost=cost,
            emitted=emitted,
            finished=finished,
            num_scheduled_tokens=sum(new for _, new in scheduled),
            num_preempted=preempted,
        )


@dataclass(frozen=True)
class SimulatedTiming:
    """Virtual-clock timings of one simulated request, seconds from the start of `simulate`."""

    arrival_s: float
    first_token_s: float
    finish_s: float
    output_tokens: int

    @property
    def ttft_s(self) -> float:
        return self.first_token_s - self.arrival_s

    @property
    def e2e_s(self) -> float:
        return self.finish_s - self.arrival_s

    @property
    def tpot_s(self) -> float:
        return (self.finish_s - self.first_token_s) / max(1, self.output_tokens - 1)


def simulate(
    engine: Engine, requests: list[tuple[float, int, int]], max_steps: int = 10_000_000
) -> list[SimulatedTiming]:
    """Run `requests` = (arrival_s, prompt_tokens, output_tokens) to completion on a virtual clock.

    Tokens are stamped at the end of the step that produced them, as the server emits them.
    """
    order = sorted(range(len(requests)), key=lambda k: requests[k][0])
    first: dict[int, float] = {}
    done: dict[int, float] = {}
    now_s = 0.0
    nxt = 0
    for _ in range(max_steps):
        while nxt < len(order) and requests[order[nxt]][0] <= now_s:
            k = order[nxt]
            engine.add(k, requests[k][1], requests[k][2])
            nxt += 1
        if not engine.has_work():
            if nxt == len(order):
                break
            now_s = requests[order[nxt]][0]
            continue
        result = engine.step()
        now_s += result.duration_s
        for seq_id in result.emitted:
            first.setdefault(seq_id, now_s)
        for seq_id in result.finished:
            done[seq_id] = now_s
    return [
        SimulatedTiming(arrival_s=req[0], first_token_s=first[k], finish_s=done[k], output_tokens=req[2])
        for k, req in enumerate(requests)
    ]
