"""Shared fixtures: a private kbqa home per test and real documents written by the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
KBQA = [sys.executable, "-m", "kbqa.cli"]

ZH_PAGES = [
    "星河科技员工手册\n\n星河科技有限公司成立于2015年，总部位于杭州市西湖区，主要研发智能净水设备。",
    "假期\n\n员工入职满一年后，每年享有十天带薪年假；工作满五年后，带薪年假增加到十五天。",
]
EN_PAGES = [
    "Aurora X2 manual\n\nThe Aurora X2 delivers up to 2 litres of purified water per minute.",
    "Maintenance\n\nReplace the RO membrane every 24 months and the PP cotton filter every 6 months.",
]


def write_pdf(path: Path, pages: list[str], font: str = "helv", password: str | None = None) -> Path:
    import pymupdf

    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page(width=595, height=842)
        page.insert_textbox(pymupdf.Rect(60, 60, 535, 800), text, fontsize=12, fontname=font)
    if password:
        doc.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=password, owner_pw=password)
    else:
        doc.save(path)
    return path


def write_page_pdf(path: Path, blocks: list[str | list[list[str]]]) -> None:
    """One page of lines of text (str) and ruled tables (rows of cells), top to bottom."""
    write_pages_pdf(path, [blocks])


def write_pages_pdf(path: Path, pages: list[list[str | list[list[str]]]]) -> None:
    """Pages of lines of text (str) and ruled tables (rows of cells), top to bottom."""
    import pymupdf

    doc = pymupdf.open()
    for blocks in pages:
        _write_blocks(doc.new_page(width=595, height=842), blocks)
    doc.save(path)


def _write_blocks(page: Any, blocks: list[str | list[list[str]]]) -> None:
    y, widths, height = 100.0, [160, 100, 100], 24
    for block in blocks:
        if isinstance(block, str):
            page.insert_text((60, y), block, fontsize=11)
            y += 14
            continue
        y0 = y + 10
        xs = [60 + sum(widths[:i]) for i in range(len(widths) + 1)]
        for r in range(len(block) + 1):
            page.draw_line((xs[0], y0 + r * height), (xs[-1], y0 + r * height))
        for x in xs:
            page.draw_line((x, y0), (x, y0 + len(block) * height))
        for r, row in enumerate(block):
            for c, cell in enumerate(row):
                page.insert_text((xs[c] + 6, y0 + r * height + 16), cell, fontsize=11)
        y = y0 + len(block) * height + 30


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def three_notes(folder: Path) -> Path:
    """Two Chinese notes and an English one: the small folder the store tests ingest, update and prune."""
    folder.mkdir()
    write(folder, "a.md", "# 甲\n\n甲文件讲述了风力发电机的叶片维护。叶片每半年检查一次。\n")
    write(folder, "b.md", "# 乙\n\n乙文件讲述了光伏组件的清洁方法。组件每月用清水冲洗。\n")
    write(folder, "c.txt", "The gearbox oil must be changed every two years by a certified technician.")
    return folder


def add_docx_table(d: Any, rows: list[list[str]]) -> None:
    """A table of these rows (the first is the header) at the end of a python-docx Document."""
    table = d.add_table(rows=len(rows), cols=len(rows[0]))
    for r, cells in enumerate(rows):
        for c, text in enumerate(cells):
            table.cell(r, c).text = text


def write_table_docx(path: Path) -> Path:
    """A Word file with one 30-row table (城市01..城市30, 住宿上限, 餐补) under a heading."""
    import docx

    d = docx.Document()
    d.add_heading("差旅住宿标准", level=1)
    add_docx_table(d, [["城市", "住宿上限", "餐补"]] + [[f"城市{i:02d}", f"{300 + 10 * i}元", f"{50 + i}元"] for i in range(1, 31)])
    d.save(path)
    return path


def write_lead_in_docx(path: Path, rows: int = 30) -> None:
    """A Word file: a section whose last paragraph introduces the table of `rows` towns under it (a
    line of "…" before it), then a section whose paragraph is followed by a table of another section."""
    import docx

    d = docx.Document()
    d.add_heading("Travel policy", level=1)
    for k in range(2):
        d.add_paragraph(f"Rule {k + 1}: staff who travel on business book their hotel through the company travel desk; " * 4)
    d.add_paragraph("…")
    d.add_paragraph("The following table presents the nightly hotel limits that apply in each city where staff travel on business.")
    add_docx_table(d, [["City", "Hotel limit", "Meals"]] + [[f"Town{i:02d}", f"{300 + 10 * i}", f"{50 + i}"] for i in range(1, rows + 1)])
    d.add_heading("Claims", level=1)
    d.add_paragraph("Expense claims are filed within thirty days of the trip, with the receipts attached.")
    d.add_heading("Mileage", level=1)
    add_docx_table(d, [["Vehicle", "Rate"], ["Car", "0.45"], ["Bicycle", "0.20"]])
    d.save(path)


def write_docx(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading("差旅报销制度", level=1)
    d.add_heading("报销时限", level=2)
    d.add_paragraph("出差结束后三十天内须提交报销申请，超过期限的费用不予报销。")
    table = d.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "城市"
    table.rows[0].cells[1].text = "每晚上限（元）"
    row = table.add_row()
    row.cells[0].text = "杭州"
    row.cells[1].text = "450"
    d.save(path)
    return path


@pytest.fixture(autouse=True, scope="session")
def temporary_files_stay_in_pytests_folder(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Temporary files made in the test process go under pytest's own folder, which it clears:
    gradio_client leaves an empty folder in the system's temporary folder for every file it
    downloads (14 a run of the suite)."""
    before = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("tmp"))
    yield
    tempfile.tempdir = before


