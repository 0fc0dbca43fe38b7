"""Many people at once, with the real shipped LLM (gemma-3-270m GGUF through llama.cpp): concurrent
streaming chats through `kbqa api` and through the web app, abandoned streams, SIGTERM, and the
web app's Gradio API refusing paths."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import EN_PAGES, ZH_PAGES, start_server, write_lead_in_docx, write_pdf

pytestmark = pytest.mark.slow
KEY = "serving-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUESTIONS = [
    "How often should the RO membrane be replaced?",
    "员工每年有几天带薪年假？",
    "How much purified water does the Aurora X2 deliver per minute?",
    "星河科技的总部在哪里？",
    "When should the PP cotton filter be replaced?",
    "星河科技成立于哪一年？",
    "What does the manual say about maintenance?",
    "工作满五年后年假有几天？",
]


def start(home: Path, *args: str, ready: str = "/v1/models") -> tuple[subprocess.Popen[str], str]:
    """Start a server whose temporary folder outside the home is watched (see outside_untouched)."""
    jail = home.parent / "tmp-outside-home"
    jail.mkdir(exist_ok=True)
    return start_server(home, *args, env={"TMPDIR": str(jail)}, ready=ready, headers=AUTH)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    d = tmp_path / "corpus"
    d.mkdir()
    write_pdf(d / "manual.pdf", EN_PAGES)
    write_pdf(d / "手册.pdf", ZH_PAGES, font="china-s")
    return d


@pytest.fixture
def api(home: Path, corpus: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    from conftest import run_kbqa

    assert run_kbqa("ingest", str(corpus), "--kb", "team").returncode == 0
    proc, url = start(home, "api", "--api-key", KEY)
    yield proc, url
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)


def outside_untouched(home: Path) -> None:
    """The server wrote nothing into the temporary folder it was given outside its home."""
    assert not list((home.parent / "tmp-outside-home").iterdir()), list((home.parent / "tmp-outside-home").iterdir())


def assert_idle_within(url: str, seconds: float) -> None:
    """The LLM's queue is empty (nothing generating, nothing admitted) within this many seconds."""
    deadline = time.time() + seconds
    queue: Any = "no answer from /v1/status"
    while True:
        try:  # a status reply slower than httpx's 5 s (a burst of requests on two cores) is "not yet", up to the deadline
            queue = httpx.get(f"{url}/v1/status", headers=AUTH, timeout=max(1.0, deadline - time.time())).json()["queues"]["gemma-3-270m"]
        except httpx.TimeoutException:
            pass
        else:
            if (queue["generating"], queue["admitted"]) == (0, 0):
                return
        assert time.time() < deadline, queue
        time.sleep(0.2)


def stream_answer(url: str, question: str, **extra: Any) -> str:
    body = {"model": "kb:team", "stream": True, "messages": [{"role": "user", "content": question}], **extra}
    text = ""
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=300) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                event = json.loads(line[6:])
                assert "error" not in event, event
                text += event["choices"][0]["delta"].get("content") or ""
    return text


