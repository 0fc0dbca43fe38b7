"""The OpenAI-compatible HTTP API (FastAPI): chat with a knowledge base from any OpenAI client.

Models: "kb:<name>" answers from a knowledge base (retrieval + the configured LLM); the LLM's own
name talks to the LLM directly. Non-streaming responses carry the sources in an extra field
"kbqa_sources"; streaming responses send them in the first chunk's "kbqa_sources".

Presentation only: names, limits, the generation queue and freshness live in kbqa.service."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt
from starlette.exceptions import HTTPException as StarletteHTTPException

from kbqa.config import Config
from kbqa.kb import clean_text
from kbqa.service import BadRequest, Busy, NotFound, Reply, Service, ServiceError, Unauthorized, scrub
from kbqa.types import Hit


log = logging.getLogger(__name__)
PENDING_WAIT_S = 60  # at shutdown, the longest wait for the work of requests that got 503 meanwhile (a model being loaded)


class ChatMessage(BaseModel):
    role: str = Field(max_length=32)
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The content as text (OpenAI clients may send a list of parts; only text parts count)."""
        if isinstance(self.content, list):
            return "".join(p["text"] for p in self.content if p.get("type") == "text" and isinstance(p.get("text"), str))
        return self.content or ""

    def plain(self) -> dict[str, str]:
        return {"role": self.role, "content": self.text()}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: StrictBool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(max_length=200)
    messages: list[ChatMessage]
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    temperature: StrictFloat | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    max_tokens: StrictInt | None = Field(None, ge=1)
    n: StrictInt | None = Field(None, ge=1, le=1, description="how many choices: kbqa gives one (found by review: n 3 gave one, unsaid)")
    stop: str | list[Any] | None = Field(None, description="up to 4 strings the reply ends before; with an LLM's own name only")
    top_k: StrictInt | None = Field(None, ge=1, le=50, description="kbqa extension: sources to retrieve (1..50)")
    threshold: StrictFloat | None = Field(None, ge=0, le=1, allow_inf_nan=False, description="kbqa extension: 0..1 relevance threshold")
    answer_confidence: StrictFloat | None = Field(
        None, ge=0, le=1, allow_inf_nan=False, description="kbqa extension: answer when kbqa's confidence is at least this (0..1; lower answers more)")
    llm: str | None = Field(None, max_length=200, description="kbqa extension, with model kb:NAME: the LLM that answers (one of GET /v1/models; default: the server's)")


def conversation(messages: list[ChatMessage]) -> list[dict[str, str]]:
    """OpenAI's messages as an LLM reads them: a "developer" message is a system one (OpenAI's newer name for
    it), and the system messages, wherever they stand, are one at the start (found by review: a developer
    message, or a system message that was not first, was dropped unsaid)."""
    plain = [m.plain() for m in messages]
    system = [m["content"] for m in plain if m["role"] in ("system", "developer") and m["content"].strip()]
    rest = [m for m in plain if m["role"] not in ("system", "developer")]
    return ([{"role": "system", "content": "\n\n".join(system)}] if system else []) + rest


class SearchRequest(BaseModel):
    query: str
    top_k: StrictInt | None = Field(None, ge=1, le=50)
    threshold: StrictFloat | None = Field(None, ge=0, le=1, allow_inf_nan=False)


def public_hit(hit: Hit) -> dict[str, Any]:
    """A source as clients see it: file, page, text, relevance; not the server's path."""
    out = hit.to_dict()
    out.pop("path", None)
    return out


def _validation_message(error: dict[str, Any]) -> str:
    """A validation error's message, saying what to send where pydantic's would not."""
    message = clean_text(str(error.get("msg", "")))
    if "Expected UploadFile" in message:  # a form part without filename="…": Starlette reads it as a text field
        return ("this part is not a file: send each file as a part with filename=\"NAME\" in its Content-Disposition "
                "(a part named only by filename*=, RFC 5987, is a text field in a form: RFC 7578 rules it out)")
    return message


