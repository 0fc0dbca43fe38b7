"""The OpenAI-compatible HTTP API (FastAPI): chat with a knowledge base from any OpenAI client.

Models: "kb:<name>" answers from a knowledge base (retrieval + the configured LLM); the LLM's own
name talks to the LLM directly. Non-streaming responses carry the sources in an extra field
"kbqa_sources"; streaming responses send them in the first chunk's "kbqa_sources"."""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from kbqa.config import Config
from kbqa.kb import KnowledgeBase, KnowledgeBaseError, list_knowledge_bases
from kbqa.uploads import store_upload


class ChatMessage(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    model: str
    messages: list[ChatMessage]
    stream: bool = False
    temperature: float | None = None
    max_tokens: int | None = None
    top_k: int | None = Field(None, description="kbqa extension: sources to retrieve")
    threshold: float | None = Field(None, description="kbqa extension: 0..1 relevance threshold")


class SearchRequest(BaseModel):
    query: str
    top_k: int | None = None
    threshold: float | None = None


def create_app(config: Config, api_key: str | None = None) -> FastAPI:
    app = FastAPI(title="kbqa", version="0.1.0", description="OpenAI-compatible API over kbqa knowledge bases. Sources come in `kbqa_sources`.")
    kbs: dict[str, KnowledgeBase] = {}
    lock = threading.RLock()
    shared: dict[str, Any] = {}

    def check_key(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(given, api_key):
            raise HTTPException(401, "invalid or missing API key (Authorization: Bearer KEY)")

    def kb(name: str, create: bool = False) -> KnowledgeBase:
        with lock:
            if name not in kbs:
                try:
                    kbs[name] = KnowledgeBase.open(name, config, create=create, shared_embedder=shared.get("embedder"), shared_llm=shared.get("llm"))
                except KnowledgeBaseError as exc:
                    raise HTTPException(404, str(exc)) from exc
                shared["embedder"] = kbs[name].embedder
            return kbs[name]

    def llm() -> Any:
        if "llm" not in shared:
            any_kb = next(iter(kbs.values()), None)
            if any_kb is not None:
                shared["llm"] = any_kb.llm
            else:
                from kbqa.llm import make_llm

                shared["llm"] = make_llm(config.llm, config.home_dir() / "models")
        return shared["llm"]

    @app.get("/v1/models", dependencies=[Depends(check_key)])
    def models() -> dict[str, Any]:
        now = int(time.time())
        data = [{"id": f"kb:{n}", "object": "model", "created": now, "owned_by": "kbqa"} for n in list_knowledge_bases(config)]
        data.append({"id": config.llm.model, "object": "model", "created": now, "owned_by": "kbqa"})
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions", dependencies=[Depends(check_key)], response_model=None)
    def chat(req: ChatRequest) -> Any:
        if not req.messages or req.messages[-1].role != "user":
            raise HTTPException(400, "the last message must be the user's question")
        gen: dict[str, Any] = {}
        if req.temperature is not None:
            gen["temperature"] = req.temperature
        if req.max_tokens is not None:
            gen["max_tokens"] = req.max_tokens
        sources: list[dict[str, Any]] = []
        if req.model.startswith("kb:"):
            base = kb(req.model[3:])
            history = [m.model_dump() for m in req.messages[:-1] if m.role in ("user", "assistant")]
            result = base.ask(req.messages[-1].content, stream=True, top_k=req.top_k, threshold=req.threshold, history=history, **gen)
            sources = [h.to_dict() for h in result.sources]
            pieces: Iterator[str] = iter(result)
            if result.answered_from_documents:
                shared.setdefault("llm", base.llm)
        elif req.model == config.llm.model:
            pieces = llm().stream([m.model_dump() for m in req.messages], **gen)
        else:
            raise HTTPException(404, f"unknown model {req.model!r}; see GET /v1/models")
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        if not req.stream:
            text = "".join(pieces)
            return {
                "id": cid, "object": "chat.completion", "created": created, "model": req.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                "kbqa_sources": sources,
            }

        def events() -> Iterator[str]:
            head = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model}
            first = {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}], "kbqa_sources": sources}
            yield f"data: {json.dumps(first, ensure_ascii=False)}\n\n"
            for piece in pieces:
                chunk = {**head, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
            yield f"data: {json.dumps({**head, 'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/v1/kb/{name}/files", dependencies=[Depends(check_key)])
    def files(name: str) -> list[dict[str, Any]]:
        return [r.__dict__ for r in kb(name).files()]

    @app.post("/v1/kb/{name}/files", dependencies=[Depends(check_key)])
    def upload(name: str, files: list[UploadFile] = File(...)) -> dict[str, Any]:
        base = kb(name, create=True)
        target = base.folder / "uploads"
        target.mkdir(parents=True, exist_ok=True)
        limit = int(config.webui.max_upload_mb * 1024 * 1024)
        saved: list[Path] = []
        rejected: list[dict[str, str]] = []
        for f in files:
            stored = store_upload(f.filename or "upload", f.file, target, max_bytes=limit)
            saved += stored.files
            rejected += [{"name": r.split(": ", 1)[0], "error": r.split(": ", 1)[-1]} for r in stored.skipped]
        with lock:
            report = base.ingest(saved) if saved else None
        out = report.to_dict() if report else {"files": [], "summary": "nothing ingested"}
        out["rejected"] = rejected
        return out

    @app.delete("/v1/kb/{name}/files/{file_id}", dependencies=[Depends(check_key)])
    def delete(name: str, file_id: str) -> dict[str, Any]:
        try:
            with lock:
                row = kb(name).remove_file(file_id)
        except KnowledgeBaseError as exc:
            raise HTTPException(404, str(exc)) from exc
        return {"deleted": row.__dict__}

    @app.post("/v1/kb/{name}/search", dependencies=[Depends(check_key)])
    def search(name: str, req: SearchRequest) -> dict[str, Any]:
        hits = kb(name).search(req.query, top_k=req.top_k, threshold=req.threshold)
        return {"query": req.query, "hits": [h.to_dict() for h in hits]}

    @app.exception_handler(KnowledgeBaseError)
    def kb_error(request: Request, exc: KnowledgeBaseError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    return app


def serve(config: Config, host: str, port: int, api_key: str | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(config, api_key), host=host, port=port, log_level="info")
