"""The Gradio web app: chat with a knowledge base, see sources, upload files; in English and Chinese
(webui/texts.py). Presentation only: everything goes through kbqa's service layer."""

from __future__ import annotations

import html
import json
import logging
import os
import queue
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from kbqa.answer import empty_kb  # noqa: E402
from kbqa.config import Config  # noqa: E402
from kbqa.highlight import passage_span  # noqa: E402
from kbqa.kb import safe_filename  # noqa: E402
from kbqa.service import Service, ServiceError, Upload  # noqa: E402
from webui.texts import LANGUAGES, TEXTS, file_error, language, summary, t  # noqa: E402

log = logging.getLogger(__name__)

safe_name = safe_filename


def _escape(text: str) -> str:
    """Plain text made safe inside Markdown: no HTML, no accidental emphasis, headings or tables."""
    text = html.escape(text, quote=False)
    return re.sub(r"([\\`*_#|\[\]~])", r"\\\1", text)


def waiting_text(lang: str, ahead: int) -> str:
    """A question's wait for the LLM: `ahead` more wait before it (the answers being generated not counted)."""
    return t(lang, "waiting_next") if ahead == 0 else t(lang, "waiting", ahead=ahead)


def answer_markdown(text: str) -> str:
    """An answer as the chat shows it: the model's Markdown (lists, emphasis, code, citations [1])
    stays, but no HTML and no link or image written in Markdown (a document's `![x](http://…)` or
    `<img src=…>`, quoted or copied into an answer, made every reader's browser fetch from that
    address): `<` is written `&lt;`, `](` and `]:` get a backslash. A bare address stays a link that
    shows itself. answer_text() undoes it."""
    return text.replace("<", "&lt;").replace("](", "]\\(").replace("]:", "]\\:")


def answer_text(shown: str) -> str:
    """The answer text of a chat bubble made by answer_markdown (for the next turn's history)."""
    return shown.replace("]\\:", "]:").replace("]\\(", "](").replace("&lt;", "<")


def message_text(content: Any) -> str:
    """A chat message's text. Gradio sends a message back as a list of parts ([{"type": "text",
    "text": ...}, a file ...]); a string stays as it is; parts that are not text are left out."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    texts = [p.get("text") for p in parts if isinstance(p, dict) and p.get("type", "text") == "text"]
    return "\n".join(t for t in texts if isinstance(t, str))


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def highlighted_snippet(text: str, question: str, width: int = 360) -> str:
    """The chunk around its passage that best matches the question, that passage in <mark>."""
    flat = " ".join(text.split())
    span = passage_span(flat, question) if question else None
    if span is None:
        return _escape(flat if len(flat) <= width else flat[: width - 1] + "…")
    start, end = span
    left = max(0, start - max(0, (width - (end - start)) // 2))
    right = min(len(flat), max(end, left + width))
    before, passage, after = flat[left:start], flat[start:end], flat[end:right]
    return ("…" if left else "") + _escape(before) + f"<mark>{_escape(passage)}</mark>" + _escape(after) + ("…" if right < len(flat) else "")


def sources_markdown(sources: list[Any], answered: bool = True, question: str = "", lang: str = "en") -> str:
    """The sources under an answer, most relevant first; each keeps the number [n] it is cited by.
    After a refusal: the closest passages, marked as related material, not an answer."""
    if not answered and not sources:
        return t(lang, "no_source")
    if not sources:
        return ""
    lines = [t(lang, "related") if not answered else f"**{t(lang, 'sources')}**", ""]
    numbered = sorted(enumerate(sources, start=1), key=lambda item: -item[1].relevance)
    for i, h in numbered:
        lines.append(f"**[{i}] {_escape(h.cite())}** · {t(lang, 'relevance')} {h.relevance:.2f}  ")
        lines.append(f"> {highlighted_snippet(h.text, question)}")
        lines.append("")
    return "\n".join(lines)


def passage(hit: Any, question: str) -> str:
    """The passage of a source that best matches the question (what its page image outlines)."""
    flat = " ".join(hit.text.split())
    span = passage_span(flat, question) if question else None
    return flat[span[0] : span[1]] if span else flat[:200]


def missing_markdown(missing: list[tuple[str, str, str]]) -> str:
    """The catalog LLMs not on this machine, each with the command that gets it (or the file to
    download and give as llm.path), one a line; the words around it are the page's (llm_missing)."""
    return "\n".join(f"- **{_escape(name)}** · `{what}`" for name, _kind, what in missing)


def failure(exc: ServiceError, lang: str) -> str:
    """What the service refused, in the page's language (its own words when the case has no text here)."""
    key = f"err_{exc.code}_kept" if "kept" in exc.params else f"err_{exc.code}"  # (an upload stopped: how many files it kept)
    if key in TEXTS:
        return "⚠️ " + t(lang, key, **{k: _escape(str(v)) if isinstance(v, str) else v for k, v in exc.params.items()})
    kind = type(exc).__name__ if type(exc).__name__ in TEXTS else "ServiceError"
    return f"⚠️ {t(lang, kind)}: {_escape(exc.message)}"


NOT_RECEIVED = "not a file uploaded to this page"


def open_received(path: Path) -> BinaryIO | None:
    """A file Gradio received from the browser, opened for reading; None for any other path. The
    path comes from the client (Gradio's file data names it), so a request could name any file the
    server can read ("/etc/passwd", another knowledge base's catalog): only a regular file inside
    Gradio's upload folder is opened, links resolved first."""
    from gradio.utils import get_upload_folder

    root = Path(get_upload_folder()).resolve()
    try:
        real = path.resolve(strict=True)
        if not real.is_relative_to(root) or real == root or not real.is_file():
            return None
        return real.open("rb")
    except (OSError, ValueError, RuntimeError):
        return None


MAX_FOLDER_HINTS = 20_000  # files of one uploaded folder whose paths the page sends
MAX_HINTS_CHARS = 8_000_000

# Gradio sends a folder's files by name alone: the page keeps their paths in the folder
# (webkitRelativePath) when they are chosen, and Ingest sends them beside the files (folder_hints).
# A folder dropped on the box, rather than chosen, has no such paths: its files are stored by name.
FOLDER_PATHS_SCRIPT = """<script>
document.addEventListener("change", (event) => {
  const input = event.target;
  if (input instanceof HTMLInputElement && input.type === "file" && input.closest("#folder-upload")) {
    window.kbqaFolderPaths = Array.from(input.files || [], (f) => [f.webkitRelativePath || "", f.name, f.size]);
  }
}, true);
document.addEventListener("drop", (event) => {
  if (event.target instanceof Element && event.target.closest("#folder-upload")) window.kbqaFolderPaths = [];
}, true);
</script>"""
SEND_FOLDER_PATHS = "(files, folder, kb, lang, paths) => [files, folder, kb, lang, JSON.stringify(window.kbqaFolderPaths || [])]"


def folder_hints(text: Any) -> dict[tuple[str, int], list[str]]:
    """The folders of an uploaded folder's files, as the page sends them (FOLDER_PATHS_SCRIPT: a JSON
    list of [path in the folder, name, size]), by (name, size): "制度/子目录" for
    ["制度/子目录/报销.docx", "报销.docx", 5120]. They come from the client: anything else is no
    hint (the file is stored by its name), and upload_folder cleans every part."""
    try:
        rows = json.loads(text) if isinstance(text, str) and 0 < len(text) <= MAX_HINTS_CHARS else []
    except (ValueError, RecursionError):  # (nested too deep: "[[[[…")
        return {}
    out: dict[tuple[str, int], list[str]] = {}
    for row in rows[:MAX_FOLDER_HINTS] if isinstance(rows, list) else []:
        if not (isinstance(row, list) and len(row) == 3 and all(isinstance(v, str) for v in row[:2])
                and isinstance(row[2], int) and not isinstance(row[2], bool)):
            continue
        path, name, size = row
        folder, _, last = path.replace("\\", "/").rpartition("/")
        if folder and name and last == name:
            out.setdefault((name, size), []).append(folder)
    return out


