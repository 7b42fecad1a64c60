"""The quality pass: the same seeded prompts to every target, outputs stored for drift analysis.

Each target gets every prompt at temperature 0 with a fixed seed, non-streaming, a few at a time
(`[quality] concurrency`), so it neither disturbs nor is disturbed by load. Then, where the server
allows it (vLLM does), the reference target's output is scored under each target: POST
/v1/completions with prompt + reference output, `echo: true`, `logprobs: 0`, `max_tokens: 1` gives
the logprob of every prompt token; the reference output's tokens are the prompt's tail.
Files: RUN/quality/<target>.jsonl (one line per prompt × max_new_tokens) and manifest.json, written last.
"""

from __future__ import annotations

import ast
import json
import math
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadgen.apis import GenerationParams, Prompt, get_api
from loadgen.workloads import DATA_DIR, PROMPT_SHAPES, PromptFitter, WorkloadError, WorkloadPrompts, load_texts
from orchestrator.scenario import Scenario, ScenarioError, Target, Workload, safe_name
from runformat.atomic import write_json_atomic, write_text_atomic
from runformat.layout import QUALITY_DIR, QUALITY_MANIFEST

__all__ = [
    "MANIFEST",
    "QualityPrompt",
    "build_prompts",
    "quality_dir",
    "reference_label",
    "reference_logprobs",
    "run_quality",
]

MANIFEST = QUALITY_MANIFEST


@dataclass(frozen=True)
class QualityPrompt:
    prompt_id: str
    workload: str
    api: str
    prompt: Prompt
    max_new_tokens: int


def quality_dir(run_dir: Path) -> Path:
    return run_dir / QUALITY_DIR


def reference_label(scenario: Scenario) -> str:
    return scenario.quality.reference or scenario.targets[0].label


def _declared_workload(locustfile: Path) -> str | None:
    """The `workload = "..."` a locustfile's user class declares, read from its source (importing it would
    bring in locust and gevent)."""
    try:
        tree = ast.parse(locustfile.read_text(encoding="utf-8"), str(locustfile))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        named = isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "workload" for t in node.targets
        )
        if named and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):  # type: ignore[attr-defined]
            return str(node.value.value)  # type: ignore[attr-defined]
    return None


def _shape(workload: Workload) -> WorkloadPrompts:
    """How the workload's users build prompts: by the workload its locustfile declares, else by its name."""
    declared = _declared_workload(Path(workload.locustfile))
    shape = PROMPT_SHAPES.get(declared or "") or PROMPT_SHAPES.get(workload.name)
    if shape is None:
        raise ScenarioError(
            f"[quality]: cannot tell what prompts workload '{workload.name}' ({workload.locustfile}) sends; "
            f"its user class declares workload {declared!r}, known: {', '.join(PROMPT_SHAPES)} "
            "(or list workloads in [quality])"
        )
    return shape


def build_prompts(scenario: Scenario) -> list[QualityPrompt]:
    """The fixed prompt set: per workload, `prompts` texts drawn with `seed` from its source, × max_new_tokens."""
    q = scenario.quality
    chosen = [w for w in scenario.workloads if not q.workloads or w.name in q.workloads]
    out: list[QualityPrompt] = []
    for w in chosen:
        shape = _shape(w)
        options = dict(w.options)
        source = options.get("docs") or DATA_DIR / shape.default_source
        try:
            texts = load_texts(source)
        except WorkloadError as exc:
            raise ScenarioError(f"[quality] workload '{w.name}': {exc}") from exc
        rng = random.Random(f"{q.seed}-{w.name}")
        picked = sorted(rng.sample(range(len(texts)), min(q.prompts, len(texts))))
        fitter = PromptFitter(options["prompt_tokens"]) if options.get("prompt_tokens") else None
        for index in picked:
            text = fitter.fit(texts[index], texts) if fitter is not None else texts[index]
            prompt: Prompt = shape.build(text)
            for tokens in q.max_new_tokens or w.max_new_tokens:
                out.append(QualityPrompt(f"{w.name}-{index:03d}", w.name, w.api, prompt, tokens))
    return out


def _post(url: str, body: dict[str, Any], headers: dict[str, str], timeout_s: float) -> tuple[int, Any]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")[:500]


def _generate(
    target: Target, model: str, p: QualityPrompt, seed: int, headers: dict[str, str], timeout_s: float
) -> dict[str, Any]:
    api = get_api(p.api)
    params = GenerationParams(model=model, max_new_tokens=p.max_new_tokens, temperature=0.0, ignore_eos=False)
    body = {**api.build_payload(p.prompt, params, stream_options=False), "stream": False, "seed": seed}
    request_id = f"quality-{p.prompt_id}-m{p.max_new_tokens}"
    record: dict[str, Any] = {
        "prompt_id": p.prompt_id,
        "workload": p.workload,
        "api": p.api,
        "max_new_tokens": p.max_new_tokens,
        "prompt": body.get("prompt", body.get("messages")),
        "request_id": request_id,
        "text": None,
        "error": None,
    }
    start = time.perf_counter()
    try:
        status, answer = _post(target.url + api.path, body, {**headers, "X-Request-Id": request_id}, timeout_s)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return record | {"error": f"request failed: {exc}"}
    record["latency_ms"] = round((time.perf_counter() - start) * 1000.0, 3)
    if status != 200 or not isinstance(answer, dict) or not answer.get("choices"):
        return record | {"error": f"HTTP {status}: {str(answer)[:300]}"}
    choice = answer["choices"][0]
    text = choice.get("text") if p.api == "completions" else (choice.get("message") or {}).get("content")
    return record | {
        "response_id": answer.get("id"),
        "model": answer.get("model"),
        "text": text if isinstance(text, str) else "",
        "finish_reason": choice.get("finish_reason"),
        "usage": answer.get("usage"),
    }