def test_eight_concurrent_streaming_chats(api: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = api
    sequential = [stream_answer(url, q) for q in QUESTIONS]
    assert all(sequential) and "24 months" in sequential[0]
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def user(n: int) -> None:
        try:
            results[n] = stream_answer(url, QUESTIONS[n])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=user, args=(n,)) for n in range(len(QUESTIONS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors, errors
    assert [results[n] for n in range(len(QUESTIONS))] == sequential
    assert proc.poll() is None
    status = httpx.get(f"{url}/v1/status", headers=AUTH).json()
    assert status["queues"]["gemma-3-270m"]["generating"] == 0 and status["queues"]["gemma-3-270m"]["admitted"] == 0
    outside_untouched(Path(os.environ["KBQA_HOME"]))


def test_sources_with_tables_for_users_at_once_and_bad_searches(api: tuple[subprocess.Popen[str], str], tmp_path: Path) -> None:
    """Sources that show a table (a lead-in with the table under it, table pieces left out for the next
    candidate) read the same for users searching and chatting at once with the shipped model as for one
    user alone; a hostile name, a huge or malformed search gets a 4xx, nothing outside the home."""
    proc, url = api
    write_lead_in_docx(tmp_path / "policy.docx", rows=60)
    r = httpx.post(f"{url}/v1/kb/team/files", files=[("files", ("policy.docx", (tmp_path / "policy.docx").read_bytes()))], headers=AUTH, timeout=300)
    assert r.status_code == 200 and [f["status"] for f in r.json()["files"]] == ["added"], r.text
    q = "Which table presents the nightly hotel limits in each city? Town10 Town30 Town50"

    def search() -> list[str]:
        r = httpx.post(f"{url}/v1/kb/team/search", json={"query": q, "top_k": 5, "threshold": 0}, headers=AUTH, timeout=300)
        assert r.status_code == 200, r.text
        return [h["text"] for h in r.json()["hits"]]

    alone, answer = search(), stream_answer(url, q)
    assert any("| City | Hotel limit | Meals |\n|---|---|---|\n| Town01 |" in t for t in alone) and answer, [t[:200] for t in alone]
    rows = [line for t in alone for line in t.split("\n") if line.startswith("| Town")]
    assert len(rows) == len(set(rows))  # no table row under two sources
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def user(key: str, job: Any) -> None:
        try:
            results[key] = job()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    jobs = {"s1": search, "s2": search, "c1": lambda: stream_answer(url, q), "c2": lambda: stream_answer(url, q)}
    threads = [threading.Thread(target=user, args=item) for item in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors, errors
    assert results["s1"] == results["s2"] == alone and results["c1"] == results["c2"] == answer
    for bad in ({"query": q, "top_k": 10**9}, {"query": q, "top_k": "5"}, {"query": ["x"]}, {"top_k": 3}):
        assert httpx.post(f"{url}/v1/kb/team/search", json=bad, headers=AUTH, timeout=60).status_code == 422, bad
    assert httpx.post(f"{url}/v1/kb/team/search", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}, timeout=60).status_code == 422
    assert httpx.post(f"{url}/v1/kb/team/search", json={"query": "x" * 2_000_000}, headers=AUTH, timeout=120).status_code in (413, 422)
    for name in ("..", ".hidden", "%2e%2e%2fetc"):
        assert 400 <= httpx.post(f"{url}/v1/kb/{name}/search", json={"query": q}, headers=AUTH, timeout=60).status_code < 500, name
    assert proc.poll() is None
    outside_untouched(Path(os.environ["KBQA_HOME"]))


def test_one_users_answer_confidence_is_not_anothers(api: tuple[subprocess.Popen[str], str]) -> None:
    # answer_confidence is per request: users asking at once with different cuts get their own decision
    _, url = api
    question = QUESTIONS[0]
    alone = stream_answer(url, question)
    assert "24 months" in alone
    results: dict[str, str] = {}
    cuts: dict[str, dict[str, Any]] = {"default": {}, "strict": {"answer_confidence": 1}, "default2": {}, "strict2": {"answer_confidence": 1.0}}
    threads = [threading.Thread(target=lambda k=k: results.__setitem__(k, stream_answer(url, question, **cuts[k]))) for k in cuts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert results["default"] == results["default2"] == alone
    assert "do not contain" in results["strict"] and "do not contain" in results["strict2"] and "24 months" not in results["strict"]
    assert_idle_within(url, 10)


def test_empty_and_wrongly_typed_questions_beside_real_users(api: tuple[subprocess.Popen[str], str]) -> None:
    # this session's review: "?" was answered at confidence 0.84; answer_confidence: true was taken as 1.0
    _, url = api
    alone = stream_answer(url, QUESTIONS[0])
    results: dict[str, Any] = {}

    def empty() -> None:
        r = httpx.post(f"{url}/v1/chat/completions", json={"model": "kb:team", "messages": [{"role": "user", "content": "?"}]},
                       headers=AUTH, timeout=300)
        results["empty"] = r.json()

    def typed() -> None:
        results["typed"] = httpx.post(f"{url}/v1/chat/completions", headers=AUTH, timeout=300, json={
            "model": "kb:team", "messages": [{"role": "user", "content": QUESTIONS[0]}], "answer_confidence": True})

    jobs = [empty, typed, lambda: results.__setitem__("real", stream_answer(url, QUESTIONS[0])),
            lambda: results.__setitem__("real2", stream_answer(url, QUESTIONS[0]))]
    threads = [threading.Thread(target=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert results["real"] == results["real2"] == alone
    assert results["empty"]["kbqa_answered"] is False and results["empty"]["kbqa_sources"] == []
    said = results["empty"]["choices"][0]["message"]["content"]  # "?" has no letters: read as Chinese
    assert "no words to look for" in said or "没有可以在资料中查找的词" in said
    assert results["typed"].status_code == 422
    assert_idle_within(url, 10)
    outside_untouched(Path(os.environ["KBQA_HOME"]))


def test_usage_counts_the_llms_tokens(api: tuple[subprocess.Popen[str], str]) -> None:
    # was always 0: clients that count cost or context read it
    _, url = api
    ask = {"model": "kb:team", "messages": [{"role": "user", "content": QUESTIONS[0]}]}
    r = httpx.post(f"{url}/v1/chat/completions", json=ask, headers=AUTH, timeout=300).json()
    usage = r["usage"]
    assert "24 months" in r["choices"][0]["message"]["content"]
    assert usage["prompt_tokens"] > 20 and 0 < usage["completion_tokens"] <= 48 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    chunks = []
    with httpx.stream("POST", f"{url}/v1/chat/completions", json={**ask, "stream": True, "stream_options": {"include_usage": True}},
                      headers=AUTH, timeout=300) as s:
        chunks = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: {")]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage  # the same answer, the same tokens
    assert all("usage" not in c for c in chunks[:-1])
    refused = {"model": "kb:team", "messages": [{"role": "user", "content": "Who won the 2022 FIFA World Cup?"}]}
    r = httpx.post(f"{url}/v1/chat/completions", json=refused, headers=AUTH, timeout=300).json()
    assert r["kbqa_answered"] is False and r["usage"]["total_tokens"] == 0  # a refusal generates nothing
    talk = {"model": "gemma-3-270m", "max_tokens": 8, "messages": [{"role": "user", "content": "Say hello to the water filter team."}]}
    r = httpx.post(f"{url}/v1/chat/completions", json=talk, headers=AUTH, timeout=300).json()
    assert 5 < r["usage"]["prompt_tokens"] < 30 and 0 < r["usage"]["completion_tokens"] <= 9
    # found by review: a "developer" message (OpenAI's newer name for a system one), or a system message after the
    # first turn, was dropped unsaid; n above 1 gave one choice unsaid
    rule = "Answer in one short and polite sentence, in English."
    for messages in ([{"role": "developer", "content": rule}, *talk["messages"]], [*talk["messages"], {"role": "developer", "content": rule}],
                     [*talk["messages"], {"role": "assistant", "content": "Hello!"}, {"role": "system", "content": rule}, *talk["messages"]]):
        plain = [m for m in messages if m["role"] not in ("developer", "system")]
        counted = [httpx.post(f"{url}/v1/chat/completions", json={**talk, "messages": m}, headers=AUTH, timeout=300).json()["usage"]["prompt_tokens"]
                   for m in (plain, messages)]
        assert counted[1] >= counted[0] + 8, (messages, counted)
    many = httpx.post(f"{url}/v1/chat/completions", json={**talk, "n": 3}, headers=AUTH, timeout=300)
    assert many.status_code == 422 and "n" in str(many.json()["detail"][0]["loc"]), many.text
    # and stop, ignored before: the reply ends before the first of its strings (an answer from documents refuses it)
    said = httpx.post(f"{url}/v1/chat/completions", json={**talk, "max_tokens": 24, "temperature": 0.0}, headers=AUTH, timeout=300).json()
    text = said["choices"][0]["message"]["content"]
    word = next(w for w in text.split()[1:] if len(w) > 2)
    cut = httpx.post(f"{url}/v1/chat/completions", json={**talk, "max_tokens": 24, "temperature": 0.0, "stop": [word, "\u0000"]},
                     headers=AUTH, timeout=300).json()
    assert cut["choices"][0]["message"]["content"] == text[:text.index(word)], (text, word, cut)
    for bad in ({"model": "kb:team", "stop": ["."]}, {"stop": ["a"] * 5}, {"stop": [""]}, {"stop": [7]}):
        refused = httpx.post(f"{url}/v1/chat/completions", json={**talk, **bad}, headers=AUTH, timeout=300)
        assert refused.status_code == 400 and refused.json()["error"]["message"], (bad, refused.text)


@pytest.mark.fresh_tables  # (20 questions at a fresh home's start each built jieba's table: CI's failure at stop 60)
def test_abandoned_streams_free_their_place_and_sigterm_stops_quickly(api: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = api
    body = {"model": "gemma-3-270m", "stream": True, "max_tokens": 1500, "messages": [{"role": "user", "content": "Write a very long story about water filters."}]}
    for _ in range(3):  # three clients that read one piece and hang up
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=120) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if '"content": "' in line and '"content": ""' not in line:
                    break
            else:
                raise AssertionError("no piece of the answer came")
    assert_idle_within(url, 5)  # a hung-up client's place is freed at its next token, not when memory is collected
    # clients that hang up before the first byte (the body's generator never starts): 20 at once
    def impatient(n: int) -> None:
        quick = {"model": "kb:team", "stream": True, "messages": [{"role": "user", "content": f"{QUESTIONS[n % len(QUESTIONS)]} {n}"}]}
        try:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=quick, headers=AUTH, timeout=0.3) as r:
                for _ in r.iter_raw():
                    pass
        except httpx.HTTPError:
            pass

    hasty = [threading.Thread(target=impatient, args=(n,)) for n in range(20)]
    for t in hasty:
        t.start()
    for t in hasty:
        t.join(60)
    assert_idle_within(url, 60)  # once the server has prepared their answers; their places were kept for good (64 filled the queue)
    # the same for a client that asked without streaming and gave up waiting
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{url}/v1/chat/completions", json={**body, "stream": False}, headers=AUTH, timeout=2)
    assert_idle_within(url, 5)
    assert "24 months" in stream_answer(url, QUESTIONS[0])
    # a 10,000-message conversation with the LLM itself is trimmed to its context, not "tokens exceed context window"
    history = [{"role": "user" if n % 2 == 0 else "assistant", "content": f"This is message number {n} of a very long chat."} for n in range(9_999)]
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "gemma-3-270m", "max_tokens": 16, "messages": history + [{"role": "user", "content": "Say hello."}]},
                   headers=AUTH, timeout=120)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"], r.text
    # a Chinese question under the 4,000-character limit but longer than the model reads: 413, not 500
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "kb:team", "messages": [{"role": "user", "content": "年" * 3999}]},
                   headers=AUTH, timeout=120)
    assert r.status_code == 413 and "tokens" in r.text and "shorter" in r.text, r.text
    # a long generation is running and another request waits when SIGTERM comes: both streams end
    # with an error event and [DONE], and the server stops within seconds
    started = threading.Event()
    endings: list[list[str]] = []

    def long_one() -> None:
        lines: list[str] = []
        try:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=120) as r:
                for line in r.iter_lines():
                    started.set()
                    if line:
                        lines.append(line)
        except httpx.HTTPError as exc:
            lines.append(f"broken: {exc!r}")
        endings.append(lines[-2:])

    threads = [threading.Thread(target=long_one, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    assert started.wait(60)
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert time.monotonic() - t0 < 10
    for t in threads:
        t.join(10)
    assert len(endings) == 2
    for last in endings:
        assert last[-1] == "data: [DONE]" and "shutting down" in last[0], last


def test_web_app_concurrent_chats_and_paths(home: Path, corpus: Path, tmp_path: Path) -> None:
    from gradio_client import Client

    from conftest import run_kbqa

    assert run_kbqa("ingest", str(corpus), "--kb", "team").returncode == 0
    proc, url = start(home, "serve", "--kb", "team", ready="/")
    try:
        client = Client(url + "/", verbose=False)
        sequential = [client.predict(q, "team", 4, 0.3, "gemma-3-270m", api_name="/ask")[0] for q in QUESTIONS[:4]]
        assert "24 months" in sequential[0]
        answers: dict[int, str] = {}
        errors: list[BaseException] = []

        def user(n: int) -> None:
            try:
                answers[n] = Client(url + "/", verbose=False).predict(QUESTIONS[n], "team", 4, 0.3, "gemma-3-270m", api_name="/ask")[0]
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=user, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert not errors, errors
        assert [answers[n] for n in range(4)] == sequential
        # what the chat hands to browsers (page images, source files) stays inside the home
        tmp_before = {p.name for p in Path("/tmp").glob("kbqa-web-*")}
        history, _, _, pages, files = client.predict("星河科技的总部在哪里？", [], "team", 4, 0.3, "extractive", 0.0, api_name="/chat")
        assert {p.name for p in Path("/tmp").glob("kbqa-web-*")} == tmp_before
        assert any((home / "cache" / "web").rglob("*.pdf"))
        outside_untouched(home)

        # paths through Gradio's own API: refused, nothing outside the home created or removed
        victim = tmp_path / "victim"
        victim.mkdir()
        (victim / "keep.txt").write_text("important")
        before = sorted(p.name for p in victim.iterdir()), sorted(p.name for p in home.iterdir())
        for name in [str(victim), str(victim / "kb"), "../victim", "..", ".hidden", "a/b"]:
            status, _, _ = client.predict(name, api_name="/create_kb")
            assert "invalid knowledge base name" in status.lower(), status
            status, _, _ = client.predict(name, name, api_name="/delete_kb")
            assert "invalid knowledge base name" in status.lower(), status
            assert "invalid knowledge base name" in client.predict("water", name, 4, 0.3, api_name="/search").lower()
            assert "invalid knowledge base name" in client.predict(name, "extractive", api_name="/describe")["error"]
        assert (sorted(p.name for p in victim.iterdir()), sorted(p.name for p in home.iterdir())) == before
        assert (victim / "keep.txt").read_text() == "important"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_sigterm_during_an_upload_keeps_what_was_ingested(home: Path) -> None:
    # was a plain 500, with the ingest's parser process running on after the server
    from conftest import run_kbqa

    proc, url = start(home, "api", "--api-key", KEY)
    text = " ".join(f"Section {n} of the handbook explains rule {n} in detail." for n in range(120))
    files = [("files", (f"chapter{n:02d}.md", f"# Chapter {n}\n\n{text}".encode(), "text/markdown")) for n in range(60)]
    answer: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answer.append(httpx.post(f"{url}/v1/kb/handbook/files", files=files, headers=AUTH, timeout=120)))
    sender.start()
    deadline = time.time() + 60

    def committed() -> int:  # files ingested so far (a stop before the first one keeps nothing, by design)
        listed = httpx.get(f"{url}/v1/kb/handbook/files", headers=AUTH)
        return len(listed.json()) if listed.status_code == 200 else 0

    while committed() == 0:  # (was: 0.3 s after the ingest began, which a busy machine outran)
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    sender.join(30)
    assert answer and answer[0].status_code == 503 and "shutting down" in answer[0].text, answer and answer[0].text
    kept = run_kbqa("kb", "files", "handbook")
    assert kept.returncode == 0
    listed = [line for line in kept.stdout.splitlines() if "chapter" in line]
    stored = sorted(p.name for p in (home / "kbs" / "handbook" / "uploads").iterdir() if not p.name.startswith("."))
    assert 0 < len(listed) < 60 and len(stored) == len(listed), (len(listed), stored)  # no stored file without its entry
    outside_untouched(home)


@pytest.mark.parametrize("rate", ["2 MB/s", "stalled"])
def test_sigterm_while_an_upload_is_still_arriving_is_a_503_not_a_500(home: Path, rate: str) -> None:
    """Found by review (helper 73): a SIGTERM while an upload's body was still arriving at 2 MB/s got
    500 and a traceback ("timeout graceful shutdown exceeded"): nothing watched for the stop until
    the body had been read. A client that has stopped sending (but not for server.body_timeout_s) too."""
    import socket

    proc, url = start(home, "api", "--api-key", KEY)
    port = int(url.rsplit(":", 1)[1])
    head = b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\nContent-Type: text/plain\r\n\r\n'
    size = 60 * 2**20
    line = b"The pump is checked every month by the crew of hall four.\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /v1/kb/slow/files HTTP/1.1\r\nHost: x\r\n" + f"Authorization: Bearer {KEY}\r\n".encode()
                     + b"Content-Type: multipart/form-data; boundary=b\r\n" + f"Content-Length: {len(head) + size + 8}\r\n\r\n".encode() + head)
        stop = threading.Event()

        def trickle() -> None:  # about 2 MB/s, until the server answers or the socket closes
            piece = line * (2**18 // len(line))
            while not stop.is_set() and (rate != "stalled" or time.time() < stalls_at):
                try:
                    sock.sendall(piece)
                except OSError:
                    return
                time.sleep(0.12)

        stalls_at = time.time() + 1
        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        reply = b""
        try:
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                got = sock.recv(65536)
                if not got:
                    break
                reply += got
        except OSError:
            pass
        stop.set()
    proc.wait(timeout=30)
    assert reply.startswith(b"HTTP/1.1 503"), reply[:300]
    assert b"retry-after: 10" in reply.lower() and b'"code":"stopping"' in reply, reply[:600]
    log = (home / f"server-{port}.log").read_text()
    assert "Traceback" not in log and " 500 " not in log, log[-3000:]
    assert not (home / "kbs" / "slow").exists() or not list((home / "kbs" / "slow" / "uploads").glob("*"))


def test_a_server_killed_during_an_upload_leaves_a_consistent_knowledge_base(home: Path) -> None:
    from conftest import run_kbqa

    proc, url = start(home, "api", "--api-key", KEY)
    text = " ".join(f"Section {n} of the handbook explains rule {n} in detail." for n in range(120))
    files = [("files", (f"chapter{n:02d}.md", f"# Chapter {n}\n\n{text}".encode(), "text/markdown")) for n in range(60)]
    broken: list[Exception] = []

    def send() -> None:
        try:
            httpx.post(f"{url}/v1/kb/handbook/files", files=files, headers=AUTH, timeout=120)
        except httpx.HTTPError as exc:
            broken.append(exc)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    deadline = time.time() + 60
    while len(httpx.get(f"{url}/v1/kb/handbook/files", headers=AUTH).json()) < 3:  # 404 (a dict) until the knowledge base exists
        assert time.time() < deadline
        time.sleep(0.05)
    proc.kill()  # SIGKILL: nothing runs on the way out
    proc.wait(timeout=30)
    sender.join(30)
    assert broken  # the client saw the connection go
    uploads = home / "kbs" / "handbook" / "uploads"
    listed = lambda: [f["name"] for f in json.loads(run_kbqa("kb", "files", "handbook", "--json").stdout)]  # noqa: E731
    ingested = len(listed())
    assert 0 < ingested < 60 and len([p for p in uploads.iterdir() if p.name.startswith("chapter")]) == 60  # all stored, some ingested
    assert "Section 7" in run_kbqa("search", "rule 7", "--kb", "handbook").stdout  # what was ingested is searchable
    proc, url = start(home, "api", "--api-key", KEY)  # the next upload clears what the killed one left
    r = httpx.post(f"{url}/v1/kb/handbook/files", files=[("files", ("late.md", b"# Late\n\na later file", "text/markdown"))], headers=AUTH, timeout=120)
    assert r.status_code == 200
    stored = sorted(p.name for p in uploads.iterdir() if not p.name.startswith("."))
    assert stored == sorted(listed()) and len(stored) == ingested + 1 and "late.md" in stored
    proc.terminate()
    proc.wait(timeout=30)


def test_an_upload_whose_client_hangs_up_while_waiting_gives_its_place_up(home: Path) -> None:
    proc, url = start_server(home, "api", "--api-key", KEY, env={"KBQA_SERVER__MAX_INGESTS": "1"}, ready="/v1/models", headers=AUTH)
    try:
        text = " ".join(f"Section {n} of the handbook explains rule {n} in detail." for n in range(120))
        files = [("files", (f"chapter{n:02d}.md", f"# Chapter {n}\n\n{text}".encode(), "text/markdown")) for n in range(24)]
        big = threading.Thread(target=lambda: httpx.post(f"{url}/v1/kb/handbook/files", files=files, headers=AUTH, timeout=300))
        big.start()
        ingests = lambda: httpx.get(f"{url}/v1/status", headers=AUTH).json()["ingests"]  # noqa: E731
        deadline = time.time() + 60
        while ingests()["running"] == 0:
            assert time.time() < deadline
            time.sleep(0.05)
        with pytest.raises(httpx.TimeoutException):  # a client that gives up after a second
            httpx.post(f"{url}/v1/kb/impatient/files", files=[("files", ("a.md", b"# A\n\nshort", "text/markdown"))], headers=AUTH, timeout=1)
        deadline = time.time() + 10
        while ingests()["waiting"]:
            assert time.time() < deadline, ingests()
            time.sleep(0.2)
        assert ingests()["running"] == 1  # the big upload goes on (not waited for: the server stops under it)
        assert "impatient" not in httpx.get(f"{url}/v1/kb", headers=AUTH).json()  # never made: its client was gone before its turn
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.fresh_tables
def test_a_server_loads_its_models_as_it_starts_and_a_sigterm_meanwhile_stops_it(home: Path, corpus: Path) -> None:
    # (the first question after a start waited ~4 s for the embedder, the LLM and the word tables
    # to load, and a question in English over Chinese documents as long again: 0.5 s after them)
    from conftest import run_kbqa

    from kbqa import load_config

    assert run_kbqa("ingest", str(corpus), "--kb", "team").returncode == 0
    llm = load_config()[0].llm.model
    proc, url = start(home, "api", "--api-key", KEY)
    try:
        deadline = time.monotonic() + 90
        while (loaded := httpx.get(f"{url}/v1/status", headers=AUTH, timeout=10).json()["loaded"])["warming_up"] and time.monotonic() < deadline:
            time.sleep(0.3)
        assert loaded == {"embeddings": True, "llms": [llm], "warming_up": False}  # before anyone asked anything
        tables = {p.name.split("-")[1] for p in (home / "cache" / "tmp").iterdir() if p.name.startswith("kbqa-")}
        assert {"jieba", "glosses", "glossed", "kind"} <= tables, tables  # jieba's and the dictionary's, in the home
        assert "24 months" in stream_answer(url, QUESTIONS[0])
        outside_untouched(home)
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) != 0
    # a SIGTERM while it loads stops it within seconds, without a crash (a load inside llama.cpp
    # when the interpreter ended crashed it once, at the command line's preload)
    for warm_up in ("true", "false"):
        proc, url = start_server(home, "api", "--api-key", KEY, env={"KBQA_SERVER__WARM_UP": warm_up}, ready="/v1/models", headers=AUTH)
        if warm_up == "false":  # nothing is loaded before it is needed
            assert httpx.get(f"{url}/v1/status", headers=AUTH, timeout=10).json()["loaded"] == {"embeddings": False, "llms": [], "warming_up": False}
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) in (-signal.SIGTERM, 128 + signal.SIGTERM)  # (uvicorn ends by the signal it stopped for)
        assert time.monotonic() - t0 < 10
    logs = "".join(p.read_text() for p in home.glob("server-*.log"))
    assert "Traceback" not in logs and "Fatal Python error" not in logs, logs[-3000:]


