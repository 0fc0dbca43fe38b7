"""Ingest on Ray (ingest.executor ray), on a local Ray runtime the tests start themselves: the same
chunks and vectors as a local ingest; an embedding worker killed mid-run costs nothing; a bad file
fails alone; the CLI's --ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="pip install 'kbqa[cluster]'")

from kbqa.config import load_config  # noqa: E402
from kbqa.kb import KnowledgeBase  # noqa: E402

pytestmark = pytest.mark.slow  # a Ray runtime takes ~10 s to start
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def _ray_runtime() -> Iterator[None]:
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs = tmp_path_factory.mktemp("ray") / "docs"
    shutil.copytree(ROOT / "examples" / "docs", docs)
    for i in range(8):
        (docs / f"note{i}.txt").write_text(
            f"第{i}号通知。" + "".join(f"第{i}号仓库的第{j}批货物在周{j % 7 + 1}入库，负责人是张{j}。" for j in range(60)), encoding="utf-8")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not a PDF at all")
    return docs


def _contents(kb: KnowledgeBase) -> dict[str, tuple[str, int | None, np.ndarray]]:
    """chunk text -> (file name, page, vector), and no chunk stored twice."""
    vectors = {int(i): v for ids, vs in kb.catalog.all_chunk_vectors() for i, v in zip(ids, vs)}
    rows = kb.catalog.chunks(list(vectors))
    names = {f.id: f.name for f in kb.files()}
    out = {}
    for chunk_id, row in rows.items():
        key = f"{names[row.file_id]}\x00{row.text}"
        assert key not in out, f"chunk stored twice: {key[:60]}"
        out[key] = (names[row.file_id], row.page, vectors[chunk_id])
    return out


QUESTION = "第3号仓库的第5批货物什么时候入库？"


@dataclass
class Local:
    """What a local ingest of the folder stores, made once for the tests to compare with."""

    statuses: list[tuple[str, str, int]]
    contents: dict[str, tuple[str, int | None, np.ndarray]]
    hits: list[tuple[str, str]]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, folder: Path) -> Local:
    kb = _open(tmp_path_factory.mktemp("local"), "local", "local")
    report = kb.ingest([folder])
    made = Local(sorted((f.name, f.status, f.chunks) for f in report.files), _contents(kb), [(h.file, h.text) for h in kb.search(QUESTION)])
    kb.close()
    return made


def _open(home: Path, name: str, executor: str, store: str = "embedded") -> KnowledgeBase:
    os.environ["KBQA_HOME"] = str(home)
    config, _ = load_config(overrides={"ingest": {"executor": executor, "ray_workers": 2}, "store": {"backend": store}})
    return KnowledgeBase.open(name, config)


def test_ray_ingest_stores_what_a_local_ingest_stores(tmp_path: Path, folder: Path, local: Local) -> None:
    remote = _open(tmp_path / "b", "remote", "ray")
    remote_report = remote.ingest([folder])
    assert sorted((f.name, f.status, f.chunks) for f in remote_report.files) == local.statuses
    failed = {f.name: f.error for f in remote_report.files if f.status == "failed"}
    assert set(failed) == {"broken.pdf"} and "Traceback" not in failed["broken.pdf"]  # the loader's own message
    a, b = local.contents, _contents(remote)
    assert a.keys() == b.keys() and len(a) > 20
    for key, (name, page, vector) in a.items():
        assert b[key][:2] == (name, page)
        assert float(vector @ b[key][2]) > 0.9999
    assert remote.search("差旅报销的期限是多久？")[0].file == "差旅报销制度.docx"
    assert [(h.file, h.text) for h in remote.search(QUESTION)] == local.hits
    again = remote.ingest([folder])  # nothing changed: nothing re-read, nothing duplicated
    assert {f.status for f in again.files} <= {"skipped", "failed"}
    assert _contents(remote).keys() == b.keys()
    remote.close()


@pytest.fixture
def executors(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The Ray executors ingests make in a test (kbqa.cluster.RayExecutor), newest last."""
    import kbqa.cluster

    made: list[object] = []

    class Recorded(kbqa.cluster.RayExecutor):  # type: ignore[misc, name-defined]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(kbqa.cluster, "RayExecutor", Recorded)
    return made


def test_a_killed_embedding_worker_costs_nothing(tmp_path: Path, folder: Path, local: Local, executors: list) -> None:  # type: ignore[type-arg]
    kb = _open(tmp_path / "k", "killed", "ray")
    killed: list[int] = []

    def progress(p) -> None:  # type: ignore[no-untyped-def]
        if p.stage == "file" and p.result is not None and not killed and executors:
            pid = ray.get(executors[-1].actors[0].pid.remote())
            os.kill(pid, signal.SIGKILL)  # mid-run: the files after this one still need embedding
            killed.append(pid)

    report = kb.ingest([folder], progress=progress)
    assert killed and not report.interrupted
    assert sorted(f.name for f in report.files if f.status == "failed") == ["broken.pdf"]
    assert _contents(kb).keys() == local.contents.keys()
    kb.close()


def test_ray_ingest_into_the_milvus_store_with_a_worker_killed(tmp_path: Path, folder: Path, local: Local, executors: list) -> None:  # type: ignore[type-arg]
    """Parse tasks and embedding actors on Ray, chunks written in batches to the whole-KB Milvus store
    (Milvus Lite): the same chunks as a local ingest into the embedded store, though a worker died."""
    pytest.importorskip("pymilvus")
    kb = _open(tmp_path / "m", "onmilvus", "ray", store="milvus")
    killed: list[int] = []

    def progress(p) -> None:  # type: ignore[no-untyped-def]
        if p.stage == "file" and p.result is not None and not killed and executors:
            pid = ray.get(executors[-1].actors[0].pid.remote())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    report = kb.ingest([folder], progress=progress)
    assert killed and sorted(f.name for f in report.files if f.status == "failed") == ["broken.pdf"]
    assert _contents(kb).keys() == local.contents.keys()
    assert not (tmp_path / "m" / "kbs").exists()
    assert kb.search("差旅报销的期限是多久？")[0].file == "差旅报销制度.docx"
    kb.close()


def test_cli_ingest_with_ray(tmp_path: Path, folder: Path) -> None:
    env = {**os.environ, "KBQA_HOME": str(tmp_path / "home")}
    run = subprocess.run([sys.executable, "-m", "kbqa.cli", "ingest", str(folder), "--kb", "r", "--ray", "--ray-workers", "1", "--json"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stderr  # one file failed (broken.pdf); the rest went in
    report = json.loads(run.stdout)
    assert sum(1 for f in report["files"] if f["status"] == "added") == len(list(folder.iterdir())) - 1
