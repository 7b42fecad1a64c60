"""Output drift vs a reference target, from the quality pass's JSONL (RUN/quality/), and its cost.

Per prompt: exact match, first divergence token, token agreement, ROUGE-L F1, length ratio, and — where
the servers scored the reference output — Δ mean logprob per token and the perplexity ratio.
Acceptance = share of outputs whose ROUGE-L F1 vs the reference is at or above a threshold: a heuristic
for "the answer did not change materially", not a judgement of correctness. Quality-adjusted
$/1M tokens = $/1M tokens ÷ acceptance rate (each accepted token carries the cost of the rejected ones).
`load_quality` reads files; everything else is DataFrame → DataFrame.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.errors import InputError
from analysis.textformat import significant
from analysis.textsim import compare_texts
from runformat.layout import QUALITY_DIR, QUALITY_MANIFEST

__all__ = [
    "ACCEPTANCE_NOTE",
    "PROMPT_COLUMNS",
    "SUMMARY_COLUMNS",
    "Quality",
    "QualityRun",
    "drift_lines",
    "load_quality",
    "per_prompt_table",
    "quality_adjusted_cost",
    "resolve_quality",
    "summarize_quality",
    "summary_table",
    "worst_examples",
]

ACCEPTANCE_NOTE = (
    "acceptance = share of outputs with ROUGE-L F1 ≥ {threshold:.2f} vs the reference output (a heuristic for "
    "'the answer did not change materially', not a correctness judgement); "
    "quality-adjusted $/1M tokens = $/1M tokens ÷ acceptance"
)
PROMPT_COLUMNS = [
    "reference_label",
    "target_label",
    "workload",
    "prompt_id",
    "max_new_tokens",
    "exact_match",
    "first_divergence_token",
    "reference_tokens",
    "target_tokens",
    "token_agreement",
    "rouge_l_f1",
    "length_ratio",
    "reference_mean_logprob",
    "target_mean_logprob",
    "delta_mean_logprob",
    "perplexity_ratio",
    "accepted",
    "error",
]
SUMMARY_COLUMNS = [
    "reference_label",
    "target_label",
    "workload",
    "max_new_tokens",
    "prompts",
    "errors",
    "exact_match_rate",
    "first_divergence_token_median",
    "token_agreement_mean",
    "rouge_l_f1_mean",
    "length_ratio_mean",
    "scored_prompts",
    "delta_mean_logprob",
    "perplexity_ratio",
    "acceptance_rate",
]


@dataclass
class QualityRun:
    """The manifest and one row per target × prompt × max_new_tokens (the JSONL lines)."""

    path: Path
    manifest: dict[str, Any]
    outputs: pd.DataFrame

    @property
    def labels(self) -> list[str]:
        return [str(t["label"]) for t in self.manifest.get("targets", [])]


def load_quality(run_dir: Path) -> QualityRun | None:
    """RUN/quality as tables; None when the run has no finished quality pass (no manifest)."""
    qdir = run_dir / QUALITY_DIR
    manifest_path = qdir / QUALITY_MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{manifest_path}: unreadable quality manifest ({exc})") from exc
    frames = []
    for target in manifest.get("targets", []):
        path = qdir / str(target.get("file"))
        try:
            frame = pd.read_json(path, lines=True, dtype={"text": "object", "prompt_id": "object"})
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: unreadable quality outputs ({exc})") from exc
        missing = {"prompt_id", "max_new_tokens", "text", "error"} - set(frame.columns)
        if missing:
            raise InputError(f"{path}: missing field(s) {', '.join(sorted(missing))} in the quality outputs")
        frames.append(frame.assign(target_label=str(target["label"])))
    outputs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for column in ("ref_mean_logprob", "ref_logprob_sum", "ref_scored_tokens", "workload"):
        if column not in outputs.columns:
            outputs[column] = np.nan
    return QualityRun(qdir, manifest, outputs)


def per_prompt_table(outputs: pd.DataFrame, reference: str, threshold: float) -> pd.DataFrame:
    """One row per non-reference target × prompt × max_new_tokens, compared with the reference's output."""
    labels = list(dict.fromkeys(outputs["target_label"]))
    if reference not in labels:
        raise InputError(f"unknown reference label {reference!r}; labels in the quality pass: {', '.join(labels)}")
    ref = {
        (r["prompt_id"], r["max_new_tokens"]): r
        for r in outputs[outputs["target_label"] == reference].to_dict("records")
    }
    rows = []
    for row in outputs[outputs["target_label"] != reference].itertuples(index=False):
        key = (row.prompt_id, row.max_new_tokens)
        base: dict[str, Any] = {
            "reference_label": reference,
            "target_label": row.target_label,
            "workload": row.workload,
            "prompt_id": row.prompt_id,
            "max_new_tokens": row.max_new_tokens,
            "prompt": getattr(row, "prompt", None),
            "target_text": row.text,
        }
        ref_row = ref.get(key)
        error = row.error if isinstance(row.error, str) else None
        if ref_row is not None and isinstance(ref_row["error"], str):
            error = f"reference: {ref_row['error']}"
        elif ref_row is None:
            error = "reference has no output for this prompt"
        if error is not None:
            rows.append(base | {"error": error, "reference_text": None})
            continue
        assert ref_row is not None
        sim = compare_texts(str(ref_row["text"] or ""), str(row.text or ""))
        ref_lp, lp = float(ref_row["ref_mean_logprob"]), float(getattr(row, "ref_mean_logprob", math.nan))
        rows.append(
            base
            | {
                "reference_text": ref_row["text"],
                "exact_match": sim.exact_match,
                "first_divergence_token": sim.first_divergence_token,
                "reference_tokens": sim.reference_tokens,
                "target_tokens": sim.candidate_tokens,
                "token_agreement": sim.token_agreement,
                "rouge_l_f1": sim.rouge_l_f1,
                "length_ratio": sim.length_ratio,
                "reference_mean_logprob": ref_lp,
                "target_mean_logprob": lp,
                "reference_logprob_sum": float(ref_row["ref_logprob_sum"]),
                "target_logprob_sum": float(getattr(row, "ref_logprob_sum", math.nan)),
                "scored_tokens": float(getattr(row, "ref_scored_tokens", math.nan)),
                "error": None,
            }
        )
    table = pd.DataFrame(rows)
    for column in [*PROMPT_COLUMNS, "reference_logprob_sum", "target_logprob_sum", "scored_tokens", "reference_text"]:
        if column not in table.columns:
            table[column] = np.nan
    table["delta_mean_logprob"] = table["target_mean_logprob"] - table["reference_mean_logprob"]
    table["perplexity_ratio"] = np.exp(-table["delta_mean_logprob"])
    ok = table["error"].isna()
    table["accepted"] = ok & (table["rouge_l_f1"].astype(float) >= threshold)
    table["exact_match"] = table["exact_match"].astype("boolean")
    table["first_divergence_token"] = table["first_divergence_token"].astype("Int64")
    return table.sort_values(["target_label", "workload", "max_new_tokens", "prompt_id"]).reset_index(drop=True)


