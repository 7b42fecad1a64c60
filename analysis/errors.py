"""The one exception analysis raises for bad input; the CLI turns it into a message and exit code 2."""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(Exception):
    """Input the analysis cannot use: names the file (and column or label) and what was expected."""
