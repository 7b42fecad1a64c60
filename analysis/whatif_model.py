"""The step-time model a what-if projection runs on: a GPU profile serving a model, driven in a closed loop.

The simulator's engine (vLLM-like scheduler, roofline step time) is the model, plus host time. A step's
time is linear in four coefficients, c = (1 / bandwidth efficiency, 1 / compute efficiency, seconds per
step, seconds per emitted token):

    step_s = bytes_moved / bandwidth · c₀ + flops / peak · c₁ + c₂ + tokens_emitted · c₃

and a closed loop with no think time schedules the same batches whatever the steps cost, so one engine
run per cell yields features from which throughput, TPOT and TTFT are linear (or ratio) functions of c.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from simulator.engine import Engine
from simulator.profiles import Profile

__all__ = ["MODEL_FIELDS", "LoopTrace", "LoopWorkload", "compose", "doc_theta", "run_closed_loop"]

# What a profile says about the model (the rest describes the GPU and the server's limits).
MODEL_FIELDS = (
    "model",
    "params_b",
    "unquantized_params_b",
    "num_layers",
    "hidden_size",
    "num_attention_heads",
    "num_kv_heads",
    "head_dim",
    "weight_bytes_per_param",
    "kv_bytes_per_element",
    "dequant_factor",
    "max_model_len",
)
WARMUP_LIFETIMES = 2  # request lifetimes simulated before the window (the ramp and first waves settle)
WINDOW_LIFETIMES = 4


def compose(hardware: Profile, model: Profile) -> Profile:
    """`hardware`'s GPU, efficiencies and server limits serving `model`'s weights (its quantization included)."""
    fields = {name: getattr(model, name) for name in MODEL_FIELDS}
    name = f"{hardware.name.rsplit('-', 1)[0]}+{model.model}"
    return dataclasses.replace(hardware, name=name, **fields)


def doc_theta(profile: Profile) -> np.ndarray:
    """Step coefficients at the profile's documented assumptions, without host time (the simulator's own)."""
    return np.array(
        [1.0 / profile.bandwidth_efficiency, 1.0 / profile.compute_efficiency, profile.step_overhead_ms / 1e3, 0.0]
    )


@dataclass(frozen=True)
class LoopWorkload:
    """One cell's shape: users, mean prompt and output tokens, and whether the users move in lockstep."""

    concurrency: int
    prompt_tokens: int
    output_tokens: int
    synchronized: bool
    ramp_steps: int = 0  # synchronized users join one by one over this many steps (Locust's spawn ramp)


@dataclass(frozen=True)
class LoopTrace:
    """Per-step features (steps × 4: memory s, compute s, 1, tokens emitted) and the steady window's
    requests, independent of the coefficients.

    `requests` rows: (send step, first-token step, finish step, output tokens); a request is sent at the
    end of step `send` (its predecessor's finish), so its TTFT spans steps send+1 … first.
    """

    features: np.ndarray
    tokens: np.ndarray
    window: tuple[int, int]  # steps [start, end)
    requests: np.ndarray

    def step_s(self, coef: np.ndarray) -> np.ndarray:
        return np.asarray(self.features @ coef, dtype=float)

    def s_per_token_features(self) -> np.ndarray:
        """g with seconds per output token in the window = g · c (the inverse of throughput)."""
        a, b = self.window
        return np.asarray(self.features[a:b].sum(axis=0) / max(1.0, float(self.tokens[a:b].sum())))

    def _span_features(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Per request, the summed features of steps [start, end] (inclusive), via cumulative sums."""
        cum = np.vstack([np.zeros((1, self.features.shape[1])), np.cumsum(self.features, axis=0)])
        return np.asarray(cum[ends + 1] - cum[starts])

    def tpot_features(self) -> np.ndarray:
        """Per request (rows), g with TPOT seconds = g · c."""
        r = self.requests
        out = np.maximum(r[:, 3] - 1, 1)[:, None]
        return self._span_features(r[:, 1] + 1, r[:, 2]) / out

    def ttft_features(self) -> np.ndarray:
        """Per request (rows), g with TTFT seconds = g · c."""
        r = self.requests
        return self._span_features(r[:, 0] + 1, r[:, 1])


def _unit(profile: Profile) -> Profile:
    """The profile at full efficiency and no overhead: its step costs are the c-free features."""
    return dataclasses.replace(profile, bandwidth_efficiency=1.0, compute_efficiency=1.0, step_overhead_ms=0.0)


def run_closed_loop(profile: Profile, work: LoopWorkload) -> LoopTrace:
    """Drive the engine with `concurrency` users who resend as soon as a response ends.

    A resent request reaches the server while the next step already runs, so it is scheduled one step
    later (as the simulator and vLLM do). Unsynchronized users start with staggered first outputs so
    their phases spread evenly; synchronized ones (the cell showed closed-loop waves) keep the phases the
    spawn ramp gave them.
    """
    unit = _unit(profile)
    engine = Engine.from_profile(unit)
    n, o = work.concurrency, max(1, work.output_tokens)
    lifetime = o + 3 + work.prompt_tokens // max(1, profile.max_num_batched_tokens)
    total = (WARMUP_LIFETIMES + WINDOW_LIFETIMES) * lifetime
    window = (WARMUP_LIFETIMES * lifetime, total)
    owner: dict[int, tuple[int, int, int]] = {}  # seq id → (user, send step, output tokens)
    first: dict[int, int] = {}
    pending: list[tuple[int, int]] = []  # (step at which it reaches the engine, user)
    next_id = 0

    def send(user: int, step: int, outputs: int) -> None:
        nonlocal next_id
        engine.add(next_id, work.prompt_tokens, outputs)
        owner[next_id] = (user, step, outputs)
        next_id += 1

    for user in range(n):
        if work.synchronized and work.ramp_steps > 0:
            pending.append((user * work.ramp_steps // n, user))
        else:
            send(user, -1, o if work.synchronized else max(1, round(o * (user + 1) / n)))
    features = np.zeros((total, 4))
    tokens = np.zeros(total)
    done: list[tuple[int, int, int, int]] = []
    for step in range(total):
        for _, user in [p for p in pending if p[0] == step]:
            send(user, step - 2, o)
        pending = [p for p in pending if p[0] != step]
        result = engine.step()
        cost = result.cost
        tokens[step] = len(result.emitted)
        features[step] = (cost.weights_s + cost.kv_s, cost.compute_s, 1.0, tokens[step])
        for seq in result.emitted:
            first.setdefault(seq, step)
        for seq in result.finished:
            user, sent, outputs = owner.pop(seq)
            done.append((sent, first.pop(seq), step, outputs))
            pending.append((step + 2, user))
    a, b = window
    rows = [r for r in done if a <= r[0] + 1 and r[2] < b]
    return LoopTrace(features, tokens, window, np.array(rows, dtype=int).reshape(-1, 4))
