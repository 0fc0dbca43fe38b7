"""A LangChain BaseRetriever over a KnowledgeBase, for use in LCEL chains."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict


class KBRetriever(BaseRetriever):
    """kb.as_retriever(top_k=4, threshold=0.3): documents with file, page and relevance in metadata."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kb: Any
    top_k: int | None = None
    threshold: float | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[LCDocument]:
        hits = self.kb.search(query, top_k=self.top_k, threshold=self.threshold)
        return [
            LCDocument(
                page_content=h.text,
                metadata={"source": h.file, "page": h.page, "relevance": h.relevance, "title_path": h.title_path, "chunk_id": h.chunk_id},
            )
            for h in hits
        ]