@pytest.fixture(scope="session")
def word_tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """jieba's and the dictionary's word tables, built once a run (~7 s), as a server keeps them in
    its home's temp folder ($KBQA_HOME/cache/tmp) for its next start."""
    folder = tmp_path_factory.mktemp("word-tables")
    build = "from kbqa.service import load_dictionary_tables, load_jieba_table; load_jieba_table(); load_dictionary_tables()"
    subprocess.run([sys.executable, "-c", build], cwd=ROOT, env={**os.environ, "TMPDIR": str(folder)}, check=True)
    return folder


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, word_tables: Path) -> Path:
    """A private KBQA_HOME; the shipped GGUF is assembled once per test run, not per test, and the
    word tables are there as after a first start (each server of the suite built them again in its
    fresh home: ~7 s of CPU a start): a test of that first start is marked fresh_tables."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("KBQA_HOME", str(h))
    # a web app built in-process sets GRADIO_TEMP_DIR for its home (webui.app.web_scratch): left in the worker's environment,
    # every later server of that worker received uploads in a finished test's folder (CI: a test of the server's Gradio cache
    # found none in its home)
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    shared_models = ROOT / ".pytest_cache" / "kbqa-models"
    shared_models.mkdir(parents=True, exist_ok=True)
    (h / "models").symlink_to(shared_models, target_is_directory=True)
    if request.node.get_closest_marker("fresh_tables") is None:
        kept = h / "cache" / "tmp"
        kept.mkdir(parents=True)
        for table in word_tables.iterdir():
            os.link(table, kept / table.name)  # (written anew by replacing, never in place)
    return h


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A folder of good and bad documents, as a user's would be."""
    d = tmp_path / "docs"
    d.mkdir()
    write_pdf(d / "手册.pdf", ZH_PAGES, font="china-s")
    write_pdf(d / "manual.pdf", EN_PAGES)
    write_docx(d / "报销.docx")
    (d / "faq.md").write_text("# FAQ\n\n## 出水变慢\n\n多半是 PP 棉滤芯堵塞，请更换滤芯。\n", encoding="utf-8")
    (d / "gbk.txt").write_bytes("北京是中华人民共和国的首都，也是全国的政治中心和文化中心。".encode("gbk"))
    (d / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage")
    write_pdf(d / "secret.pdf", ["top secret"], password="pw")
    (d / "empty.txt").write_bytes(b"")
    (d / "data.xyz").write_text("unknown format")
    return d


def run_kbqa(*args: str, env: dict[str, str] | None = None, timeout: float = 300, input: str | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*KBQA, *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd or ROOT, input=input)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@contextmanager
def llm_server_stand_in(reply: Callable[[str], tuple[int, bytes]]) -> Iterator[str]:
    """An HTTP server on a free port answering each POST with reply(path) -> (status, body), for the
    replies of an OpenAI-compatible LLM server that a real one cannot be made to give on cue (malformed,
    late, over its context). Yields its base URL."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Replies(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            status, body = reply(self.path)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Replies)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


_servers: list[subprocess.Popen[str]] = []  # started by start_server during the running test


@pytest.fixture(autouse=True)
def servers_end_with_their_test() -> Iterator[None]:
    """A server that its test did not stop (the test failed before it got there) is killed when the test
    ends: one left by an upload test that failed on a full disk ran on for 51 minutes, and a later test
    counted it among its child processes and failed too."""
    yield
    while _servers:
        proc = _servers.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def start_server(home: Path, *args: str, env: dict[str, str] | None = None, ready: str = "/",
                 headers: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start `kbqa ARGS --port P` as a user would (its log in the home) and wait until `ready` answers
    below 500; returns (process, "http://127.0.0.1:P")."""
    import time

    import httpx

    port = free_port()
    log = home / f"server-{port}.log"
    proc = subprocess.Popen([*KBQA, *args, "--port", str(port)], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)
    _servers.append(proc)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + ready, headers=headers, timeout=2).status_code < 500:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"kbqa {args[0]} did not answer within 120 s")