def _summarize(group: pd.DataFrame) -> dict[str, Any]:
    ok = group[group["error"].isna()]
    scored = ok.dropna(subset=["target_logprob_sum", "reference_logprob_sum", "scored_tokens"])
    scored = scored[scored["scored_tokens"] > 0]
    tokens = float(scored["scored_tokens"].sum())
    delta = (
        (float(scored["target_logprob_sum"].sum()) - float(scored["reference_logprob_sum"].sum())) / tokens
        if tokens > 0
        else math.nan
    )
    divergence = ok["first_divergence_token"].dropna()
    return {
        "prompts": len(group),
        "errors": int(group["error"].notna().sum()),
        "exact_match_rate": float(ok["exact_match"].astype(float).mean()) if len(ok) else math.nan,
        "first_divergence_token_median": float(divergence.median()) if len(divergence) else math.nan,
        "token_agreement_mean": float(ok["token_agreement"].mean()) if len(ok) else math.nan,
        "rouge_l_f1_mean": float(ok["rouge_l_f1"].mean()) if len(ok) else math.nan,
        "length_ratio_mean": float(ok["length_ratio"].mean()) if len(ok) else math.nan,
        "scored_prompts": len(scored),
        "delta_mean_logprob": delta,  # token-weighted over every scored prompt
        "perplexity_ratio": math.exp(-delta) if not math.isnan(delta) else math.nan,
        # failed requests count as not accepted: an error is a quality incident too
        "acceptance_rate": float(group["accepted"].astype(float).mean()) if len(group) else math.nan,
    }


def summary_table(prompts: pd.DataFrame) -> pd.DataFrame:
    """Per reference × target × workload × max_new_tokens, then one "all" row per target pair."""
    rows = []
    if prompts.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    for (ref, target), pair in prompts.groupby(["reference_label", "target_label"], sort=False):
        for (workload, tokens), group in pair.groupby(["workload", "max_new_tokens"], sort=True):
            rows.append(
                {"reference_label": ref, "target_label": target, "workload": workload}
                | {"max_new_tokens": tokens}
                | _summarize(group)
            )
        rows.append(
            {"reference_label": ref, "target_label": target, "workload": "all", "max_new_tokens": pd.NA}
            | _summarize(pair)
        )
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    table["max_new_tokens"] = table["max_new_tokens"].astype("Int64")
    return table


