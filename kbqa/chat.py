"""Multi-turn chat: earlier turns trimmed to a token budget, follow-up questions made to stand alone."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kbqa.prompts import approx_tokens, language, templates
from kbqa.types import Usage

Message = dict[str, str]

# words that point back into the conversation ("它的价格？", "and when was it built?")
_REFERENCE_ZH = re.compile(r"[它他她其这那该此]|上述|前者|后者|上面|刚才")
_REFERENCE_EN = re.compile(r"\b(it|its|they|them|their|this|that|these|those|he|she|his|her|him|there|then|one|ones)\b", re.I)
# "…呢？" ("what about …?") and openings like "还有" / "and" / "what about" continue the last question
_CONTINUES_ZH = re.compile(r"呢\s*[？?]?\s*$|^\s*(还有|另外|那么|再|并且|而且)")
_CONTINUES_EN = re.compile(r"^\s*(and|also|what about|how about|and what about)\b", re.I)


def trim_history(history: list[Message] | None, budget_tokens: int, count_tokens: Callable[[str], int] = approx_tokens) -> list[Message]:
    """The newest user/assistant turns whose text fits in budget_tokens, oldest first.

    Turns are kept whole and in pairs where possible: a question without its answer is dropped."""
    turns = [m for m in (history or []) if m.get("role") in ("user", "assistant") and m.get("content")]
    kept: list[Message] = []
    used = 0
    for message in reversed(turns):
        cost = count_tokens(message["content"]) + 4
        if used + cost > budget_tokens:
            break
        kept.append({"role": message["role"], "content": message["content"]})
        used += cost
    kept.reverse()
    while kept and kept[0]["role"] != "user":
        kept.pop(0)
    return kept


def points_back(question: str) -> bool:
    """Whether a question's words point back into the conversation: a pronoun ("它的价格？", "when was it
    built?") or a continuation ("…呢？", "And what about …?")."""
    q = question.strip()
    if language(q) == "zh":
        return bool(_REFERENCE_ZH.search(q) or _CONTINUES_ZH.search(q))
    return bool(_REFERENCE_EN.search(q) or _CONTINUES_EN.search(q))


def is_follow_up(question: str) -> bool:
    """Whether a question probably leans on the conversation before it (it points back, or it is very short)."""
    q = question.strip()
    return points_back(q) or (len(q) <= 6 if language(q) == "zh" else len(q.split()) <= 3)


PREVIOUS_CHARS = 1000  # of the previous question, the end: what a follow-up refers to


FOLLOW_BACK = 3  # questions at most that a follow-up's search reaches back over


def _previous_question(history: list[Message]) -> str | None:
    """The last question asked — with the ones before it while each was itself a follow-up (after
    "PetCare sales in 2023?" and "And in 2022?", "What about Water?" still searches for sales), up
    to FOLLOW_BACK — its last PREVIOUS_CHARS characters: an earlier message of any length never
    makes a follow-up's search too long."""
    chain = previous_questions(history)
    return " ".join(chain)[-PREVIOUS_CHARS:] if chain else None


def previous_questions(history: list[Message]) -> list[str]:
    """The questions _previous_question joins, in order: the last one asked and those before it while
    each was itself a follow-up, up to FOLLOW_BACK."""
    asked = [m["content"].strip() for m in history if m.get("role") == "user" and m.get("content") and m["content"].strip()]
    chain: list[str] = []
    for text in reversed(asked):
        chain.insert(0, text)
        if len(chain) == FOLLOW_BACK or not is_follow_up(text):
            break
    return chain


def concat_question(question: str, history: list[Message]) -> str:
    """The previous question prepended to a follow-up: no model call, good enough for retrieval."""
    previous = _previous_question(history)
    if previous is None or not is_follow_up(question):
        return question
    return f"{previous} {question}"


def _clean_rewrite(text: str) -> str:
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(独立问题|改写后的问题|问题|用户|standalone question|question|user)\s*[:：]\s*", "", line, flags=re.I)
    return line.strip(" \"'“”「」")


def _content_words(text: str) -> set[str]:
    from kbqa.store.tokenize import query_tokens

    words = {w.lower() for w in query_tokens(text)}
    return {w for w in words if not _REFERENCE_EN.fullmatch(w) and not _REFERENCE_ZH.fullmatch(w)}


def keeps_question(rewritten: str, question: str) -> bool:
    """A rewrite must keep most of the follow-up's own words (weak models often drop them)."""
    own = _content_words(question)
    return not own or len(own & _content_words(rewritten)) * 2 >= len(own)


def llm_question(question: str, history: list[Message], llm: Any, max_tokens: int = 64, usage: Usage | None = None,
                 generation: dict[str, Any] | None = None) -> str:
    """Ask the LLM to rewrite a follow-up as a standalone question; the question itself when the
    rewrite comes back empty or implausibly long. The tokens it cost are added to usage; generation: more
    of what the LLM's stream takes (a queued LLM's ticket: the request's own place in the queue)."""
    from kbqa.llm import metered

    lang = language(question)
    t = templates(lang)
    names = {"user": "用户", "assistant": "助手"} if lang == "zh" else {"user": "User", "assistant": "Assistant"}
    lines = []
    for message in history[-6:]:
        who = names[message["role"]]
        lines.append(f"{who}: {' '.join(message['content'].split())[:300]}")
    prompt = t.rewrite.format(history="\n".join(lines), question=question)
    # the turns, oldest first, leave the prompt until it fits the model's context with room for the rewrite (found by
    # review: six long Chinese turns made 3,643 tokens for smollm2's 2,048, a 502); none fits: the question joined instead
    count, room = getattr(llm, "count_tokens", None), int(getattr(llm, "context", 0) or 0) - max_tokens - 16
    if count is not None and room > 0:
        while count(prompt) > room:
            if not lines:
                return concat_question(question, history)
            lines.pop(0)
            prompt = t.rewrite.format(history="\n".join(lines), question=question)
    text = "".join(metered(llm, [{"role": "user", "content": prompt}], usage or Usage(), **(generation or {}), max_tokens=max_tokens,
                           temperature=0.0))
    rewritten = _clean_rewrite(text)
    previous = _previous_question(history) or ""
    if not rewritten or len(rewritten) > 3 * (len(question) + len(previous)) + 20 or not keeps_question(rewritten, question):
        return concat_question(question, history)
    return rewritten


def standalone_question(question: str, history: list[Message] | None, llm: Any, mode: str = "auto", usage: Usage | None = None,
                        generation: dict[str, Any] | None = None) -> str:
    """The question to retrieve with: rewritten from the history according to mode
    (auto | llm | concat | off; auto uses the LLM only when it is a chat model); the LLM's tokens
    are added to usage; generation: more of what the LLM's stream takes (llm_question)."""
    turns = [m for m in (history or []) if m.get("role") in ("user", "assistant") and m.get("content")]
    if not turns or mode == "off":
        return question
    from kbqa.answer import capabilities_of

    caps = capabilities_of(llm) if llm is not None else None
    if mode == "llm" or (mode == "auto" and caps is not None and caps.chat):
        if caps is None or caps.extractive:
            raise RuntimeError("llm.rewrite: llm needs a generating LLM; with llm.model extractive use rewrite: concat (or auto)")
        return llm_question(question, turns, llm, usage=usage, generation=generation)
    return concat_question(question, turns)