SCRATCH_TTL_S = 3600  # page images and source copies handed to browsers are kept this long
MAX_SESSIONS = 10_000  # browser sessions whose last Clear the web chat remembers


def web_scratch(config: Config) -> Path:
    """The web app's own folder inside the kbqa home (page images, source copies), of what is over
    SCRATCH_TTL_S old emptied at start (not all of it: another server of the same home may be handing
    its files out); Gradio's cache goes beside it, so the app writes nothing outside the home."""
    root = config.home_dir() / "cache" / "web"
    root.mkdir(parents=True, exist_ok=True)
    forget_old(root)
    os.environ.setdefault("GRADIO_TEMP_DIR", str(config.home_dir() / "cache" / "gradio"))
    forget_old(*gradio_cache(config))  # what servers before this one left there (Gradio forgets only its own files)
    return root


def gradio_cache(config: Config) -> list[Path]:
    """Gradio's cache (uploads received, files handed out) when it is kbqa's, in the home (not one
    GRADIO_TEMP_DIR names): what is older than SCRATCH_TTL_S there is removed, also what a server
    stopped or killed left."""
    ours = config.home_dir() / "cache" / "gradio"
    return [ours] if os.environ.get("GRADIO_TEMP_DIR") == str(ours) else []


def forget_old(*scratch: Path, age_s: float = SCRATCH_TTL_S) -> None:
    """Remove what was handed to browsers (or received from them) more than age_s ago."""
    for entry in (f for root in scratch if root.is_dir() for f in root.iterdir()):
        try:
            if time.time() - _newest(entry) > age_s:  # (Gradio hands a cached file out again from its old folder)
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
        except OSError:
            pass


def _newest(entry: Path) -> float:
    """The latest change time of a file, or of a folder and what it holds."""
    times = [entry.stat().st_mtime]
    if entry.is_dir():
        for inner in entry.rglob("*"):
            try:
                times.append(inner.stat().st_mtime)
            except OSError:
                pass
    return max(times)


def let_uploaded_dotfiles_through() -> None:
    """Gradio refuses an event, before its handler runs, when a file the user uploaded for it is a
    dotfile and its upload folder lies under the working directory (`cd ~ && kbqa serve`, home
    ~/.kbqa): a folder upload holding a Mac's .DS_Store failed whole with a bare "Error". A dotfile
    in Gradio's own upload folder was sent by a user: it is let through to kbqa, which says what
    became of it; every other path is checked by Gradio as before (its rule keeps the working
    directory's own dotfiles from being served)."""
    from gradio import processing_utils, utils

    check = getattr(processing_utils, "_check_allowed", None)
    if check is None or getattr(check, "kbqa", False):
        return

    import gradio as gr
    from gradio.exceptions import InvalidPathError

    def checked(path: Any, check_in_upload_folder: bool) -> None:
        real = utils.abspath(path)
        if check_in_upload_folder and real.name.startswith(".") and utils.is_in_or_equal(real, utils.get_upload_folder()):
            return
        try:
            check(path, check_in_upload_folder)
        except InvalidPathError:
            if not check_in_upload_folder:  # (a file of kbqa's own answer: a fault to see in the log)
                raise
            # a client's file value naming a path it did not upload ({"path": "/etc/passwd"}): refused as before, with a
            # message instead of a bare "Error" and a traceback in the log (found by review)
            raise gr.Error("a file named here was not uploaded to this page: upload it first (POST /gradio_api/upload)",
                           print_exception=False) from None

    checked.kbqa = True  # type: ignore[attr-defined]
    processing_utils._check_allowed = checked


def keep_no_session_values() -> None:
    """Gradio copies the last value of each input and output a session used into that session's
    state, for its "deep links", which kbqa does not offer: a client sending 8 MB values to five
    events under new session ids held 35 MB a session, 4.2 GB for webui.max_sessions (100) of them
    (found by review). Those copies are no longer kept; what a session needs (its gr.State values,
    its components' updated settings) is kept as before."""
    from gradio.state_holder import SessionState

    if getattr(SessionState._update_value_in_config, "kbqa", False):
        return

    def forget(self: Any, key: int, value: Any) -> None:
        return None

    forget.kbqa = True  # type: ignore[attr-defined]
    SessionState._update_value_in_config = forget  # type: ignore[method-assign]


