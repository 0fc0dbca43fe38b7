"""Files to Documents (with page numbers) to Chunks. Knows nothing of vectors or LLMs."""

import os as _os

# ONNX Runtime (the embedder, OCR, layout) writes a device id and a queue of usage events to upload
# under ~/.cache/Microsoft unless told not to before it loads: nothing leaves the machine, and
# nothing is written outside the home. A user may set ORT_DISABLE_TELEMETRY=0 to allow it.
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

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