def multipart_reason(exc: BaseException) -> str:
    """Why python-multipart refused an upload's body, from the errors that led to exc ("" if none
    did), told as what to change."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if type(cause).__module__.startswith("python_multipart"):
            from python_multipart.multipart import DEFAULT_MAX_HEADER_COUNT, DEFAULT_MAX_HEADER_SIZE

            reason = clean_text(str(cause))[:200]
            if "header size" in reason:
                reason += (f" (a part's header line, which holds its file name, may be at most {DEFAULT_MAX_HEADER_SIZE:,} bytes: "
                           "upload the file under a shorter name)")
            elif "header count" in reason:
                reason += f" (a part may have at most {DEFAULT_MAX_HEADER_COUNT} header lines)"
            return reason
        cause = cause.__cause__ or cause.__context__
    return ""


def bearer_token(header: str) -> str:
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


WRONG_KEY = "invalid or missing API key (Authorization: Bearer KEY)"


def key_ok(api_key: str | None, header: str) -> bool:
    """Whether an Authorization header carries the API key (always, when the server has none)."""
    if api_key is None:
        return True
    given = bearer_token(header)
    try:  # headers arrive as bytes read as latin-1: back to the bytes the client sent (UTF-8 for a key like "密钥")
        raw = given.encode("latin-1")
    except UnicodeEncodeError:  # not from the wire (a test, a caller of this function): as it is
        raw = given.encode("utf-8", "surrogateescape")
    return secrets.compare_digest(raw, api_key.encode("utf-8"))


def create_app(config: Config, api_key: str | None = None, service: Service | None = None) -> FastAPI:
    service = service or Service(config)
    limit_bytes, upload_bytes = body_caps(config)
    pending: set[asyncio.Future[Any]] = set()  # answers being prepared or generated in worker threads

    def stopped() -> bool:
        return service.closed

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        # requests wait for the LLM in worker threads: room for a full queue plus searches and uploads
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(limiter.total_tokens, config.server.max_queue + 2 * config.server.llm_instances + 16)
        yield
        service.stop()
        if pending:  # answers still being prepared or generated for requests that got 503: they use the knowledge bases
            await asyncio.wait(set(pending), timeout=PENDING_WAIT_S)
        service.close()

    protected = api_key is not None
    app = FastAPI(
        title="kbqa", version="0.1.0", lifespan=lifespan,
        description="OpenAI-compatible API over kbqa knowledge bases. Sources come in `kbqa_sources`.",
        docs_url=None if protected else "/docs", redoc_url=None, openapi_url=None if protected else "/openapi.json",
    )
    app.state.service = service

    def check_key(request: Request) -> None:
        if not key_ok(api_key, request.headers.get("authorization", "")):
            raise Unauthorized(WRONG_KEY, code="invalid_api_key")

    def disk() -> str | None:  # an upload's body lands in the temporary folder first, then in the home
        from kbqa.uploads import short_of_disk

        return short_of_disk([config.home_dir(), Path(tempfile.gettempdir())], config.server.min_free_disk_mb)

    app.add_middleware(BodyLimit, json_bytes=limit_bytes, upload_bytes=upload_bytes, api_key=api_key, stopped=stopped, disk=disk)

    @app.exception_handler(ServiceError)
    def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        status = exc.status
        headers = {"Retry-After": str(int(exc.retry_after))} if exc.retry_after else None
        # OpenAI's error object: message, type, code (kbqa's code for what happened, the one the README names, or null)
        error = {"message": clean_text(exc.message), "type": type(exc).__name__, "code": exc.code or None}
        return JSONResponse({"detail": clean_text(exc.message), "error": error},
                            status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the input itself is not echoed: it may be huge, or not even valid UTF-8
        problems = [{"loc": [str(p) for p in e.get("loc", ())], "msg": _validation_message(e)} for e in exc.errors()]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if isinstance(exc, Stopping):  # as every request the stop refuses: 503 stopping, with Retry-After
            return service_error(request, Busy("the server is shutting down", retry_after=10, code="stopping"))
        # a malformed upload: Starlette says "Invalid multipart data." and keeps the parser's reason to itself
        reason = multipart_reason(exc) if exc.status_code == 400 else ""
        if reason:
            exc = StarletteHTTPException(400, f"{str(exc.detail).rstrip('.')}: {reason}", headers=exc.headers)
        if isinstance(exc.detail, str) and exc.status_code >= 400:  # OpenAI's error object beside `detail`, as every refusal (README)
            error = {"message": exc.detail, "type": HTTP_ERROR_TYPES.get(exc.status_code, "HTTPError"), "code": None}
            return JSONResponse({"detail": exc.detail, "error": error}, status_code=exc.status_code, headers=exc.headers)
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"internal error: {scrub(clean_text(str(exc)))[:300]}"}, status_code=500)

    if protected:
        from fastapi.openapi.docs import get_swagger_ui_html

        @app.get("/openapi.json", dependencies=[Depends(check_key)], include_in_schema=False)
        def openapi() -> JSONResponse:
            return JSONResponse(app.openapi())

        @app.get("/docs", dependencies=[Depends(check_key)], include_in_schema=False)
        def docs() -> HTMLResponse:
            return get_swagger_ui_html(openapi_url="/openapi.json", title="kbqa")

    @app.get("/v1/models", dependencies=[Depends(check_key)])
    def models() -> dict[str, Any]:
        now = int(time.time())
        kbs = [f"kb:{n}" for n in service.listed_names()[0]]  # none while the store is away: the LLMs stay usable
        names = kbs + service.chat_llms()  # the configured LLM first, then the others on this machine
        return {"object": "list", "data": [{"id": name, "object": "model", "created": now, "owned_by": "kbqa"} for name in names]}

    @app.post("/v1/chat/completions", dependencies=[Depends(check_key)], response_model=None)
    async def chat(req: ChatRequest, request: Request) -> Any:
        turns = [m for m in req.messages if m.role not in ("system", "developer")]  # (system messages may stand anywhere: conversation())
        if not turns or turns[-1].role != "user":
            raise BadRequest("the last message must be the user's question")
        if req.stream_options is not None and not req.stream:
            raise BadRequest("stream_options is only allowed with stream: true")
        model = clean_text(req.model)
        if model.startswith("kb:") and req.stop:  # (found by review: ignored unsaid; an answer from documents quotes them whole)
            raise BadRequest("stop is not supported for answers from a knowledge base (model kb:NAME): leave it out", code="stop_unsupported")
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())

        def sources_of(reply: Reply) -> list[dict[str, Any]]:
            try:
                return [public_hit(h) for h in reply.sources]
            except BaseException:
                reply.close()
                raise

        def streamed(reply: Reply) -> _Pump:
            """The reply's server-sent events, made step by step."""
            sources = sources_of(reply)
            usage = bool(req.stream_options and req.stream_options.include_usage)
            return _Pump(_events(reply, cid, created, model, sources, usage), on_close=reply.close)

        if model.startswith("kb:"):
            history = [m.plain() for m in turns[:-1] if m.role in ("user", "assistant")]
            llm = clean_text(req.llm) if req.llm else None  # a name the server does not offer: 400 with the names it does
            # a streamed follow-up that waits for its turn to be rewritten by the LLM is told its place as it waits:
            # its stream begins then (found by review: nothing came, not even the response's head, for as long as the
            # answers ahead of it took, which a proxy's read timeout would cut)
            told: asyncio.Queue[int] | None = asyncio.Queue() if req.stream else None
            loop = asyncio.get_running_loop()
            waiting = (lambda ahead: loop.call_soon_threadsafe(told.put_nowait, ahead)) if told is not None else None
            made = await _reply_in_thread(lambda gone: service.ask(
                model[3:], turns[-1].text(), history=history, top_k=req.top_k, threshold=req.threshold,
                answer_confidence=req.answer_confidence, temperature=req.temperature, max_tokens=req.max_tokens, model=llm, gone=gone,
                waiting=waiting), stopped, pending, request, told)
            if isinstance(made, _Waiting):
                return _Stream(_after_waiting(made, streamed, stopped, pending), "text/event-stream", ended=made.end)
            reply = made
        elif model in service.llm_choices():
            reply = await _reply_in_thread(lambda gone: service.chat(conversation(req.messages), model=model, temperature=req.temperature,
                                                                     max_tokens=req.max_tokens, stop=req.stop), stopped, pending, request)
        else:  # as OpenAI answers a model it does not have
            raise NotFound(f"unknown model {model[:100]!r}; see GET /v1/models")
        if req.stream:
            pump = streamed(reply)
            return _Stream(_pumped(pump, stopped, pending), "text/event-stream", ended=pump.abandon)
        sources = sources_of(reply)
        # not streamed: the answer is gathered step by step, and a client that hangs up frees its place
        pump = _Pump(_steps(reply), on_close=reply.close)
        pieces: list[str] = []
        finished = False
        try:
            async for piece in _stepped(pump, stopped, pending):  # a stop meanwhile: 503
                pieces.append(piece)
                if await request.is_disconnected():
                    break
            else:
                finished = True
        finally:
            if not finished:
                pump.abandon()
        return {
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(pieces)}, "finish_reason": reply.usage.finish_reason}],
            "usage": reply.usage.to_dict(),  # the LLM's tokens (an extractive answer or a refusal: 0)
            "kbqa_sources": sources,
            "kbqa_answered": reply.answered,  # false: the documents do not hold the answer, kbqa_sources are related passages
            "kbqa_confidence": reply.confidence,
            "kbqa_unmentioned": reply.unmentioned,  # names the question writes that no document holds: the answer says so first
        }

    @app.get("/v1/kb", dependencies=[Depends(check_key)])
    def knowledge_bases() -> list[str]:
        return service.names()

    @app.get("/v1/kb/{name}/files", dependencies=[Depends(check_key)])
    def files(name: str) -> list[dict[str, Any]]:
        return [_file(r) for r in service.files(name)]

    @app.post("/v1/kb/{name}/files", dependencies=[Depends(check_key)])
    async def upload(name: str, request: Request, files: list[UploadFile] = File(...)) -> dict[str, Any]:
        from starlette.concurrency import run_in_threadpool

        # an upload still waiting for its turn when its client hangs up gives its place up (once begun, it is ingested)
        gone = threading.Event()

        async def watch() -> None:
            while not await request.is_disconnected():
                await asyncio.sleep(0.5)
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            result = await run_in_threadpool(service.upload, name, [(f.filename or "", f.file) for f in files], None, gone.is_set)
        finally:
            watcher.cancel()
        out = result.report.to_dict() if result.report else {"files": [], "summary": "nothing ingested"}
        out["rejected"] = result.rejected
        return out

    @app.delete("/v1/kb/{name}/files/{file_id:path}", dependencies=[Depends(check_key)])  # an upload's name holds its folders: "资料/faq.md"
    def delete(name: str, file_id: str) -> dict[str, Any]:
        return {"deleted": _file(service.remove_file(name, file_id))}

    @app.post("/v1/kb/{name}/search", dependencies=[Depends(check_key)])
    def search(name: str, req: SearchRequest) -> dict[str, Any]:
        hits = service.search(name, req.query, top_k=req.top_k, threshold=req.threshold)
        return {"query": clean_text(req.query), "hits": [public_hit(h) for h in hits]}

    @app.get("/v1/status", dependencies=[Depends(check_key)])
    def status() -> dict[str, Any]:
        from kbqa.kb import process_memory_mb

        kbs, store = service.listed_names()  # the queues and ingests are still worth seeing while the store is away
        return {"knowledge_bases": kbs if store == "ok" else None, "store": store, "queues": service.queues(), "ingests": service.ingests(),
                "loaded": service.loaded(), "process_memory_mb": round(process_memory_mb(), 1)}

    return app