def build_app(config: Config, kb: str = "default", service: Service | None = None) -> Any:
    scratch = web_scratch(config)  # before gradio is imported: it reads GRADIO_TEMP_DIR
    home = config.home_dir().resolve()  # (source files in it are linked into the scratch, others copied)
    swept = [time.monotonic()]  # when Gradio's cache was last swept of what is over an hour old (web_scratch: now)
    import gradio as gr

    let_uploaded_dotfiles_through()
    keep_no_session_values()

    service = service or Service(config)
    names = service.listed_names()[0]  # (a store away at start: the page comes up, and says so when a knowledge base is used)
    if kb not in names:
        names = [kb] + names
    llm_names = service.llm_choices()  # only models on this machine: a click never starts a download
    llm_missing = service.llm_missing()  # the catalog's other LLMs: shown as not here, with how to get them

    def kb_names(value: str | None = None) -> list[str]:
        """The knowledge bases now (other sessions create and drop them), and the one chosen."""
        return sorted(set(service.listed_names()[0]) | ({value} if value else set()))

    def kb_choices(value: str | None = None) -> Any:
        current = kb_names(value)
        return gr.update(choices=current, value=value) if value else gr.update(choices=current)

    # --- chat --------------------------------------------------------------------------------
    def ask(
        question: str, kb_name: str, top_k: float, threshold: float, llm: str, lang: str = "en", answer_confidence: float | None = None
    ) -> tuple[str, str]:
        """Answer one question: returns (answer, sources as Markdown)."""
        text, sources = "", ""
        for text, sources, _, _ in _answer(question, [], kb_name, top_k, threshold, llm, None, lang, answer_confidence):
            pass
        return text, sources

    def _answer(
        question: str, history: list[dict[str, str]], kb_name: str, top_k: float, threshold: float, llm: str, temperature: float | None, lang: str,
        answer_confidence: float | None = None, shown: Callable[[str], str] = str,
    ) -> Iterator[tuple[str, str, list[Any], str]]:
        """(answer so far as shown(text), sources as Markdown, the sources once done, the query searched)."""
        if not isinstance(question, str) or not question.strip():
            yield "", "", [], ""
            return
        reply, text, sources, query = None, "", "", ""
        try:
            with closing(_asked(kb_name, question, history=history, top_k=top_k, threshold=threshold, answer_confidence=answer_confidence,
                                model=llm, temperature=temperature)) as asking:
                for ahead, reply in asking:
                    if reply is None:
                        yield waiting_text(lang, ahead), "", [], ""
            assert reply is not None
            empty = not reply.answered and not reply.sources and service.is_empty(kb_name)  # the answer says so and what to do
            sources = "" if empty else sources_markdown(reply.sources, reply.answered, reply.query, lang)
            if reply.query != question:
                sources = f"*{t(lang, 'searched_for')}* {_escape(reply.query)}\n\n" + sources
            query = reply.query
            for ahead in reply.waiting():
                yield waiting_text(lang, ahead), sources, [], query
            for piece in reply:
                text += piece
                yield shown(text), sources, [], query
            yield shown(text), sources, list(reply.sources), query
        except ServiceError as exc:
            if text:  # cut short (the server stopping, the LLM failing): what came stays, with why it stopped
                yield f"{shown(text)}\n\n{failure(exc, lang)}", sources, [], query
            else:
                yield failure(exc, lang), "", [], ""
        finally:
            if reply is not None:
                reply.close()

    def _asked(kb_name: str, question: str, **asking: Any) -> Iterator[tuple[int, Any]]:
        """service.ask in a helper thread: (place in the queue, None) each second that a follow-up waits for its
        turn to be rewritten by the LLM, then (0, the Reply). Closed early (the page closed: Gradio closes the
        answer at its next yield), the wait ends and a Reply made all the same is closed (found by review: a
        follow-up showed nothing while it waited, and a closed page's follow-up was rewritten and answered)."""
        told: queue.SimpleQueue[tuple[int, Any] | BaseException] = queue.SimpleQueue()
        gone, handing = threading.Event(), threading.Lock()

        def work() -> None:
            try:
                reply = service.ask(kb_name, question, gone=gone.is_set, waiting=lambda ahead: told.put((ahead, None)), **asking)
            except BaseException as exc:  # given to the answer, which says what went wrong
                told.put(exc)
                return
            with handing:
                if gone.is_set():
                    reply.close()  # asked for by nobody any more: its place is freed
                else:
                    told.put((0, reply))

        threading.Thread(target=work, daemon=True, name="kbqa-web-ask").start()
        handed = False
        try:
            while True:
                item = told.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item[1] is not None:
                    handed = True
                    return
        finally:
            if not handed:
                with handing:
                    gone.set()
                while not told.empty():  # a Reply put before gone was set, not taken
                    if isinstance(left := told.get_nowait(), tuple) and left[1] is not None:
                        left[1].close()

    def source_views(kb_name: str, hits: list[Any], query: str) -> tuple[list[tuple[str, str]], list[str]]:
        """PNGs of the PDF pages the sources come from (the passage outlined), and copies of the source files."""
        forget_old(scratch)
        if time.monotonic() - swept[0] > 60:  # Gradio's cache, which may hold thousands of files, once a minute
            swept[0] = time.monotonic()
            forget_old(*gradio_cache(config))
        folder = Path(tempfile.mkdtemp(dir=scratch))
        pages, files, seen = [], [], set()
        for i, h in enumerate(hits, start=1):
            if h.path and h.page and (h.path, h.page) not in seen:
                seen.add((h.path, h.page))
                png = service.page_image(kb_name, h.path, h.page, outline=passage(h, query))
                if png:
                    image = folder / f"source-{i}-p{h.page}.png"
                    image.write_bytes(png)
                    pages.append((str(image), f"[{i}] {h.cite()}"))
            stored = service.source_file(kb_name, h.path) if h.path and h.path not in seen else None
            if stored is not None:
                seen.add(h.path)
                copy = folder / f"{i}" / safe_name(h.file)
                copy.parent.mkdir(parents=True, exist_ok=True)
                try:  # an upload lives in the home: a link costs nothing; a file ingested from elsewhere is the user's own,
                    if not Path(stored).resolve().is_relative_to(home):  # and a link would change its link count and ctime
                        raise OSError("not in the home: copied")
                    os.link(stored, copy)
                except OSError:
                    try:
                        shutil.copyfile(stored, copy)
                    except OSError:  # removed (deleted, re-uploaded) since it was found: no copy to offer
                        continue
                files.append(str(copy))
        return pages, files

    # when each browser session last cleared its chat: an answer begun before it says nothing more (Gradio's
    # cancel of the answering event, sent with the click, did not always stop it under load: the answer came
    # back into the emptied chat)
    cleared: dict[str, float] = {}
    clears_lock = threading.Lock()

    def clear_chat(request: Any = None) -> None:
        session = getattr(request, "session_hash", None)
        if session:
            with clears_lock:  # (two sessions clearing at once: the oldest is evicted by one of them)
                cleared.pop(session, None)
                cleared[session] = time.monotonic()
                while len(cleared) > MAX_SESSIONS:  # the oldest clears are forgotten: their answers are long done
                    cleared.pop(next(iter(cleared)))

    def chat(
        message: str, history: list[dict[str, Any]], kb_name: str, top_k: float, threshold: float, llm: str, temperature: float,
        lang: str = "en", shown: dict[int, Any] | None = None, answer_confidence: float | None = None, request: Any = None,
    ) -> Iterator[tuple[Any, str, str, Any, Any, Any]]:
        began, session = time.monotonic(), getattr(request, "session_hash", None)

        def dropped() -> bool:  # the chat was cleared since this answer began
            return session is not None and cleared.get(session, 0.0) > began

        message = message if isinstance(message, str) else ""  # (None from an API client: a bare "Error" before)
        earlier = [{"role": m["role"], "content": (answer_text if m["role"] == "assistant" else str)(message_text(m.get("content")))}
                   for m in (history or []) if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
        if not message.strip():  # nothing asked: no empty bubbles, the chat stays as it was
            yield list(history or []), gr.skip(), "", gr.skip(), gr.skip(), gr.skip()
            return
        history = list(history or []) + [{"role": "user", "content": message}]
        # the question moves from the box into the chat at once, before the search: the box is emptied
        # only here, so a next question typed while this one is answered is never wiped (it was emptied
        # with the first words of the answer, seconds later, and the next question went out empty)
        yield history, "", "", gr.skip(), gr.skip(), gr.skip()
        history.append({"role": "assistant", "content": ""})
        shown = dict(shown or {})  # answer's index in the chat -> (sources, pages, files) shown for it
        hits: list[Any] = []
        sources, query = "", ""
        for text, sources, hits, query in _answer(message, earlier, kb_name, top_k, threshold, llm, temperature, lang, answer_confidence,
                                                  shown=answer_markdown):
            if dropped():
                return
            history[-1] = {"role": "assistant", "content": text}
            yield history, sources, gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            pages, files = source_views(kb_name, hits, query) if hits else ([], [])
        except ServiceError:
            pages, files = [], []
        except Exception:  # a page or a copy that cannot be made (found by review: a page MuPDF would not draw) costs the views, not the answer
            log.exception("cannot show the sources' pages and files")
            pages, files = [], []
        if dropped():
            return
        shown[len(history) - 1] = (sources, pages, files or None)
        yield history, sources, gr.skip(), pages, files or None, shown

    def select_answer(shown: dict[int, Any] | None, selected: gr.EventData) -> tuple[Any, Any, Any]:
        """Clicking an answer shows that answer's own sources, pages and files. (The event's data is read
        here, not by gr.SelectData, which a hand-made client's {"index": [[1]]} or a missing "value" made
        a bare "Error" with a traceback in the log: found by review.)"""
        data = getattr(selected, "_data", None)
        index = data.get("index") if isinstance(data, dict) else None
        if isinstance(index, list) and index:  # a message's index comes as [row, column] from some front ends
            index = index[0]
        if type(index) is not int or not isinstance(shown, dict) or index not in shown:
            return gr.skip(), gr.skip(), gr.skip()
        sources, pages, files = shown[index]
        # the page images and file copies handed out are removed after SCRATCH_TTL_S (found by review: clicking an
        # answer over an hour old was a bare "Error", its sources not shown either): the sources stay, the views gone are left out
        pages = [p for p in pages or [] if Path(p[0]).is_file()]
        files = [f for f in files or [] if Path(f).is_file()] or None
        return sources, pages, files

    # --- knowledge bases -----------------------------------------------------------------------
    def files_table(kb_name: str, lang: str = "en") -> list[list[Any]]:
        try:
            rows = service.files(kb_name)
        except ServiceError:
            return []
        return [[r.id, r.name, t(lang, f"status_{r.status}") if f"status_{r.status}" in TEXTS else r.status, r.pages or "", r.chunks,
                 round(r.seconds or 0, 2), _short(r.description, 80), problem(r, lang)] for r in rows]

    def problem(row: Any, lang: str) -> str:
        """A failed file's error, or an ingested one's warning (a damaged PDF, repaired), marked ⚠️."""
        if not row.error:
            return ""
        return f"⚠️ {file_error(row.error, lang)}" if row.status == "ok" else file_error(row.error, lang)

    def create_kb(new_name: str, lang: str = "en") -> tuple[str, Any, list[list[Any]]]:
        name = new_name.strip() if isinstance(new_name, str) else ""
        try:
            existed = service.exists(name)
            service.create(name)
        except ServiceError as exc:
            return failure(exc, lang), kb_choices(), []
        return t(lang, "kb_exists" if existed else "created", name=_escape(name)), kb_choices(name), files_table(name, lang)

    def delete_kb(kb_name: str, confirm: str, lang: str = "en") -> tuple[str, Any, list[list[Any]]]:
        if not isinstance(kb_name, str) or not kb_name:
            return t(lang, "choose_kb"), gr.update(), []
        if not isinstance(confirm, str) or confirm.strip() != kb_name:
            return t(lang, "confirm_first", name=_escape(str(kb_name))), gr.update(), files_table(kb_name, lang)
        try:
            service.drop(kb_name)
        except ServiceError as exc:
            return failure(exc, lang), gr.update(), files_table(kb_name, lang)
        left = service.listed_names()[0]
        return t(lang, "deleted_kb", name=_escape(kb_name)), gr.update(choices=left, value=left[0] if left else None), []

    # Uploads and re-ingests waiting for their turn (server.max_ingests), by browser session: a tab
    # closed meanwhile (Gradio's unload event) gives its place up, as an API client that hangs up does
    waiting_tabs: dict[str, set[threading.Event]] = {}
    tabs_lock = threading.Lock()

    def tab_closed(request: Any) -> None:
        with clears_lock:
            cleared.pop(getattr(request, "session_hash", None) or "", None)
        with tabs_lock:
            for closed in waiting_tabs.get(getattr(request, "session_hash", None) or "", ()):
                closed.set()

    @contextmanager
    def watched(request: Any) -> Iterator[threading.Event]:
        session, closed = getattr(request, "session_hash", None), threading.Event()
        if session:
            with tabs_lock:
                waiting_tabs.setdefault(session, set()).add(closed)
        try:
            yield closed
        finally:
            if session:
                with tabs_lock:
                    mine = waiting_tabs.get(session, set())
                    mine.discard(closed)
                    if not mine:
                        waiting_tabs.pop(session, None)

    def waited(p: Any, progress: Any, lang: str) -> bool:
        """Show an ingest waiting for its turn (server.max_ingests), or for the files another process is
        ingesting into this knowledge base; True when p was that."""
        if p.stage == "wait":
            progress(0, desc=t(lang, "ingest_waiting", running=p.name))
        elif p.stage == "held":
            progress(p.done / max(p.total, 1), desc=t(lang, "ingest_held", files=p.name))
        return p.stage in ("wait", "held")

    def upload(files: list[Any] | None, folder_files: list[Any] | None, kb_name: str, lang: str = "en", folder_paths: str | None = None,
               progress: Any = gr.Progress(), request: Any = None) -> tuple[str, list[list[Any]], Any]:
        lang = lang if isinstance(lang, str) and lang in LANGUAGES else "en"  # (not preprocessed by Gradio: as the client sent it)
        with watched(request) as closed:
            return _upload(files, folder_files, kb_name, lang, folder_hints(folder_paths), progress, closed)

    def _upload(files: list[Any] | None, folder_files: list[Any] | None, kb_name: str, lang: str,
                hints: dict[tuple[str, int], list[str]], progress: Any, closed: threading.Event) -> tuple[str, list[list[Any]], Any]:
        chosen = [(f, given is folder_files) for given in (files, folder_files)
                  for f in (given if isinstance(given, list) else [given] if given else [])]
        if not chosen:
            return t(lang, "choose_files"), files_table(kb_name, lang), kb_choices()

        def step(p: Any) -> None:
            if waited(p, progress, lang):
                return
            if p.total:
                desc = t(lang, "page_progress", name=p.name, page=p.page, pages=p.pages, done=p.done, total=p.total) if p.page else f"{p.name} ({p.done}/{p.total})"
                progress(p.done / p.total, desc=desc)

        received: list[tuple[str, Path]] = []  # (the name it is stored under, the file Gradio received)
        refused: list[dict[str, str]] = []
        for f, in_folder in chosen:  # files Gradio has received into its own temporary folder, as the page sent them (FileData)
            src = Path(str((f.get("path") if isinstance(f, dict) else getattr(f, "name", f)) or ""))
            shown = re.split(r"[\\/]", str((f.get("orig_name") if isinstance(f, dict) else getattr(f, "orig_name", None)) or src.name))[-1]
            opened = open_received(src)
            if opened is None:  # a path the client named: never read a server file for it
                refused.append({"name": shown, "error": NOT_RECEIVED})
                continue
            with opened:
                folder = hints.get((shown, os.fstat(opened.fileno()).st_size), []) if in_folder else []
                received.append((folder.pop(0) + "/" + shown if folder else shown, Path(opened.name)))

        def one_at_a_time() -> Iterator[tuple[str, BinaryIO]]:
            # each file is opened as it is stored (found by review: an event naming one file 20,000 times held them all
            # open at once, up to the process's limit, and every other request of the server failed meanwhile)
            for name, path in received:
                try:
                    fh = path.open("rb")
                except OSError:  # (removed from Gradio's cache since: swept after its hour)
                    refused.append({"name": name.rpartition("/")[2], "error": NOT_RECEIVED})
                    continue
                with fh:
                    yield name, fh

        try:
            result = service.upload(kb_name, one_at_a_time(), progress=step, gone=closed.is_set, keep_folders=True) if received else Upload(None, [])
        except ServiceError as exc:
            return failure(exc, lang), files_table(kb_name, lang), kb_choices()
        report = result.report
        lines = [f"**{_escape(kb_name)}**: {summary(report, lang)}" if report else f"**{_escape(kb_name)}**: {t(lang, 'nothing_ingested')}"]
        if report:
            lines += [f"- ❌ {_escape(f.name)}: {_escape(file_error(f.error or '', lang))}" for f in report.failed]
            lines += [f"- ⚠️ {_escape(f.name)}: {_escape(file_error(f.warning, lang))}" for f in report.files if f.warning]
        lines += [f"- ❌ {_escape(r['name'])}: {_escape(file_error(r['error'], lang))}" for r in refused + result.rejected]
        return "\n".join(lines), files_table(kb_name, lang), kb_choices()

    def delete_file(file_id: str, kb_name: str, lang: str = "en") -> tuple[str, list[list[Any]]]:
        try:
            row = service.remove_file(kb_name, (file_id or "").strip())
            return t(lang, "removed", name=_escape(row.name)), files_table(kb_name, lang)
        except ServiceError as exc:
            return failure(exc, lang), files_table(kb_name, lang)

    def reingest_file(file_id: str, kb_name: str, lang: str = "en", progress: Any = gr.Progress(),
                      request: Any = None) -> tuple[str, list[list[Any]]]:
        def step(p: Any) -> None:
            if not waited(p, progress, lang) and p.total:
                progress(p.done / p.total, desc=p.name)

        try:
            with watched(request) as closed:
                report = service.reingest_file(kb_name, (file_id or "").strip(), progress=step, gone=closed.is_set)
        except ServiceError as exc:
            return failure(exc, lang), files_table(kb_name, lang)
        failed = "".join(f"\n- ❌ {_escape(f.name)}: {_escape(file_error(f.error or '', lang))}" for f in report.failed)
        return t(lang, "reingested", summary=summary(report, lang)) + failed, files_table(kb_name, lang)

    def search_only(query: str, kb_name: str, top_k: float, threshold: float, lang: str = "en") -> str:
        if not isinstance(query, str) or not query.strip():
            return ""
        try:
            hits = service.search(kb_name, query, top_k=top_k, threshold=threshold)
            if not hits and service.is_empty(kb_name):
                return _escape(empty_kb(kb_name, zh=lang == "zh"))
        except ServiceError as exc:
            return failure(exc, lang)
        return sources_markdown(hits, question=query, lang=lang) if hits else t(lang, "no_chunk")

    def describe(kb_name: str, llm: str) -> dict[str, Any]:
        try:
            return service.describe(kb_name, llm)
        except ServiceError as exc:
            return {"error": exc.message}

    # --- the page ----------------------------------------------------------------------------------
    texts: list[tuple[Any, dict[str, str]]] = []  # (component, {property: text key}) for switching language

    def say(component: Any, **keys: str) -> Any:
        texts.append((component, keys))
        return component

    with gr.Blocks(title="kbqa", delete_cache=(SCRATCH_TTL_S, SCRATCH_TTL_S)) as app:
        lang = gr.State("en")
        shown = gr.State({})
        with gr.Row():
            say(gr.Markdown(t("en", "intro")), value="intro")
            lang_box = say(gr.Radio(list(LANGUAGES.values()), value=LANGUAGES["en"], label=t("en", "language"), scale=0, min_width=160,
                                    elem_id="language"), label="language")
        kb_box = say(gr.Dropdown(choices=names, value=kb, label=t("en", "kb"), allow_custom_value=True, elem_id="kb"), label="kb")
        with say(gr.Tab(t("en", "tab_chat"), elem_id="tab-chat"), label="tab_chat"):
            chatbot = say(gr.Chatbot(label=t("en", "chat"), height=420, buttons=["copy"], elem_id="chatbot"), label="chat")
            with gr.Row():
                question = say(gr.Textbox(placeholder=t("en", "question"), show_label=False, scale=5, elem_id="question"), placeholder="question")
                send = say(gr.Button(t("en", "ask"), variant="primary", scale=1, elem_id="ask-button"), value="ask")
            say(gr.Markdown(t("en", "pick_answer"), elem_id="pick-answer"), value="pick_answer")
            sources = gr.Markdown(elem_id="sources")
            with say(gr.Accordion(t("en", "source_pages_files"), open=False), label="source_pages_files"):
                pages = say(gr.Gallery(label=t("en", "source_pages"), columns=4, height=360, object_fit="contain", preview=False, elem_id="source-pages"),
                            label="source_pages")
                source_files = say(gr.File(label=t("en", "source_files"), file_count="multiple", interactive=False, elem_id="source-files"),
                                   label="source_files")
            clear = say(gr.Button(t("en", "clear")), value="clear")
        with say(gr.Tab(t("en", "tab_kbs"), elem_id="tab-kbs"), label="tab_kbs"):
            status = gr.Markdown(elem_id="ingest-status")
            with gr.Row():
                new_name = say(gr.Textbox(label=t("en", "new_kb"), placeholder=t("en", "new_kb_hint"), scale=3, elem_id="new-kb"),
                               label="new_kb", placeholder="new_kb_hint")
                create_btn = say(gr.Button(t("en", "create"), scale=1, elem_id="create-kb"), value="create")
            with gr.Row():
                uploads = say(gr.File(file_count="multiple", label=t("en", "uploads"), elem_id="uploads"), label="uploads")
                folder_upload = say(gr.File(file_count="directory", label=t("en", "folder_upload"), elem_id="folder-upload"), label="folder_upload")
            folder_paths = gr.Textbox(visible=False)  # the folder's files' paths, which the page sends at Ingest (folder_hints)
            ingest_btn = say(gr.Button(t("en", "ingest"), variant="primary", elem_id="ingest-button"), value="ingest")
            table = gr.Dataframe(headers=t("en", "headers").split("|"), value=files_table(kb), interactive=False, elem_id="files")
            with gr.Row():
                file_id = say(gr.Textbox(label=t("en", "file_id"), scale=3, elem_id="file-id"), label="file_id")
                reingest_btn = say(gr.Button(t("en", "reingest"), scale=1, elem_id="reingest-button"), value="reingest")
                delete_btn = say(gr.Button(t("en", "delete_file"), scale=1, elem_id="delete-button"), value="delete_file")
            search_box = say(gr.Textbox(label=t("en", "search"), elem_id="search"), label="search")
            search_out = gr.Markdown(elem_id="search-results")
            with say(gr.Accordion(t("en", "drop_section"), open=False), label="drop_section"):
                confirm = say(gr.Textbox(label=t("en", "confirm"), elem_id="confirm-drop"), label="confirm")
                drop_btn = say(gr.Button(t("en", "drop"), variant="stop", elem_id="drop-kb"), value="drop")
        with say(gr.Tab(t("en", "tab_settings"), elem_id="tab-settings"), label="tab_settings"):
            say(gr.Markdown(t("en", "settings_intro")), value="settings_intro")
            with gr.Row():
                with gr.Column(scale=1):
                    llm_box = say(gr.Dropdown(choices=llm_names, value=config.llm.model, label=t("en", "llm"), elem_id="llm"), label="llm")
                    if llm_missing:
                        with say(gr.Accordion(t("en", "llm_missing_title"), open=False, elem_id="llm-missing"), label="llm_missing_title"):
                            say(gr.Markdown(t("en", "llm_missing")), value="llm_missing")
                            gr.Markdown(missing_markdown(llm_missing), elem_id="llm-missing-list")
                    top_k = say(gr.Slider(1, 10, value=config.retrieval.top_k, step=1, label=t("en", "top_k"), elem_id="top-k"), label="top_k")
                    threshold = say(gr.Slider(0, 1, value=config.retrieval.threshold, step=0.05, label=t("en", "threshold"), elem_id="threshold"),
                                    label="threshold")
                    temperature = say(gr.Slider(0, 1.5, value=config.llm.temperature, step=0.05, label=t("en", "temperature"), elem_id="temperature"),
                                      label="temperature")
                    # empty: the embedding model's calibrated cut for the question's language
                    answer_conf = say(gr.Number(value=config.retrieval.answer_confidence, minimum=0, maximum=1, step=0.05,
                                                label=t("en", "answer_confidence"), elem_id="answer-confidence"), label="answer_confidence")
                with gr.Column(scale=2):
                    info = say(gr.JSON(label=t("en", "facts"), elem_id="models-info"), label="facts")
                    refresh = say(gr.Button(t("en", "refresh"), elem_id="models-refresh"), value="refresh")

        # events: the language (a hidden State) is an input of every handler that writes a message;
        # gradio_client calls get English
        inputs = [question, chatbot, kb_box, top_k, threshold, llm_box, temperature, lang, shown, answer_conf]
        outputs = [chatbot, sources, question, pages, source_files, shown]
        # a question asked while the previous answer is still finishing (its page images) runs right after it:
        # Ask and Enter are one event, so a question sent one way while one sent the other way is answered
        # waits too (as two events, both ran at once, each on its own copy of the chat, and one answer was lost)
        answering = gr.on([send.click, question.submit], chat, inputs, outputs, api_name="chat", trigger_mode="always_last")
        # Clear stops the answer being written (it came back into the emptied chat when it finished)
        def clear_all(request: Any = None) -> tuple[Any, ...]:
            clear_chat(request)
            return [], "", [], None, {}

        def clear_views(request: Any = None) -> tuple[Any, ...]:  # the chat's own trash button: it empties the chat itself
            clear_chat(request)
            return "", [], None, {}

        clear.click(clear_all, None, [chatbot, sources, pages, source_files, shown], api_visibility="private", cancels=[answering])
        chatbot.clear(clear_views, None, [sources, pages, source_files, shown], api_visibility="private", cancels=[answering])
        answer_out, sources_out = gr.Textbox(visible=False), gr.Markdown(visible=False)
        gr.Button(visible=False).click(ask, [question, kb_box, top_k, threshold, llm_box, lang, answer_conf], [answer_out, sources_out], api_name="ask")
        create_btn.click(create_kb, [new_name, lang], [status, kb_box, table], api_name="create_kb")
        # progress shows once, in the status line; the upload boxes are emptied once their files are in
        ingest_btn.click(upload, [uploads, folder_upload, kb_box, lang, folder_paths], [status, table, kb_box], api_name="upload",
                         show_progress_on=status, js=SEND_FOLDER_PATHS).then(
            lambda: (None, None), None, [uploads, folder_upload], api_visibility="private")
        delete_btn.click(delete_file, [file_id, kb_box, lang], [status, table], api_name="delete_file", show_progress_on=status)
        reingest_btn.click(reingest_file, [file_id, kb_box, lang], [status, table], api_name="reingest_file", show_progress_on=status)
        search_box.submit(search_only, [search_box, kb_box, top_k, threshold, lang], search_out, api_name="search")
        drop_btn.click(delete_kb, [kb_box, confirm, lang], [status, kb_box, table], api_name="delete_kb")
        kb_box.change(files_table, [kb_box, lang], table, api_visibility="private")
        refresh.click(describe, [kb_box, llm_box], info, api_name="describe")

        components = [c for c, _ in texts]

        def relabel(code: str, kb_name: str) -> list[Any]:
            updates = [code]
            for component, keys in texts:
                values = {prop: t(code, key) for prop, key in keys.items()}
                if component is lang_box:
                    values["value"] = LANGUAGES[code]
                if component is kb_box:  # a page opened now lists what was created since the server started
                    values["choices"] = kb_names(kb_name)
                updates.append(gr.update(**values))
            updates.append(gr.update(headers=t(code, "headers").split("|"), value=files_table(kb_name, code)))
            return updates

        def from_browser(kb_name: str, llm: str, request: gr.Request) -> list[Any]:
            return [*relabel(language(request.headers.get("accept-language") if request else None), kb_name), describe(kb_name, llm)]

        def switch(choice: str, kb_name: str) -> list[Any]:
            return relabel(next((code for code, name in LANGUAGES.items() if name == choice), "en"), kb_name)

        # Gradio finds its special arguments by their annotations' types, not by the strings that
        # `from __future__ import annotations` leaves
        from_browser.__annotations__["request"] = gr.Request
        upload.__annotations__["request"] = reingest_file.__annotations__["request"] = tab_closed.__annotations__["request"] = gr.Request
        chat.__annotations__["request"] = clear_all.__annotations__["request"] = clear_views.__annotations__["request"] = gr.Request
        app.unload(tab_closed)
        select_answer.__annotations__["selected"] = gr.EventData
        app.load(from_browser, [kb_box, llm_box], [lang, *components, table, info], api_visibility="private")
        chatbot.select(select_answer, shown, [sources, pages, source_files], api_visibility="private")
        lang_box.input(switch, [lang_box, kb_box], [lang, *components, table], api_visibility="private")
    for box in (uploads, folder_upload):
        box.preprocess = received_paths
    for block in app.blocks.values():
        read_or_say_why(block)
    check_histories(app)
    return app


def received_paths(payload: Any) -> list[Any] | None:
    """What a gr.File of type "filepath" hands its event: the paths of the files in Gradio's cache, without
    the empty temporary file Gradio's own preprocess makes for each of them and never removes (found by
    review: an event naming one file 20,000 times left 20,000 empty files in the cache)."""
    from gradio.data_classes import ListFiles
    from gradio.utils import NamedString

    if payload is None:
        return None
    return [NamedString(f.path) for f in (payload.root if isinstance(payload, ListFiles) else [payload])]


def read_or_say_why(block: Any) -> None:
    """Make a component's reading of what a client sent (Gradio's preprocess: "abc" as a slider's number,
    a string as the chat's history) fail with a message that names the field and the value, for that
    request only and without a traceback in the server's log, instead of Gradio's bare "Error" (and its
    traceback) for the API clients that can send such values; a browser's own controls cannot."""
    import gradio as gr

    read = getattr(block, "preprocess", None)
    if read is None:
        return

    def preprocess(payload: Any) -> Any:
        try:
            return read(payload)
        except gr.Error as exc:  # Gradio's own clear ones ("Value 11 is greater than maximum value 10."): without the traceback
            raise gr.Error(str(exc.message), print_exception=False) from None
        except OSError:  # the server's fault, a 500 in the log, not the client's "cannot read" (found by review: Gradio's cache
            raise  # folder gone; a file the client names that is gone is said per file by the service: not uploaded to this page)
        except Exception:
            name = getattr(block, "label", None) or getattr(block, "elem_id", None) or type(block).__name__
            raise gr.Error(f"{name}: cannot read {_short(repr(payload), 80)}; send a value of the kind the field takes",
                           print_exception=False) from None

    block.preprocess = preprocess


def check_histories(app: Any) -> None:
    """A chat history an API client sends that is not a list of messages: the same clear error as
    read_or_say_why's (Gradio reads a Chatbot's value into its data model before preprocess, where a
    failure is its bare "Error")."""
    import gradio as gr

    validate = app.validate_inputs

    def validate_inputs(block_fn: Any, inputs: list[Any]) -> None:
        try:
            validate(block_fn, inputs)
        except ValueError:  # too few or too many values (Gradio's message lists the components' reprs; its traceback went to the log)
            name = getattr(block_fn, "api_name", None) or getattr(block_fn, "name", "this event")
            raise gr.Error(f"{name}: expected {len(block_fn.inputs)} input values, got {len(inputs)} "
                           "(GET /gradio_api/info lists each event's inputs)", print_exception=False) from None
        for block, value in zip(block_fn.inputs, inputs):
            if isinstance(block, (gr.Chatbot, gr.File)) and value is not None:
                try:  # (validate_meta: a file part must say it is one, as Gradio checks later, with a traceback)
                    block.data_model.model_validate(value, context={"validate_meta": True})
                except Exception:
                    if isinstance(block, gr.File):  # (found by review: "abc" as the upload's files was a 500 with a traceback)
                        raise gr.Error(f"{block.label or 'files'}: cannot read {_short(repr(value), 80)}; send a list of files uploaded to "
                                       "this page ([{'path': …, 'meta': {'_type': 'gradio.FileData'}}])", print_exception=False) from None
                    raise gr.Error(f"{block.label or 'history'}: cannot read {_short(repr(value), 80)}; send a list of messages "
                                   "({'role': 'user' or 'assistant', 'content': [{'type': 'text', 'text': …}]})", print_exception=False) from None

    app.validate_inputs = validate_inputs


class KnownEvents:
    """Refuses a call of the page's events that names none of them, with a message: an fn_index the page
    lacks (/gradio_api/queue/join, /run/NAME, /api/NAME: 400), a NAME it lacks (/run, /api, /call,
    /call/v2: 404). (Found by review: each was Gradio's 500, with a KeyError traceback in the log.)
    Placed inside BodyLimit, whose limits hold for the body this reads whole. With --auth, a call
    without a login is left to Gradio's 401: which events the page has is no stranger's business, and
    nothing of its body is read here."""

    ROUTE = re.compile(r"/gradio_api/(?:(queue/join)|(run|api|call|call/v2)/([^/]+))/?")

    def __init__(self, app: Any, known: set[int], names: set[str], public: set[str]) -> None:
        self.app, self.known, self.names, self.public = app, known, names, public

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        route = self.ROUTE.fullmatch(scope["path"]) if scope["type"] == "http" and scope.get("method") == "POST" else None
        if route is None or self._logged_out(scope):
            await self.app(scope, receive, send)
            return
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse

        _, kind, name = route.groups()
        if name is not None and name not in (self.public if kind == "call/v2" else self.names):
            message = f"no event of this page is named {_short(repr(name), 60)} (GET /gradio_api/info lists them)"
            await JSONResponse({"detail": message}, status_code=404)(scope, receive, send)
            return
        if kind == "call" or kind == "call/v2":  # (these take no fn_index)
            await self.app(scope, receive, send)
            return
        events: list[dict[str, Any]] = []
        pieces: list[bytes] = []
        try:
            while True:
                event = await receive()
                events.append(event)
                if event["type"] != "http.request":
                    break
                pieces.append(event.get("body", b""))
                if not event.get("more_body"):
                    break
        except HTTPException as exc:  # BodyLimit's 413 (a chunked body over the limit), answered here: no route reads it
            await JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)(scope, receive, send)
            return
        try:
            named = json.loads(b"".join(pieces)).get("fn_index")
        except (ValueError, AttributeError, RecursionError):  # not JSON, not an object, nested too deep: Gradio's own 4xx says so
            named = None
        if named is not None and (type(named) is not int or named not in self.known):
            message = f"fn_index {_short(repr(named), 40)} names no event of this page: reload the page (GET /config lists its events)"
            await JSONResponse({"detail": message}, status_code=400)(scope, receive, send)
            return

        async def replay() -> dict[str, Any]:
            return events.pop(0) if events else await receive()

        await self.app(scope, replay, self._refusing_bad_input(send) if kind in ("run", "api") else send)

    @staticmethod
    def _refusing_bad_input(send: Any) -> Any:
        """/run/NAME and /api/NAME answer a value the event cannot take (top_k "five", a history that is
        not a list) with Gradio's 500 and kbqa's message: it is the client's error, 400 (found by review:
        "never a 500 for bad input"; /call/NAME says it as an error event). Gradio's message is null for
        an error of the server's own (show_error off): that stays a 500."""
        held: list[dict[str, Any]] = []

        async def said(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] == 500:
                held.append(message)
                return
            if held and message["type"] == "http.response.body":
                held.append(message)
                if message.get("more_body"):
                    return
                body = b"".join(m.get("body", b"") for m in held[1:])
                try:
                    client_error = isinstance(json.loads(body).get("error"), str)
                except (ValueError, AttributeError):
                    client_error = False
                start = {**held[0], "status": 400} if client_error else held[0]
                held.clear()
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        return said

    @staticmethod
    def _logged_out(scope: dict[str, Any]) -> bool:
        """With --auth, whether the request carries no login Gradio knows (its own check, read early)."""
        gradio_app = scope.get("app")
        if getattr(gradio_app, "auth", None) is None:
            return False
        from starlette.requests import HTTPConnection

        cookies = HTTPConnection(scope).cookies
        cookie_id = getattr(gradio_app, "cookie_id", "")
        token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
        return token is None or gradio_app.tokens.get(token) is None


