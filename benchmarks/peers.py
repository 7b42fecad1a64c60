"""The load generators a user would pick instead of ours, beside `vllm bench serve`: GuideLLM and AIPerf,
each in its own venv under .cache/peers/<name> (never .venv, never `make test`), and the commands that run
them in `benchmarks/run_all.py`'s capacity runs.

    .venv/bin/python benchmarks/peers.py setup [NAME ...]   # `make bench-peers`: install what is missing

Setup is idempotent (a stamp file records the pip requirements installed); a failed install names the
peer and its log and leaves the others, and `make bench` then runs without it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEERS_DIR = REPO / ".cache" / "peers"
HERE = Path(__file__).resolve().parent
MARGIN_S = 20.0  # a peer's own duration bound outlasts ramp + settle + window by this much
DRAIN_S = 240.0  # after the window: time for a peer to finish by itself and write its results


@dataclass(frozen=True)
class Peer:
    name: str
    title: str  # as the tables name it
    steps: tuple[tuple[str, ...], ...]  # pip install arguments, one install per step, in order
    wrapper: str  # benchmarks/<wrapper>: the peer's CLI plus the per-event delay record

    @property
    def venv(self) -> Path:
        return PEERS_DIR / self.name

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def stamp(self) -> Path:
        return self.venv / ".installed"

    def stamp_text(self) -> str:
        return "".join(" ".join(step) + "\n" for step in self.steps)

    def installed(self) -> bool:
        return self.python.exists() and self.stamp.exists() and self.stamp.read_text() == self.stamp_text()


PEERS = {
    # GuideLLM imports torch: a CPU build pinned first (and again beside it, so the resolver keeps it)
    # rather than whatever torch its requirements would pull (several GB of CUDA wheels).
    "guidellm": Peer(
        "guidellm",
        "GuideLLM 0.8.1",
        (("torch==2.13.0",), ("torch==2.13.0", "guidellm==0.8.1")),
        "guidellm_peer.py",
    ),
    "aiperf": Peer("aiperf", "AIPerf 0.13.0", (("aiperf==0.13.0",),), "aiperf_peer.py"),
}


def install(peer: Peer) -> bool:
    """Create the peer's venv and pip-install its steps unless its stamp says they are in; False on failure."""
    if peer.installed():
        print(f"peers: {peer.name} is installed ({peer.venv})")
        return True
    log = PEERS_DIR / f"{peer.name}.install.log"
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    print(f"peers: installing {peer.title} into {peer.venv} (log: {log}); this takes minutes", flush=True)
    with log.open("w") as out:
        cmds = [[sys.executable, "-m", "venv", str(peer.venv)]] if not peer.python.exists() else []
        cmds += [[str(peer.python), "-m", "pip", "install", "-q", *step] for step in peer.steps]
        for cmd in cmds:
            out.write("$ " + " ".join(cmd) + "\n")
            out.flush()
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False).returncode != 0:
                print(f"peers: {peer.name}: `{' '.join(cmd[-2:])}` failed; see {log}. make bench runs without it.",
                      file=sys.stderr)  # fmt: skip
                return False
    tmp = peer.stamp.with_suffix(".tmp")
    tmp.write_text(peer.stamp_text())
    os.replace(tmp, peer.stamp)
    return True


def command(
    name: str,
    url: str,
    model: str,
    tokenizer: Path,
    streams: int,
    shape: tuple[int, int],
    duration_s: float,
    work: Path,
) -> tuple[list[str], dict[str, str]]:
    """The peer's command line and environment for one capacity run: `streams` concurrent streaming
    /v1/completions requests of `shape` = (prompt tokens, output tokens) with ignore_eos, bounded to
    `duration_s` by the peer itself, results and delay records under `work`."""
    peer = PEERS[name]
    prompt_tokens, output_tokens = shape
    env = dict(os.environ) | {"PEER_DELAY_DIR": str(work)}
    cmd = [str(peer.python), str(HERE / peer.wrapper)]
    if name == "guidellm":
        env["HF_HUB_OFFLINE"] = "1"
        scenario = {
            "spec": {
                "backend": {"kind": "openai_http", "target": url, "model": model, "request_format": "/v1/completions"},
                "profile": {"kind": "concurrent", "streams": streams},
                "tokenizer": {"kind": "huggingface_auto", "model": str(tokenizer)},
                # output_tokens makes GuideLLM send max_tokens with ignore_eos
                "data": [{"kind": "synthetic_text", "prompt_tokens": prompt_tokens, "output_tokens": output_tokens}],
                "constraints": [{"kind": "max_duration", "seconds": round(duration_s)}],
                "outputs": [{"kind": "json", "path": str(work / "guidellm.json")}],
            }
        }
        (work / "guidellm_scenario.json").write_text(json.dumps(scenario, indent=1))
        return [*cmd, "run", "--scenario", str(work / "guidellm_scenario.json"), "--disable-console-interactive"], env
    if name == "aiperf":
        # With HF_HUB_OFFLINE set AIPerf sends a local tokenizer path to the hub; without it, a local
        # directory loads offline.
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            env.pop(var, None)
        cmd += ["profile", "--model", model, "--url", url, "--endpoint-type", "completions", "--streaming"]
        cmd += ["--tokenizer", str(tokenizer), "--concurrency", str(streams), "--random-seed", "0"]
        cmd += ["--prompt-input-tokens-mean", str(prompt_tokens), "--prompt-input-tokens-stddev", "0"]
        cmd += ["--prompt-output-tokens-mean", str(output_tokens), "--prompt-output-tokens-stddev", "0"]
        cmd += ["--extra-inputs", "ignore_eos:true", "--benchmark-duration", f"{duration_s:.0f}"]
        cmd += ["--benchmark-grace-period", "30", "--artifact-dir", str(work / "aiperf"), "--ui", "none"]
        # No GPU to read and no /metrics scraping beside ours: both would only add to AIPerf's own cost.
        cmd += ["--no-gpu-telemetry", "--no-server-metrics"]
        return cmd, env
    raise ValueError(f"unknown peer {name!r}; known: {sorted(PEERS)}")


def samples(
    name: str, work: Path, window_mono_s: tuple[float, float], window_wall_s: tuple[float, float]
) -> dict[str, list[float]]:
    """Per-event client delay and per-request TTFT/ITL (ms) within the window, as run_all.collect_samples.
    A peer runs on past the window (it writes its results when it ends), so the window bounds both ends."""
    from peer_results import aiperf_samples, guidellm_samples, read_delays

    first, later = read_delays(work, window_mono_s)
    ttft: list[float] = []
    itl: list[float] = []
    result = work / "guidellm.json" if name == "guidellm" else work / "aiperf" / "profile_export.jsonl"
    if result.exists():
        ttft, itl = (guidellm_samples if name == "guidellm" else aiperf_samples)(result, window_wall_s)
    return {"delay_first_ms": first, "delay_later_ms": later, "ttft_ms": ttft, "itl_ms": itl}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["setup"])
    p.add_argument("names", nargs="*", default=list(PEERS), help=f"peers to install (default: {' '.join(PEERS)})")
    opts = p.parse_args()
    unknown = [n for n in opts.names if n not in PEERS]
    if unknown:
        p.error(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(PEERS)}")
    for name in opts.names:
        install(PEERS[name])
    return 0  # a peer that failed is left out of make bench, which still runs the other clients


if __name__ == "__main__":
    sys.exit(main())
