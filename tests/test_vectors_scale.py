"""The vector index at scale: a saved index plus an append-only delta (replayed on open, folded
into a whole save past a share of the index), crash repair by chunk id, the index kind chosen by
size (flat, HNSW, IVF) and the IVF path on small data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kbqa import KnowledgeBase
from kbqa.store.vectors import FaissIndex, choose_faiss_kind, ivf_lists

DIM = 32


def clustered(n: int, seed: int = 0, centres: int = 20) -> np.ndarray:
    """Unit vectors around a few centres: something like real embeddings, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, DIM)).astype(np.float32)
    v = c[rng.integers(0, centres, n)] + 0.35 * rng.standard_normal((n, DIM)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def small_full_saves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FaissIndex, "FULL_SAVE_BELOW", 0)  # small indexes use the delta too


def top(index: FaissIndex, queries: np.ndarray, k: int = 10) -> list[list[int]]:
    return [[i for i, _ in index.search(q, k)] for q in queries]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_delta_replay_gives_the_same_index(tmp_path: Path, kind: str, small_full_saves: None) -> None:
    vectors, queries = clustered(1200), clustered(20, seed=1)
    index = FaissIndex(tmp_path, DIM, kind, delta_fraction=1.0)
    index.rebuild([(np.arange(1000), vectors[:1000])], train=vectors[:1000], total=1000)
    index.save(1)
    whole = (tmp_path / "vectors.faiss").read_bytes()
    index.add(np.arange(1000, 1100), vectors[1000:1100])
    index.save(2)
    index.remove(list(range(0, 50)))
    index.add(np.arange(1100, 1200), vectors[1100:1200])
    index.save(3)
    assert (tmp_path / "vectors.faiss").read_bytes() == whole  # not rewritten per change
    assert (tmp_path / "vectors.delta").stat().st_size > 0
    again = FaissIndex(tmp_path, DIM, kind, delta_fraction=1.0)
    assert again.saved_generation() == 3
    assert again.count() == index.count() == 1150
    assert np.array_equal(again.ids(), index.ids())
    if kind == "hnsw":  # a graph's levels are drawn at random on insertion: the replayed graph is not the same graph
        same = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top(again, queries), top(index, queries))])
        assert same >= 0.95
    else:
        assert top(again, queries) == top(index, queries)
    assert not set(range(50)) & {i for hits in top(again, queries, 50) for i in hits}


def test_delta_folds_into_a_whole_save(tmp_path: Path, small_full_saves: None) -> None:
    vectors = clustered(1300)
    index = FaissIndex(tmp_path, DIM, "flat", delta_fraction=0.1)
    index.add(np.arange(1000), vectors[:1000])
    index.save(1)
    index.add(np.arange(1000, 1050), vectors[1000:1050])
    index.save(2)
    assert (tmp_path / "vectors.delta").stat().st_size > 0
    index.add(np.arange(1050, 1300), vectors[1050:1300])  # past 10% of the whole file
    index.save(3)
    assert (tmp_path / "vectors.delta").stat().st_size == 0
    again = FaissIndex(tmp_path, DIM, "flat")
    assert again.saved_generation() == 3 and again.count() == 1300


def test_torn_delta_and_lost_state_are_safe(tmp_path: Path, small_full_saves: None) -> None:
    vectors, queries = clustered(1200), clustered(10, seed=2)
    index = FaissIndex(tmp_path, DIM, "flat", delta_fraction=1.0)
    index.add(np.arange(1000), vectors[:1000])
    index.save(1)
    index.add(np.arange(1000, 1100), vectors[1000:1100])
    index.save(2)
    state_at_2 = (tmp_path / "vectors.json").read_text()
    expected = top(index, queries)
    # a save killed mid-append: bytes past the state's mark
    with open(tmp_path / "vectors.delta", "ab") as fh:
        fh.write(b"KBQADLT1 half a record")
    again = FaissIndex(tmp_path, DIM, "flat", delta_fraction=1.0)
    assert again.saved_generation() == 2 and top(again, queries) == expected
    again.add(np.arange(1100, 1200), vectors[1100:1200])
    again.save(3)  # cuts the torn bytes off before appending
    assert FaissIndex(tmp_path, DIM, "flat").count() == 1200
    # a save killed after the append, before the state: the state still says 2, and 2 is what opens
    (tmp_path / "vectors.json").write_text(state_at_2)
    old = FaissIndex(tmp_path, DIM, "flat")
    assert old.saved_generation() == 2 and old.count() == 1100
    # a whole save killed half-way: the state says no generation, so the knowledge base rebuilds
    (tmp_path / "vectors.json").write_text('{"dim": %d, "kind": "flat"}' % DIM)
    assert FaissIndex(tmp_path, DIM, "flat").saved_generation() is None


def test_another_process_saved_meanwhile_means_a_whole_save(tmp_path: Path, small_full_saves: None) -> None:
    vectors = clustered(1100)
    writer = FaissIndex(tmp_path, DIM, "flat", delta_fraction=1.0)
    writer.add(np.arange(1000), vectors[:1000])
    writer.save(1)
    reader = FaissIndex(tmp_path, DIM, "flat", delta_fraction=1.0)
    writer.add(np.arange(1000, 1050), vectors[1000:1050])
    writer.save(2)
    reader.add(np.arange(1000, 1100), vectors[1000:1100])  # caught up (and more) by itself
    assert reader.saved_generation() is None  # the files are no longer what it read
    reader.save(3)
    assert FaissIndex(tmp_path, DIM, "flat").count() == 1100


