"""Answer or refuse: how often kbqa refuses what the documents hold, and answers what they don't.

    python benchmarks/refusal.py --data ../shared/data/qa                   # the three sets, seed 0
    python benchmarks/refusal.py --sets xquad_en --n 300 --llm gemma-3-270m # also run that LLM's whole answer
    python benchmarks/refusal.py --fit                                      # refit the calibration (seed 1)

Method (issue 14): a knowledge base is built from a seeded half of a corpus's documents (paragraphs);
a question whose gold paragraph was left out is unanswerable -- a hard negative, because the other
paragraphs of the same article stay in. A set named NAME@article asks each question of a knowledge base
of its own article's kept paragraphs alone (1 to 6 chunks): a small knowledge base, as a user's first one often is,
where how rare a word is reads otherwise (the calibration is fitted on both kinds). Every question goes
through the answer pipeline at the
default settings (kbqa.answer.prepare: retrieve, decide). Reported per set: the share of answerable
questions refused, of unanswerable questions answered, and the AUC (answerable vs unanswerable) of
the best source's relevance and of the decision's confidence; then the same two rates at other
values of retrieval.answer_confidence (the cut on that confidence a user may set), from the same rows.

The decision for the default LLM (a base model) and for `extractive` is the same one, made before any
generation; --llm NAME additionally runs that LLM's whole answer on the first --llm-n questions and
counts the replies that came back as refusals (a chat model may still refuse after generating).

--fit: the same on a knowledge base built from the *other* half (seed 1), then a logistic regression
of "answerable" on the decision's features (kbqa.answer.features) per language, and the relevance
range per language from the best source's cosine (the cosines where a one-feature logistic model gives
5% and 95%). Prints the `calibration:` block for configs/models.yaml. Evaluating on seed 0 after
fitting on seed 1 keeps the figures honest: the two halves swap which questions are answerable.
Without the data folder it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kbqa.evaluation import CROSS_SETS as CROSS, set_sources  # noqa: E402

SETS = ["xquad_en", "xquad_zh", "cmrc2018_dev"]
# a set's name with this ending: one small knowledge base per article (its kept paragraphs: 1 to 6 chunks), the questions of
# that article asked of it -- a knowledge base of one document, as a user's first one often is (XQuAD's articles
# have five paragraphs each; CMRC's one, so it has no such set)
PER_ARTICLE = "@article"
SMALL_SETS = [f"xquad_en{PER_ARTICLE}", f"xquad_zh{PER_ARTICLE}"]


def calibration_key(name: str) -> str:
    """The calibration a set's rows fit: the question language, or "zh-en" for zh questions on English documents."""
    asked, corpus = (lang_of(s) for s in set_sources(name.removesuffix(PER_ARTICLE)))
    return asked if asked == corpus else f"{asked}-{corpus}"


def lang_of(name: str) -> str:
    return "en" if name.endswith("_en") else "zh"


