"""The "LLM" tab of Locust's web UI, through Locust's extension points for its React UI.

Locust renders extra tabs from `extended_tabs`/`extended_tables` template arguments and fills them from
`extended_stats` in the `/stats/requests` payload the UI polls, so the tab updates live with the rest.
Extra tabs hold tables only and the Charts tab's charts are fixed, so the LLM charts (tok/s, TTFT, ITL, in
flight) are a page of their own on the same server, `BASE/llm/charts`, linked from the Download Data tab.
Locust offers no way to rename its Statistics columns: "Average size (bytes)" stays (output tokens here).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from importlib import resources
from typing import Any

from loadgen.llmstats import TABLE_STRUCTURE, LLMStats

__all__ = ["CHARTS_PATH", "TAB_KEY", "charts_page", "install_llm_tab"]

TAB_KEY = "llm"
CHARTS_PATH = "/llm/charts"


def charts_page(base: str) -> str:
    """The live LLM charts page, polling `base`/stats/requests (base: the web UI's path prefix, or "")."""
    template = resources.files("loadgen").joinpath("data/llm_charts.html").read_text(encoding="utf-8")
    return template.replace("__BASE_JSON__", json.dumps(base))


def install_llm_tab(web_ui: Any, rows: Callable[[], list[dict[str, Any]]], stats: LLMStats) -> None:
    """Add the tab, its live data and a CSV download to a `locust.web.WebUI`."""
    from flask import make_response, request

    base = (getattr(web_ui.environment.parsed_options, "web_base_path", "") or "").rstrip("/")
    args = web_ui.template_args
    args["extended_tabs"] = [*args.get("extended_tabs", []), {"title": "LLM", "key": TAB_KEY}]
    args["extended_tables"] = [
        *args.get("extended_tables", []),
        {"key": TAB_KEY, "structure": TABLE_STRUCTURE},
    ]
    args["extended_csv_files"] = [
        *args.get("extended_csv_files", []),
        {"href": f"{base}/llm_stats/csv", "title": "Download LLM statistics CSV"},
        {"href": f"{base}{CHARTS_PATH}", "title": "LLM charts (live page: tok/s, TTFT, ITL, in flight)"},
    ]
    app = web_ui.app

    @app.after_request
    def add_llm_stats(response: Any) -> Any:
        if not request.path.endswith("/stats/requests") or not response.is_json:
            return response
        payload = response.get_json()
        extended = [e for e in payload.get("extended_stats") or [] if e.get("key") != TAB_KEY]
        extended.append({"key": TAB_KEY, "data": rows()})
        payload["extended_stats"] = extended
        response.set_data(app.json.dumps(payload))
        return response

    def llm_stats_csv() -> Any:
        buf = io.StringIO()
        stats.write_csv(buf, rows())
        response = make_response(buf.getvalue())
        response.headers["Content-Type"] = "text/csv"
        response.headers["Content-Disposition"] = "attachment;filename=llm_stats.csv"
        return response

    app.add_url_rule(f"{base}/llm_stats/csv", "loadgen_llm_stats_csv", llm_stats_csv)
    page = charts_page(base)

    def llm_charts() -> Any:
        response = make_response(page)
        response.headers["Content-Type"] = "text/html; charset=utf-8"
        return response

    app.add_url_rule(f"{base}{CHARTS_PATH}", "loadgen_llm_charts", web_ui.auth_required_if_enabled(llm_charts))