@pytest.mark.fresh_tables  # (a first start: the questions wait seconds for the word tables being built)
def test_questions_that_wait_for_a_starting_server_get_503_at_a_sigterm_not_500(home: Path, corpus: Path) -> None:
    # (they were cancelled when uvicorn's 3 s of grace ended: 500 and a traceback each)
    from conftest import run_kbqa

    assert run_kbqa("ingest", str(corpus), "--kb", "team").returncode == 0
    proc, url = start(home, "api", "--api-key", KEY)
    statuses: list[tuple[int, str]] = []

    def ask(question: str) -> None:
        body = {"model": "kb:team", "stream": True, "messages": [{"role": "user", "content": question}]}
        try:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=60) as r:
                statuses.append((r.status_code, r.read().decode()))
        except httpx.HTTPError as exc:  # (a connection the server dropped)
            statuses.append((0, repr(exc)))

    threads = [threading.Thread(target=ask, args=(q,)) for q in QUESTIONS]
    for t in threads:
        t.start()
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    assert proc.wait(timeout=60) in (-signal.SIGTERM, 128 + signal.SIGTERM)
    assert time.monotonic() - t0 < 10
    for t in threads:
        t.join(60)
    assert len(statuses) == len(QUESTIONS)
    assert {status for status, _ in statuses} <= {200, 503}, statuses
    refused = [json.loads(body) for status, body in statuses if status == 503]
    assert refused and all(r["error"]["code"] == "stopping" for r in refused), statuses  # still preparing: 503 at once
    assert all(body.rstrip().endswith("data: [DONE]") for status, body in statuses if status == 200), statuses
    log = "".join(p.read_text() for p in home.glob("server-*.log"))
    assert "Traceback" not in log and "graceful shutdown exceeded" not in log, log[-3000:]