class LoginThrottle:
    """With --auth: at most FAILURES failed logins from one address within WINDOW_S seconds; the
    next, right or wrong, get 429 with Retry-After until the oldest of them is that old. (Found by
    review: 500 wrong passwords took 0.8 s, and --auth is what lets a server listen beyond this
    machine.) An attempt counts as failed from when it arrives until it succeeds, so a burst of
    parallel guesses is held to FAILURES too. Behind a reverse proxy every client has the proxy's
    address: limit logins there (README)."""

    FAILURES = 10
    WINDOW_S = 60.0
    ADDRESSES = 10_000  # addresses remembered at most (the oldest failures are forgotten first)

    def __init__(self, app: Any) -> None:
        self.app = app
        self.failed: dict[str, list[float]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope["path"].rstrip("/") != "/login":
            await self.app(scope, receive, send)
            return
        address = str((scope.get("client") or ("unknown",))[0])
        now = time.monotonic()
        recent = [t for t in self.failed.get(address, []) if now - t < self.WINDOW_S]
        if len(recent) >= self.FAILURES:
            from starlette.responses import JSONResponse

            wait = int(self.WINDOW_S - (now - recent[0])) + 1
            await JSONResponse({"detail": f"Too many failed logins from this address: try again in {wait} s."}, status_code=429,
                               headers={"Retry-After": str(wait)})(scope, receive, send)
            return
        recent.append(now)
        self.failed[address] = recent
        if len(self.failed) > self.ADDRESSES:
            for stale in sorted(self.failed, key=lambda a: self.failed[a][-1] if self.failed[a] else 0)[: len(self.failed) - self.ADDRESSES]:
                del self.failed[stale]
        status = [0]

        async def watched(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            if status[0] == 200:  # logged in: its failures are forgotten
                self.failed.pop(address, None)


class KeptLogins:
    """With --auth: a login outlives a restart of the server. Gradio keeps its logins in memory, under
    a cookie named anew at each start, so after a restart every open page showed a bare "Error" on its
    next question until it was reloaded and its user logged in again (found by review). The cookie's
    name and the logins are kept in `path` (only this user may read it; one file per port, as a
    browser sends a host's cookies to each of its ports): each login as a hash of its token, which no
    cookie can stand for (_Logins), and the whole --auth list as a slow salted hash, so that any change
    to it (a user removed, a password changed) logs everyone out at the next start, as every start did
    before. At most MOST logins are kept (the oldest are forgotten); logging out (Gradio's /logout)
    forgets them too. A file that cannot be read as such (or over MOST_BYTES) is started anew, with a
    warning in the log."""

    MOST = 1000
    MOST_BYTES = 1_000_000
    _COOKIE_ID = re.compile(r"[A-Za-z0-9_-]{16,128}")

    def __init__(self, app: Any, path: Path, users: list[tuple[str, str]]) -> None:
        self.app = app
        self.path = path
        self.users = sorted(users)
        self.adopted = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not self.adopted and scope["type"] in ("http", "websocket") and hasattr(scope.get("app"), "tokens"):
            self.adopted = True
            self.adopt(scope["app"])
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith("/queue/join"):
            send = self._saying_login_ended(send)
        await self.app(scope, receive, send)

    ENDED = ("Not logged in, or your login has ended (you logged out, or the server's users or passwords changed): reload the page "
             "and log in. 未登录或登录已失效（已退出登录，或服务器的用户、密码已更改）：请刷新页面并登录。")

    @classmethod
    def _saying_login_ended(cls, send: Any) -> Any:
        """A question from a page whose login has ended gets Gradio's 401 with this as its message: the page
        shows a message only when the detail is text, and Gradio's is an object, so the page showed bare
        "Error" badges (found by review, after a password change)."""
        replaced = False

        async def said(message: dict[str, Any]) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 401:
                replaced = True
                body = json.dumps({"detail": cls.ENDED}, ensure_ascii=False).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
            elif not replaced:
                await send(message)

        return said

    def adopt(self, gradio_app: Any) -> None:
        """Give Gradio's app the kept cookie name and logins (at the first request, before any login)."""
        import hashlib
        import secrets

        log = logging.getLogger("kbqa.webui")
        names = {user for user, _ in self.users}
        fingerprint_of = lambda salt: hashlib.pbkdf2_hmac("sha256", json.dumps(self.users).encode(), salt, 200_000).hex()  # noqa: E731
        cookie, kept = gradio_app.cookie_id, {}
        try:
            state = self._read() or {}
            salt = bytes.fromhex(state["salt"]) if state else secrets.token_bytes(16)
            fingerprint = fingerprint_of(salt)
            # (another --auth list: no login is kept, and the cookie is named anew)
            if state and state["users"] == fingerprint and isinstance(state["cookie_id"], str) and self._COOKIE_ID.fullmatch(state["cookie_id"]):
                cookie = state["cookie_id"]
                kept = {h: u for h, u in dict(state["logins"]).items()
                        if isinstance(h, str) and re.fullmatch("[0-9a-f]{64}", h) and isinstance(u, str) and u in names}
                kept = dict(list(kept.items())[-self.MOST :])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("the web chat's kept logins in %s could not be read (%s): everyone logs in again", self.path, exc)
            salt = secrets.token_bytes(16)
            fingerprint, cookie, kept = fingerprint_of(salt), gradio_app.cookie_id, {}

        def save(now: dict[str, str]) -> None:
            from ingest.atomic import replacing

            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with replacing(self.path, 0o600) as tmp:
                    tmp.write_text(json.dumps({"salt": salt.hex(), "cookie_id": cookie, "users": fingerprint, "logins": now}), encoding="utf-8")
            except OSError as exc:  # a full disk: the logins still work until the next start
                log.warning("could not keep the web chat's logins in %s: %s", self.path, exc)

        gradio_app.cookie_id = cookie
        gradio_app.tokens = _Logins(kept, save, self.MOST)
        save(kept)

    def _read(self) -> dict[str, Any] | None:
        try:
            if self.path.is_symlink():  # (never read through a link left in the home; the next save replaces it)
                raise ValueError("a symbolic link")
            if self.path.stat().st_size > self.MOST_BYTES:
                raise ValueError(f"over {self.MOST_BYTES} bytes")
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(str(exc)) from None
        if not isinstance(state, dict):
            raise ValueError("not an object")
        return state


class _Kept:
    """A login as _Logins.keys() gives it: its token's hash, which only the table itself takes back."""

    __slots__ = ("digest",)

    def __init__(self, digest: str) -> None:
        self.digest = digest


class _Logins(dict):  # type: ignore[type-arg]
    """Gradio's token -> user table, kept by the tokens' hashes and written to its file at each login
    and logout (KeptLogins). A cookie's token is always hashed before it is looked up, so a hash from
    the file is no token (found by review: sent as the cookie, it logged in). Gradio's /logout walks
    keys() and deletes its user's logins, in several threads at once: a key is a _Kept, and one
    another logout took already is no error (found by review: 500s, and logins left)."""

    def __init__(self, logins: dict[str, str], save: Callable[[dict[str, str]], None], most: int) -> None:
        super().__init__(logins)
        self.save, self.most = save, most
        self.lock = threading.Lock()

    @staticmethod
    def _key(token: Any) -> str:
        import hashlib

        if isinstance(token, _Kept):
            return token.digest
        return hashlib.sha256(str(token).encode("utf-8", "replace")).hexdigest()

    def keys(self) -> list[_Kept]:  # type: ignore[override]
        with self.lock:
            return [_Kept(h) for h in super().keys()]

    def __iter__(self) -> Iterator[_Kept]:  # type: ignore[override]
        return iter(self.keys())

    def __getitem__(self, token: Any) -> Any:
        found = super().get(self._key(token))
        if found is None and not isinstance(token, _Kept):
            raise KeyError("no such login")
        return found  # (None for a login another logout took)

    def get(self, token: Any, default: Any = None) -> Any:
        return super().get(self._key(token), default)

    def __contains__(self, token: object) -> bool:
        return super().__contains__(self._key(token))

    def __setitem__(self, token: str, user: str) -> None:
        with self.lock:
            super().__setitem__(self._key(token), user)
            while len(self) > self.most:
                super().__delitem__(next(iter(super().keys())))
            self.save(dict(self.items()))

    def __delitem__(self, token: Any) -> None:
        with self.lock:
            if super().pop(self._key(token), None) is not None:
                self.save(dict(self.items()))

    def pop(self, token: Any, *default: Any) -> Any:
        with self.lock:
            found = super().pop(self._key(token), *default)
            self.save(dict(self.items()))
            return found


def launch(config: Config, kb: str = "default", host: str = "127.0.0.1", port: int = 7860, auth: list[tuple[str, str]] | None = None) -> None:
    service = Service(config)
    app = build_app(config, kb, service)
    stopped_by = _stop_on_signals(service)
    if config.server.warm_up:
        service.warm_up(kb)  # the first question does not wait for the models to load
    # Gradio runs each event one at a time unless told otherwise; kbqa's service queues the LLM
    # itself (telling each user their place), so searches, uploads and chats run side by side.
    concurrency = config.server.max_queue + 2 * config.server.llm_instances + 4
    shown = f"[{host}]" if ":" in host else host
    print(f"kbqa web chat on http://{shown}:{port}/  (Ctrl-C to stop)", flush=True)
    from kbqa.headtimeout import use_for_gradio

    use_for_gradio(config.server.header_timeout_s, config.server.body_timeout_s)  # slow or idle clients do not hold sockets for good
    from starlette.middleware import Middleware

    from kbqa.api import BodyLimit, body_caps

    from gradio.utils import get_upload_folder

    from kbqa.uploads import short_of_disk

    json_bytes, _ = body_caps(config)  # bodies over server.max_request_mb get 413, as on `kbqa api` (uploads: see BodyLimit)
    places = [config.home_dir(), Path(get_upload_folder())]  # an upload's body lands in Gradio's folder first, then in the home

    def disk() -> str | None:  # (the page shows it as it comes, before it knows the page's language: in both)
        short = short_of_disk(places, config.server.min_free_disk_mb)
        return f"{short}\n{file_error(short, 'zh')}" if short is not None else None

    limit = Middleware(BodyLimit, json_bytes=json_bytes, upload_bytes=None, upload_suffix="/gradio_api/upload", disk=disk, gradio=True)
    known = Middleware(KnownEvents, known=set(app.fns), names={fn.api_name for fn in app.fns.values() if fn.api_name},
                       public={fn.api_name for fn in app.fns.values() if fn.api_name and fn.api_visibility == "public"})
    try:
        app.queue(default_concurrency_limit=concurrency, max_size=concurrency * 2).launch(
            quiet=True,  # no Gradio banner ("set share=True..."): kbqa never shares a public link
            server_name=host, server_port=port, auth=auth, allowed_paths=[str(config.home_dir() / "cache" / "web")],
            show_error=False,  # expected problems come back as messages; anything else must not show server paths
            # a file over webui.max_upload_mb in a batch or a folder is named by the service, and the rest stored (Gradio
            # refused the whole request at once): Gradio's own cap is the most a request may store, ten times that
            max_file_size=f"{10 * config.webui.max_upload_mb:g}mb", head=FOLDER_PATHS_SCRIPT,
            app_kwargs={"middleware": [limit, known, *([Middleware(LoginThrottle), Middleware(
                KeptLogins, path=config.home_dir() / "cache" / f"web-logins-{port}.json", users=auth)] if auth else [])]},
            # each session's state stays in memory (some 0.2 MB; Gradio keeps 10,000 sessions' worth): see keep_no_session_values
            state_session_capacity=config.webui.max_sessions)
    except KeyboardInterrupt:  # (a signal while Gradio was still starting)
        if not stopped_by:
            raise
    if stopped_by:
        raise SystemExit(128 + stopped_by[0])  # as `kbqa api` and other servers: 143 after SIGTERM, 130 after Ctrl-C


STOP_WAIT_S = 15  # how long a stop waits for running uploads to stop at their next file or page and say so


def _stop_on_signals(service: Service) -> list[int]:
    """SIGTERM or Ctrl-C: as `kbqa api` does, waiting requests are refused and running generations
    end at their next piece, a running upload stops at its next file or page and tells its user how
    many files were kept (the stored copies of the others are removed); then the server closes.
    (Without this, SIGTERM ended the process at once: an upload was cut without a word and its
    stored copies stayed until the next upload.)"""
    import signal

    stopped_by: list[int] = []  # the signal that stopped it

    def stop(signum: int, frame: Any) -> None:
        stopped_by.append(signum)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second signal ends it at once
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("kbqa web chat: stopping", flush=True)
        service.stop()
        deadline = time.monotonic() + STOP_WAIT_S
        while service.ingests()["running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # the last messages reach the browsers
        raise KeyboardInterrupt  # Gradio closes its server on this

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return stopped_by
