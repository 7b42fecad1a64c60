"""Regenerate tests/fixtures/locust_golden/: a real headless Locust run's CSVs, for the schema drift test.

Serves the repository with `python -m http.server` on a free loopback port, runs
tests/fixtures/locustfile_golden.py headless for a few seconds with --csv --csv-full-history, and copies
the CSV files (prefix `golden`) plus the Locust version into the output directory.

    .venv/bin/python scripts/make_locust_golden.py [--out tests/fixtures/locust_golden] [--seconds 3]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO / "tests" / "fixtures" / "locustfile_golden.py"
PREFIX = "golden"


def start_server() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"port (\d+)", line)
        if match:
            return proc, int(match.group(1))
    proc.kill()
    raise RuntimeError("http.server did not report its port")


def run_locust(out: Path, seconds: int) -> str:
    server, port = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "2", "-r", "2",
                "-t", f"{seconds}s", "--host", f"http://127.0.0.1:{port}", "--csv", f"{tmp}/{PREFIX}",
                "--csv-full-history", "--only-summary", "--loglevel", "WARNING",
            ]  # fmt: skip
            subprocess.run(cmd, cwd=tmp, check=True, capture_output=True, text=True, timeout=seconds + 60)
            out.mkdir(parents=True, exist_ok=True)
            for old in out.glob(f"{PREFIX}_*.csv"):
                old.unlink()
            for csv in sorted(Path(tmp).glob(f"{PREFIX}_*.csv")):
                shutil.copy(csv, out / csv.name)
    finally:
        server.terminate()
        server.wait(timeout=10)
    version = subprocess.run(
        [sys.executable, "-c", "import locust; print(locust.__version__)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (out / "LOCUST_VERSION").write_text(version + "\n")
    return version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "locust_golden")
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args()
    version = run_locust(args.out, args.seconds)
    print(f"wrote {args.out} (Locust {version}): " + ", ".join(sorted(p.name for p in args.out.glob("*.csv"))))


if __name__ == "__main__":
    main()
