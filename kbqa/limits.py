"""Checks of what a caller passes with a question — top_k, threshold-like fractions, text, history
turns — shared by the Python API (which raises KnowledgeBaseError) and the service (BadRequest), so
that every face accepts and refuses the same values."""

from __future__ import annotations

import math
import numbers
from typing import Any

from kbqa.errors import KnowledgeBaseError

MAX_TOP_K = 50  # as RetrievalConfig.top_k


def top_k(value: Any, error: type[Exception] = KnowledgeBaseError) -> int | None:
    """None, or a whole number from 1 to MAX_TOP_K (2.0 counts as 2)."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):  # numpy's integers too
        value = int(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TOP_K:
        raise error(f"top_k must be a whole number from 1 to {MAX_TOP_K} (got {str(value)[:20]})")
    return value


def fraction(value: Any, name: str, error: type[Exception] = KnowledgeBaseError) -> float | None:
    """None, or a finite number from 0 to 1 (threshold, answer_confidence)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or not 0 <= value <= 1:
        raise error(f"{name} must be a number from 0 to 1 (got {str(value)[:20]})")
    return float(value)


def text(value: Any, what: str = "question", error: type[Exception] = KnowledgeBaseError) -> str:
    if not isinstance(value, str):
        raise error(f"the {what} must be text (got {type(value).__name__})")
    return value


def turns(history: Any, error: type[Exception] = KnowledgeBaseError) -> list[dict[str, str]]:
    """Earlier turns: a list of {"role": ..., "content": text}."""
    if history is None:
        return []
    if not isinstance(history, (list, tuple)):
        raise error("the history must be a list of {'role': ..., 'content': ...} messages")
    out = []
    for m in history:
        role, content = (m.get("role"), m.get("content")) if isinstance(m, dict) else (None, None)
        if not isinstance(role, str) or not isinstance(content, str):
            raise error("each message needs a role and text content")
        out.append({"role": role, "content": content})
    return out
