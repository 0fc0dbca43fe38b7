"""OCR engines for scanned pages and images: rapidocr (PP-OCR ONNX, offline) or paddleocr."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ingest.types import LoadError


@lru_cache(maxsize=2)
def _engine(name: str) -> Any:
    if name == "rapidocr":
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise LoadError("OCR needs the rapidocr and onnxruntime packages: pip install rapidocr onnxruntime") from exc
        return RapidOCR()
    if name == "paddleocr":
        try:
            from paddleocr import PaddleOCR
        except ImportError as exc:
            raise LoadError("ocr_engine=paddleocr needs: pip install 'kbqa[paddle]'") from exc
        return PaddleOCR()
    raise LoadError(f"unknown OCR engine {name!r}; choose rapidocr or paddleocr")


def ocr_image(image: Any, engine: str = "rapidocr") -> str:
    """OCR an image (numpy array HxWx3, path or bytes) and return its text lines in reading order."""
    ocr = _engine(engine)
    if engine == "rapidocr":
        result = ocr(image)
        boxes = getattr(result, "boxes", None)
        texts = getattr(result, "txts", None)
        if boxes is None or texts is None:
            return ""
        return _lines([(box, text) for box, text in zip(boxes, texts)])
    result = ocr.predict(image)
    texts = []
    for page in result:
        texts.extend(page.get("rec_texts", []))
    return "\n".join(texts)


def _lines(items: list[tuple[Any, str]]) -> str:
    """Group OCR boxes into lines (top to bottom, left to right)."""
    boxes = []
    for box, text in items:
        ys = [p[1] for p in box]
        xs = [p[0] for p in box]
        boxes.append((min(ys), max(ys), min(xs), text))
    boxes.sort(key=lambda b: (b[0], b[2]))
    lines: list[list[tuple[float, float, float, str]]] = []
    for b in boxes:
        if lines:
            last = lines[-1]
            top, bottom = min(x[0] for x in last), max(x[1] for x in last)
            mid = (b[0] + b[1]) / 2
            if top <= mid <= bottom:
                last.append(b)
                continue
        lines.append([b])
    out = []
    for line in lines:
        line.sort(key=lambda x: x[2])
        out.append(" ".join(x[3] for x in line))
    return "\n".join(out)
