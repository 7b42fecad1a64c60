"""The suite's Locust options: listed by `python -m loadgen options`, read once into Settings."""

from __future__ import annotations

import argparse

import pytest
from click.testing import CliRunner
from locust.argument_parser import get_empty_argument_parser

from loadgen.cli import main
from loadgen.options import Settings, add_arguments


def test_options_command_lists_every_suite_option() -> None:
    result = CliRunner().invoke(main, ["options"])
    assert result.exit_code == 0, result.output
    for flag in ("--max-new-tokens", "--output-range-ratio", "--prompt-tokens", "--ignore-eos", "--api-key"):
        assert flag in result.output


def _parse(*argv: str) -> argparse.Namespace:
    parser = get_empty_argument_parser(add_help=False)
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_output_range_ratio_is_parsed_and_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings.from_options(_parse("--output-range-ratio", "0.5", "--max-new-tokens", "64"), environ={})
    assert settings.output_range_ratio == 0.5 and settings.max_new_tokens == 64
    assert Settings.from_options(_parse(), environ={}).output_range_ratio == 0.0
    with pytest.raises(SystemExit):
        _parse("--output-range-ratio", "1.5")
    assert "--output-range-ratio: must be in [0, 1), got 1.5" in capsys.readouterr().err
