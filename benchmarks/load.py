"""Many users at once against `kbqa api` on 127.0.0.1: completed %, errors, time to first token,
answers per minute, queue wait, search latency under load, server memory.

    python benchmarks/load.py                        # starts its own `kbqa api` over examples/docs
    python benchmarks/load.py --users 1 8 32 --requests 4 --llm gemma-3-270m extractive
    python benchmarks/load.py --url http://127.0.0.1:8000 --api-key KEY --kb mykb   # a server already running

Each user sends its requests one after another (streaming chat completions with model kb:NAME);
every request is bounded in time. Queue wait is the time between the first event (the sources)
and the first piece of the answer while the server reported the request as queued. Search p95 is
measured alone, then while 8 users chat. Memory is the server's resident set (Linux /proc), after
the first 30 requests and after --soak requests (default 300) with the default LLM.
Traffic goes only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
KBQA = [sys.executable, "-m", "kbqa.cli"]
QUESTIONS = [
    "How often should the RO membrane be replaced?",
    "星河科技的总部在哪里？",
    "How much water does the Aurora X2 purify per minute?",
    "员工每年有几天带薪年假？",
    "出差结束后多久内要提交报销申请？",
    "出水变慢怎么办？",
    "When should the PP cotton filter be replaced?",
    "杭州每晚住宿上限是多少？",
]


@dataclass
class Result:
    ok: bool
    error: str = ""
    ttft: float | None = None  # seconds to the first piece of the answer
    total: float = 0.0
    queued: float = 0.0  # seconds spent waiting in the LLM's queue


@dataclass
class Run:
    users: int
    llm: str
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0

    def row(self) -> dict[str, Any]:
        done = [r for r in self.results if r.ok]
        ttft = sorted(r.ttft for r in done if r.ttft is not None)
        waits = sorted(r.queued for r in done)
        return {
            "llm": self.llm, "users": self.users, "requests": len(self.results),
            "completed_pct": round(100 * len(done) / max(1, len(self.results)), 1),
            "errors": len(self.results) - len(done),
            "ttft_p50_s": round(pct(ttft, 50), 2), "ttft_p95_s": round(pct(ttft, 95), 2),
            "answers_per_min": round(60 * len(done) / max(self.seconds, 1e-9), 1),
            "queue_wait_p50_s": round(pct(waits, 50), 2), "queue_wait_p95_s": round(pct(waits, 95), 2),
            "first_errors": sorted({r.error for r in self.results if not r.ok})[:3],
        }


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return sorted(values)[k]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def chat(url: str, headers: dict[str, str], kb: str, llm_question: str, timeout: float) -> Result:
    body = {"model": f"kb:{kb}", "stream": True, "messages": [{"role": "user", "content": llm_question}]}
    t0 = time.perf_counter()
    first_event: float | None = None
    queued = False
    try:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers, timeout=timeout) as r:
            if r.status_code != 200:
                return Result(False, f"HTTP {r.status_code}", total=time.perf_counter() - t0)
            ttft = None
            for line in r.iter_lines():
                if line.startswith(": queued"):
                    queued = True
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    return Result(False, event["error"].get("type", "error"), total=time.perf_counter() - t0)
                now = time.perf_counter()
                first_event = first_event or now
                if ttft is None and event["choices"][0]["delta"].get("content"):
                    ttft = now - t0
            end = time.perf_counter()
            wait = (t0 + ttft - first_event) if (queued and ttft is not None and first_event) else 0.0
            return Result(ttft is not None, "" if ttft is not None else "empty answer", ttft, end - t0, max(0.0, wait))
    except httpx.HTTPError as exc:
        return Result(False, type(exc).__name__, total=time.perf_counter() - t0)


def load(url: str, headers: dict[str, str], kb: str, llm: str, users: int, requests: int, timeout: float) -> Run:
    run = Run(users, llm)
    lock = threading.Lock()

    def user(n: int) -> None:
        for i in range(requests):
            result = chat(url, headers, kb, QUESTIONS[(n + i) % len(QUESTIONS)], timeout)
            with lock:
                run.results.append(result)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=user, args=(n,), daemon=True) for n in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * requests + 60)
    run.seconds = time.perf_counter() - t0
    return run


def search_p95(url: str, headers: dict[str, str], kb: str, n: int) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        r = httpx.post(f"{url}/v1/kb/{kb}/search", json={"query": QUESTIONS[i % len(QUESTIONS)]}, headers=headers, timeout=60)
        r.raise_for_status()
        times.append(time.perf_counter() - t0)
    return pct(times, 95)


def start_server(home: str, llm: str, key: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "KBQA_HOME": home, "KBQA_LLM__MODEL": llm}
    proc = subprocess.Popen([*KBQA, "api", "--port", str(port), "--api-key", key], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("kbqa api exited")
        try:
            if httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("kbqa api did not start within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running kbqa api (default: start one over examples/docs)")
    parser.add_argument("--api-key", default="load-test-key")
    parser.add_argument("--kb", default="load")
    parser.add_argument("--users", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=8, help="requests per user in each run (8: every user asks each question once)")
    parser.add_argument("--llm", nargs="+", default=["gemma-3-270m", "extractive"])
    parser.add_argument("--soak", type=int, default=300, help="requests for the memory check (0: skip)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one request may take")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.api_key}"}
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kbqa-load-") as home:
        models = Path.home() / ".cache" / "kbqa" / "models"
        if not args.url:
            cached = ROOT / ".pytest_cache" / "kbqa-models"
            for folder in (cached, models):
                if folder.is_dir():  # reuse the assembled GGUF rather than rebuilding it
                    (Path(home) / "models").symlink_to(folder, target_is_directory=True)
                    break
            subprocess.run([*KBQA, "ingest", str(ROOT / "examples" / "docs"), "--kb", args.kb], cwd=ROOT,
                           env={**os.environ, "KBQA_HOME": home}, capture_output=True, check=True)
        for llm in args.llm:
            proc, url = (None, args.url) if args.url else start_server(home, llm, args.api_key)
            try:
                chat(url, headers, args.kb, QUESTIONS[0], args.timeout)  # warm-up: loads the models
                if proc is not None and llm == args.llm[0]:
                    extra["rss_mb_after_warmup"] = round(rss_mb(proc.pid), 1)
                for users in args.users:
                    run = load(url, headers, args.kb, llm, users, args.requests, args.timeout)
                    rows.append(run.row())
                    print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
                if llm == args.llm[0]:
                    idle = search_p95(url, headers, args.kb, 60)
                    chatter = threading.Thread(target=lambda: load(url, headers, args.kb, llm, 8, args.requests, args.timeout), daemon=True)
                    chatter.start()
                    time.sleep(1.0)
                    busy = search_p95(url, headers, args.kb, 60)
                    chatter.join()
                    extra.update({"search_p95_idle_ms": round(idle * 1000, 1), "search_p95_under_8_chats_ms": round(busy * 1000, 1),
                                  "search_p95_ratio": round(busy / idle, 2)})
                    print(json.dumps(extra), flush=True)
                    if args.soak and proc is not None:
                        first = load(url, headers, args.kb, llm, 1, 30, args.timeout)
                        after_30 = rss_mb(proc.pid)
                        rest = load(url, headers, args.kb, llm, 2, max(0, (args.soak - 30) // 2), args.timeout)
                        after_all = rss_mb(proc.pid)
                        n = len(first.results) + len(rest.results)
                        failed = sum(not r.ok for r in first.results + rest.results)
                        extra.update({"soak_requests": n, "soak_errors": failed, "rss_mb_after_30": round(after_30, 1),
                                      f"rss_mb_after_{n}": round(after_all, 1), "rss_growth_pct": round(100 * (after_all / after_30 - 1), 1)})
                        print(json.dumps(extra), flush=True)
            finally:
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=30)
    print()
    print("| LLM | users | requests | completed | errors | TTFT p50 / p95 (s) | answers/min | queue wait p50 / p95 (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['llm']} | {r['users']} | {r['requests']} | {r['completed_pct']}% | {r['errors']} | {r['ttft_p50_s']} / {r['ttft_p95_s']} | "
              f"{r['answers_per_min']} | {r['queue_wait_p50_s']} / {r['queue_wait_p95_s']} |")
    print()
    for k, v in extra.items():
        print(f"- {k}: {v}")
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, **extra}, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
