"""kbqa: local knowledge-base question answering.

    from kbqa import KnowledgeBase
    kb = KnowledgeBase.open("mykb")
    kb.ingest(["./docs"])
    print(kb.ask("……").text)
"""

from __future__ import annotations

import os as _os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before ONNX Runtime loads: see ingest/__init__.py
__all__ = ["Answer", "Hit", "IngestReport", "KnowledgeBase", "KnowledgeBaseError", "list_knowledge_bases", "load_config"]

if TYPE_CHECKING:
    from kbqa.config import load_config
    from kbqa.kb import KnowledgeBase, KnowledgeBaseError, list_knowledge_bases
    from kbqa.types import Answer, Hit, IngestReport


def __getattr__(name: str) -> Any:  # imported on first use, so `kbqa --help` stays fast
    if name in ("KnowledgeBase", "KnowledgeBaseError", "list_knowledge_bases"):
        from kbqa import kb

        return getattr(kb, name)
    if name in ("Answer", "Hit", "IngestReport"):
        from kbqa import types

        return getattr(types, name)
    if name == "load_config":
        from kbqa.config import load_config

        return load_config
    raise AttributeError(name)
