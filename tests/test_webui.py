"""The web chat started as a user starts it (kbqa serve), driven over HTTP with gradio_client."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import KBQA, ROOT, free_port


@pytest.fixture
def server(home: Path) -> Iterator[str]:
    port = free_port()
    log = (home / "serve.log").open("w")
    proc = subprocess.Popen([*KBQA, "serve", "--kb", "web", "--port", str(port)], cwd=ROOT, env=os.environ.copy(),
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"kbqa serve exited: {(home / 'serve.log').read_text()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise AssertionError("kbqa serve did not answer within 120 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_binds_to_loopback_only(server: str) -> None:
    assert server.startswith("http://127.0.0.1:")


def test_upload_ingest_and_ask_with_sources(server: str, docs: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    files = [handle_file(str(docs / "manual.pdf")), handle_file(str(docs / "报销.docx")), handle_file(str(docs / "broken.pdf"))]
    status, table, _ = client.predict(files, "web", api_name="/upload")
    assert "2 added" in status and "broken.pdf" in status
    names = {row[1] for row in table["data"]}
    assert {"manual.pdf", "报销.docx"} <= names
    answer, sources = client.predict("How often should the RO membrane be replaced?", "web", 4, 0.3, "extractive", api_name="/ask")
    assert "24 months" in answer
    assert "manual.pdf, p. 2" in sources
    answer, sources = client.predict("火星上有液态水吗？", "web", 4, 0.3, "extractive", api_name="/ask")
    assert "没有找到" in answer and "No source passed" in sources
    chunks = client.predict("报销期限", "web", 4, 0.3, api_name="/search")
    assert "报销.docx" in chunks
    status, table = client.predict("manual.pdf", "web", api_name="/delete_file")
    assert "Removed manual.pdf" in status
    assert "manual.pdf" not in {row[1] for row in table["data"]}


def test_hostile_upload_names_are_sanitised() -> None:
    from webui.app import safe_name

    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("..\\..\\windows\\evil.pdf") == "evil.pdf"
    assert safe_name("报销 制度;rm -rf.docx") == "报销 制度_rm -rf.docx"
    assert safe_name("...") == "upload"
