"""The Gradio web app: chat with a knowledge base, see sources, upload files. Uses kbqa's public API only."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from kbqa import KnowledgeBase, KnowledgeBaseError, list_knowledge_bases  # noqa: E402
from kbqa.kb import safe_filename  # noqa: E402
from kbqa.config import Config  # noqa: E402

safe_name = safe_filename


def sources_markdown(sources: list[Any], answered: bool = True) -> str:
    if not answered:
        return "**No source passed the relevance threshold** — the documents do not seem to hold this; the LLM was not called."
    if not sources:
        return ""
    lines = ["**Sources**", ""]
    for i, h in enumerate(sources, start=1):
        lines.append(f"**[{i}] {h.cite()}** · relevance {h.relevance:.2f}  ")
        lines.append(f"> {h.snippet(300)}")
        lines.append("")
    return "\n".join(lines)


class Session:
    """Knowledge bases opened by the app, sharing one embedder and one LLM per model name."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.kbs: dict[tuple[str, str], KnowledgeBase] = {}
        self.llms: dict[str, Any] = {}
        self.embedder: Any = None
        self.lock = threading.RLock()

    def kb(self, name: str, llm: str | None = None, create: bool = False) -> KnowledgeBase:
        llm = llm or self.config.llm.model
        with self.lock:
            key = (name, llm)
            if key not in self.kbs:
                config = self.config.model_copy(update={"llm": self.config.llm.model_copy(update={"model": llm})})
                kb = KnowledgeBase.open(name, config, create=create, shared_embedder=self.embedder, shared_llm=self.llms.get(llm))
                self.embedder = kb.embedder
                self.kbs[key] = kb
            return self.kbs[key]

    def remember_llm(self, kb: KnowledgeBase, llm: str) -> None:
        if llm not in self.llms:
            self.llms[llm] = kb.llm

    def forget(self, name: str) -> None:
        with self.lock:
            for key in [k for k in self.kbs if k[0] == name]:
                self.kbs.pop(key).close()


