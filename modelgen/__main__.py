"""Command line: `python -m modelgen build OUT_DIR` (run it with `.venv-vllm/bin/python`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from modelgen.build import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelgen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="Write the tiny BF16 Llama and its 4-bit AWQ twin into OUT_DIR.")
    b.add_argument("out", type=Path, metavar="OUT_DIR", help="Folder for both models and manifest.json.")
    b.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="Tokenizer training text. Default: data/docs.txt, else loadgen/data/docs.txt, else modelgen/corpus.txt.",
    )
    b.add_argument("--force", action="store_true", help="Rebuild even when the manifest says it is current.")
    args = parser.parse_args(argv)
    manifest = build(args.out, corpus=args.corpus, force=args.force)
    state = "built" if manifest["rebuilt"] else "up to date"
    print(f"modelgen: {args.out} {state} (corpus {manifest['corpus']})", file=sys.stderr)
    print(json.dumps(manifest["models"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
