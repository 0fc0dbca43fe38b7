"""Answer quality of the whole pipeline on the first N questions of CMRC 2018 dev and XQuAD (issues 4, 14).

    python benchmarks/answers.py --data ../shared/data/qa --n 300 --llm gemma-3-270m --llm extractive
    python benchmarks/answers.py --sets cmrc2018_dev xquad_zh xquad_en
    python benchmarks/answers.py --sets xquad_zh_on_en xquad_en_on_zh --llm extractive   # across languages

xquad_zh_on_en asks XQuAD's Chinese questions of its English paragraphs (the sets are parallel: the
same ids), with the English gold answers, since an answer quotes the document; xquad_en_on_zh the
reverse.

For each LLM: the share of answers containing a gold answer string; the share whose cited source
contains it; answers not supported by their cited source (the answer's text is not found in it);
time to first token and tokens/s; and the peak RSS of one `kbqa ask` with the default stack.
Without the data folder it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kbqa.answer import squash  # noqa: E402

_CITE = re.compile(r"\[(\d+)\]")
from kbqa.evaluation import CROSS_SETS as CROSS, set_sources  # noqa: E402


def questions_of(data: Path, name: str, n: int) -> list[Any]:
    """A set's first n questions; for a CROSS set, the question in one language with the gold answers
    of the other (the documents' language)."""
    from dataclasses import replace

    from kbqa.evaluation import read_questions

    asked, corpus = set_sources(name)
    questions = read_questions(data / f"{asked}.questions.jsonl", n)
    if asked == corpus:
        return questions
    answers = {q.id: q.answers for q in read_questions(data / f"{corpus}.questions.jsonl")}
    return [replace(q, answers=answers.get(q.id, [])) for q in questions]


def cited_sources(answer: str, sources: list[Any]) -> list[Any]:
    numbers = [int(n) for n in _CITE.findall(answer) if 0 < int(n) <= len(sources)]
    return [sources[n - 1] for n in dict.fromkeys(numbers)] or sources[:1]


def supported(answer: str, sources: list[Any]) -> bool:
    """Every claim of the answer appears in the source it cites: the text before each [n] is
    checked against source n (an answer with no citation against the first source). A lead-in
    like "依据：" / "Evidence:" separates an answer from its quoted evidence: both are checked."""
    parts = re.split(r"\[(\d+)\]", answer)
    claims = [(parts[i], int(parts[i + 1])) for i in range(0, len(parts) - 1, 2)]
    if not claims:
        claims = [(answer, 1)]
    for text, n in claims:
        if not 0 < n <= len(sources):
            return False
        source = squash(sources[n - 1].text)
        for piece in re.split(r"依据：|Evidence:", text):
            if squash(piece) and squash(piece) not in source:
                return False
    return True


def _short_answer(answer: str) -> str | None:
    """A base model's short answer, the part before its evidence ("18 days [1]. Evidence: …"); None
    when the answer is the quoted evidence alone."""
    parts = re.split(r"\[\d+\][.。]? ?(?:依据：|Evidence:)", answer, maxsplit=1)
    return parts[0].strip() if len(parts) == 2 else None


def run(llm: str, questions: list[Any], kb_name: str, home: Path) -> dict[str, Any]:
    from ingest.textfacts import language
    from kbqa.answer import unmentioned_note
    from kbqa.config import load_config
    from kbqa.kb import KnowledgeBase

    config, _ = load_config(overrides={"llm": {"model": llm}})
    kb = KnowledgeBase.open(kb_name, config)
    rows = []
    for q in questions:
        t0 = time.perf_counter()
        stream = kb.ask(q.question, stream=True)
        first = None
        pieces = 0
        for _ in stream:
            pieces += 1
            if first is None:
                first = time.perf_counter() - t0
        total = time.perf_counter() - t0
        # kbqa's note that the documents never mention a name the question writes is no claim of a source
        text = stream.text.removeprefix(unmentioned_note(stream.unmentioned, language(q.question))) if stream.unmentioned else stream.text
        cited = cited_sources(text, stream.sources)
        ok = supported(text, stream.sources) if stream.answered_from_documents else True
        gold = [squash(a) for a in q.answers]
        short = _short_answer(text)
        rows.append({
            "id": q.id,
            "answer": stream.text,
            "noted": bool(stream.unmentioned),
            "contains_gold": any(g in squash(text) for g in gold),
            "cited_has_gold": any(g in squash(s.text) for s in cited for g in gold),
            "context_has_gold": any(g in squash(s.text) for s in stream.sources for g in gold),
            "supported": ok,
            "refused": not stream.answered_from_documents,
            "short": short is not None,
            "short_has_gold": short is not None and any(g in squash(short) for g in gold),
            "ttft": first or total,
            "seconds": total,
            "pieces": pieces,
        })
    speed = generation_speed(kb.llm) if llm != "extractive" else None
    kb.close()
    n = len(rows)
    result = {
        "llm": llm,
        "questions": n,
        "answer_contains_gold": sum(r["contains_gold"] for r in rows) / n,
        "cited_source_contains_gold": sum(r["cited_has_gold"] for r in rows) / n,
        "context_contains_gold": sum(r["context_has_gold"] for r in rows) / n,
        "unsupported_answers": sum(not r["supported"] for r in rows),
        "refused": sum(r["refused"] for r in rows),
        "short_answers": sum(r["short"] for r in rows),
        "short_answers_with_gold": sum(r["short_has_gold"] for r in rows),
        "noted_answers": sum(r["noted"] for r in rows),  # answers that say first a name of the question is in no document
        "noted_answers_with_gold": sum(r["noted"] and r["contains_gold"] for r in rows),
        "ttft_p50_s": statistics.median(r["ttft"] for r in rows),
        "tokens_per_s": speed,
        "examples": rows[:8],
    }
    print(
        f"{llm:14s} answer has gold {result['answer_contains_gold']:.1%}  cited source has gold {result['cited_source_contains_gold']:.1%}  "
        f"context has gold {result['context_contains_gold']:.1%}  unsupported {result['unsupported_answers']}  refused {result['refused']}  "
        f"short answers {result['short_answers']} (with gold {result['short_answers_with_gold']})  "
        f"noted {result['noted_answers']} (with gold {result['noted_answers_with_gold']})  "
        f"TTFT p50 {result['ttft_p50_s'] * 1000:.0f} ms  " + (f"{result['tokens_per_s']:.0f} tokens/s" if result["tokens_per_s"] else ""),
        flush=True,
    )
    return result


def generation_speed(llm: Any, runs: int = 3) -> float:
    """The LLM's own decoding speed: streamed pieces (one per token for llama.cpp) per second after
    the first, on a fixed prompt that leaves it room to write 128 tokens. (Answers themselves are
    short and, for base models, checked against the evidence before they are shown.)"""
    messages = [{"role": "user", "content": "请用三段话介绍一下杭州西湖的历史、景点和美食。"}]
    pieces, seconds = 0, 0.0
    for _ in range(runs):
        first, n = None, 0
        for _ in llm.stream(messages, max_tokens=128, temperature=0.0):
            n += 1
            first = first or time.perf_counter()
        if first is not None and n > 1:
            pieces += n - 1
            seconds += time.perf_counter() - first
    return pieces / seconds if seconds else 0.0


_MEASURE = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(usage.ru_maxrss if os.waitstatus_to_exitcode(status) == 0 else -1)\n"
)