def worst_examples(prompts: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """Per target, the `n` outputs furthest from the reference: lowest ROUGE-L F1, then largest logprob drop.
    An output identical to the reference is never an example, however few outputs differ."""
    ok = prompts[prompts["error"].isna() & ~prompts["exact_match"].fillna(False).astype(bool)]
    ordered = ok.sort_values(["rouge_l_f1", "delta_mean_logprob", "prompt_id"], na_position="last")
    return ordered.groupby("target_label", sort=False).head(n).reset_index(drop=True)


def quality_adjusted_cost(cost: pd.DataFrame, summary: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Cost rows with acceptance_rate and quality_adjusted_usd_per_1m_tokens.

    Acceptance is matched on target × workload × max_new_tokens, else the target's overall rate; the
    reference's own outputs are accepted by definition.
    """
    out = cost[["target_label", "workload", "concurrency", "max_new_tokens", "usd_per_1m_tokens"]].copy()
    cells = summary[summary["workload"] != "all"][["target_label", "workload", "max_new_tokens", "acceptance_rate"]]
    overall = summary[summary["workload"] == "all"][["target_label", "acceptance_rate"]]
    cells = cells.astype({"max_new_tokens": "float"})
    out = out.astype({"max_new_tokens": "float"}).merge(
        cells, how="left", on=["target_label", "workload", "max_new_tokens"]
    )
    fallback = out[["target_label"]].merge(overall, how="left", on="target_label")["acceptance_rate"]
    out["acceptance_rate"] = out["acceptance_rate"].fillna(pd.Series(fallback.to_numpy(), index=out.index))
    out.loc[out["target_label"] == reference, "acceptance_rate"] = 1.0
    out["max_new_tokens"] = out["max_new_tokens"].astype("Int64")
    rate = out["acceptance_rate"].where(out["acceptance_rate"] > 0)
    out["quality_adjusted_usd_per_1m_tokens"] = out["usd_per_1m_tokens"] / rate
    return out


def _pct(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value * 100:.1f}%"


def drift_lines(
    summary: pd.DataFrame, adjusted: pd.DataFrame, points: list[dict[str, Any]], threshold: float
) -> list[str]:
    """One "at the measured drift, …" sentence per target pair, with the headline points' adjusted cost."""
    lines = []
    for row in summary[summary["workload"] == "all"].to_dict("records"):
        delta = float(row["delta_mean_logprob"])
        drift = (
            f"Δ mean logprob {delta:+.3f} nats/token, perplexity ×{float(row['perplexity_ratio']):.3f}"
            if not math.isnan(delta)
            else "no logprob scoring (the server offered no prompt logprobs)"
        )
        text = (
            f"At the measured drift of {row['target_label']} vs {row['reference_label']} over {row['prompts']} "
            f"outputs (exact match {_pct(float(row['exact_match_rate']))}, mean ROUGE-L F1 "
            f"{float(row['rouge_l_f1_mean']):.3f}, {drift}), {_pct(float(row['acceptance_rate']))} of outputs "
            f"stay at ROUGE-L F1 ≥ {threshold:.2f}"
        )
        costs = []
        for p in points:
            sel = adjusted[
                (adjusted["target_label"] == row["target_label"])
                & (adjusted["workload"] == p["workload"])
                & (adjusted["concurrency"] == p["concurrency"])
                & (adjusted["max_new_tokens"] == p["max_new_tokens"])
            ]
            if len(sel) and not math.isnan(float(sel["quality_adjusted_usd_per_1m_tokens"].iloc[0])):
                r = sel.iloc[0]
                costs.append(
                    f"{p['title'].lower()} conc={p['concurrency']}: ${significant(float(r['usd_per_1m_tokens']))} → "
                    f"${significant(float(r['quality_adjusted_usd_per_1m_tokens']))} per 1M accepted tokens"
                )
        lines.append(text + ("; quality-adjusted cost " + ", ".join(costs) if costs else "") + ".")
    return lines


def resolve_quality(quality: QualityRun, reference: str | None, threshold: float | None) -> tuple[str, float]:
    """Flags first, then the manifest (the scenario's [quality] table), then the first target and 0.8."""
    ref = reference or str(quality.manifest.get("reference") or (quality.labels[0] if quality.labels else ""))
    if ref not in quality.labels:
        raise InputError(
            f"{quality.path}: unknown reference label {ref!r}; labels in the quality pass: {', '.join(quality.labels)}"
        )
    value = threshold if threshold is not None else float(quality.manifest.get("threshold", 0.8))
    if not 0.0 <= value <= 1.0:
        raise InputError(f"--threshold must be in [0, 1], got {value}")
    return ref, value


@dataclass
class Quality:
    """The quality tables of one run for one reference and threshold."""

    reference: str
    threshold: float
    prompts: pd.DataFrame
    summary: pd.DataFrame
    worst: pd.DataFrame
    adjusted_cost: pd.DataFrame

    @property
    def note(self) -> str:
        return ACCEPTANCE_NOTE.format(threshold=self.threshold)


def summarize_quality(
    quality: QualityRun, cost: pd.DataFrame, reference: str | None, threshold: float | None, worst_n: int = 5
) -> Quality:
    ref, value = resolve_quality(quality, reference, threshold)
    outputs = quality.outputs
    if ref != quality.manifest.get("reference"):
        # the servers scored the pass's reference output, not this one's: no logprob drift to report
        outputs = outputs.assign(ref_mean_logprob=math.nan, ref_logprob_sum=math.nan, ref_scored_tokens=math.nan)
    prompts = per_prompt_table(outputs, ref, value)
    summary = summary_table(prompts)
    return Quality(
        ref, value, prompts, summary, worst_examples(prompts, worst_n), quality_adjusted_cost(cost, summary, ref)
    )
