"""E-mail (.eml): subject as title, the body (plain text, else HTML) and text attachments."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path

from ingest.loaders.html import html_text
from ingest.types import Document


def load_eml(path: Path, options: object) -> Iterator[Document]:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    subject = str(msg.get("subject") or "").strip()
    header = "\n".join(f"{k}: {msg[k]}" for k in ("From", "To", "Date", "Subject") if msg.get(k))
    body = msg.get_body(preferencelist=("plain", "html"))
    text = ""
    if body is not None:
        content = body.get_content()
        text = html_text(content) if body.get_content_type() == "text/html" else content
    yield Document(f"{header}\n\n{text}".strip(), {"source": str(path), "page": None, "title_path": [subject] if subject else [], "kind": "text"})
    for part in msg.iter_attachments():
        name = part.get_filename() or "attachment"
        if part.get_content_maintype() == "text":
            content = part.get_content()
            if part.get_content_type() == "text/html":
                content = html_text(content)
            yield Document(content, {"source": str(path), "page": None, "title_path": [subject, name] if subject else [name], "kind": "text"})