def peak_rss_of_ask(kb_name: str, question: str) -> float:
    """Peak resident memory (MB) of one `kbqa ask` process with the default stack.

    Started from a small launcher: Linux carries a process's peak RSS across fork and exec, so a
    child of this (large) benchmark process would report this process's peak, not its own."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "kbqa.cli", "ask", question, "--kb", kb_name],
                         capture_output=True, text=True, env=os.environ.copy(), check=True)
    kb = int(out.stdout.strip())
    if kb < 0:
        raise RuntimeError("kbqa ask failed")
    return kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "qa")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--llm", action="append", default=[])
    parser.add_argument("--sets", nargs="*", default=["cmrc2018_dev"], help=f"question sets: cmrc2018_dev xquad_zh xquad_en {' '.join(CROSS)}")
    parser.add_argument("--home", type=Path, default=ROOT / ".bench")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not args.data.exists():
        print(f"skipped: no data folder at {args.data} (give --data PATH to ../shared/data/qa)")
        return
    os.environ["KBQA_HOME"] = str(args.home)
    from kbqa.config import load_config
    from kbqa.evaluation import corpus_documents
    from kbqa.kb import KnowledgeBase

    config, _ = load_config()
    results: dict[str, Any] = {"runs": []}
    for name in args.sets:
        corpus = set_sources(name)[1]
        kb_name = f"answers-{corpus}"
        with KnowledgeBase.open(kb_name, config) as kb:  # vectors come from the shared cache when the retrieval benchmark ran
            kb.ingest_documents(corpus_documents(args.data / f"{corpus}.corpus.jsonl"))
        questions = questions_of(args.data, name, args.n)
        print(f"{name}, first {len(questions)} questions:")
        for llm in args.llm or ["gemma-3-270m", "extractive"]:
            results["runs"].append({"set": name, **run(llm, questions, kb_name, args.home)})
    results["peak_rss_mb_kbqa_ask"] = peak_rss_of_ask(kb_name, questions[0].question)
    print(f"peak RSS of `kbqa ask` (default stack): {results['peak_rss_mb_kbqa_ask']:.0f} MB")
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
