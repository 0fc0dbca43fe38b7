"""E-mail (.eml): subject as title, the body (plain text, else HTML) and text attachments."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.loaders.html import html_text
from ingest.loaders.text import decode_bytes, looks_binary, text_codec
from ingest.loaders.unwrap import unwrap
from ingest.types import Document, LoadError

# a charset label as mail clients read it (the WHATWG Encoding Standard's mapping), not as Python's codec of that name
# does: GB2312 mail holds GBK characters (镕, 堃), "ISO-8859-1" Outlook's Windows-1252 quotes (found by review: garbled,
# or the whole mail taken for binary)
_AS_READ = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030", "euc-cn": "gb18030",
            "iso-8859-1": "cp1252", "latin1": "cp1252", "iso8859-1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252",
            "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "ks_c_5601": "cp949", "shift_jis": "cp932", "sjis": "cp932",
            "big5": "big5hkscs", "iso-8859-8-i": "iso-8859-8", "iso-8859-6-i": "iso-8859-6", "iso-8859-9": "cp1254",
            "tis-620": "cp874", "iso-8859-11": "cp874"}


def part_text(part: Any) -> str:
    """A text part's content: in its declared charset as mail clients read it, or (none declared, 8-bit bytes: a
    GBK or Latin-1 body sent without one; a label Python does not know, "unknown-8bit" as mail servers write:
    found by review, the mail failed) in the encoding the text loader finds."""
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return str(part.get_payload())
    label = part.get_content_charset()
    codec = text_codec(_AS_READ.get(label.strip().lower(), label)) if label is not None else None
    if codec is None:  # none declared, or none a document is written in (base64, punycode: found by review)
        return decode_bytes(raw) if not raw.isascii() else raw.decode("ascii")
    return raw.decode(codec, errors="replace")


# an attachment read as text by its name when it is sent as bytes (application/octet-stream)
_TEXT_NAMES = (".txt", ".md", ".markdown", ".csv", ".tsv", ".htm", ".html", ".log", ".json", ".xml")
FORWARDED_DEPTH = 3  # forwarded mails inside forwarded mails are read this deep


def load_eml(path: Path, options: object) -> Iterator[Document]:
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or raw[:2].isascii() and raw[1:2] == b"\0" or raw[:1] == b"\0":  # saved as UTF-16
        try:  # (by Windows tools: found by review, "not an e-mail")
            raw = decode_bytes(raw).encode("utf-8")
        except LoadError:
            pass
    msg = email.message_from_bytes(raw.lstrip(b"\r\n"), policy=email.policy.default)
    if not msg.keys():  # random bytes, a PDF or an image named .eml: no "Name: value" header lines at all
        raise LoadError("not an e-mail: no header lines (From:, Subject:, …) (mislabelled file?)")
    yield from _mail(msg, path, [], 0)


def _mail(msg: Any, path: Path, trail: list[str], depth: int) -> Iterator[Document]:
    """A mail's headers and body, then its text attachments and the mails forwarded as attachments (message/rfc822),
    each a document of its own; the attachments it cannot read as text (a PDF, an image) are named under its body
    (found by review: a forwarded mail, a CSV sent as bytes and a mail whose only part is an attachment were lost)."""
    subject = str(msg.get("subject") or "").strip()
    title = [*trail, subject] if subject else trail
    header = "\n".join(f"{k}: {msg[k]}" for k in ("From", "To", "Cc", "Bcc", "Reply-To", "Date", "Subject") if msg.get(k))
    body = msg.get_body(preferencelist=("plain", "html"))
    if body is None and not msg.is_multipart() and msg.get_content_maintype() == "text":
        body = msg  # a mail whose one part is marked as an attachment
    text = ""
    if body is not None:
        try:
            content = part_text(body)
        except LoadError:  # a forwarded mail of bytes costs itself, not the mail it came in (found by review)
            if not depth:
                raise
            content = ""
        text = html_text(content) if body.get_content_type() == "text/html" else unwrap(content.replace("\r\n", "\n"))  # (mail is wrapped at 72)
    if looks_binary(text):
        if not depth:
            raise LoadError("binary content in the e-mail's body, not text (mislabelled file?)")
        text = ""
    read: list[Document] = []
    unread: list[str] = []
    for part in msg.iter_attachments():
        name = part.get_filename() or "attachment"
        if part.get_content_type() == "message/rfc822" and depth < FORWARDED_DEPTH:
            inner = part.get_content()
            if isinstance(inner, email.message.EmailMessage):
                read.extend(_mail(inner, path, title or [name], depth + 1))
                continue
        if part.get_content_maintype() == "text" or name.lower().endswith(_TEXT_NAMES):
            try:
                content = part_text(part) if part.get_content_maintype() == "text" else decode_bytes(part.get_payload(decode=True) or b"")
            except LoadError:  # bytes after all
                unread.append(f"{name} ({part.get_content_type()})")
                continue
            if part.get_content_type() == "text/html" or name.lower().endswith((".htm", ".html")):
                content = html_text(content)
            read.append(Document(content.replace("\r\n", "\n"), {"source": str(path), "page": None, "title_path": [*title, name], "kind": "text"}))
        elif not (part.get_content_maintype() == "image" and part.get("Content-ID")):  # (an image the body shows: a logo)
            unread.append(f"{name} ({part.get_content_type()})")
    if unread:  # named, so that a search finds the mail that brought it: save it and ingest it to read it
        text = f"{text}\n\nAttachments not read: {', '.join(unread)}".strip()
    yield Document(f"{header}\n\n{text}".strip(), {"source": str(path), "page": None, "title_path": title, "kind": "text"})
    yield from read
