"""Optional cross-encoder reranking (bge-reranker, bce-reranker, any sentence-transformers CrossEncoder
by local path or hub id). No reranker ships offline; it is off unless retrieval.reranker names one."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from kbqa.types import Hit


class CrossEncoderReranker:
    def __init__(self, source: str, device: str = "cpu") -> None:
        from kbqa.offline import require

        path = Path(source).expanduser()
        require("reranker", source, source, from_catalog=False)  # a hub id: cached, or downloads allowed
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as exc:
            raise RuntimeError("retrieval.reranker needs: pip install 'kbqa[hf]'") from exc
        self.model: Any = CrossEncoder(str(path) if path.exists() else source, device=device)

    def rerank(self, question: str, hits: list[Hit]) -> list[Hit]:
        """Hits reordered by the cross-encoder; rank_score becomes its score squashed to 0..1."""
        if not hits:
            return hits
        scores = self.model.predict([(question, h.text) for h in hits])
        for h, s in zip(hits, scores):
            h.rank_score = 1.0 / (1.0 + math.exp(-float(s)))
        return sorted(hits, key=lambda h: -h.rank_score)
