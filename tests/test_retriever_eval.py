"""The LangChain retriever in an LCEL chain, and the evaluation metrics on a hand-checked set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_kbqa
from kbqa import KnowledgeBase
from kbqa.evaluation import Question, evaluate, score_question
from kbqa.types import Hit


@pytest.mark.slow
def test_as_retriever_in_an_lcel_chain(home: Path, docs: Path) -> None:
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    kb = KnowledgeBase.open("lc", llm="extractive")
    kb.ingest([docs])
    retriever = kb.as_retriever(top_k=2)
    assert isinstance(retriever, BaseRetriever)

    def format_docs(documents: list[Document]) -> str:
        return "\n".join(f"[{d.metadata['source']} p.{d.metadata['page']}] {d.page_content}" for d in documents)

    chain = {"context": retriever | RunnableLambda(format_docs), "question": RunnablePassthrough()} | RunnableLambda(
        lambda x: f"Q: {x['question']}\n{x['context']}"
    )
    out = chain.invoke("How often should the RO membrane be replaced?")
    assert "[manual.pdf p.2]" in out and "24 months" in out
    documents = retriever.invoke("带薪年假")
    assert documents[0].metadata["source"] == "手册.pdf" and 0 < documents[0].metadata["relevance"] <= 1


def hit(file: str, text: str, page: int | None = None) -> Hit:
    return Hit(0, file, page, text, 0.5)


def test_metrics_by_hand() -> None:
    q = Question("q1", "?", ["光荣和ω-force"], [{"doc_id": "D1", "page": None}])
    # rank 1: right doc, no answer; rank 2: wrong doc with the answer; rank 3: right doc, answer with spaces
    hits = [hit("D1", "无关内容" * 10), hit("D2", "光荣和ω-force"), hit("D1", "由 光荣 和 ω-force 开发")]
    r = score_question(q, hits, k=5, seconds=0.01)
    assert (r.hit_rank, r.doc_rank) == (3, 1)
    assert r.hit_1000c  # 40 + 12 + 14 characters: all inside 1,000
    long_first = [hit("D1", "x" * 995), hit("D1", "光荣和ω-force")]
    assert not score_question(q, long_first, 5, 0).hit_1000c  # the answer starts after character 1,000
    paged = Question("q2", "?", ["42"], [{"doc_id": "a.pdf", "page": 2}])
    assert score_question(paged, [hit("a.pdf", "42", page=1), hit("a.pdf", "42", page=2)], 5, 0).hit_rank == 2

    questions = [q, paged, Question("q3", "?", ["zzz"], [{"doc_id": "D9", "page": None}])]
    answers = {"q1": hits, "q2": [hit("a.pdf", "42", page=2)], "q3": [hit("D1", "no")]}
    by_text = {"?1": "q1", "?2": "q2", "?3": "q3"}
    for i, qq in enumerate(questions, start=1):
        qq.question = f"?{i}"
    report = evaluate(lambda text, n: answers[by_text[text]], questions, k=5)
    assert report.hit_at_k == 2 / 3
    assert abs(report.mrr_at_k - (1 / 3 + 1) / 3) < 1e-9
    assert report.doc_hit_at_k == 2 / 3
    assert report.misses == ["q3"]


@pytest.mark.slow
def test_kbqa_eval_command(home: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    questions = tmp_path / "q.jsonl"
    rows = [
        {"doc_id": "D1", "title": "风电", "text": "风力发电机的叶片每半年检查一次。齿轮箱每两年换油。"},
        {"doc_id": "D2", "title": "光伏", "text": "光伏组件每月用清水冲洗一次，不能用高压水枪。"},
    ]
    corpus.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    qs = [
        {"id": "1", "question": "叶片多久检查一次？", "answers": ["每半年"], "gold": [{"doc_id": "D1", "page": None}]},
        {"id": "2", "question": "光伏组件多久冲洗一次？", "answers": ["每月"], "gold": [{"doc_id": "D2", "page": None}]},
    ]
    questions.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in qs), encoding="utf-8")
    result = run_kbqa("eval", "--corpus", str(corpus), "--questions", str(questions), "--k", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["questions"] == 2 and report["hit_at_k"] == 1.0 and report["mrr_at_k"] == 1.0
    assert report["chunks"] == 2 and report["p50_ms"] > 0
