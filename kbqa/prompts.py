"""Prompts: the question's language picks the template; sources are numbered and cut to the budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from ingest.textfacts import approx_tokens, language
from kbqa.config import load_yaml
from kbqa.types import Hit


@dataclass(frozen=True)
class Templates:
    system: str
    user: str
    completion: str
    stop: tuple[str, ...]
    context_item: str
    no_answer: str
    rewrite: str


@lru_cache(maxsize=4)
def templates(lang: str) -> Templates:
    data = load_yaml(f"prompts/{lang}.yaml")
    data["stop"] = tuple(data.get("stop") or ())
    return Templates(**data)


@dataclass
class Prompt:
    messages: list[dict[str, str]]
    stop: tuple[str, ...]
    sources: list[Hit]  # the sources actually placed in the prompt, numbered from 1
    lang: str


def build_prompt(
    question: str,
    hits: list[Hit],
    *,
    budget_tokens: int,
    count_tokens: Callable[[str], int] = approx_tokens,
    history: list[dict[str, str]] | None = None,
) -> Prompt:
    """Chat messages for the LLM with as many numbered sources as fit in budget_tokens.
    (Base models are prompted by kbqa.answer.CompletionAnswerer with the completion template instead.)"""
    lang = language(question)
    t = templates(lang)
    shell = t.system + "\n" + t.user
    used = count_tokens(shell.format(context="", question=question))
    items: list[str] = []
    placed: list[Hit] = []
    for hit in hits:
        item = t.context_item.format(n=len(items) + 1, cite=hit.cite(), text=" ".join(hit.text.split()))
        cost = count_tokens(item) + 1
        if used + cost > budget_tokens:
            room = budget_tokens - used - 8
            if room > 40 and not items:  # at least part of the best source
                item = item[: max(1, int(len(item) * room / cost))]
                cost = count_tokens(item) + 1
            else:
                break
        items.append(item)
        placed.append(hit)
        used += cost
    context = "\n".join(items)
    messages = [{"role": "system", "content": t.system}]
    messages += list(history or [])
    messages.append({"role": "user", "content": t.user.format(context=context, question=question)})
    return Prompt(messages=messages, stop=(), sources=placed, lang=lang)


def no_answer(question: str) -> str:
    return templates(language(question)).no_answer
