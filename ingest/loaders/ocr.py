"""OCR engines for scanned pages and images: rapidocr (PP-OCR ONNX, offline) or paddleocr."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ingest.chatter import quiet_libraries
from ingest.once import made_once
from ingest.types import LoadError

PADDLE_HELP = (
    "ocr_engine=paddleocr needs PaddleOCR's models on this machine: set ingest.ocr_model_dir to a folder "
    "holding det/ and rec/ (PP-OCR inference models, e.g. PP-OCRv5_server_det and PP-OCRv5_server_rec), "
    "or use ocr_engine: rapidocr (the same PP-OCR models, shipped in its wheel)"
)


_local = threading.local()


def _engine(name: str, model_dir: str | None = None, angle: bool = False, workers: int = 1) -> Any:
    """The OCR engine: one for the process, or with several OCR threads (workers > 1) one per
    thread, each using its share of the cores."""
    if workers <= 1:
        return _shared_engine(name, model_dir, angle)
    key = (name, model_dir, angle, workers)
    engines = getattr(_local, "engines", None)
    if engines is None:
        engines = _local.engines = {}
    if key not in engines:
        engines[key] = _make_engine(name, model_dir, angle, max(1, (os.cpu_count() or 1) // workers))
    return engines[key]


@made_once(maxsize=2)
def _shared_engine(name: str, model_dir: str | None = None, angle: bool = False) -> Any:
    return _make_engine(name, model_dir, angle, -1)


def _make_engine(name: str, model_dir: str | None, angle: bool, threads: int) -> Any:
    if name == "rapidocr":
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise LoadError("OCR needs the rapidocr and onnxruntime packages: pip install rapidocr onnxruntime") from exc
        quiet_libraries()
        # the text-line angle classifier turns lines it thinks upside down; on upright pages it
        # sometimes turns a good line and it is lost (measured: 0.954 -> 1.000 on rendered Chinese pages)
        return RapidOCR(params={"Global.use_cls": angle, "EngineConfig.onnxruntime.intra_op_num_threads": threads})
    if name == "paddleocr":
        return _paddle(model_dir)
    raise LoadError(f"unknown OCR engine {name!r}; choose rapidocr or paddleocr")


def _paddle(model_dir: str | None) -> Any:
    """PaddleOCR from local models only: without them it would try to download at start and fail offline."""
    from pathlib import Path

    if not model_dir:
        raise LoadError(PADDLE_HELP)
    root = Path(model_dir).expanduser()
    det, rec = root / "det", root / "rec"
    if not det.is_dir() or not rec.is_dir():
        raise LoadError(f"no det/ and rec/ model folders in {root}. {PADDLE_HELP}")
    try:
        from paddleocr import PaddleOCR
    except ImportError as exc:
        raise LoadError("ocr_engine=paddleocr needs: pip install paddleocr paddlepaddle (or use ocr_engine: rapidocr)") from exc
    try:
        return PaddleOCR(
            text_detection_model_dir=str(det), text_recognition_model_dir=str(rec),
            use_doc_orientation_classify=False, use_doc_unwarping=False, use_textline_orientation=False,
        )
    except Exception as exc:  # noqa: BLE001 - paddle raises many kinds; the user needs one message
        raise LoadError(f"PaddleOCR could not start from {root}: {exc}. {PADDLE_HELP}") from exc


SMALL = 160  # px: an image this narrow or low is a cropped line or a label, not a page
PAD = 32


def _pad_small(image: Any) -> tuple[Any, bool]:
    """A white border around a small image: the text detector misses text that touches the edges
    (a 256x32 line crop gives nothing, with the border its text)."""
    shape = getattr(image, "shape", None)
    if shape is None or min(shape[0], shape[1]) >= SMALL:
        return image, False
    import numpy as np

    return np.pad(image, ((PAD, PAD), (PAD, PAD), (0, 0)), constant_values=255), True


def ocr_image(image: Any, engine: str = "rapidocr", model_dir: str | None = None, angle: bool = False) -> str:
    """OCR an image (numpy array HxWx3, path or bytes) and return its text lines in reading order."""
    image, _ = _pad_small(image)
    ocr = _engine(engine, model_dir, angle)
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


def ocr_blocks(
    image: Any, engine: str = "rapidocr", model_dir: str | None = None, layout: bool = True, angle: bool = False, workers: int = 1
) -> list[Any]:
    """OCR a page image into blocks (text, title, table) in reading order, using the layout model
    when it is installed and layout is on; else one text block of lines."""
    from ingest.loaders.layout import Block, arrange, detect, paragraphs, rows_of

    image, small = _pad_small(image)
    layout = layout and not small  # a cropped line has no layout to speak of
    if engine != "rapidocr":
        text = ocr_image(image, engine, model_dir, angle)
        return [Block("text", text)] if text.strip() else []
    result = _engine(engine, model_dir, angle, workers)(image)
    boxes, texts = getattr(result, "boxes", None), getattr(result, "txts", None)
    if boxes is None or texts is None:
        return []
    words = [((min(p[0] for p in b), min(p[1] for p in b), max(p[0] for p in b), max(p[1] for p in b)), t) for b, t in zip(boxes, texts)]
    regions = detect(image) if layout else []
    if regions:
        return arrange(words, regions, float(image.shape[1]), float(image.shape[0]))
    text = paragraphs(rows_of(words))
    return [Block("text", text)] if text.strip() else []


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


PICTURES_PER_DOCUMENT = 30  # a picture-heavy Word or PowerPoint file should not take minutes of OCR
PICTURES_TRIED = 100  # pictures opened at most (icons and broken ones too)
PICTURE_PIXELS = 40_000_000  # a larger picture is not OCR'd (a scan at 600 dpi of an A3 page is 70 M: its text is small)


@dataclass
class Pictures:
    """A document's pictures (Word, PowerPoint) OCR'd, for screenshots and scanned inserts, when ingest.ocr allows and
    PICTURES_PER_DOCUMENT at most. Left alone, counted only against PICTURES_TRIED: icons and logos (under 200x60
    pixels), pictures over PICTURE_PIXELS, one read before, and bytes that are no raster image (a vector picture, a
    broken or linked part)."""

    options: Any  # LoadOptions, or None: no OCR
    read: int = 0
    tried: int = 0
    seen: set[str] = field(default_factory=set)

    def text(self, data: Callable[[], bytes]) -> str:
        """The text of the picture whose bytes data() gives (called only when the picture will be looked at); "" for
        a picture read before in this document (a logo on every slide: its text once), past PICTURES_TRIED pictures
        opened or one of over PICTURE_PIXELS (found by review: a 36 KB deck of a 144-megapixel PNG took 207 s)."""
        options = self.options
        if options is None or getattr(options, "ocr", "never") == "never" or self.read >= PICTURES_PER_DOCUMENT or self.tried >= PICTURES_TRIED:
            return ""
        self.tried += 1
        try:
            import hashlib
            import io

            import numpy as np
            from PIL import Image

            raw = data()
            digest = hashlib.sha1(raw).hexdigest()
            if digest in self.seen:
                return ""
            self.seen.add(digest)
            with Image.open(io.BytesIO(raw)) as image:
                if image.width < 200 or image.height < 60 or image.width * image.height > PICTURE_PIXELS:
                    return ""
                pixels = np.asarray(image.convert("RGB"))
        except MemoryError:
            raise  # (the reader's memory limit: its process is spent)
        except Exception:  # noqa: BLE001 - an undecodable picture is simply not read
            return ""
        self.read += 1
        return ocr_image(pixels, options.ocr_engine, getattr(options, "ocr_model_dir", None), getattr(options, "ocr_angle", False)).strip()