def reference_logprobs(answer: dict[str, Any], reference_text: str) -> list[float] | None:
    """Logprobs of the tokens that spell `reference_text` at the end of an echoed prompt (vLLM's
    CompletionLogProbs layout); None when the answer carries no prompt logprobs."""
    try:
        choice = answer["choices"][0]
        tokens: list[str] = choice["logprobs"]["tokens"]
        logprobs: list[float | None] = choice["logprobs"]["token_logprobs"]
    except (KeyError, IndexError, TypeError):
        return None
    generated = int((answer.get("usage") or {}).get("completion_tokens") or 0)
    end = len(tokens) - generated
    scored: list[float] = []
    chars = 0
    for i in range(end - 1, -1, -1):  # walk back until the tokens cover the reference text
        if chars >= len(reference_text):
            break
        chars += len(tokens[i])
        if logprobs[i] is not None:
            scored.append(float(logprobs[i]))  # type: ignore[arg-type]
    return scored[::-1]


def _score(
    target: Target, model: str, ref: dict[str, Any], seed: int, headers: dict[str, str], timeout_s: float
) -> dict[str, Any]:
    text = ref.get("text") or ""
    prompt = ref["prompt"] if isinstance(ref["prompt"], str) else None
    if prompt is None:
        return {"ref_score_error": "not scored: chat API prompts have no plain-text form to echo"}
    if not text:
        return {"ref_score_error": "not scored: empty reference output"}
    body = {"model": model, "prompt": prompt + text, "max_tokens": 1, "temperature": 0.0, "seed": seed}
    body |= {"echo": True, "logprobs": 0, "stream": False}
    try:
        status, answer = _post(target.url + "/v1/completions", body, headers, timeout_s)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {"ref_score_error": f"request failed: {exc}"}
    scored = reference_logprobs(answer, text) if status == 200 and isinstance(answer, dict) else None
    if not scored:
        return {"ref_score_error": f"no prompt logprobs (HTTP {status}: {str(answer)[:200]})", "ref_score_http": status}
    total = math.fsum(scored)
    return {"ref_scored_tokens": len(scored), "ref_logprob_sum": total, "ref_mean_logprob": total / len(scored)}


def run_quality(
    scenario: Scenario,
    run_dir: Path,
    models: dict[str, str],
    headers: Callable[[Target], dict[str, str]],
    log: Callable[[str], None] = lambda line: None,
) -> Path:
    """Generate on every target in `models` (label → served model), score the reference, write the files."""
    q = scenario.quality
    prompts = build_prompts(scenario)
    reference = reference_label(scenario)
    out_dir = quality_dir(run_dir)
    started = datetime.now(UTC).isoformat()
    targets = [t for t in scenario.targets if t.label in models]
    timeout_s = scenario.request_timeout_s
    results: dict[str, list[dict[str, Any]]] = {}
    with ThreadPoolExecutor(max_workers=q.concurrency) as pool:
        for t in targets:
            log(f"quality: {len(prompts)} prompt(s) to {t.label}")
            results[t.label] = list(
                pool.map(lambda p, t=t: _generate(t, models[t.label], p, q.seed, headers(t), timeout_s), prompts)
            )
        refs = {(r["prompt_id"], r["max_new_tokens"]): r for r in results.get(reference, []) if r["error"] is None}
        for t in targets if q.logprobs else []:
            log(f"quality: scoring {reference}'s outputs under {t.label}")
            records = results[t.label]
            todo = [(r, refs.get((r["prompt_id"], r["max_new_tokens"]))) for r in records]
            first = next((i for i, (_, ref) in enumerate(todo) if ref is not None), None)
            if first is None:
                continue
            probe = _score(t, models[t.label], todo[first][1] or {}, q.seed, headers(t), timeout_s)
            if 400 <= int(probe.get("ref_score_http") or 0) < 500:  # the server does not offer prompt logprobs
                for r, _ in todo:
                    r["ref_score_error"] = probe["ref_score_error"]
                continue
            scores = pool.map(
                lambda pair, t=t: _score(t, models[t.label], pair[1], q.seed, headers(t), timeout_s) if pair[1] else {},
                todo,
            )
            for (r, _), s in zip(todo, scores, strict=True):
                r.update(s)
    files = {}
    for t in targets:
        name = f"{safe_name(t.label)}.jsonl"
        write_text_atomic(out_dir / name, "".join(json.dumps(r, sort_keys=True) + "\n" for r in results[t.label]))
        files[t.label] = name
    manifest = {
        "scenario": scenario.name,
        "reference": reference,
        "seed": q.seed,
        "threshold": q.threshold,
        "prompts_per_workload": q.prompts,
        "requests_per_target": len(prompts),
        "logprobs": q.logprobs,
        "targets": [
            {"label": t.label, "url": t.url, "model": models[t.label], "file": files[t.label]} for t in targets
        ],
        "errors": {t.label: sum(1 for r in results[t.label] if r["error"]) for t in targets},
        "started_at": started,
        "ended_at": datetime.now(UTC).isoformat(),
    }
    return write_json_atomic(out_dir / MANIFEST, manifest)  # last: its presence means the pass finished