def test_a_streamed_follow_up_is_told_its_place_while_it_waits_and_gives_it_up_when_its_client_leaves(
        api: tuple[subprocess.Popen[str], str], home: Path) -> None:
    """A follow-up rewritten by a chat model (smollm2-135m) waits for its turn before its sources exist: its stream
    begins with its place in the queue, and a client that hangs up then gives its place up (found by review:
    nothing came, not even the response's head, and the abandoned follow-up was rewritten in its turn all the same)."""
    _, url = api

    def smollm2() -> dict[str, Any]:
        return httpx.get(f"{url}/v1/status", headers=AUTH, timeout=30).json()["queues"]["smollm2-135m"]

    long_story = {"model": "smollm2-135m", "stream": True, "max_tokens": 1500, "messages": [{"role": "user", "content": "Write a very long story about water filters."}]}
    follow_up = {"model": "kb:team", "llm": "smollm2-135m", "stream": True, "messages": [
        {"role": "user", "content": "How often should the RO membrane be replaced?"},
        {"role": "assistant", "content": "Every 24 months [1]."},
        {"role": "user", "content": "And the PP cotton filter?"}]}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=long_story, headers=AUTH, timeout=120) as holder:
        lines = holder.iter_lines()
        assert any('"content": "' in line and '"content": ""' not in line for line in lines)  # generating: the only copy is taken
        began = time.monotonic()
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=follow_up, headers=AUTH, timeout=60) as waiting:
            assert waiting.status_code == 200
            first = next(line for line in waiting.iter_lines() if line)
            assert first == ": queued, 0 ahead", first  # told at once, before the answer ahead of it ends
            assert time.monotonic() - began < 10
        deadline = time.time() + 10  # hung up: its place is given up while the story still runs
        while (queue := smollm2())["admitted"] != 0:
            assert time.time() < deadline, queue
            time.sleep(0.2)
        assert queue["generating"] == 1
        # another follow-up waits, told its place, and is answered once the story's client hangs up
        text = ""
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=follow_up, headers=AUTH, timeout=120) as r:
            lines = r.iter_lines()
            assert next(line for line in lines if line) == ": queued, 0 ahead"
            holder.close()
            events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert events and "error" not in str(events), events  # (found by review: an internal error event once it had waited)
    assert "6 months" in events[0]["kbqa_sources"][0]["text"]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
    # one more waits, and hangs up after the first words of its answer: closed between two steps (found by review:
    # closed while a step ran, "generator already executing" in the log)
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=long_story, headers=AUTH, timeout=120) as holder:
        story = holder.iter_lines()  # (kept: a reader collected closes the connection, and the story with it)
        assert any('"content": "' in line and '"content": ""' not in line for line in story)
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=follow_up, headers=AUTH, timeout=120) as r:
            lines = r.iter_lines()
            assert next(line for line in lines if line) == ": queued, 0 ahead"
            holder.close()
            assert any('"content": "' in line and '"content": ""' not in line for line in lines)
    deadline = time.time() + 30
    while (queue := smollm2())["generating"] + queue["admitted"] != 0:
        assert time.time() < deadline, queue
        time.sleep(0.2)
    time.sleep(1)  # (a close that failed is logged as the stream ends)
    said = (home / f"server-{url.rsplit(':', 1)[1]}.log").read_text()
    assert "already executing" not in said and "Exception in callback" not in said, said[-3000:]
    assert text and smollm2() | {"mean_generation_s": 0} == {"instances": 1, "generating": 0, "waiting": 0, "admitted": 0, "max_queue": 64,
                                                          "mean_generation_s": 0}
