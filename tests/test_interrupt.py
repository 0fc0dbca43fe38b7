"""An ingest killed or interrupted half-way leaves a usable knowledge base; the next run finishes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import KBQA, ROOT, run_kbqa

pytestmark = pytest.mark.slow  # real models or servers in subprocesses: `pytest -m "not slow"` skips them


def many_files(folder: Path, n: int = 40) -> Path:
    folder.mkdir()
    for i in range(n):
        body = "".join(f"第{i}号文件的第{j}段讲述了编号为{i}-{j}的设备在工厂中的维护规程与检修周期。" for j in range(30))
        (folder / f"doc{i:02d}.txt").write_text(body, encoding="utf-8")
    return folder


def ok_files(catalog: Path) -> int:
    if not catalog.exists():
        return 0
    try:
        with sqlite3.connect(catalog, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM files WHERE status='ok'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def start_and_stop_midway(home: Path, docs: Path, sig: int) -> subprocess.Popen[str]:
    catalog = home / "kbs" / "big" / "catalog.sqlite"
    # SIGINT restored to its default in the child: a runner that started us in the background
    # (`cmd &` in a script) passes SIGINT on as ignored, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen([*KBQA, "ingest", str(docs), "--kb", "big"], cwd=ROOT, env=os.environ.copy(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while ok_files(catalog) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "ingest finished before it could be interrupted"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    return proc


def assert_consistent_and_resumes(home: Path, docs: Path) -> None:
    catalog = home / "kbs" / "big" / "catalog.sqlite"
    done = ok_files(catalog)
    assert 3 <= done < 40
    result = run_kbqa("kb", "files", "big", "--json")
    assert result.returncode == 0, result.stderr
    searched = run_kbqa("search", "第1号文件的维护规程", "--kb", "big", "--json", "--threshold", "0")
    assert searched.returncode == 0, searched.stderr
    again = run_kbqa("ingest", str(docs), "--kb", "big", "--json")
    assert again.returncode == 0, again.stderr
    import json

    report = json.loads(again.stdout)
    statuses = [f["status"] for f in report["files"]]
    assert statuses.count("skipped") == done and statuses.count("added") == 40 - done
    with sqlite3.connect(catalog) as db:
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        fts = db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]
        files = db.execute("SELECT count(*) FROM files").fetchone()[0]
    assert files == 40 and chunks == fts
    import faiss

    assert faiss.read_index(str(home / "kbs" / "big" / "vectors.faiss")).ntotal == chunks


def test_killed_ingest_resumes(home: Path, tmp_path: Path) -> None:
    docs = many_files(tmp_path / "many")
    proc = start_and_stop_midway(home, docs, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert_consistent_and_resumes(home, docs)


def test_ctrl_c_ingest_exits_130_and_resumes(home: Path, tmp_path: Path) -> None:
    docs = many_files(tmp_path / "many")
    proc = start_and_stop_midway(home, docs, signal.SIGINT)
    assert proc.returncode == 130
    assert "run the same command again" in proc.stdout.read()  # type: ignore[union-attr]
    assert_consistent_and_resumes(home, docs)


def test_a_file_past_the_time_limit_is_stopped_and_the_rest_goes_on(home: Path, tmp_path: Path) -> None:
    """ingest.file_timeout_s: a file whose parsing takes too long is killed with its process and
    reported; the next file is read by a fresh one."""
    import pymupdf

    from kbqa import KnowledgeBase, load_config

    docs = tmp_path / "in"
    docs.mkdir()
    big = pymupdf.open()
    for n in range(1500):
        big.new_page().insert_text((72, 72), f"page {n} of a long, slow document " * 3)
    big.save(docs / "a_slow.pdf")
    (docs / "b_note.txt").write_text("备忘：滤芯每六个月更换一次。", encoding="utf-8")
    config, _ = load_config(overrides={"ingest": {"file_timeout_s": 0.2}})
    with KnowledgeBase.open("limits", config) as kb:
        report = kb.ingest(docs)
        by_name = {f.name: f for f in report.files}
        assert by_name["a_slow.pdf"].status == "failed"
        assert "timed out after 0.2 s" in (by_name["a_slow.pdf"].error or "")
        assert by_name["b_note.txt"].status == "added"
        assert kb.search("滤芯多久更换")[0].file == "b_note.txt"


def test_progress_reports_file_and_page(home: Path, docs: Path) -> None:
    from kbqa import KnowledgeBase, load_config

    for limit in (300, 0):  # read in the helper process, and in-process
        config, _ = load_config(overrides={"ingest": {"file_timeout_s": limit}})
        events: list = []
        threads: set[int] = set()

        def record(event: object) -> None:
            events.append(event)
            threads.add(threading.get_ident())

        with KnowledgeBase.open(f"progress{limit}", config) as kb:
            kb.ingest(docs, progress=record)
        # files are parsed ahead in another thread, but progress is reported from the caller's only
        # (a web app's progress bar may only be touched from its request's thread)
        assert threads == {threading.get_ident()}
        pages = {(e.name, e.page, e.pages) for e in events if e.page}
        assert ("手册.pdf", 1, 2) in pages and ("手册.pdf", 2, 2) in pages and ("manual.pdf", 2, 2) in pages
        assert events[-1].stage == "done"
