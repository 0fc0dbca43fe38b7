"""An ingest killed or interrupted half-way leaves a usable knowledge base; the next run finishes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import KBQA, ROOT, run_kbqa

pytestmark = pytest.mark.slow  # real models or servers in subprocesses: `pytest -m "not slow"` skips them


MANY = 16  # files: an ingest stopped after its third leaves most of them to the next run


def many_files(folder: Path, n: int = MANY) -> Path:
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
    assert 3 <= done < MANY
    result = run_kbqa("kb", "files", "big", "--json")
    assert result.returncode == 0, result.stderr
    searched = run_kbqa("search", "第1号文件的维护规程", "--kb", "big", "--json", "--threshold", "0")
    assert searched.returncode == 0, searched.stderr
    again = run_kbqa("ingest", str(docs), "--kb", "big", "--json")
    assert again.returncode == 0, again.stderr
    import json

    report = json.loads(again.stdout)
    statuses = [f["status"] for f in report["files"]]
    assert statuses.count("skipped") == done and statuses.count("added") == MANY - done
    with sqlite3.connect(catalog) as db:
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        fts = db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]
        files = db.execute("SELECT count(*) FROM files").fetchone()[0]
    assert files == MANY and chunks == fts
    import faiss

    assert faiss.read_index(str(home / "kbs" / "big" / "vectors.faiss")).ntotal == chunks


def test_killed_ingest_resumes(home: Path, tmp_path: Path) -> None:
    docs = many_files(tmp_path / "many")
    proc = start_and_stop_midway(home, docs, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert_consistent_and_resumes(home, docs)


def test_what_a_writer_killed_while_it_saved_the_index_left_is_removed_by_the_next_run(home: Path, tmp_path: Path) -> None:
    """A process killed while it wrote the vector index leaves its temporary file, as large as the
    index: the next kbqa that opens the knowledge base removes it, whatever process number it had
    (kbqa is PID 1 in a container, run after run). Not the file a writer holds locked while it
    writes, nor one written in the last minutes (a writer on another machine)."""
    import fcntl

    docs = many_files(tmp_path / "few", 2)
    assert run_kbqa("ingest", str(docs), "--kb", "big").returncode == 0
    folder = home / "kbs" / "big"
    an_hour_ago = time.time() - 3600
    stale = [folder / "vectors.faiss.1.140.tmp", folder / "vectors.json.1.140.tmp", folder / f"vectors.faiss.{os.getpid()}.140.tmp"]
    kept = [folder / "vectors.faiss.77.141.tmp",   # a writer holds it (below)
            folder / "vectors.faiss.78.142.tmp",   # written just now
            folder / "notes.txt.1.143.tmp"]        # not the index's
    for path in [*stale, *kept]:
        path.write_bytes(os.urandom(1 << 20))
    for path in [*stale, kept[0], kept[2]]:
        os.utime(path, (an_hour_ago, an_hour_ago))
    writer = os.open(kept[0], os.O_RDONLY)
    fcntl.flock(writer, fcntl.LOCK_EX)
    try:
        found = run_kbqa("search", "3-7号设备的检修周期", "--kb", "big", "--json")
    finally:
        os.close(writer)
    assert found.returncode == 0, found.stderr
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert "doc0" in found.stdout
    # a knowledge base that holds nothing (its first save killed, or every file removed) opens no index
    for name in ("doc00.txt", "doc01.txt"):
        assert run_kbqa("kb", "rm", name, "--kb", "big").returncode == 0
    left = folder / "vectors.faiss.1.144.tmp"
    left.write_bytes(os.urandom(1 << 20))
    os.utime(left, (an_hour_ago, an_hour_ago))
    empty = run_kbqa("search", "3-7号设备的检修周期", "--kb", "big")
    assert empty.returncode == 1 and "ingest" in empty.stderr + empty.stdout  # "empty: ingest files first"
    assert not left.exists()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_ingest_with_a_message_and_it_resumes(home: Path, tmp_path: Path, sig: int, code: int) -> None:
    """Ctrl-C exits 130; SIGTERM (kill, systemd, docker stop) 143, and says what was kept as Ctrl-C
    does (found by review: it ended with 143 and not a word)."""
    docs = many_files(tmp_path / "many")
    proc = start_and_stop_midway(home, docs, sig)
    assert proc.returncode == code
    assert "run the same command again" in proc.stdout.read()  # type: ignore[union-attr]
    assert_consistent_and_resumes(home, docs)


def test_a_file_past_the_time_limit_is_stopped_and_the_rest_goes_on(home: Path, tmp_path: Path) -> None:
    """ingest.file_timeout_s: a file whose parsing takes too long is killed with its process and
    reported; the next file is read by a fresh one."""
    import pymupdf

    docs = tmp_path / "in"
    docs.mkdir()
    big = pymupdf.open()
    for n in range(1500):
        big.new_page().insert_text((72, 72), f"page {n} of a long, slow document " * 3)
    big.save(docs / "a_slow.pdf")
    # (the PDF takes over 2 s to read; the limit leaves the note, read by a fresh process, a second even under load:
    # with 0.2 s the note itself timed out when the machine was busy)
    _fails_and_the_note_goes_on(docs, "a_slow.pdf", {"file_timeout_s": 1.0}, "timed out after 1 s")


def _fails_and_the_note_goes_on(docs: Path, bad: str, ingest: dict[str, float], said: str) -> None:
    """docs/bad fails under the ingest settings, saying `said`; a note written beside it is read by a fresh process."""
    from kbqa import KnowledgeBase, load_config

    (docs / "b_note.txt").write_text("备忘：滤芯每六个月更换一次。", encoding="utf-8")
    config, _ = load_config(overrides={"ingest": ingest})
    with KnowledgeBase.open("limits", config) as kb:
        report = kb.ingest(docs)
        by_name = {f.name: f for f in report.files}
        assert by_name[bad].status == "failed"
        assert said in (by_name[bad].error or "")
        assert by_name["b_note.txt"].status == "added"
        assert kb.search("滤芯多久更换")[0].file == "b_note.txt"


def test_a_file_past_the_memory_limit_fails_and_the_rest_goes_on(home: Path, tmp_path: Path) -> None:
    """ingest.max_reader_memory_mb: found by review, a 315 KB PDF whose one page draws 100 MB of text took MuPDF
    7.7 GB (a few such uploads at once and the server is out of memory). Its reading now fails when it passes the
    limit, saying which option to raise; the next file is read by a fresh process."""
    import pymupdf

    docs = tmp_path / "in"
    docs.mkdir()
    bomb = pymupdf.open()
    page = bomb.new_page()
    page.insert_text((10, 10), "hello", fontsize=1)
    bomb.update_stream(page.get_contents()[0], (b"BT /F1 1 Tf 10 10 Td (" + b"abcdefghij" * 100 + b") Tj ET\n") * 60000, compress=True)
    bomb.save(docs / "a_bomb.pdf", deflate=True)
    assert (docs / "a_bomb.pdf").stat().st_size < 400_000
    _fails_and_the_note_goes_on(docs, "a_bomb.pdf", {"max_reader_memory_mb": 600}, "ingest.max_reader_memory_mb=600")


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


def test_a_file_rewritten_while_an_ingest_reads_it_is_read_again_next_time(home: Path, tmp_path: Path) -> None:
    """Found by review: a file is hashed when its turn is planned and read later; rewritten in between
    (an editor saving in place, a sync client) and then written back, it kept the text read in between
    under the hash of the text on disk, and every later ingest skipped it as unchanged."""
    from conftest import write_pdf

    from kbqa import KnowledgeBase
    from kbqa.types import Progress

    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "a-long.pdf", [f"The pump of hall {i} has its filter checked every {i % 7 + 1} weeks.\n\nIts valve {i * 3} is greased "
                                    f"in month {i % 12 + 1} by crew {i % 5}." for i in range(400)])
    policy = "Complete policy text. The reimbursement deadline is thirty days after the trip ends."
    (docs / "c-policy.txt").write_text(policy, encoding="utf-8")

    def meddle(p: Progress) -> None:  # while the long PDF is read, the policy (hashed, still queued) is rewritten, then put back
        if p.stage == "file" and p.name == "a-long.pdf" and p.result is None and p.page is None:
            (docs / "c-policy.txt").write_text("Partial.", encoding="utf-8")
        if p.stage == "file" and p.name == "c-policy.txt" and p.result is not None:
            (docs / "c-policy.txt").write_text(policy, encoding="utf-8")

    kb = KnowledgeBase.open("rw", llm="extractive")
    kb.ingest([docs], progress=meddle)
    again = {f.name: f.status for f in kb.ingest([docs]).files}
    assert again == {"a-long.pdf": "skipped", "c-policy.txt": "updated"}, again  # it changed while read: read again
    stored = kb.catalog.db.execute("SELECT c.text FROM chunks c JOIN files f ON f.id = c.file_id WHERE f.name = 'c-policy.txt'").fetchall()
    assert [r[0] for r in stored] == [policy]
    assert {f.name: f.status for f in kb.ingest([docs]).files}["c-policy.txt"] == "skipped"  # and then it is what was hashed
    kb.close()


def test_dropping_a_knowledge_base_during_its_ingest_stops_the_ingest_with_a_message(home: Path, tmp_path: Path) -> None:
    """Found by review: `kbqa kb drop` while `kbqa ingest` ran: the ingest went on writing into the
    deleted catalog and exited 0 ("10 added") with nothing kept anywhere."""
    from conftest import write_pdf

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        write_pdf(docs / f"part{i:02}.pdf", [f"The valve on line {i * 100 + p} is greased every {p % 9 + 1} months.\n\nIts pump {p * 7} "
                                             f"is checked by crew {p % 4} in hall {i}." for p in range(60)])
    proc = subprocess.Popen([*KBQA, "ingest", str(docs), "--kb", "d"], cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (home / "kbs" / "d" / "catalog.sqlite").exists():
        time.sleep(0.1)
    time.sleep(2)
    dropped = run_kbqa("kb", "drop", "d", "--yes")
    out, err = proc.communicate(timeout=300)
    assert dropped.returncode == 0 and proc.returncode == 2, (dropped.stderr, out, err)
    assert "was deleted by another process during this ingest" in err and "added" not in out, (out, err)
    assert not (home / "kbs" / "d").exists()  # nothing written again where it was


@pytest.mark.parametrize("save_every_s", [0, 3600])
def test_a_knowledge_base_deleted_while_its_ingest_saves_the_index_ends_it_with_a_message(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, save_every_s: int) -> None:
    """The test above failed once under load: `kbqa kb drop` took the folder while the ingest saved
    its vector index (every 30 s, and at its end), and the ingest died of FileNotFoundError with a
    traceback instead of saying what happened."""
    import kbqa.pipeline
    from kbqa.kb import KnowledgeBase, KnowledgeBaseError, remove_folder
    from kbqa.store.vectors import FaissIndex

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"note{i}.txt").write_text(f"The valve on line {i} is greased every {i + 2} months.", encoding="utf-8")
    kb = KnowledgeBase.open("saving", llm="extractive")
    monkeypatch.setattr(kbqa.pipeline, "SAVE_EVERY_S", save_every_s)  # 0: a save after each file; 3600: only at the end
    save = FaissIndex.save
    stored = threading.Event()  # a file is in: the saves after that are the ingest's own

    def dropped_meanwhile(self: FaissIndex, generation: int) -> None:
        if stored.is_set() and kb.folder.exists():
            remove_folder(kb.folder)  # what `kbqa kb drop` does, as if from another process
        save(self, generation)

    monkeypatch.setattr(FaissIndex, "save", dropped_meanwhile)
    with pytest.raises(KnowledgeBaseError, match="was deleted by another process during this"):
        kb.ingest([docs], progress=lambda p: stored.set() if p.stage == "file" and p.result is not None else None)
    assert not kb.folder.exists()  # nothing written again where it was


def test_a_knowledge_base_deleted_after_its_last_file_ends_the_ingest_with_a_message(home: Path, tmp_path: Path) -> None:
    """Found by review: a `kbqa kb drop` landing after the ingest's check of its last file (and before
    the ingest returned) gave the normal report ("1 added") for what went with the folder."""
    from kbqa.kb import KnowledgeBase, KnowledgeBaseError, remove_folder

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.txt").write_text("The valve is greased every 3 months.", encoding="utf-8")
    kb = KnowledgeBase.open("late", llm="extractive")

    def drop_after_the_last_file(p: Any) -> None:
        if p.stage == "file" and p.result is not None and kb.folder.exists():
            remove_folder(kb.folder)  # what `kbqa kb drop` does, as if from another process

    with pytest.raises(KnowledgeBaseError, match="was deleted by another process during this ingest"):
        kb.ingest([docs], progress=drop_after_the_last_file)
    assert not kb.folder.exists()

    from ingest.types import Document

    def sources() -> Any:  # documents in memory: dropped once the last is stored
        yield "doc-1", [Document("The pump is checked every week.")]
        remove_folder(kb.folder)

    kb = KnowledgeBase.open("late", llm="extractive")
    with pytest.raises(KnowledgeBaseError, match="was deleted by another process during this ingest"):
        kb.ingest_documents(sources())
    assert not kb.folder.exists()


@pytest.mark.slow
def test_the_loader_process_ends_with_its_parent(tmp_path: Path) -> None:
    """Found by review: after kill -9 of `kbqa ingest`, its loader process went on parsing a
    million-row sheet (up to 1.9 GB) for 45 s, and a parser hung for good would have run forever:
    the time limit is the parent's to enforce. The child now ends within a second or two."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import openpyxl

    book = openpyxl.Workbook(write_only=True)  # a sheet reads without page reports: no send fails to tell the child
    sheet = book.create_sheet("rows")
    for i in range(200_000):
        sheet.append([f"row {i}", i, i * 2])
    book.save(tmp_path / "slow.xlsx")
    parent = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom ingest.loaders import LoadOptions\nfrom ingest.worker import LoaderProcess\n"
         "w = LoaderProcess(300)\nw._start()\nprint(w._proc.pid, flush=True)\nw.load(sys.argv[1], LoadOptions())",
         str(tmp_path / "slow.xlsx")], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    child = int(parent.stdout.readline())
    time.sleep(1.0)  # the child is parsing
    parent.send_signal(signal.SIGKILL)
    parent.wait()

    def gone() -> bool:
        try:
            return Path(f"/proc/{child}/stat").read_text().split(") ", 1)[1][0] in "ZX"
        except OSError:
            return True

    deadline = time.monotonic() + 3
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = not gone()
    if alive:
        os.kill(child, signal.SIGKILL)
    assert not alive, "the loader process outlived its killed parent"


