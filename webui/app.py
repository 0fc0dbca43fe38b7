"""The Gradio web app: chat with a knowledge base, see sources, upload files. Uses kbqa's public API only."""

from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from kbqa.config import Config  # noqa: E402
from kbqa.highlight import passage_span  # noqa: E402
from kbqa.kb import safe_filename  # noqa: E402
from kbqa.service import Service, ServiceError  # noqa: E402

safe_name = safe_filename


def _escape(text: str) -> str:
    """Plain text made safe inside Markdown: no HTML, no accidental emphasis, headings or tables."""
    text = html.escape(text, quote=False)
    return re.sub(r"([\\`*_#|\[\]~])", r"\\\1", text)


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


def sources_markdown(sources: list[Any], answered: bool = True, question: str = "") -> str:
    if not answered:
        return "**No source passed the relevance threshold** — the documents do not seem to hold this; the LLM was not called."
    if not sources:
        return ""
    lines = ["**Sources**", ""]
    for i, h in enumerate(sources, start=1):
        lines.append(f"**[{i}] {_escape(h.cite())}** · relevance {h.relevance:.2f}  ")
        lines.append(f"> {highlighted_snippet(h.text, question)}")
        lines.append("")
    return "\n".join(lines)


SCRATCH_TTL_S = 3600  # page images and source copies handed to browsers are kept this long


def web_scratch(config: Config) -> Path:
    """The web app's own folder inside the kbqa home (page images, source copies), emptied at start;
    Gradio's cache goes beside it, so the app writes nothing outside the home."""
    root = config.home_dir() / "cache" / "web"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GRADIO_TEMP_DIR", str(config.home_dir() / "cache" / "gradio"))
    return root


def forget_old(scratch: Path, age_s: float = SCRATCH_TTL_S) -> None:
    """Remove what was handed to browsers more than age_s ago."""
    import time

    for folder in scratch.iterdir():
        try:
            if time.time() - folder.stat().st_mtime > age_s:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass


def build_app(config: Config, kb: str = "default") -> Any:
    scratch = web_scratch(config)  # before gradio is imported: it reads GRADIO_TEMP_DIR
    import gradio as gr

    service = Service(config)
    names = service.names()
    if kb not in names:
        names = [kb] + names
    llm_names = service.llm_choices()  # only models on this machine: a click never starts a download

    def kb_choices(value: str | None = None) -> Any:
        current = sorted(set(service.names()) | ({value} if value else set()))
        return gr.update(choices=current, value=value) if value else gr.update(choices=current)

    # --- chat --------------------------------------------------------------------------------
    def ask(question: str, kb_name: str, top_k: float, threshold: float, llm: str) -> tuple[str, str]:
        """Answer one question: returns (answer, sources as Markdown)."""
        text, sources = "", ""
        for text, sources, _ in _answer(question, [], kb_name, top_k, threshold, llm, None):
            pass
        return text, sources

    def _answer(
        question: str, history: list[dict[str, str]], kb_name: str, top_k: float, threshold: float, llm: str, temperature: float | None
    ) -> Iterator[tuple[str, str, list[Any]]]:
        if not isinstance(question, str) or not question.strip():
            yield "", "", []
            return
        reply = None
        try:
            reply = service.ask(kb_name, question, history=history, top_k=top_k, threshold=threshold, model=llm, temperature=temperature)
            sources = sources_markdown(reply.sources, reply.answered, reply.query)
            if reply.query != question:
                sources = f"*Searched for:* {_escape(reply.query)}\n\n" + sources
            for ahead in reply.waiting():
                yield f"⏳ Waiting for the LLM: {ahead} question(s) ahead of yours…", sources, []
            text = ""
            for piece in reply:
                text += piece
                yield text, sources, []
            yield text, sources, list(reply.sources)
        except ServiceError as exc:
            yield f"⚠️ {exc.message}", "", []
        finally:
            if reply is not None:
                reply.close()

    def source_views(kb_name: str, hits: list[Any]) -> tuple[list[tuple[str, str]], list[str]]:
        """PNGs of the PDF pages the sources come from, and copies of the source files to download."""
        forget_old(scratch)
        folder = Path(tempfile.mkdtemp(dir=scratch))
        pages, files, seen = [], [], set()
        for i, h in enumerate(hits, start=1):
            if h.path and h.page and (h.path, h.page) not in seen:
                seen.add((h.path, h.page))
                png = service.page_image(kb_name, h.path, h.page)
                if png:
                    image = folder / f"source-{i}-p{h.page}.png"
                    image.write_bytes(png)
                    pages.append((str(image), f"[{i}] {h.cite()}"))
            stored = service.source_file(kb_name, h.path) if h.path and h.path not in seen else None
            if stored is not None:
                seen.add(h.path)
                copy = folder / f"{i}" / safe_name(h.file)
                copy.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(stored, copy)  # uploads live in the home too: a link costs nothing
                except OSError:
                    shutil.copyfile(stored, copy)
                files.append(str(copy))
        return pages, files

    def chat(
        message: str, history: list[dict[str, Any]], kb_name: str, top_k: float, threshold: float, llm: str, temperature: float
    ) -> Iterator[tuple[Any, str, str, Any, Any]]:
        earlier = [{"role": m["role"], "content": str(m.get("content") or "")} for m in (history or [])
                   if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
        history = list(history or []) + [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        hits: list[Any] = []
        sources = ""
        cleared = False  # the question box is emptied once: later updates must not wipe the next question being typed
        for text, sources, hits in _answer(message, earlier, kb_name, top_k, threshold, llm, temperature):
            history[-1] = {"role": "assistant", "content": text}
            yield history, sources, gr.skip() if cleared else "", gr.skip(), gr.skip()
            cleared = True
        try:
            pages, files = source_views(kb_name, hits) if hits else ([], [])
        except ServiceError:
            pages, files = [], []
        yield history, sources, gr.skip() if cleared else "", pages, files or None

    # --- knowledge bases -----------------------------------------------------------------------
    def files_table(kb_name: str) -> list[list[Any]]:
        try:
            rows = service.files(kb_name)
        except ServiceError:
            return []
        return [[r.id, r.name, r.status, r.pages or "", r.chunks, round(r.seconds or 0, 2), r.error or ""] for r in rows]

    def create_kb(new_name: str) -> tuple[str, Any, list[list[Any]]]:
        name = (new_name or "").strip()
        try:
            service.create(name)
        except ServiceError as exc:
            return f"⚠️ {_escape(exc.message)}", kb_choices(), []
        return f"Created knowledge base **{_escape(name)}**. Upload files to fill it.", kb_choices(name), files_table(name)

    def delete_kb(kb_name: str, confirm: str) -> tuple[str, Any, list[list[Any]]]:
        if (confirm or "").strip() != kb_name:
            return f"Type the name **{_escape(str(kb_name))}** in the confirmation box to delete it.", gr.update(), files_table(kb_name)
        try:
            service.drop(kb_name)
        except ServiceError as exc:
            return f"⚠️ {_escape(exc.message)}", gr.update(), files_table(kb_name)
        left = service.names()
        return f"Deleted knowledge base **{_escape(kb_name)}** and its files.", gr.update(choices=left, value=left[0] if left else None), []

    def upload(files: list[Any] | None, folder_files: list[Any] | None, kb_name: str, progress: Any = gr.Progress()) -> tuple[str, list[list[Any]], Any]:
        chosen = list(files or []) + list(folder_files or [])
        if not chosen:
            return "Choose files, a zip or a folder to upload first.", files_table(kb_name), kb_choices()

        def step(p: Any) -> None:
            if p.total:
                where = f", page {p.page} of {p.pages}" if p.page else ""
                progress(p.done / p.total, desc=f"{p.name}{where} ({p.done}/{p.total})")

        handles = []
        try:
            for f in chosen:  # files Gradio has received into its own temporary folder
                src = Path(getattr(f, "name", f))
                handles.append((getattr(f, "orig_name", None) or src.name, src.open("rb")))
            result = service.upload(kb_name, handles, progress=step)
        except ServiceError as exc:
            return f"⚠️ {_escape(exc.message)}", files_table(kb_name), kb_choices()
        finally:
            for _, fh in handles:
                fh.close()
        report = result.report
        lines = [f"**{_escape(kb_name)}**: {report.summary()}" if report else f"**{_escape(kb_name)}**: nothing ingested"]
        if report:
            lines += [f"- ❌ {_escape(f.name)}: {_escape(f.error or '')}" for f in report.failed]
        lines += [f"- ❌ {_escape(r['name'])}: {_escape(r['error'])}" for r in result.rejected]
        return "\n".join(lines), files_table(kb_name), kb_choices()

    def delete_file(file_id: str, kb_name: str) -> tuple[str, list[list[Any]]]:
        try:
            row = service.remove_file(kb_name, (file_id or "").strip())
            return f"Removed {_escape(row.name)}.", files_table(kb_name)
        except ServiceError as exc:
            return f"⚠️ {_escape(exc.message)}", files_table(kb_name)

    def reingest_file(file_id: str, kb_name: str, progress: Any = gr.Progress()) -> tuple[str, list[list[Any]]]:
        def step(p: Any) -> None:
            if p.total:
                progress(p.done / p.total, desc=p.name)

        try:
            report = service.reingest_file(kb_name, (file_id or "").strip(), progress=step)
        except ServiceError as exc:
            return f"⚠️ {_escape(exc.message)}", files_table(kb_name)
        failed = "".join(f"\n- ❌ {_escape(f.name)}: {_escape(f.error or '')}" for f in report.failed)
        return f"Re-ingested: {report.summary()}{failed}", files_table(kb_name)

    def search_only(query: str, kb_name: str, top_k: float, threshold: float) -> str:
        if not isinstance(query, str) or not query.strip():
            return ""
        try:
            hits = service.search(kb_name, query, top_k=top_k, threshold=threshold)
        except ServiceError as exc:
            return f"⚠️ {_escape(exc.message)}"
        return sources_markdown(hits, question=query) if hits else "No chunk passed the relevance threshold."

    def describe(kb_name: str, llm: str) -> dict[str, Any]:
        try:
            return service.describe(kb_name, llm)
        except ServiceError as exc:
            return {"error": exc.message}

    with gr.Blocks(title="kbqa", delete_cache=(SCRATCH_TTL_S, SCRATCH_TTL_S)) as app:
        gr.Markdown("## kbqa — ask your documents\nAnswers come from your own files, with the file and page of each source. Nothing leaves this machine.")
        with gr.Row():
            kb_box = gr.Dropdown(choices=names, value=kb, label="Knowledge base", allow_custom_value=True, scale=2, elem_id="kb")
            llm_box = gr.Dropdown(choices=llm_names, value=config.llm.model, label="LLM", scale=1, elem_id="llm")
        with gr.Tab("Chat"):
            chatbot = gr.Chatbot(label="Chat", height=420, buttons=["copy"])
            with gr.Row():
                question = gr.Textbox(placeholder="Ask a question about your documents…", show_label=False, scale=5, elem_id="question")
                send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask-button")
            sources = gr.Markdown(elem_id="sources")
            with gr.Accordion("Source pages and files", open=False):
                pages = gr.Gallery(label="Source pages", columns=4, height=360, object_fit="contain", preview=False, elem_id="source-pages")
                source_files = gr.File(label="Source files", file_count="multiple", interactive=False, elem_id="source-files")
            with gr.Accordion("Settings", open=False):
                top_k = gr.Slider(1, 10, value=config.retrieval.top_k, step=1, label="Sources (top-k)")
                threshold = gr.Slider(0, 1, value=config.retrieval.threshold, step=0.05, label="Relevance threshold (0..1, higher = stricter)")
                temperature = gr.Slider(0, 1.5, value=config.llm.temperature, step=0.05, label="Temperature (0 = always the same answer)")
            clear = gr.Button("Clear history")
            inputs = [question, chatbot, kb_box, top_k, threshold, llm_box, temperature]
            outputs = [chatbot, sources, question, pages, source_files]
            send.click(chat, inputs, outputs, api_name="chat")
            question.submit(chat, inputs, outputs, api_visibility="private")
            clear.click(lambda: ([], "", [], None), None, [chatbot, sources, pages, source_files], api_visibility="private")
            answer_out, sources_out = gr.Textbox(visible=False), gr.Markdown(visible=False)
            gr.Button(visible=False).click(ask, [question, kb_box, top_k, threshold, llm_box], [answer_out, sources_out], api_name="ask")
        with gr.Tab("Knowledge bases"):
            status = gr.Markdown(elem_id="ingest-status")
            with gr.Row():
                new_name = gr.Textbox(label="New knowledge base", placeholder="letters, digits, - _ . or Chinese", scale=3, elem_id="new-kb")
                create_btn = gr.Button("Create", scale=1, elem_id="create-kb")
            with gr.Row():
                uploads = gr.File(file_count="multiple", label="Upload files or .zip archives to ingest", elem_id="uploads")
                folder_upload = gr.File(file_count="directory", label="…or a whole folder", elem_id="folder-upload")
            ingest_btn = gr.Button("Ingest", variant="primary", elem_id="ingest-button")
            table = gr.Dataframe(headers=["id", "file", "status", "pages", "chunks", "seconds", "error"], value=files_table(kb), interactive=False, elem_id="files")
            with gr.Row():
                file_id = gr.Textbox(label="File id or name", scale=3, elem_id="file-id")
                reingest_btn = gr.Button("Re-ingest file", scale=1, elem_id="reingest-button")
                delete_btn = gr.Button("Delete file", scale=1, elem_id="delete-button")
            search_box = gr.Textbox(label="Search only (retrieved chunks, no LLM)", elem_id="search")
            search_out = gr.Markdown(elem_id="search-results")
            with gr.Accordion("Delete this knowledge base", open=False):
                confirm = gr.Textbox(label="Type the knowledge base's name to confirm", elem_id="confirm-drop")
                drop_btn = gr.Button("Delete knowledge base", variant="stop", elem_id="drop-kb")
            create_btn.click(create_kb, new_name, [status, kb_box, table], api_name="create_kb")
            # progress shows once, in the status line; the upload boxes are emptied once their files are in
            ingest_btn.click(upload, [uploads, folder_upload, kb_box], [status, table, kb_box], api_name="upload", show_progress_on=status).then(
                lambda: (None, None), None, [uploads, folder_upload], api_visibility="private")
            delete_btn.click(delete_file, [file_id, kb_box], [status, table], api_name="delete_file", show_progress_on=status)
            reingest_btn.click(reingest_file, [file_id, kb_box], [status, table], api_name="reingest_file", show_progress_on=status)
            search_box.submit(search_only, [search_box, kb_box, top_k, threshold], search_out, api_name="search")
            drop_btn.click(delete_kb, [kb_box, confirm], [status, kb_box, table], api_name="delete_kb")
            kb_box.change(files_table, kb_box, table, api_visibility="private")
        with gr.Tab("Models and settings"):
            gr.Markdown("What this knowledge base runs on: embedder, LLM (loaded on the first question), OCR, vector store, and this process's memory.")
            info = gr.JSON(elem_id="models-info")
            refresh = gr.Button("Refresh", elem_id="models-refresh")
            refresh.click(describe, [kb_box, llm_box], info, api_name="describe")
            app.load(describe, [kb_box, llm_box], info, api_visibility="private")
    return app

def launch(config: Config, kb: str = "default", host: str = "127.0.0.1", port: int = 7860, auth: list[tuple[str, str]] | None = None) -> None:
    app = build_app(config, kb)
    # Gradio runs each event one at a time unless told otherwise; kbqa's service queues the LLM
    # itself (telling each user their place), so searches, uploads and chats run side by side.
    concurrency = config.server.max_queue + 2 * config.server.llm_instances + 4
    shown = f"[{host}]" if ":" in host else host
    print(f"kbqa web chat on http://{shown}:{port}/  (Ctrl-C to stop)", flush=True)
    app.queue(default_concurrency_limit=concurrency, max_size=concurrency * 2).launch(
        quiet=True,  # no Gradio banner ("set share=True..."): kbqa never shares a public link
        server_name=host, server_port=port, auth=auth, allowed_paths=[str(config.home_dir() / "cache" / "web")],
        show_error=False,  # expected problems come back as messages; anything else must not show server paths
        max_file_size=f"{config.webui.max_upload_mb:g}mb")
