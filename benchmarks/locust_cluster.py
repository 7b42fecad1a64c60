"""A Locust master and N separately started worker processes as one process tree (benchmarks only).

    python benchmarks/locust_cluster.py --workers 2 -- -f locustfiles/batch.py --headless -u 512 ...

Starts `locust --master --expect-workers N` with the given arguments, then N `locust --worker` processes
pointed at it (each its own process, as on separate hosts), on a free loopback port. A benchmark can
then measure CPU over this process and its children; SIGTERM or SIGINT stops the master (which stops the
workers) and the workers after it. Exits with the master's exit status.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from types import FrameType


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("locust_args", nargs=argparse.REMAINDER, help="after --: the master's locust arguments")
    opts = p.parse_args()
    args = [a for a in opts.locust_args if a != "--"]
    try:
        locustfile = args[args.index("-f") + 1]
    except (ValueError, IndexError):
        p.error("the locust arguments must name the locustfile with -f")
    port = free_port()
    locust = [sys.executable, "-m", "locust"]
    master = subprocess.Popen(
        [*locust, *args, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
         "--expect-workers", str(opts.workers)]
    )  # fmt: skip
    time.sleep(1.0)  # the master binds before the workers dial
    worker = [*locust, "-f", locustfile, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    workers = [subprocess.Popen([*worker, "--loglevel", "WARNING"]) for _ in range(opts.workers)]

    def stop(signum: int, _frame: FrameType | None) -> None:
        if master.poll() is None:
            master.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    rc = master.wait()
    for w in workers:
        try:
            w.wait(timeout=15)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
    return rc


if __name__ == "__main__":
    sys.exit(main())