def build_app(config: Config, kb: str = "default") -> Any:
    import gradio as gr

    from kbqa.models import llm_models

    session = Session(config)
    names = list_knowledge_bases(config)
    if kb not in names:
        names = [kb] + names
    llm_names = [n for n in llm_models()]
    if config.llm.model not in llm_names:
        llm_names.insert(0, config.llm.model)

    def kb_choices() -> Any:
        current = list_knowledge_bases(config)
        return gr.update(choices=sorted(set(current) | {kb}))

    def ask(question: str, kb_name: str, top_k: float, threshold: float, llm: str) -> tuple[str, str]:
        """Answer one question: returns (answer, sources as Markdown)."""
        text, sources = "", ""
        for text, sources in _answer(question, kb_name, top_k, threshold, llm):
            pass
        return text, sources

    def _answer(question: str, kb_name: str, top_k: float, threshold: float, llm: str) -> Iterator[tuple[str, str]]:
        if not question.strip():
            yield "", ""
            return
        try:
            base = session.kb(kb_name, llm)
            result = base.ask(question, stream=True, top_k=int(top_k), threshold=float(threshold))
            sources = sources_markdown(result.sources, result.answered_from_documents)
            text = ""
            for piece in result:
                text += piece
                yield text, sources
            if result.answered_from_documents:
                session.remember_llm(base, llm)
            yield text, sources
        except (KnowledgeBaseError, RuntimeError) as exc:
            yield f"⚠️ {exc}", ""

    def chat(message: str, history: list[dict[str, Any]], kb_name: str, top_k: float, threshold: float, llm: str) -> Iterator[tuple[Any, str, str]]:
        history = list(history or []) + [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        for text, sources in _answer(message, kb_name, top_k, threshold, llm):
            history[-1] = {"role": "assistant", "content": text}
            yield history, sources, ""

    def files_table(kb_name: str) -> list[list[Any]]:
        try:
            rows = session.kb(kb_name).files()
        except KnowledgeBaseError:
            return []
        return [[r.id, r.name, r.status, r.pages or "", r.chunks, round(r.seconds or 0, 2), r.error or ""] for r in rows]

    def upload(files: list[Any] | None, kb_name: str, progress: Any = gr.Progress()) -> tuple[str, list[list[Any]], Any]:
        if not files:
            return "Choose files to upload first.", files_table(kb_name), kb_choices()
        base = session.kb(kb_name, create=True)
        target = base.folder / "uploads"
        target.mkdir(parents=True, exist_ok=True)
        limit = config.webui.max_upload_mb * 1024 * 1024
        saved, rejected = [], []
        for f in files:
            src = Path(getattr(f, "name", f))
            name = safe_name(getattr(f, "orig_name", None) or src.name)
            if src.stat().st_size > limit:
                rejected.append(f"{name}: over the upload limit of {config.webui.max_upload_mb:g} MB")
                continue
            dest = target / name
            shutil.copyfile(src, dest)
            saved.append(dest)

        def step(p: Any) -> None:
            if p.total:
                progress(p.done / p.total, desc=f"{p.name} ({p.done}/{p.total})")

        report = base.ingest(saved, progress=step) if saved else None
        lines = [f"**{kb_name}**: {report.summary()}" if report else f"**{kb_name}**: nothing ingested"]
        if report:
            lines += [f"- ❌ {f.name}: {f.error}" for f in report.failed]
        lines += [f"- ❌ {r}" for r in rejected]
        return "\n".join(lines), files_table(kb_name), kb_choices()

    def delete_file(file_id: str, kb_name: str) -> tuple[str, list[list[Any]]]:
        try:
            row = session.kb(kb_name).remove_file(file_id.strip())
            return f"Removed {row.name}.", files_table(kb_name)
        except KnowledgeBaseError as exc:
            return f"⚠️ {exc}", files_table(kb_name)

    def search_only(query: str, kb_name: str, top_k: float, threshold: float) -> str:
        if not query.strip():
            return ""
        hits = session.kb(kb_name).search(query, top_k=int(top_k), threshold=float(threshold))
        return sources_markdown(hits) if hits else "No chunk passed the relevance threshold."

    with gr.Blocks(title="kbqa") as app:
        gr.Markdown("## kbqa — ask your documents\nAnswers come from your own files, with the file and page of each source. Nothing leaves this machine.")
        with gr.Row():
            kb_box = gr.Dropdown(choices=names, value=kb, label="Knowledge base", allow_custom_value=True, scale=2)
            llm_box = gr.Dropdown(choices=llm_names, value=config.llm.model, label="LLM", scale=1)
        with gr.Tab("Chat"):
            chatbot = gr.Chatbot(label="Chat", height=420, buttons=["copy"])
            with gr.Row():
                question = gr.Textbox(placeholder="Ask a question about your documents…", show_label=False, scale=5, elem_id="question")
                send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask-button")
            sources = gr.Markdown(elem_id="sources")
            with gr.Accordion("Settings", open=False):
                top_k = gr.Slider(1, 10, value=config.retrieval.top_k, step=1, label="Sources (top-k)")
                threshold = gr.Slider(0, 1, value=config.retrieval.threshold, step=0.05, label="Relevance threshold (0..1, higher = stricter)")
            clear = gr.Button("Clear history")
            inputs = [question, chatbot, kb_box, top_k, threshold, llm_box]
            send.click(chat, inputs, [chatbot, sources, question], api_name="chat")
            question.submit(chat, inputs, [chatbot, sources, question], api_visibility="private")
            clear.click(lambda: ([], ""), None, [chatbot, sources], api_visibility="private")
            answer_out, sources_out = gr.Textbox(visible=False), gr.Markdown(visible=False)
            gr.Button(visible=False).click(ask, [question, kb_box, top_k, threshold, llm_box], [answer_out, sources_out], api_name="ask")
        with gr.Tab("Knowledge base"):
            uploads = gr.File(file_count="multiple", label="Upload files to ingest")
            ingest_btn = gr.Button("Ingest", variant="primary", elem_id="ingest-button")
            status = gr.Markdown(elem_id="ingest-status")
            table = gr.Dataframe(headers=["id", "file", "status", "pages", "chunks", "seconds", "error"], value=files_table(kb), interactive=False, elem_id="files")
            with gr.Row():
                file_id = gr.Textbox(label="File id or name to delete", scale=3)
                delete_btn = gr.Button("Delete file", scale=1)
            search_box = gr.Textbox(label="Search only (retrieved chunks, no LLM)")
            search_out = gr.Markdown()
            ingest_btn.click(upload, [uploads, kb_box], [status, table, kb_box], api_name="upload")
            delete_btn.click(delete_file, [file_id, kb_box], [status, table], api_name="delete_file")
            search_box.submit(search_only, [search_box, kb_box, top_k, threshold], search_out, api_name="search")
            kb_box.change(files_table, kb_box, table, api_visibility="private")
    return app


def launch(config: Config, kb: str = "default", host: str = "127.0.0.1", port: int = 7860, auth: list[tuple[str, str]] | None = None) -> None:
    app = build_app(config, kb)
    app.queue().launch(server_name=host, server_port=port, auth=auth, show_error=True, max_file_size=f"{config.webui.max_upload_mb:g}mb")
