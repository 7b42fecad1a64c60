"""BENCHMARKS.md: one section regenerated on its own leaves every other section as it was."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))  # the renderer imports its siblings

from benchmarks_render import splice_section  # type: ignore[import-not-found]

DOC = "# Benchmarks\n\n## 7. Seven\n\nkept\n\n## 8. Old eight\n\nold figures\n\n## 9. Nine\n\nkept too\n"


def test_the_section_is_replaced_up_to_the_next_heading() -> None:
    text = splice_section(DOC, "## 8.", ["## 8. New eight", "", "new figures", ""])
    assert text == "# Benchmarks\n\n## 7. Seven\n\nkept\n\n## 8. New eight\n\nnew figures\n\n## 9. Nine\n\nkept too\n"


def test_a_missing_section_is_appended() -> None:
    text = splice_section("# Benchmarks\n", "## 8.", ["## 8. Eight", "", "figures", ""])
    assert text == "# Benchmarks\n\n## 8. Eight\n\nfigures\n"
