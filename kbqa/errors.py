"""Errors: the Python API's (KnowledgeBaseError: a problem the user can fix), and those the service
layer answers a request with, each with the HTTP status that fits and a message for the client that
shows no server path."""

from __future__ import annotations

import os
import re


class KnowledgeBaseError(Exception):
    """A problem the user can fix; the message says how."""


class AmbiguousFile(KnowledgeBaseError):
    """A file asked for by a name that several files of the knowledge base have (from two folders); or by
    a number that is one file's id (id_of) and another's name."""

    def __init__(self, message: str, ids: list[int], id_of: int | None = None) -> None:
        super().__init__(message)
        self.ids = ids
        self.id_of = id_of


class ServiceError(Exception):
    """A request the service refuses; status is the HTTP status that fits, the message is for the client."""

    status = 400

    def __init__(self, message: str, *, retry_after: float | None = None, code: str = "", **params: object) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.code = code  # for faces that say it in another language: what happened ...
        self.params = params  # ... and with which values


class BadRequest(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    status = 401


class NotFound(ServiceError):
    status = 404


class TooLarge(ServiceError):
    status = 413


class Conflict(ServiceError):
    """The knowledge base changed under the request (e.g. deleted by another process)."""

    status = 409


class Upstream(ServiceError):
    """The LLM behind kbqa failed the request: its server (llm.backend: openai) could not be reached or
    failed, or its context window is too small for the prompt (llm.n_ctx)."""

    status = 502


class InsufficientStorage(ServiceError):
    """The server's disk is (nearly) full: server.min_free_disk_mb."""

    status = 507


class Busy(ServiceError):
    """Every LLM copy is busy and the queue is full (or the server is stopping): try again later."""

    status = 503


# not a URL's "//host/...", nor the "/" inside a name that follows a combining mark or an Indic or
# Thai vowel sign ("café/notes/résumé.md" written decomposed: "é" is "e" and a mark, which is no \w);
# after any other character (a typographic quote, a no-break space, a dash, "：") a path begins. A folder's name may
# hold spaces, tabs, no-break spaces ("/home/alice/My Documents/kbqa/…", "/srv/team  docs/…") and an apostrophe
# between letters ("/home/o'brien/…", "Bob's Reports/"): found by reviews, the folders after them were shown. Words
# with spaces between them count as a folder only when a "/" follows them at once, and none but the last holds a dot
# ("moved /srv/x.txt to 资料/x.txt" keeps its words: a file's name ends the path); a quote around a path stays outside it.
# Folders that exist on this machine are cut first whatever their names (_cut_existing_folders); this pattern is for
# the rest (a folder since removed, another machine's path)
_RUN = r"[^\s/'\"]"
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/\u0300-\u036f\u0900-\u0dff\u0e00-\u0e7f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f])"
                            rf"/(?:(?:[^\s/'\".]+(?:[ \t\u00a0]+|(?<=\w)'(?=\w)))*{_RUN}+/)+((?:{_RUN}|(?<=\w)'(?=\w))*)")
_FILE_URL = re.compile(r"\bfile://(?=/)")
_PATH_START = re.compile(r"(?<![\w.:/\u0300-\u036f\u0900-\u0dff\u0e00-\u0e7f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f])/")
_MOST_SLASHES = 64  # how many "/" after a path's start are tried as the end of a folder on this machine
_MOST_LOOKS = 512  # folder looks for one message (a long hostile text full of "/" costs no more than this)


def _existing_folder_end(message: str, start: int, looks: list[int]) -> int:
    """Where the longest folder of this machine written from message[start] ends (at a "/" that follows it), or -1.
    A name on disk may hold anything — "v1.2 docs", " leading space", a quote, a newline — which the pattern
    cannot tell from the words after a path; the disk can. looks: the looks left for the message, spent here."""
    end, at = -1, start
    for _ in range(_MOST_SLASHES):
        at = message.find("/", at + 1)
        if at < 0 or looks[0] <= 0:
            break
        looks[0] -= 1
        try:
            if os.path.isdir(message[start:at]):
                end = at
        except (OSError, ValueError):  # a NUL in the text, a name too long
            continue
    return end


def _cut_existing_folders(message: str) -> str:
    """Each absolute path whose folders exist here, written without them: "/home/u/v1.2 docs/a.txt" → "/a.txt" is
    not enough ("/a.txt" shows nothing but would be read as a path by no rule), so the file's name alone is kept."""
    out, last, looks = [], 0, [_MOST_LOOKS]
    for match in _PATH_START.finditer(message):
        start = match.start()
        if start < last:
            continue
        if looks[0] <= 0:
            break
        end = _existing_folder_end(message, start, looks)
        if end < 0:
            continue
        out.append(message[last:start])
        if _ABSOLUTE_PATH.match(message[end:]) is None:  # no more folders (that no longer exist) after it: a name, or none
            end += 1
            if end == len(message) or message[end].isspace() or message[end] in "'\")]},;:.!?":
                out.append("…")
        last = end
    out.append(message[last:])
    return "".join(out)


def scrub(message: str) -> str:
    """A message with every absolute path cut to its last part: clients never learn server paths. The folders
    that exist on this machine are cut whatever their names; a path whose folders are gone, by the pattern."""
    message = _cut_existing_folders(_FILE_URL.sub("", message))
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "…", message)
