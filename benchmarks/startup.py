"""How long the faces take to come up: `kbqa --help`, and `kbqa serve` until the page answers.

    python benchmarks/startup.py [--runs 5]

Runs in a scratch KBQA_HOME with the examples ingested (so the served knowledge base is real).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
KBQA = [sys.executable, "-m", "kbqa.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def help_seconds(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([*KBQA, "--help"], cwd=ROOT, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return times


def serve_seconds(env: dict[str, str]) -> tuple[float, float]:
    """(seconds until GET / answers 200, seconds until the first answer through the app's API)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    proc = subprocess.Popen([*KBQA, "serve", "--kb", "demo", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit("kbqa serve exited")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        page = time.perf_counter() - t0
        from gradio_client import Client

        client = Client(url, verbose=False)
        client.predict("星河科技的总部在哪里？", "demo", 4, 0.3, env.get("KBQA_LLM__MODEL", "gemma-3-270m"), api_name="/ask")
        answer = time.perf_counter() - t0
        return page, answer
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    helps = help_seconds(args.runs)
    print(f"kbqa --help       : median {statistics.median(helps):.2f} s  (runs: {', '.join(f'{t:.2f}' for t in helps)})")
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "KBQA_HOME": home}
        models = Path.home() / ".cache" / "kbqa" / "models"
        if models.is_dir():  # reuse the assembled GGUF rather than rebuilding it
            (Path(home) / "models").symlink_to(models, target_is_directory=True)
        subprocess.run([*KBQA, "ingest", str(ROOT / "examples" / "docs"), "--kb", "demo"], cwd=ROOT, env=env, capture_output=True, check=True)
        for llm in ("extractive", "gemma-3-270m"):
            page, answer = serve_seconds({**env, "KBQA_LLM__MODEL": llm})
            print(f"kbqa serve ({llm}): page answers after {page:.2f} s; first answer through the app after {answer:.2f} s")


if __name__ == "__main__":
    main()
