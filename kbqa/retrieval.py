"""Dense + lexical retrieval fused by reciprocal rank, with a 0..1 relevance threshold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kbqa.config import RetrievalConfig
from kbqa.embeddings import Embedder
from kbqa.store import Catalog, VectorIndex
from kbqa.types import Hit


def relevance(cosine: float, calibration: tuple[float, float]) -> float:
    """Map a cosine similarity onto 0..1 with the model's (unrelated, identical) calibration."""
    lo, hi = calibration
    return float(min(1.0, max(0.0, (cosine - lo) / (hi - lo))))


@dataclass
class Retriever:
    catalog: Catalog
    index: VectorIndex
    embedder: Embedder
    config: RetrievalConfig

    def search(self, question: str, top_k: int | None = None, threshold: float | None = None) -> list[Hit]:
        top_k = top_k or self.config.top_k
        threshold = self.config.threshold if threshold is None else threshold
        query = self.embedder.embed_query(question)
        fetch = max(self.config.fetch_k, top_k)
        dense = self.index.search(query, fetch)
        lexical = self.catalog.lexical_search(question, fetch) if self.config.hybrid else []
        fused: dict[int, float] = {}
        for ranking in (dense, lexical):
            for rank, (chunk_id, _) in enumerate(ranking):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (self.config.rrf_k + rank + 1)
        if not fused:
            return []
        rows = self.catalog.chunks(list(fused))
        cosines = dict(dense)
        missing = [i for i in rows if i not in cosines]
        if missing:  # lexical-only candidates: their cosine from the cached vectors
            keys = {i: self.catalog.db.execute("SELECT vector_key FROM chunks WHERE id=?", (i,)).fetchone()[0] for i in missing}
            vectors = self.catalog.cached_vectors(list(keys.values()))
            for i, key in keys.items():
                if key in vectors:
                    cosines[i] = float(np.dot(vectors[key], query))
        hits = []
        for chunk_id, score in sorted(fused.items(), key=lambda kv: -kv[1]):
            row = rows.get(chunk_id)
            if row is None:
                continue
            rel = relevance(cosines.get(chunk_id, -1.0), self.embedder.relevance)
            if rel < threshold:
                continue
            hits.append(Hit(chunk_id, row.name, row.page, row.text, round(rel, 4), score, row.title_path, row.path))
            if len(hits) >= top_k:
                break
        return hits