def test_two_ingests_of_one_folder_at_once_share_the_files_instead_of_each_reading_all(home: Path, tmp_path: Path) -> None:
    """Found in review (DESIGN: a second ingest interleaves by file): a `kbqa ingest` started while
    another ingested the same folder parsed and embedded every file the first had not finished, so
    both did the same work and each file was added twice (the second replacing the first)."""
    import json

    from conftest import write_pdf

    docs = tmp_path / "docs"
    docs.mkdir()
    names = [f"part{i:02}.pdf" for i in range(16)]
    for i, name in enumerate(names):
        write_pdf(docs / name, [f"The valve on line {i * 100 + p} is greased every {p % 9 + 1} months.\n\nIts pump {p * 7} "
                                f"is checked by crew {p % 4} in hall {i}." for p in range(60)])
    first = subprocess.Popen([*KBQA, "ingest", str(docs), "--kb", "shared", "--json"], cwd=ROOT, env=os.environ.copy(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    catalog = home / "kbs" / "shared" / "catalog.sqlite"
    deadline = time.time() + 240
    while ok_files(catalog) < 1 and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, "the first ingest finished before the second began"
    second = run_kbqa("ingest", str(docs), "--kb", "shared", "--json")
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, (err, second.stderr)
    reports = [json.loads(out), json.loads(second.stdout)]
    added = sorted(f["name"] for r in reports for f in r["files"] if f["status"] == "added")
    assert added == names, added  # each file read and embedded once, by one of the two
    for report in reports:  # and each ingest accounts for every file: added by it, or by the other (skipped)
        assert sorted(f["name"] for f in report["files"]) == names and {f["status"] for f in report["files"]} <= {"added", "skipped"}
    assert 0 < sum(f["status"] == "added" for f in reports[1]["files"]) < len(names)  # the second did share the work
    assert ok_files(catalog) == len(names)
    assert run_kbqa("search", "pump checked by crew", "--kb", "shared").returncode == 0


def test_two_forced_ingests_at_once_read_each_file_once(home: Path, tmp_path: Path) -> None:
    """Found by review: two `--force` ingests of one folder at once each read and embedded every file:
    a file the other had read since this one began was forced again."""
    import threading

    from kbqa import KnowledgeBase
    from kbqa.types import Progress

    docs = many_files(tmp_path / "docs", 12)
    KnowledgeBase.open("forced", llm="extractive").ingest([docs])
    first, second = KnowledgeBase.open("forced", llm="extractive"), KnowledgeBase.open("forced", llm="extractive")
    held, reports = threading.Event(), {}

    def pause(p: Progress) -> None:  # the first stops after its first file, holding the files it reads ahead, until the second waits for them
        if p.stage == "file" and p.result is not None and not held.is_set():
            held.wait(120)

    def tell(p: Progress) -> None:
        if p.stage == "held":
            held.set()

    a = threading.Thread(target=lambda: reports.update(first=first.ingest([docs], force=True, progress=pause)))
    a.start()
    time.sleep(1)
    reports["second"] = second.ingest([docs], force=True, progress=tell)
    a.join(300)
    assert held.is_set()
    updated = sorted(f.name for r in reports.values() for f in r.files if f.status == "updated")
    # each file once, but the one the first had read before the second began: the second was asked to read it again
    assert set(updated) == {f"doc{i:02d}.txt" for i in range(12)} and len(updated) <= 13, updated


def test_a_parsers_error_is_one_line_and_a_library_that_cannot_be_mapped_in_is_the_memory_limit() -> None:
    """Found by helper 99: under a low ingest.max_reader_memory_mb an OCR'd image failed with ONNX Runtime's whole Python
    traceback as its reason (kept in `kb files`), or a raw "ImportError: … failed to map segment" naming no option."""
    from ingest.types import one_line
    from ingest.worker import _out_of_memory

    traceback = ("cannot parse PNG file: ONNXRuntimeError: Traceback (most recent call last):\n  File \"main.py\", line 98, in __call__\n"
                 "    return self.session.run()\nonnxruntime.RuntimeException: [ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : std::bad_alloc")
    assert one_line(traceback) == "cannot parse PNG file: ONNXRuntimeError: onnxruntime.RuntimeException: [ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : std::bad_alloc"
    assert one_line("first line\nsecond") == "first line" and len(one_line("x" * 1000)) == 300
    assert _out_of_memory(one_line(traceback)) and _out_of_memory("ImportError: binascii.so: failed to map segment from shared object")
