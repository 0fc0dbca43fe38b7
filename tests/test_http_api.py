"""The OpenAI-compatible HTTP API started as `kbqa api`, driven by the real openai client and httpx."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import KBQA, ROOT, free_port

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
    manual = next(f for f in listed if f["name"] == "manual.pdf")
    assert httpx.delete(f"{api}/v1/kb/api/files/{manual['id']}", headers=auth).status_code == 200
    assert httpx.delete(f"{api}/v1/kb/api/files/{manual['id']}", headers=auth).status_code == 404
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
    assert [(f["name"], f["status"]) for f in report["files"]] == [("faq.md", "added")]


def test_openai_client_chat_with_a_knowledge_base(api: str, docs: Path) -> None:
    from openai import AuthenticationError, OpenAI

    upload(api, docs / "manual.pdf", docs / "手册.pdf")
    client = OpenAI(base_url=f"{api}/v1", api_key=KEY)
    ids = {m.id for m in client.models.list().data}
    assert {"kb:api", "extractive"} <= ids
    reply = client.chat.completions.create(model="kb:api", messages=[{"role": "user", "content": "How often should the RO membrane be replaced?"}])
    assert "24 months" in reply.choices[0].message.content
    sources = reply.model_extra["kbqa_sources"]
    assert sources[0]["file"] == "manual.pdf" and sources[0]["page"] == 2
    stream = client.chat.completions.create(model="kb:api", stream=True, messages=[{"role": "user", "content": "员工每年有几天带薪年假？"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "十天" in text
    assert chunks[0].model_extra["kbqa_sources"][0]["file"] == "手册.pdf"
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=f"{api}/v1", api_key="wrong").models.list()