def test_ivf_on_small_data(tmp_path: Path) -> None:
    vectors, queries = clustered(4000), clustered(30, seed=3)
    flat = FaissIndex(tmp_path / "f", DIM, "flat")
    flat.add(np.arange(4000), vectors)
    ivf = FaissIndex(tmp_path / "i", DIM, "ivf")
    ivf.rebuild([(np.arange(0, 2000), vectors[:2000]), (np.arange(2000, 4000), vectors[2000:])], train=vectors, total=4000)
    assert ivf.ivf["nlist"] == ivf_lists(4000) and ivf.ivf["nprobe"] >= 1
    exact, approx = top(flat, queries), top(ivf, queries)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx)])
    assert recall >= 0.9
    ivf.remove(list(range(100)))
    assert ivf.count() == 3900 and np.array_equal(ivf.ids(), np.arange(100, 4000))
    assert not ivf.needs_rebuild()
    ivf.ivf["trained_on"] = 2000
    ivf.add(np.arange(4000, 12100), np.tile(vectors, (3, 1))[:8100])
    assert ivf.needs_rebuild()  # grown past four times its training: retrained on the next rebuild
    # trained on the first vectors when nothing was given
    lazy = FaissIndex(tmp_path / "l", DIM, "ivf")
    assert lazy.count() == 0 and lazy.search(queries[0], 5) == []
    lazy.add(np.arange(500), vectors[:500])
    assert lazy.count() == 500 and len(lazy.search(queries[0], 5)) == 5


def test_kind_by_size() -> None:
    assert choose_faiss_kind(10, 200_000, 500_000) == "flat"
    assert choose_faiss_kind(300_000, 200_000, 500_000) == "hnsw"
    assert choose_faiss_kind(600_000, 200_000, 500_000) == "ivf"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    for n, topic in enumerate(["风力发电机的叶片维护", "光伏组件的清洁方法", "变压器的绝缘油检测", "电缆沟的防水处理"]):
        text = "".join(f"第{p}节。本文件讲述{topic}，第{p}条要求每{p + 1}个月检查一次。\n\n" for p in range(1, 9))
        (d / f"{n}.md").write_text(f"# 文件{n}\n\n{text}", encoding="utf-8")
    return d


@pytest.mark.slow
def test_knowledge_base_index_kind_follows_size(home: Path, folder: Path) -> None:
    kb = KnowledgeBase.open("k", llm="extractive")
    kb.ingest([folder])
    chunks = kb.catalog.chunk_count()
    assert kb.index.kind == "flat" and chunks >= 4
    expected = kb.search("光伏组件的清洁方法", top_k=3)[0].file
    kb.close()
    kb = KnowledgeBase.open("k", llm="extractive", store={"hnsw_above": 1, "ivf_above": 10 * chunks})
    assert kb.index.kind == "hnsw" and kb.index.count() == chunks
    kb.close()
    kb = KnowledgeBase.open("k", llm="extractive", store={"hnsw_above": 1, "ivf_above": 2})
    assert kb.index.kind == "ivf" and kb.index.count() == chunks  # trained from the catalog's cached vectors
    assert kb.search("光伏组件的清洁方法", top_k=3)[0].file == expected
    kb.close()
    kb = KnowledgeBase.open("k", llm="extractive", store={"hnsw_above": 1, "ivf_above": 2})
    assert kb.index.saved_generation() == kb.catalog.generation()  # opened as saved, not rebuilt


@pytest.mark.slow
def test_knowledge_base_appends_and_repairs_by_id(home: Path, folder: Path, small_full_saves: None,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    kb = KnowledgeBase.open("d", llm="extractive", store={"delta_fraction": 100.0})
    kb.ingest([folder / "0.md", folder / "1.md"])
    kbdir = home / "kbs" / "d"
    whole = (kbdir / "vectors.faiss").read_bytes()
    saved = (kbdir / "vectors.json").read_text()
    kb.ingest([folder / "2.md"])
    assert (kbdir / "vectors.faiss").read_bytes() == whole and (kbdir / "vectors.delta").stat().st_size > 0
    kb.remove_file("0.md")
    expected = [(h.file, h.text) for h in kb.search("变压器的绝缘油检测", top_k=5)]
    kb.close()
    kb = KnowledgeBase.open("d", llm="extractive", store={"delta_fraction": 100.0})
    assert [(h.file, h.text) for h in kb.search("变压器的绝缘油检测", top_k=5)] == expected
    assert kb.index.saved_generation() == kb.catalog.generation()
    kb.close()
    # killed after the catalog committed 2.md and removed 0.md, before the index's delta was written:
    # the state is back at the first save; the index is patched by chunk id, not rebuilt
    (kbdir / "vectors.json").write_text(saved)

    def no_rebuild(*_: object) -> None:
        raise AssertionError("rebuilt instead of patched")

    with monkeypatch.context() as patched:
        patched.setattr(KnowledgeBase, "_rebuild_index", no_rebuild)
        kb = KnowledgeBase.open("d", llm="extractive", store={"delta_fraction": 100.0})
        assert kb.index.count() == kb.catalog.chunk_count()
        assert set(kb.index.ids().tolist()) == set(kb.catalog.chunk_ids().tolist())
        assert [(h.file, h.text) for h in kb.search("变压器的绝缘油检测", top_k=5)] == expected
        kb.close()
    # an index file that is unreadable as saved (no generation): rebuilt from the cached vectors
    (kbdir / "vectors.json").write_text('{"kind": "flat"}')
    kb = KnowledgeBase.open("d", llm="extractive")
    assert [(h.file, h.text) for h in kb.search("变压器的绝缘油检测", top_k=5)] == expected
    kb.close()