def auc(pos: list[float], neg: list[float]) -> float:
    """The probability that a random answerable question scores above a random unanswerable one."""
    if not pos or not neg:
        return float("nan")
    scores = np.array(pos + neg)
    order = scores.argsort().argsort().astype(float) + 1  # ranks; ties are rare enough here
    return float((order[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def build(data: Path, name: str, seed: int) -> tuple[str, set[str]]:
    """A knowledge base with a seeded half of the corpus; returns its name and the doc ids kept."""
    from kbqa.evaluation import corpus_documents
    from kbqa.kb import KnowledgeBase

    docs = list(corpus_documents(data / f"{name}.corpus.jsonl"))
    keep = set(random.Random(seed).sample([d for d, _ in docs], len(docs) // 2))
    kb_name = f"refusal-{name}-s{seed}"
    with KnowledgeBase.open(kb_name) as kb:
        kb.ingest_documents([(d, parts) for d, parts in docs if d in keep])
    return kb_name, keep


def build_per_article(data: Path, name: str, seed: int) -> tuple[dict[str, str], set[str]]:
    """One knowledge base per article of the corpus, of its paragraphs in the same seeded half as build()'s;
    returns each article's knowledge base name (articles with no paragraph kept have none) and the doc ids kept."""
    import zlib

    from kbqa.evaluation import corpus_documents
    from kbqa.kb import KnowledgeBase

    docs = list(corpus_documents(data / f"{name}.corpus.jsonl"))
    keep = set(random.Random(seed).sample([d for d, _ in docs], len(docs) // 2))
    articles: dict[str, list[Any]] = {}
    for d, parts in docs:
        if d in keep:
            articles.setdefault(d.split("#")[0], []).append((d, parts))
    names = {}
    for article, kept in articles.items():
        names[article] = f"refusal-{name}-s{seed}-a{zlib.crc32(article.encode()):08x}"
        with KnowledgeBase.open(names[article]) as kb:
            if kb.is_empty():
                kb.ingest_documents(kept)
    return names, keep


def _article(question: Any) -> str:
    """The article of a question's gold paragraph ("Super_Bowl_50" of "Super_Bowl_50#3")."""
    return str(question.gold[0].get("doc_id")).split("#")[0]


def top_cosine(kb: Any, query: str, hits: list[Any]) -> float:
    if not hits:
        return -1.0
    q = kb.embedder.embed_query(query)
    rows = kb.catalog.chunks([h.chunk_id for h in hits])
    vectors = kb.catalog.cached_vectors([r.vector_key for r in rows.values()])
    return max(float(np.dot(vectors[r.vector_key], q)) for r in rows.values() if r.vector_key in vectors)


def measure(data: Path, name: str, seed: int, limit: int | None, llm: str | None, llm_n: int) -> list[dict[str, Any]]:
    from kbqa import answer as pipeline
    from kbqa.evaluation import read_questions
    from kbqa.kb import KnowledgeBase
    from kbqa.models import calibration

    asked, corpus = set_sources(name.removesuffix(PER_ARTICLE))
    questions = read_questions(data / f"{asked}.questions.jsonl")
    questions = random.Random(100 + seed).sample(questions, min(limit, len(questions))) if limit else questions
    if name.endswith(PER_ARTICLE):  # each question asked of its own article's knowledge base
        per_article, keep = build_per_article(data, corpus, seed)
        asked_of = sorted(((per_article[_article(q)], q) for q in questions if _article(q) in per_article), key=lambda pair: pair[0])
    else:
        kb_name, keep = build(data, corpus, seed)
        asked_of = [(kb_name, q) for q in questions]
    rows = []
    kb, open_name = None, ""
    try:
        for i, (kb_name, q) in enumerate(asked_of):
            if kb_name != open_name:  # (the questions come grouped by knowledge base: one is open at a time)
                if kb is not None:
                    kb.close()
                kb, open_name = KnowledgeBase.open(kb_name, llm=llm or "extractive"), kb_name
            prepared = pipeline.prepare(kb, q.question, calibration=lambda lang: calibration(kb.embedder, lang))
            row = {
                "id": q.id,
                "answerable": any(str(g.get("doc_id")) in keep for g in q.gold),
                "answered": prepared.decision.answer,
                "confidence": prepared.decision.confidence,
                "cosine": top_cosine(kb, q.question, prepared.sources),
                "kind": prepared.evidence.kind,
                "reason": prepared.decision.reason,
                **prepared.decision.features,
            }
            if llm and i < llm_n:
                reply = kb.ask(q.question)
                row["llm_answered"] = reply.answered_from_documents
            rows.append(row)
            if (i + 1) % 200 == 0:
                print(f"  {name}: {i + 1}/{len(questions)}", file=sys.stderr, flush=True)
    finally:
        if kb is not None:
            kb.close()
    return rows


def rates(rows: list[dict[str, Any]], key: str = "answered") -> tuple[float, float, int, int]:
    pos = [r for r in rows if r["answerable"] and key in r]
    neg = [r for r in rows if not r["answerable"] and key in r]
    refused = sum(not r[key] for r in pos) / max(1, len(pos))
    answered = sum(r[key] for r in neg) / max(1, len(neg))
    return refused, answered, len(pos), len(neg)


def report(name: str, rows: list[dict[str, Any]], llm: str | None) -> dict[str, Any]:
    refused, answered, npos, nneg = rates(rows)
    pos, neg = [r for r in rows if r["answerable"]], [r for r in rows if not r["answerable"]]
    out = {
        "set": name, "answerable": npos, "unanswerable": nneg,
        "answerable_refused": refused, "unanswerable_answered": answered,
        "auc_relevance": auc([r["relevance"] for r in pos], [r["relevance"] for r in neg]),
        "auc_confidence": auc([r["confidence"] for r in pos], [r["confidence"] for r in neg]),
    }
    line = (f"{name:13s} answerable {npos:4d}  unanswerable {nneg:4d}  answerable refused {refused:6.1%}  "
            f"unanswerable answered {answered:6.1%}  AUC relevance {out['auc_relevance']:.3f}  AUC confidence {out['auc_confidence']:.3f}")
    if llm and any("llm_answered" in r for r in rows):
        r2, a2, p2, n2 = rates(rows, "llm_answered")
        out.update({f"{llm}_answerable_refused": r2, f"{llm}_unanswerable_answered": a2, f"{llm}_questions": p2 + n2})
        line += f"\n{'':13s} {llm} (first {p2 + n2}): answerable refused {r2:6.1%}  unanswerable answered {a2:6.1%}"
    print(line, flush=True)
    return out


CUTS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9)


def tradeoff(all_rows: dict[str, list[dict[str, Any]]], cuts: tuple[float, ...] = CUTS) -> list[str]:
    """Markdown rows: answerable refused / unanswerable answered per set at each answer_confidence."""
    lines = ["| answer_confidence | " + " | ".join(all_rows) + " |", "|---|" + "---|" * len(all_rows)]
    for cut in cuts:
        cells = []
        for rows in all_rows.values():  # a question without a source is refused at any cut
            refused, answered, _, _ = rates([{**r, "at_cut": r["confidence"] >= cut and r["cosine"] > -1} for r in rows], "at_cut")
            cells.append(f"{refused:.1%} / {answered:.1%}")
        lines.append(f"| {cut:g} | " + " | ".join(cells) + " |")
    return lines


# --- fitting --------------------------------------------------------------------------------------
def logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50) -> np.ndarray:
    """Weights (bias first) of a logistic regression, by Newton's method with a small L2 penalty."""
    X = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(X.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(X @ w, -30, 30)))
        grad = X.T @ (p - y) + l2 * np.r_[0, w[1:]]
        hess = (X.T * (p * (1 - p))) @ X + l2 * np.diag(np.r_[0, np.ones(len(w) - 1)])
        w -= np.linalg.solve(hess, grad)
    return w


def fit(rows: list[dict[str, Any]], targets: tuple[float, float] = (0.03, 0.10)) -> dict[str, Any]:
    from kbqa.answer import FEATURES

    """A language's calibration from its rows: relevance range, decision weights, and the cut that
    minimises refused/targets[0] + answered/targets[1] (answerable questions refused, unanswerable
    ones answered, each measured against the issue's target) here."""
    y = np.array([1.0 if r["answerable"] else 0.0 for r in rows])
    cos = np.array([[r["cosine"]] for r in rows])
    a, b = logistic(cos, y, l2=1e-6)
    lo, hi = (math.log(0.05 / 0.95) - a) / b, (math.log(0.95 / 0.05) - a) / b
    relevance = np.clip((cos[:, 0] - lo) / (hi - lo), 0, 1)
    x = np.array([[relevance[i] if f == "relevance" else r[f] for f in FEATURES] for i, r in enumerate(rows)])
    w = logistic(x, y)
    p = 1 / (1 + np.exp(-np.clip(np.c_[np.ones(len(x)), x] @ w, -30, 30)))
    def cost(c: float) -> float:
        return float((p[y == 1] < c).mean() / targets[0] + (p[y == 0] >= c).mean() / targets[1])

    cut = min(sorted(set(np.round(p, 4).tolist())) or [0.5], key=cost)
    return {
        "relevance": [round(float(lo), 4), round(float(hi), 4)],
        "weights": {"bias": round(float(w[0]), 3), **{f: round(float(v), 3) for f, v in zip(FEATURES, w[1:])}},
        "cut": round(cut, 4),
        "fit_answerable_refused": float((p[y == 1] < cut).mean()),
        "fit_unanswerable_answered": float((p[y == 0] >= cut).mean()),
    }


def calibration_yaml(fitted: dict[str, Any]) -> str:
    lines = ["    calibration:"]
    for lang, c in fitted.items():
        weights = ", ".join(f"{k}: {v}" for k, v in c["weights"].items())
        lines += [f"      {lang}:", f"        relevance: [{c['relevance'][0]}, {c['relevance'][1]}]", f"        weights: {{{weights}}}", f"        cut: {c['cut']}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "qa")
    parser.add_argument("--sets", nargs="*", default=SETS + SMALL_SETS + list(CROSS),
                        help=f"default: {' '.join(SETS)}, the per-article {' '.join(SMALL_SETS)} and the cross-language {' '.join(CROSS)}")
    parser.add_argument("--n", type=int, default=None, help="questions per set (a seeded sample); default all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm", default=None, help="also run this LLM's whole answer (e.g. gemma-3-270m)")
    parser.add_argument("--llm-n", type=int, default=200)
    parser.add_argument("--fit", action="store_true", help="fit the calibration on seed 1 and print it")
    parser.add_argument("--home", type=Path, default=ROOT / ".bench")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not args.data.exists():
        print(f"skipped: no data folder at {args.data} (give --data PATH to ../shared/data/qa)")
        return
    os.environ["KBQA_HOME"] = str(args.home)
    started = time.perf_counter()
    if args.fit:
        by_lang: dict[str, list[dict[str, Any]]] = {}
        for name in args.sets:
            rows = measure(args.data, name, 1, args.n, None, 0)
            by_lang.setdefault(calibration_key(name), []).extend(rows)
        fitted = {lang: fit(rows) for lang, rows in by_lang.items()}
        for lang, c in fitted.items():
            print(f"{lang}: on the fitting half, answerable refused {c['fit_answerable_refused']:.1%}, unanswerable answered {c['fit_unanswerable_answered']:.1%}")
        print("paste under the embedding model in configs/models.yaml:")
        print(calibration_yaml(fitted))
        if args.out:
            args.out.write_text(json.dumps({"fitted": fitted, "rows": by_lang}, indent=1))
        return
    results = []
    all_rows = {}
    for name in args.sets:
        rows = measure(args.data, name, args.seed, args.n, args.llm, args.llm_n)
        all_rows[name] = rows
        results.append(report(name, rows, args.llm))
    print("\nanswerable refused / unanswerable answered at other retrieval.answer_confidence values:")
    print("\n".join(tradeoff(all_rows)))
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.out:
        args.out.write_text(json.dumps({"results": results, "rows": all_rows}, indent=1))


if __name__ == "__main__":
    main()
