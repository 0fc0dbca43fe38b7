"""Storage: the SQLite catalog (store of record) and a vector index keyed by chunk id."""

from kbqa.store.catalog import Catalog, ChunkRow, FileRow, NewChunk, sha256_file, text_key
from kbqa.store.vectors import FaissIndex, VectorIndex, open_index

__all__ = ["Catalog", "ChunkRow", "FaissIndex", "FileRow", "NewChunk", "VectorIndex", "open_index", "sha256_file", "text_key"]
