"""What a target says about itself: served models, max_model_len, version, /metrics — and preflight."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

__all__ = ["PreflightError", "TargetInfo", "probe_target"]


class PreflightError(RuntimeError):
    """A target that cannot be load-tested; the message names the target and URL."""


@dataclass(frozen=True)
class TargetInfo:
    model: str
    max_model_len: int | None
    served_models: tuple[str, ...]
    server_version: str | None
    metrics_available: bool


def _get(url: str, headers: dict[str, str], timeout_s: float) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def probe_target(
    label: str, base_url: str, model: str | None, headers: dict[str, str] | None = None, timeout_s: float = 5.0
) -> TargetInfo:
    """Ask `/v1/models` (required), `/version` and `/metrics` (optional); check the model is served."""
    headers = headers or {}
    models_url = f"{base_url}/v1/models"
    try:
        status, body = _get(models_url, headers, timeout_s)
    except (urllib.error.URLError, OSError) as exc:
        raise PreflightError(f"target '{label}': {models_url} is unreachable ({exc})") from exc
    if status != 200:
        raise PreflightError(f"target '{label}': {models_url} answered HTTP {status}: {body[:200]!r}")
    try:
        cards: list[dict[str, Any]] = json.loads(body)["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PreflightError(f"target '{label}': {models_url} did not return an OpenAI model list") from exc
    served = tuple(str(c.get("id")) for c in cards)
    if not served:
        raise PreflightError(f"target '{label}': {models_url} lists no models")
    chosen = model or served[0]
    if chosen not in served:
        raise PreflightError(
            f"target '{label}': model '{chosen}' is not served at {base_url} (served: {', '.join(served)})"
        )
    card = next(c for c in cards if c.get("id") == chosen)
    version = None
    try:
        status, body = _get(f"{base_url}/version", headers, timeout_s)
        if status == 200:
            version = str(json.loads(body).get("version"))
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        version = None
    try:
        metrics_status, metrics_body = _get(f"{base_url}/metrics", headers, timeout_s)
        metrics_ok = metrics_status == 200 and b"vllm:" in metrics_body
    except (urllib.error.URLError, OSError):
        metrics_ok = False
    max_len = card.get("max_model_len")
    return TargetInfo(
        model=chosen,
        max_model_len=int(max_len) if isinstance(max_len, int) else None,
        served_models=served,
        server_version=version,
        metrics_available=metrics_ok,
    )
