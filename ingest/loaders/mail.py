"""E-mail (.eml): subject as title, the body (plain text, else HTML) and text attachments."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.loaders.html import html_text
from ingest.loaders.text import decode_bytes, looks_binary
from ingest.types import Document, LoadError


def _text(part: Any) -> str:
    """A text part's content: in its declared charset, or (none declared, 8-bit bytes: a GBK or
    Latin-1 body sent without one) in the encoding the text loader finds."""
    raw = part.get_payload(decode=True)
    if part.get_content_charset() is None and isinstance(raw, bytes) and not raw.isascii():
        return decode_bytes(raw)
    try:
        return str(part.get_content())
    except LookupError:  # a charset Python does not know, "unknown-8bit" as mail servers write (found by review: the mail failed)
        return decode_bytes(raw) if isinstance(raw, bytes) else ""


def load_eml(path: Path, options: object) -> Iterator[Document]:
    msg = email.message_from_bytes(path.read_bytes().lstrip(b"\r\n"), policy=email.policy.default)
    if not msg.keys():  # random bytes, a PDF or an image named .eml: no "Name: value" header lines at all
        raise LoadError("not an e-mail: no header lines (From:, Subject:, …) (mislabelled file?)")
    subject = str(msg.get("subject") or "").strip()
    header = "\n".join(f"{k}: {msg[k]}" for k in ("From", "To", "Cc", "Bcc", "Reply-To", "Date", "Subject") if msg.get(k))
    body = msg.get_body(preferencelist=("plain", "html"))
    text = ""
    if body is not None:
        content = _text(body)
        text = html_text(content) if body.get_content_type() == "text/html" else content
    if looks_binary(text):
        raise LoadError("binary content in the e-mail's body, not text (mislabelled file?)")
    yield Document(f"{header}\n\n{text}".strip(), {"source": str(path), "page": None, "title_path": [subject] if subject else [], "kind": "text"})
    for part in msg.iter_attachments():
        name = part.get_filename() or "attachment"
        if part.get_content_maintype() == "text":
            content = _text(part)
            if part.get_content_type() == "text/html":
                content = html_text(content)
            yield Document(content, {"source": str(path), "page": None, "title_path": [subject, name] if subject else [name], "kind": "text"})
