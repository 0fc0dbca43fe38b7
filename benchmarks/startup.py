"""How long the faces take to come up: `kbqa --help`; a one-shot `kbqa ask` until its first word
(p50 over --runs, warm file cache, and the command's peak resident memory); `kbqa api`'s first
streamed answer after a start, with the server's warm-up and without it (server.warm_up: false),
asked once the warm-up is over (the same wait without it); `kbqa serve` until the page answers.

    python benchmarks/startup.py [--runs 5] [--only ask|api|serve] [--question "How often should the RO membrane be replaced?"]

Runs in a scratch KBQA_HOME with the examples ingested (so the knowledge base is real). The first
`kbqa ask` fills the caches (the built ONNX model, the assembled GGUF) and is reported apart.
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


ASK_QUESTION = "年假有几天？"


def ask_first_word(env: dict[str, str], question: str = ASK_QUESTION) -> tuple[float, float, float]:
    """(seconds until the first non-blank byte of the answer, seconds until exit, peak RSS in MiB) of one
    `kbqa ask`. The answer is the first thing the command prints."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([*KBQA, "ask", question, "--kb", "demo"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    first = None
    while (byte := proc.stdout.read(1)):
        if first is None and not byte.isspace():
            first = time.perf_counter() - t0
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or first is None:
        raise SystemExit(f"kbqa ask failed (exit {proc.returncode})")
    return first, time.perf_counter() - t0, usage.ru_maxrss / 1024


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


def api_first_answer(env: dict[str, str], warm_up: bool, question: str, wait: float | None = None) -> tuple[float, float]:
    """(seconds from the start until /v1/status says the warm-up is over, or the wait given; seconds
    until the first piece of the first streamed answer asked then) of one `kbqa api`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([*KBQA, "api", "--port", str(port)], cwd=ROOT, env={**env, "KBQA_SERVER__WARM_UP": str(warm_up).lower()},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit("kbqa api exited")
            try:
                if httpx.get(url + "/v1/status", timeout=2).json()["loaded"]["warming_up"] is False:
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        if wait is not None:
            time.sleep(max(0.0, t0 + wait - time.perf_counter()))
        ready = time.perf_counter() - t0
        body = {"model": "kb:demo", "stream": True, "messages": [{"role": "user", "content": question}]}
        asked = time.perf_counter()
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as r:
            for line in r.iter_lines():
                if '"content": "' in line and '"content": ""' not in line:
                    return ready, time.perf_counter() - asked
        raise SystemExit("kbqa api answered nothing")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=["help", "ask", "api", "serve"], default=None, help="measure one face only")
    parser.add_argument("--question", default=ASK_QUESTION, help="what `kbqa ask` asks (an English one reads the Chinese passages through the dictionary)")
    args = parser.parse_args()
    if args.only in (None, "help"):
        helps = help_seconds(args.runs)
        print(f"kbqa --help       : median {statistics.median(helps):.2f} s  (runs: {', '.join(f'{t:.2f}' for t in helps)})")
    if args.only == "help":
        return
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "KBQA_HOME": home}
        models = Path.home() / ".cache" / "kbqa" / "models"
        if models.is_dir():  # reuse the assembled GGUF rather than rebuilding it
            (Path(home) / "models").symlink_to(models, target_is_directory=True)
        subprocess.run([*KBQA, "ingest", str(ROOT / "examples" / "docs"), "--kb", "demo"], cwd=ROOT, env=env, capture_output=True, check=True)
        if args.only in (None, "ask"):
            first, total, rss = ask_first_word(env, args.question)
            print(f"kbqa ask (first run, fills the caches): first word {first:.2f} s, done {total:.2f} s, peak RSS {rss:.0f} MiB")
            runs = [ask_first_word(env, args.question) for _ in range(args.runs)]
            firsts = [r[0] for r in runs]
            print(f"kbqa ask          : first word p50 {statistics.median(firsts):.2f} s (runs: {', '.join(f'{t:.2f}' for t in firsts)}); "
                  f"done p50 {statistics.median(r[1] for r in runs):.2f} s; peak RSS p50 {statistics.median(r[2] for r in runs):.0f} MiB", flush=True)
        if args.only in (None, "api"):
            api_first_answer(env, True, args.question)  # fills the home's caches (the word tables)
            warm = [api_first_answer(env, True, args.question) for _ in range(args.runs)]
            cold = [api_first_answer(env, False, args.question, wait=statistics.median(r[0] for r in warm)) for _ in range(args.runs)]
            for name, runs in (("warm_up: true ", warm), ("warm_up: false", cold)):
                print(f"kbqa api, {name}: asked after {statistics.median(r[0] for r in runs):.2f} s; first piece of the answer p50 "
                      f"{statistics.median(r[1] for r in runs):.2f} s (runs: {', '.join(f'{r[1]:.2f}' for r in runs)})", flush=True)
        if args.only in ("ask", "api"):
            return
        for llm in ("extractive", "gemma-3-270m"):
            page, answer = serve_seconds({**env, "KBQA_LLM__MODEL": llm})
            print(f"kbqa serve ({llm}): page answers after {page:.2f} s; first answer through the app after {answer:.2f} s")


if __name__ == "__main__":
    main()
