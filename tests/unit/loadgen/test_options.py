"""The suite's Locust options: listed by `python -m loadgen options`, read once into Settings."""

from __future__ import annotations

import argparse

import pytest
from click.testing import CliRunner
from locust.argument_parser import get_empty_argument_parser

from loadgen.options import Credential, Settings, add_arguments, origin
from orchestrator.cli import main


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


def test_web_ui_and_master_listen_on_loopback_unless_told_otherwise() -> None:
    from locust.argument_parser import get_parser  # Locust's full parser, with the suite's hook fired

    from loadgen import plugin

    plugin.install(__import__("locust").events)
    defaults = get_parser().parse_args(["-f", "locustfiles/chat.py"])
    assert (defaults.web_host, defaults.master_bind_host) == ("127.0.0.1", "127.0.0.1")
    opted_out = get_parser().parse_args(["--web-host", "0.0.0.0", "--master-bind-host", "*"])
    assert (opted_out.web_host, opted_out.master_bind_host) == ("0.0.0.0", "*")


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("http://127.0.0.1:8000", True),
        ("HTTP://127.0.0.1:8000/", True),
        ("http://127.0.0.1:8001", False),
        ("https://127.0.0.1:8000", False),
        ("http://attacker.example", False),
    ],
)
def test_the_key_goes_only_to_the_origin_it_was_given_for(url: str, sent: bool) -> None:
    credential = Credential("sk-secret", "http://127.0.0.1:8000")
    assert bool(credential.headers_for(url)) is sent
    assert "sk-secret" not in repr(credential)


def test_a_credential_without_a_host_pins_the_first_one_asked_for() -> None:
    credential = Credential("sk-secret", None)
    assert credential.headers_for("http://a:1") == {"Authorization": "Bearer sk-secret"}
    assert credential.headers_for("http://b:1") == {}
    assert origin("http://A:80/v1") == origin("http://a") == "http://a:80"
