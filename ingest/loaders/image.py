"""Images through OCR."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ingest.loaders.ocr import ocr_blocks
from ingest.types import Document, LoadError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def load(path: Path, options: object) -> Iterator[Document]:
    if getattr(options, "ocr", "auto") == "never":
        raise LoadError("image skipped: ocr is set to 'never'")
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            frames = []
            for i in range(getattr(img, "n_frames", 1)):
                img.seek(i)
                frames.append(np.array(img.convert("RGB")))
    except (UnidentifiedImageError, OSError) as exc:
        raise LoadError(f"not a readable image: {exc}") from exc
    titles: list[str] = []
    for page, frame in enumerate(frames, start=1):
        blocks = ocr_blocks(frame, getattr(options, "ocr_engine", "rapidocr"), getattr(options, "ocr_model_dir", None), getattr(options, "ocr_layout", True), getattr(options, "ocr_angle", False))
        section: list[str] = []
        meta = {"source": str(path), "page": page if len(frames) > 1 else None, "kind": "ocr"}
        for block in blocks:
            if block.kind == "title":
                if section:
                    yield Document("\n\n".join(section), {**meta, "title_path": list(titles)})
                titles, section = [block.text.replace("\n", " ")], []
            section.append(block.text)
        if section:
            yield Document("\n\n".join(section), {**meta, "title_path": list(titles)})
