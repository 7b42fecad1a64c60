"""The LLM summary appended to Locust's HTML report (`--html FILE` and the web UI's Download Report).

Locust renders its report from a template; its functions are looked up by name when called, so wrapping
`get_html_report` where Locust bound it adds our section after Locust's page without changing it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from html import escape
from typing import Any

__all__ = ["install_html_section", "llm_section_html"]

_STYLE = (
    "font-family:system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;"
    "color:#222;background:#fff;border-top:2px solid #999"
)


_STATS = ("mean", "median", "p95", "p99")


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def llm_section_html(summary: dict[str, Any]) -> str:
    """The summary as a small static HTML section (every value escaped)."""
    thr, req, tok, window = summary["throughput"], summary["requests"], summary["tokens"], summary["window"]
    facts = [
        ("API endpoint", ", ".join(summary["endpoints"])),
        ("Window", f"{window['description']} ({window['duration_s']:.1f} s)"),
        ("Completed / failed requests", f"{_cell(req['completed'])} / {_cell(req['failed'])}"),
        ("Input / output tokens", f"{_cell(tok['input'])} / {_cell(tok['output'])}"),
        ("Input tok/s", _cell(thr["input_tok_s"])),
        ("Output tok/s", _cell(thr["throughput_tok_s"])),
        ("Total tok/s", _cell(thr["total_tok_s"])),
    ]
    rows = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    head = "".join(f"<th>{h}</th>" for h in ("metric (ms)", "mean", "median", "p95", "p99"))
    metrics = "".join(
        f"<tr><th style='text-align:left'>{label}</th>"
        + "".join(
            f"<td style='text-align:right'>{_cell(summary[key][s])}</td>" for s in ("mean", "median", "p95", "p99")
        )
        + "</tr>"
        for key, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("itl_ms", "ITL"), ("e2e_ms", "End-to-end"))
    )
    return (
        f"<section id='llm-statistics' style='{_STYLE}'><h2>LLM statistics</h2>"
        f"<table>{rows}</table><table style='margin-top:12px'><tr>{head}</tr>{metrics}</table>"
        f"<p style='font-size:smaller'>{escape(summary['source'])}. "
        "Locust's tables above: response time is end-to-end, “size” is output tokens.</p></section>"
    )


def install_html_section(summary_for: Callable[[Any], dict[str, Any] | None]) -> None:
    """Wrap Locust's `get_html_report` in locust.main and locust.web; `summary_for(environment)`."""
    for module_name in ("locust.main", "locust.web"):
        module: Any = sys.modules.get(module_name)
        original = getattr(module, "get_html_report", None) if module is not None else None
        if original is None or getattr(original, "_llm_section", False):
            continue

        def get_html_report(environment: Any, *args: Any, _original: Any = original, **kwargs: Any) -> str:
            html = str(_original(environment, *args, **kwargs))
            summary = summary_for(environment)
            if summary is None:
                return html
            section = llm_section_html(summary)
            at = html.rfind("</body>")
            return html[:at] + section + html[at:] if at >= 0 else html + section

        get_html_report._llm_section = True  # type: ignore[attr-defined]
        module.get_html_report = get_html_report