def _file(row: Any) -> dict[str, Any]:
    out = dict(row.__dict__)
    out.pop("path", None)
    out["error"] = scrub(out["error"]) if out.get("error") else out.get("error")
    return out


def _steps(reply: Reply) -> Iterator[str]:
    """The answer's pieces, with an empty piece each second the request waits for the LLM."""
    try:
        for _ in reply.waiting():
            yield ""
        yield from reply
    finally:
        reply.close()


def _events(reply: Reply, cid: str, created: int, model: str, sources: list[dict[str, Any]], usage: bool = False) -> Iterator[str]:
    """Server-sent events: the sources first, then ': queued N' comments while the request waits for
    the LLM (ignored by OpenAI clients), then the answer's pieces; with usage (OpenAI's
    stream_options.include_usage) a last chunk without choices gives the tokens used."""
    head = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
    try:
        first = {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}], "kbqa_sources": sources,
                 "kbqa_answered": reply.answered, "kbqa_confidence": reply.confidence, "kbqa_unmentioned": reply.unmentioned}
        yield f"data: {json.dumps(first, ensure_ascii=False)}\n\n"
        for ahead in reply.waiting():
            yield f": queued, {ahead} ahead\n\n"
        for piece in reply:
            chunk = {**head, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
        last = {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": reply.usage.finish_reason}], "kbqa_answered": reply.answered}
        yield f"data: {json.dumps(last)}\n\n"
        if usage:
            yield f"data: {json.dumps({**head, 'choices': [], 'usage': reply.usage.to_dict()})}\n\n"
    except ServiceError as exc:
        yield _error_event(exc)
    except Exception as exc:  # the stream has started: an error event, not a broken connection
        yield f"data: {json.dumps({'error': {'message': scrub(str(exc))[:300], 'type': 'internal', 'code': None}}, ensure_ascii=False)}\n\n"
    finally:
        reply.close()
    yield "data: [DONE]\n\n"


class _Pump:
    """Steps a blocking event generator in worker threads, one step at a time. When the client goes
    away the generator is closed as soon as no step is running (a step lasts one token or one
    second of queueing), which frees the request's place with the LLM."""

    def __init__(self, events: Iterator[str], on_close: Any = None) -> None:
        self.events = events
        self.lock = threading.Lock()
        self.abandoned = False
        self.on_close = on_close  # run once the generator is closed: a generator never started runs no finally

    def step(self) -> str | None:
        with self.lock:
            if self.abandoned:
                return None
            item = next(self.events, None)
            if self.abandoned:
                self.events.close()  # type: ignore[attr-defined]
                return None
            return item

    def abandon(self) -> None:
        self.abandoned = True

        def close() -> None:
            with self.lock:  # waits for a running step; a generator cannot be closed while it runs
                self.events.close()  # type: ignore[attr-defined]
                if self.on_close is not None:
                    self.on_close()

        threading.Thread(target=close, daemon=True, name="kbqa-close-stream").start()


def _in_thread(work: Any, pending: set[asyncio.Future[Any]]) -> asyncio.Future[Any]:
    """work() in a worker thread, its future kept in `pending` until it is done."""
    from starlette.concurrency import run_in_threadpool

    future = asyncio.ensure_future(run_in_threadpool(work))
    pending.add(future)
    future.add_done_callback(pending.discard)
    return future


async def _until_stopped(future: asyncio.Future[Any], stopped: Callable[[], bool], request: Request | None = None,
                         early: Callable[[], bool] | None = None) -> bool:
    """Wait for a worker thread's future: True when it is done (or early() says to stop waiting), False as soon
    as the server stops first (the work goes on in its thread; what comes of it is nobody's). A request must not
    wait past the stop: uvicorn cancels what is still running 3 s after it, and a response not yet begun is
    then a 500. With the request: Busy client_gone when its client hangs up meanwhile."""
    try:
        while not future.done():
            await asyncio.wait({future}, timeout=0.2)
            if future.done():
                break
            if stopped():
                future.add_done_callback(_retrieved)
                return False
            if request is not None and await request.is_disconnected():
                raise Busy("the client went away while its answer was being prepared", code="client_gone")
            if early is not None and early():
                return True
    except BaseException:  # (also the request cancelled)
        future.add_done_callback(_retrieved)
        raise
    return True


def _retrieved(future: asyncio.Future[Any]) -> None:
    """The outcome of work nobody waits for any more, taken (an error in it is no one's to report)."""
    if not future.cancelled():
        future.exception()


class _Waiting:
    """A reply still being made when its request was told its place in the LLM's queue (a streamed follow-up
    waiting for its turn to be rewritten): its stream begins with that place."""

    def __init__(self, making: asyncio.Future[Any], gone: threading.Event, told: asyncio.Queue[int]) -> None:
        self.making, self.gone, self.told = making, gone, told
        self.pump: _Pump | None = None  # once the reply is made: what streams it, and closes it when no step runs

    def end(self) -> None:
        """However the stream ended: a wait still running gives its place up, and a reply made for nobody is
        closed; one being streamed is closed by its pump, between two steps (found by review: closed here while a
        step ran, its generator said 'already executing' in the log)."""
        self.gone.set()
        if self.pump is not None:
            self.pump.abandon()
        else:
            self.making.add_done_callback(_close_unused)


async def _after_waiting(waiting: _Waiting, streamed: Callable[[Reply], _Pump], stopped: Callable[[], bool],
                         pending: set[asyncio.Future[Any]]) -> AsyncIterator[str]:
    """': queued, N ahead' comments while the reply is made, then its events (a failure: an error event)."""
    making = waiting.making
    while not making.done():
        while not waiting.told.empty():
            yield f": queued, {waiting.told.get_nowait()} ahead\n\n"
        await asyncio.wait({making}, timeout=0.2)
        if stopped() and not making.done():
            yield _error_event(Busy("the server is shutting down", retry_after=10, code="stopping"))
            yield "data: [DONE]\n\n"
            return
    try:
        pump = waiting.pump = streamed(making.result())
    except ServiceError as exc:
        yield _error_event(exc)
        yield "data: [DONE]\n\n"
        return
    except Exception as exc:  # the stream has begun: an error event, as _events gives
        log.exception("a follow-up's answer failed")
        yield f"data: {json.dumps({'error': {'message': scrub(str(exc))[:300], 'type': 'internal', 'code': None}}, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"
        return
    try:
        async for item in _pumped(pump, stopped, pending):
            yield item
    finally:
        pump.abandon()


async def _reply_in_thread(make: Callable[[Callable[[], bool]], Reply], stopped: Callable[[], bool], pending: set[asyncio.Future[Any]],
                           request: Request, told: asyncio.Queue[int] | None = None) -> Reply | _Waiting:
    """make(gone) -> a Reply, made in a worker thread (loading models at a cold start, embedding, searching, a
    follow-up's rewrite by the LLM, which waits for its turn first). The request does not wait for it past the
    server's stop: it gets 503 at once; nor once its client has hung up. Then gone() turns true, which ends a wait
    for the LLM and a rewrite (found by review: a follow-up whose client had left still waited for its turn and
    rewrote, and the next user waited 19 s behind six of them); a reply made for nobody all the same is closed as
    soon as it is made, which frees its place in the queue."""
    gone = threading.Event()
    making = _in_thread(lambda: make(gone.is_set), pending)
    try:
        if not await _until_stopped(making, stopped, request, early=(lambda: not told.empty()) if told is not None else None):
            raise Busy("the server is shutting down", retry_after=10, code="stopping")
        if not making.done():  # told its place in the queue first (told: a streamed request)
            assert told is not None
            return _Waiting(making, gone, told)
        return making.result()
    except BaseException:
        gone.set()
        making.add_done_callback(_close_unused)
        raise


def _close_unused(making: asyncio.Future[Any]) -> None:
    """A Reply made for a request that is gone: closed (its failure, if it failed, is no one's)."""
    if not making.cancelled() and making.exception() is None:
        making.result().close()


def _error_event(exc: ServiceError) -> str:
    """A server-sent event that says what went wrong once a stream has begun (OpenAI's error object)."""
    return f"data: {json.dumps({'error': {'message': exc.message, 'type': type(exc).__name__, 'code': exc.code or None}}, ensure_ascii=False)}\n\n"


async def _stepped(pump: _Pump, stopped: Callable[[], bool], pending: set[asyncio.Future[Any]]) -> AsyncIterator[str]:
    """The pump's items, each made in a worker thread; Busy as soon as the server stops before the
    next is made (a long prompt being read past uvicorn's 3 s of grace was cancelled: a 500)."""
    while True:
        step = _in_thread(pump.step, pending)
        if not await _until_stopped(step, stopped):
            raise Busy("the server is shutting down; the answer was cut short", retry_after=10, code="stopping")
        if (item := step.result()) is None:
            return
        yield item


async def _pumped(pump: _Pump, stopped: Callable[[], bool], pending: set[asyncio.Future[Any]]) -> AsyncIterator[str]:
    """The stream's events; a stop before the next one ends it at once with an error event and [DONE]."""
    try:
        async for item in _stepped(pump, stopped, pending):
            yield item
    except Busy as exc:
        yield _error_event(exc)
        yield "data: [DONE]\n\n"


class _Stream(StreamingResponse):
    """A streamed answer that frees its place with the LLM however the response ends. A client that
    hangs up before the first byte leaves the body's generator unstarted, and an unstarted generator
    runs no finally: the place stayed taken (64 such clients filled the queue for good)."""

    def __init__(self, body: AsyncIterator[str], media_type: str, ended: Callable[[], None]) -> None:
        super().__init__(body, media_type=media_type)
        self.ended = ended  # what frees the place: the pump's abandon(), or a waiting reply's end()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.ended()


def body_caps(config: Config) -> tuple[int, int]:
    """The most bytes of a request body, and of an upload's (ten files of webui.max_upload_mb)."""
    return int(config.server.max_request_mb * 1024 * 1024), int(config.webui.max_upload_mb * 1024 * 1024) * 10 + (1 << 20)


# the error object's type of a refusal that is no ServiceError (the body limit's, FastAPI's own)
HTTP_ERROR_TYPES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed", 408: "Timeout",
                    409: "Conflict", 413: "TooLarge", 503: "Busy", 507: "InsufficientStorage"}


class Stopping(HTTPException):
    """The server stopped while a request's body was still arriving: answered 503 `stopping` (FastAPI
    lets an HTTPException raised while it reads a body through, as it does the 413 of BodyLimit)."""

    def __init__(self) -> None:
        super().__init__(503, "the server is shutting down")


NOT_FILES = ("an upload is files: a multipart/form-data request with one part per file, each with its filename=\"…\" "
             "(curl -F files=@NAME)")


class BodyLimit:
    """Refuses request bodies over the limit with 413, whether or not they say their length
    (a chunked body is counted as it arrives). Uploads (paths ending in upload_suffix: the API's
    /files, the web chat's /gradio_api/upload) have their own cap, or none (upload_bytes None: the
    web chat's page sends a whole folder in one request; Gradio caps each file, and the service
    stores ten uploads' worth and names the files it leaves out).
    With an API key, a request without it is refused with 401 before a byte of its body is read
    (an upload was stored whole, 900 MB, before the key was checked). A body that stops arriving is
    the connection's business (kbqa/headtimeout.py, server.body_timeout_s), as on the web chat."""

    DISK_EVERY = 4 << 20  # an upload's bytes between two looks at the disk's free space

    def __init__(self, app: Any, json_bytes: int, upload_bytes: int | None, api_key: str | None = None, upload_suffix: str = "/files",
                 stopped: Callable[[], bool] | None = None, disk: Callable[[], str | None] | None = None, gradio: bool = False) -> None:
        """disk(): why the server's disk takes no more uploads now, if it does not (short_of_disk: 507).
        gradio: the web chat's upload route, whose refusals are plain text (the page shows the body as its
        message) and whose refusal in mid-body Gradio's parser must see as its own error, the only one
        after which it removes the partial files it wrote (found by review: a 507 left 80 MB in its cache,
        which kept every later upload under the floor)."""
        self.app, self.json_bytes, self.upload_bytes, self.api_key = app, json_bytes, upload_bytes, api_key
        self.upload_suffix, self.stopped, self.disk, self.gradio = upload_suffix, stopped, disk, gradio

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        if not key_ok(self.api_key, header):
            await JSONResponse({"detail": WRONG_KEY, "error": {"message": WRONG_KEY, "type": "Unauthorized", "code": "invalid_api_key"}}, status_code=401)(scope, receive, send)
            return
        upload = scope["path"].rstrip("/").endswith(self.upload_suffix)
        disk = self.disk if upload and scope.get("method") == "POST" else None
        short = disk() if disk is not None else None
        if short is not None:  # the server's disk is nearly full (server.min_free_disk_mb): not a byte of the upload is read
            await self._refusal(507, short, plain=self.gradio)(scope, receive, send)
            return
        cap = self.upload_bytes if upload else self.json_bytes
        parsed_by_gradio = self.gradio and upload and scope.get("method") == "POST"
        if cap is None and self.stopped is None and disk is None and not parsed_by_gradio:  # (an upload capped per file, and per request by what the service stores)
            await self.app(scope, receive, send)
            return
        message = (f"request body over the limit of {(cap or 0) / 2**20:.0f} MB "
                   f"({'10 x webui.max_upload_mb per request' if upload else 'server.max_request_mb'})")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if cap is not None and length is not None and (not length.isdigit() or int(length) > cap):
            await self._refusal(413, message, plain=self.gradio and upload)(scope, receive, send)
            return
        seen, arriving, looked = 0, True, 0
        refused: list[int] = []  # the status of a refusal in mid-body on Gradio's upload route (answered there as its 400)

        async def counted() -> dict[str, Any]:
            nonlocal seen, arriving, looked
            event = await self._next(receive) if arriving and self.stopped is not None else await receive()
            if event["type"] == "http.request":
                seen += len(event.get("body", b""))
                if cap is not None and seen > cap:
                    raise HTTPException(413, message)  # FastAPI answers it while reading the body
                if disk is not None and seen - looked >= self.DISK_EVERY:
                    looked = seen
                    if (short := disk()) is not None:  # filled while this body arrived (by it, or by others at once)
                        if self.gradio:
                            from starlette.formparsers import MultiPartException

                            refused.append(507)
                            raise MultiPartException(short)
                        raise HTTPException(507, short)
                arriving = bool(event.get("more_body"))
                if arriving and self.stopped is not None and self.stopped():
                    raise Stopping()
            else:
                if arriving and parsed_by_gradio and event["type"] == "http.disconnect":
                    # (found by review: an upload whose client hung up in mid-body left what Gradio's parser had written,
                    # 20 MB a time, in its cache for an hour, and every later upload met the disk's floor sooner)
                    from starlette.formparsers import MultiPartException

                    raise MultiPartException("the client hung up before its upload had arrived")  # Gradio then removes its partial files
                arriving = False
            return event

        # Gradio's upload route failing on the request (a 500, or an error raised before any answer) is answered as a 400 that
        # says why (found by review: `curl -F files=hello …/gradio_api/upload`, a text field, was a 500 and a traceback)
        failed: list[int] = []
        started: list[int] = []

        async def said(event: dict[str, Any]) -> None:
            if event["type"] == "http.response.start" and refused:
                event = {**event, "status": refused[0]}
            if parsed_by_gradio and (failed or (event["type"] == "http.response.start" and event.get("status") == 500)):
                if not failed:
                    failed.append(500)
                    await self._refusal(400, NOT_FILES, plain=True)(scope, counted, send)
                return
            if event["type"] == "http.response.start":
                started.append(event.get("status", 0))
            await send(event)

        try:
            await self.app(scope, counted, said if self.gradio else send)
        except Exception as exc:  # noqa: BLE001
            # (the request's shape, as Gradio reads it: a text part where a file goes; a failing disk is no bad request)
            if not parsed_by_gradio or started or not isinstance(exc, (TypeError, ValueError, KeyError, AttributeError)):
                raise
            if not failed:
                await self._refusal(400, NOT_FILES, plain=True)(scope, counted, send)
            log.info("a web chat upload that is not files, refused: %s: %s", type(exc).__name__, exc)

    @staticmethod
    def _refusal(status: int, message: str, plain: bool = False) -> Any:
        from starlette.responses import PlainTextResponse

        if plain:  # (Gradio's upload route: the page shows the body)
            return PlainTextResponse(message, status_code=status)
        return JSONResponse({"detail": message, "error": {"message": message, "type": HTTP_ERROR_TYPES.get(status, "HTTPError"), "code": None}},
                            status_code=status)

    async def _next(self, receive: Any) -> dict[str, Any]:
        """The body's next part; Stopping when the server stops while it is awaited (a slow upload at a
        SIGTERM: uvicorn cancelled it after its 3 s of grace, and the client got 500)."""
        part = asyncio.ensure_future(receive())
        try:
            while True:
                done, _ = await asyncio.wait({part}, timeout=0.2)
                if done:
                    return part.result()  # type: ignore[no-any-return]
                if self.stopped is not None and self.stopped():
                    raise Stopping()
        finally:
            if not part.done():
                part.cancel()


def is_loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(config: Config, host: str, port: int, api_key: str | None = None) -> None:
    import uvicorn

    service = Service(config)
    app = create_app(config, api_key, service)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # SIGTERM / Ctrl-C: waiting requests get 503 and running generations end at their next
            # piece, each stream with an error event and [DONE]; open requests get 3 s more
            service.stop()
            super().handle_exit(sig, frame)

    if config.server.warm_up:
        service.warm_up()  # the first question does not wait for the models to load
    from kbqa.headtimeout import protocol

    http = protocol(config.server.header_timeout_s, config.server.body_timeout_s)  # slow or idle clients do not hold sockets for good
    Server(uvicorn.Config(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=3, http=http)).run()
