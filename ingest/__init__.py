"""Files to Documents (with page numbers) to Chunks. Knows nothing of vectors or LLMs."""

from ingest.loaders import LoadOptions, load_file, supported_suffixes
from ingest.loaders.text import text_documents
from ingest.split import split_documents
from ingest.types import Chunk, Document, LoadError, UnsupportedFile

__all__ = [
    "Chunk",
    "Document",
    "LoadError",
    "LoadOptions",
    "UnsupportedFile",
    "load_file",
    "split_documents",
    "supported_suffixes",
    "text_documents",
]
