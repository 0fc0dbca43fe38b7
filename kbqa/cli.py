"""The kbqa command line: thin commands over KnowledgeBase. Heavy imports happen inside commands."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

app = typer.Typer(
    help="kbqa: ask questions of your own documents with a local LLM; answers cite file and page.\n\n"
    "Quick start:  kbqa ingest ./docs --kb mykb  then  kbqa ask \"问题\" --kb mykb",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
kb_app = typer.Typer(help="Manage knowledge bases: list, files, rm, prune, drop, migrate.\n\n"
                     "Example: kbqa kb files mykb  (then: kbqa kb rm report.pdf --kb mykb)", no_args_is_help=True)
config_app = typer.Typer(help="Show the configuration.\n\nExample: kbqa config show --json", no_args_is_help=True)
app.add_typer(kb_app, name="kb")
app.add_typer(config_app, name="config")

KbOpt = Annotated[str, typer.Option("--kb", "-k", help="Knowledge base name (under the kbqa home) or folder path.", envvar="KBQA_KB")]
# the knowledge base as an option where a command takes it as its argument too (kb files, kb prune): -k works everywhere
KbAlsoOpt = Annotated[Optional[str], typer.Option("--kb", "-k", help="The knowledge base, as the argument (either one).")]


def _one_kb(argument: str, option: str | None) -> str:
    """The knowledge base a command was given with --kb, else as its argument."""
    return option if option is not None else argument  # (KBQA_KB fills the argument: --kb wins over it, as elsewhere)
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="A YAML file overriding configs/default.yaml.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
LlmOpt = Annotated[Optional[str], typer.Option("--llm", help="LLM: a name from `kbqa models`, 'extractive', a .gguf file or a transformers model folder.")]

InsecureOpt = Annotated[bool, typer.Option("--insecure", help="Allow a --host other than this machine without a login or key.")]


def _port_free(host: str, port: int) -> None:
    """A server's port checked before anything loads: in use, or a host that is not this machine's, is
    one line and exit 2 (gradio and uvicorn said it in a traceback, or after "startup complete")."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        _fail(f"cannot listen on {host}:{port}: {exc}")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: a port in TIME_WAIT is free
        try:
            probe.bind(address)
        except OSError as exc:
            busy = exc.errno == errno.EADDRINUSE
            _fail(f"port {port} on {host} is in use (another kbqa server?): stop it, or choose another with --port" if busy
                  else f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def _finite(value: float | None) -> float | None:
    """click's ranges let NaN through (every comparison with it is false)."""
    if value is not None and value != value:
        raise typer.BadParameter("must be a number, not NaN")
    return value


TopKOpt = Annotated[Optional[int], typer.Option("--top-k", min=1, max=50, help="Sources to use (1..50).")]
ThresholdOpt = Annotated[Optional[float], typer.Option("--threshold", min=0.0, max=1.0, callback=_finite,
                                                       help="0..1 relevance threshold; higher = stricter.")]
PortOpt = Annotated[Optional[int], typer.Option("--port", min=1, max=65535, help="Port (default: webui.port, 7860).")]

EXIT_FAILED_FILES = 1
EXIT_EMPTY_KB = 1  # ask or search on a knowledge base without a chunk: nothing was looked up
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # SIGTERM, as a shell reports it


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _e(text: object) -> str:
    """Text printed through rich, shown as it is: "Report [final].md" and "pip install 'kbqa[hf]'"
    are not markup."""
    from rich.markup import escape

    return escape(str(text))


# controls, and the invisible characters that reorder or hide text (bidi overrides and isolates,
# zero-width spaces and joiners, the BOM): "invoice\u202etxt.exe" would show as "invoiceexe.txt"
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def _shown(name: object, keep: str = "") -> str:
    """A file or knowledge base name as the terminal should show it: control characters (but those in
    keep) written as escapes (as `ls -b` does), so a name holding ESC sequences or a newline cannot
    recolour the terminal or break a row."""
    escapes = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}

    def escape(ch: str) -> str:
        return escapes.get(ch, f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")

    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else escape(m.group()), str(name))


def _n(name: object) -> str:
    """_shown, then _e: a name printed through rich."""
    return _e(_shown(name))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class _Failure(Exception):
    """A command stops: main() says the message and exits with code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    raise _Failure(message, code)


def _say_failure(message: str, code: int, as_json: bool) -> None:
    """What went wrong, on standard error; with --json also as the one JSON document on standard
    output ({"error": ..., "exit_code": ...}), so a script reading it always gets one."""
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}, ensure_ascii=False))
    _console(stderr=True).print(f"[bold red]error:[/] {_e(_shown(message, keep=chr(10)))}")  # a message may span lines


def _config(config: Path | None, llm: str | None = None, **sections: dict[str, Any]) -> Any:
    from kbqa.config import ConfigError, load_config

    overrides: dict[str, Any] = {k: v for k, v in sections.items() if v}
    if llm:
        key = "path" if llm.lower().endswith(".gguf") or os.sep in llm else "model"
        overrides.setdefault("llm", {})[key] = llm
        if key == "path":
            overrides["llm"]["model"] = Path(llm).stem
    try:
        return load_config(config, overrides=overrides)
    except ConfigError as exc:
        _fail(str(exc))


def _models_here(cfg: Any, llm: bool = False) -> None:
    """Refuse at once (exit 2) a model that is not on this machine and may not be downloaded
    (llm.allow_download): the embedder and reranker, and with llm=True the LLM, before anything is opened."""
    from kbqa.offline import ModelNotAvailable, require

    try:
        from kbqa.embeddings import check_embeddings

        check_embeddings(cfg.embeddings)
        if cfg.retrieval.reranker:
            require("reranker", cfg.retrieval.reranker, cfg.retrieval.reranker, from_catalog=False)
        if llm:
            from kbqa.llm import check_llm

            check_llm(cfg.llm)
    except ModelNotAvailable as exc:
        _fail(str(exc))


def _server_tmp(cfg: Any) -> None:
    """A server writes nothing outside the kbqa home: libraries' temporary files (jieba's dictionary
    cache, ONNX Runtime's session marker, uploads being received) go to $KBQA_HOME/cache/tmp."""
    import tempfile

    tmp = cfg.home_dir() / "cache" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = None  # read TMPDIR again


def _check_exposure(given: str | None, cfg: Any, origin: dict[str, str], protected: bool, insecure: bool, how: str) -> None:
    """Refuse to serve everyone's documents to the network with no login, unless told to; the bind
    address is named as it was set (--host, or webui.host in a config file or KBQA_WEBUI__HOST)."""
    from kbqa.api import is_loopback

    host = given or cfg.webui.host
    if not is_loopback(host) and not protected and not insecure:
        said = f"--host {host}" if given else f"webui.host {host} (from {origin.get('webui.host', 'the configuration')})"
        _fail(f"{said} would let anyone who can reach this machine read and change your knowledge bases. "
              f"Require a login with {how}, or pass --insecure if the network is trusted")


def _open(kb: str, cfg: Any, create: bool = False) -> Any:
    from kbqa.kb import KnowledgeBase, KnowledgeBaseError

    try:
        return KnowledgeBase.open(kb, cfg, create=create)
    except (KnowledgeBaseError, RuntimeError) as exc:  # RuntimeError: a store that cannot be opened (Milvus down, Lite folder held)
        _fail(str(exc))


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.")],
    kb: KbOpt = "default",
    prune: Annotated[bool, typer.Option("--prune", help="Remove files under these folders that no longer exist.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Re-read every file, changed or not.")] = False,
    pdf_engine: Annotated[Optional[str], typer.Option("--pdf-engine", help="pymupdf (ruled tables too) | pdfplumber (tables) | pdfminer")] = None,
    ocr: Annotated[Optional[str], typer.Option("--ocr", help="auto | always | never")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Parse and embed on Ray (ingest.executor ray; pip install 'kbqa\\[cluster]').")] = False,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="With --ray: a running cluster (HOST:6379); default: a local Ray runtime.")] = None,
    ray_workers: Annotated[Optional[int], typer.Option("--ray-workers", help="With --ray: embedding actors (one core and one model copy each).")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest files and folders into a knowledge base; re-running only re-reads changed files.

    A folder that was moved or renamed: ingest it from its new place; a file with the same name and
    content whose old place is gone keeps its entry (status "moved"; nothing parsed or embedded again).

    Example: kbqa ingest ./docs --kb mykb --prune
    On a Ray cluster: kbqa ingest ./docs --kb mykb --ray --ray-address 10.0.0.5:6379

    Exit code 0: all files ingested; 1: some files failed (listed with reasons) or none were found;
    2: a usage error (a path that does not exist, a bad option); 130: interrupted (Ctrl-C); 143: stopped by SIGTERM.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    ingest_opts: dict[str, Any] = {k: v for k, v in {"pdf_engine": pdf_engine, "ocr": ocr, "ray_address": ray_address,
                                                     "ray_workers": ray_workers}.items() if v}
    if ray or ray_address:
        ingest_opts["executor"] = "ray"
    cfg, _ = _config(config, ingest=ingest_opts)
    _models_here(cfg)
    for given in paths:
        if not given.exists():
            hint = f" (to forget the files that were ingested from it: kbqa kb prune {kb})" if prune else ""
            link = " (a symbolic link that leads nowhere: its target is missing, or links loop)" if given.is_symlink() else ""
            _fail(f"{given} does not exist{link}; nothing was ingested{hint}")
        if not given.is_file() and not given.is_dir():
            _fail(f"{given} is not a file or a folder (a FIFO, a socket or a device); nothing was ingested")
    from kbqa.kb import KnowledgeBase

    try:
        existed = KnowledgeBase.exists(kb, cfg)
    except RuntimeError as exc:  # a store that cannot be reached (Milvus down): said, as _open says it
        _fail(str(exc))
    knowledge_base = _open(kb, cfg, create=True)
    err = _console(stderr=True)
    from kbqa.kb import KnowledgeBaseError

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[name]}"), console=err, transient=True, disable=as_json or not err.is_terminal,
    ) as bar:
        task = bar.add_task("ingest", total=None, name="")

        def progress(p: Any) -> None:
            if p.stage == "held":
                name = f"waiting: another ingest of this knowledge base is reading {_count(int(p.name), 'file')} of these"
            else:
                name = f"{p.name} (page {p.page}/{p.pages})" if p.page else p.name
            bar.update(task, total=p.total, completed=p.done, name=name)
            if p.result and p.result.status in ("failed", "unsupported") and not as_json:
                err.print(f"[yellow]{p.result.status}[/] {_n(p.result.name)}: {_e(p.result.error)}")
            elif p.result and p.result.warning and not as_json:
                err.print(f"[yellow]warning[/] {_n(p.result.name)}: {_e(p.result.warning)}")

        terminated: list[int] = []

        def stop(signum: int, frame: Any) -> None:  # SIGTERM (kill, systemd, docker stop) stops it as Ctrl-C does, and says so
            terminated.append(signum)
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, stop) if threading.current_thread() is threading.main_thread() else None
        try:
            report = knowledge_base.ingest(paths, prune=prune, force=force, progress=progress)
        except (KnowledgeBaseError, RuntimeError, ConnectionError) as exc:  # (RuntimeError, ConnectionError: Ray missing or unreachable)
            _fail(str(exc))
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    if not report.files and not existed and not knowledge_base.files():
        knowledge_base.drop()  # made by this command and still empty: leave nothing behind
        _fail(f"no files to ingest under {', '.join(map(str, paths))} (ingest.exclude: {', '.join(cfg.ingest.exclude)})", EXIT_FAILED_FILES)
    if not report.files and not prune:
        _fail(f"no files to ingest under {', '.join(map(str, paths))} (ingest.exclude: {', '.join(cfg.ingest.exclude)})", EXIT_FAILED_FILES)
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        out = _console()
        if report.reread:
            out.print(_e(f"settings that shape the files changed since they were read ({report.reread}): the files given were read again"))
        for f in report.files:
            if f.status in ("added", "updated", "moved", "removed"):
                pages = f", {_count(f.pages, 'page')}" if f.pages else ""
                out.print(f"[green]{f.status}[/] {_n(f.name)} ({_count(f.chunks, 'chunk')}{pages})")
        out.print(f"[bold]{_e(knowledge_base.name)}[/]: {_e(report.summary())}")
        if report.gone:
            names = ", ".join(_shown(g) for g in report.gone[:3]) + (f" and {len(report.gone) - 3} more" if len(report.gone) > 3 else "")
            out.print(_e(f"{_count(len(report.gone), 'file')} no longer in the folder still in the knowledge base ({names}): "
                         "add --prune to remove them"))
        if report.interrupted:
            out.print("interrupted: files done so far are kept; run the same command again to continue")
    knowledge_base.close()
    if report.interrupted:
        raise typer.Exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
    if report.failed:
        raise typer.Exit(EXIT_FAILED_FILES)


def _print_sources(out: Any, sources: list[Any], related: bool = False, question: str = "") -> None:
    """The numbered sources, each shown around the passage that best matches the question; after a
    refusal, the closest passages, marked as related, not an answer."""
    if not sources:
        return
    out.print("\n[bold]Related passages (not an answer)[/]" if related else "\n[bold]Sources[/]")
    for i, h in enumerate(sources, start=1):
        out.print(f"[cyan]\\[{i}][/] {_n(h.cite())}  [dim](relevance {h.relevance:.2f})[/]")
        out.print(f"    [dim]{_e(h.snippet(question=question))}[/]")


def _not_empty(knowledge_base: Any, question: str, allowance: int = 1) -> None:
    """ask and search stop (exit 1) on a knowledge base without a chunk, after the question's own
    checks (exit 2): a script must not take the "ingest files first" message for an answer."""
    from kbqa.answer import empty_kb

    knowledge_base.checked_question(question, allowance)  # allowance: as the command's own call checks it
    if knowledge_base.is_empty():
        _fail(empty_kb(knowledge_base.name, zh=False), EXIT_EMPTY_KB)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    kb: KbOpt = "default",
    llm: LlmOpt = None,
    top_k: TopKOpt = None,
    threshold: ThresholdOpt = None,
    answer_confidence: Annotated[Optional[float], typer.Option(
        "--answer-confidence", min=0.0, max=1.0, callback=_finite,
        help="Answer when kbqa's confidence that the sources hold the answer is at least this (0..1); "
             "lower answers more, and more wrongly; 0 answers whenever there is a source. "
             "Default: retrieval.answer_confidence, else the embedding model's calibrated cut.")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from a knowledge base, streaming, then list the numbered sources.

    Example: kbqa ask "年假有几天？" --kb mykb --llm extractive
    """
    cfg, _ = _config(config, llm)
    _models_here(cfg, llm=True)
    knowledge_base = _open(kb, cfg)
    from kbqa.kb import KnowledgeBaseError

    try:
        _not_empty(knowledge_base, question)
        knowledge_base.preload_llm()  # loads beside the search
        result = knowledge_base.ask(question, stream=True, top_k=top_k, threshold=threshold, answer_confidence=answer_confidence)
        if as_json:
            print(json.dumps(result.answer().to_dict(), ensure_ascii=False, indent=2))
            return
        out = _console()
        for piece in result:
            out.print(piece, end="", soft_wrap=True, markup=False)
        out.print()
        _print_sources(out, result.sources, related=not result.answered_from_documents, question=result.query)
    except (KnowledgeBaseError, RuntimeError) as exc:
        _fail(str(exc))
    finally:
        knowledge_base.close()


@app.command()
def search(
    question: Annotated[str, typer.Argument(help="The query.")],
    kb: KbOpt = "default",
    top_k: TopKOpt = None,
    threshold: ThresholdOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the chunks retrieved for a query, without calling the LLM (to debug retrieval), in retrieval's order (meaning and words fused), each with its relevance (meaning alone, 0..1).

    Example: kbqa search "报销期限" --kb mykb --top-k 8
    """
    cfg, _ = _config(config)
    _models_here(cfg)
    knowledge_base = _open(kb, cfg)
    from kbqa.kb import KnowledgeBaseError, searchable

    try:
        _not_empty(knowledge_base, question)  # a query typed here is held to the servers' limit (the Python API's search takes a follow-up's twice)
        hits = knowledge_base.search(question, top_k=top_k, threshold=threshold)
        if as_json:
            print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        elif not hits and not searchable(question):
            _console().print("the query holds no letter or digit: nothing to search for")
        elif not hits:
            _console().print("no chunk passed the relevance threshold")
        else:
            _print_sources(_console(), hits, question=question)
    except KnowledgeBaseError as exc:
        _fail(str(exc))
    finally:
        knowledge_base.close()


@app.command()
def chat(kb: KbOpt = "default", llm: LlmOpt = None, config: ConfigOpt = None) -> None:
    """An interactive chat with a knowledge base (empty line or Ctrl-D to quit).

    Follow-up questions ("and its price?") are rewritten to stand alone before the search
    (llm.rewrite), and earlier turns are kept up to llm.history_tokens.

    Example: kbqa chat --kb mykb
    """
    cfg, _ = _config(config, llm)
    _models_here(cfg, llm=True)
    knowledge_base = _open(kb, cfg)
    knowledge_base.preload_llm()  # while the first question is typed
    from kbqa.kb import KnowledgeBaseError

    out = _console()
    history: list[dict[str, str]] = []
    out.print(f"chatting with [bold]{_e(knowledge_base.name)}[/]; empty line to quit")
    while True:
        try:
            question = input("\n> ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not question:
            break
        try:
            result = knowledge_base.ask(question, stream=True, history=history)
            if result.query != question:
                out.print(f"(searched for: {result.query})", style="dim", markup=False)
            for piece in result:
                out.print(piece, end="", soft_wrap=True, markup=False)
            out.print()
        except (KnowledgeBaseError, RuntimeError) as exc:  # said, and the chat goes on (an LLM server down, …)
            _console(stderr=True).print(f"\n[bold red]error:[/] {_e(_shown(exc, keep=chr(10)))}")
            continue
        _print_sources(out, result.sources, related=not result.answered_from_documents, question=result.query)
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": result.text}]
    knowledge_base.close()


@app.command()
def serve(
    kb: KbOpt = "default",
    host: Annotated[Optional[str], typer.Option("--host", help="Bind address (default 127.0.0.1: this machine only).")] = None,
    port: PortOpt = None,
    auth: Annotated[Optional[str], typer.Option("--auth", envvar="KBQA_AUTH", help="Require a login: user:password, or a file of user:password lines.")] = None,
    insecure: InsecureOpt = False,
    llm: LlmOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Start the web chat (Gradio) on 127.0.0.1:7860.

    Example: kbqa serve --kb mykb --port 7860 --auth admin:secret
    """
    cfg, origin = _config(config, llm)
    _check_exposure(host, cfg, origin, bool(auth), insecure, "--auth user:password")
    _port_free(host or cfg.webui.host, port or cfg.webui.port)
    _models_here(cfg, llm=True)
    _server_tmp(cfg)
    users: list[tuple[str, str]] = []
    if auth:
        lines = Path(auth).read_text(encoding="utf-8").splitlines() if Path(auth).is_file() else [auth]
        for line in lines:
            if line.strip():
                user, sep, password = line.strip().partition(":")
                if not sep or not user or not password:
                    _fail("--auth takes user:password (or a file of such lines)")
                users.append((user, password))
    from webui.app import launch

    try:
        launch(cfg, kb=kb, host=host or cfg.webui.host, port=port or cfg.webui.port, auth=users or None)
    except OSError as exc:
        if "empty port" not in str(exc):
            raise
        # another server took the port between the check above and Gradio's start (two started at once)
        _fail(f"port {port or cfg.webui.port} on {host or cfg.webui.host} is in use (another kbqa server?): stop it, or choose another with --port")


@app.command("eval")
def eval_(
    corpus: Annotated[Path, typer.Option("--corpus", help="Corpus JSONL (doc_id, title, text) or a folder of files.")],
    questions: Annotated[Path, typer.Option("--questions", help="Questions JSONL (question, answers[], gold[{doc_id, page}]).")],
    k: Annotated[int, typer.Option("--k", help="Cut-off for hit@k, doc-hit@k and MRR@k.")] = 5,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Only the first N questions.")] = None,
    kb_dir: Annotated[Optional[Path], typer.Option("--kb-dir", help="Keep the scratch knowledge base here (reused when run again).")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score retrieval on a question set: hit@k, doc-hit@k, MRR@k, hit@1000c and query latency.

    Example: kbqa eval --corpus cmrc2018_dev.corpus.jsonl --questions cmrc2018_dev.questions.jsonl --k 5
    """
    import tempfile
    import time

    from rich.progress import Progress as Bar

    from kbqa.evaluation import corpus_documents, evaluate, read_questions
    from kbqa.kb import KnowledgeBase

    cfg, _ = _config(config)
    _models_here(cfg)
    for p in (corpus, questions):
        if not p.exists():
            _fail(f"{p} does not exist")
    scratch = tempfile.TemporaryDirectory(prefix="kbqa-eval-") if kb_dir is None else None
    folder = kb_dir or Path(scratch.name) / "eval"  # type: ignore[union-attr]
    err = _console(stderr=True)
    with KnowledgeBase.open(str(folder.resolve()), cfg) as knowledge_base:
        t0 = time.perf_counter()
        if corpus.is_dir():
            report = knowledge_base.ingest([corpus])
        else:
            report = knowledge_base.ingest_documents(corpus_documents(corpus))
        ingest_seconds = time.perf_counter() - t0
        qs = read_questions(questions, limit)
        with Bar(console=err, transient=True, disable=as_json or not err.is_terminal) as bar:
            task = bar.add_task("questions", total=len(qs))
            result = evaluate(lambda q, n: knowledge_base.search(q, top_k=n, threshold=0.0), qs, k,
                              progress=lambda done, total: bar.update(task, completed=done))
        result.chunks = knowledge_base.catalog.chunk_count()
        result.ingest_seconds = ingest_seconds if report.count("added") + report.count("updated") else 0.0
    if scratch:
        scratch.cleanup()
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        _console().print(result.table())


@app.command()
def api(
    host: Annotated[Optional[str], typer.Option("--host", help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    api_key: Annotated[Optional[str], typer.Option("--api-key", envvar="KBQA_API_KEY", help="Require Authorization: Bearer KEY (also for /docs).")] = None,
    insecure: InsecureOpt = False,
    llm: LlmOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the OpenAI-compatible HTTP API: model "kb:NAME" answers from a knowledge base.

    Example: kbqa api --port 8000 --api-key secret   (OpenAPI docs at http://127.0.0.1:8000/docs)
    """
    cfg, origin = _config(config, llm)
    if api_key is not None and not api_key.strip():
        _fail("--api-key is empty (an unset variable?): give the key clients must send, or leave the option out")
    _check_exposure(host, cfg, origin, bool(api_key), insecure, "--api-key KEY")
    _port_free(host or cfg.webui.host, port)
    _models_here(cfg, llm=True)
    _server_tmp(cfg)
    from kbqa.api import serve as serve_api

    serve_api(cfg, host or cfg.webui.host, port, api_key)


@app.command()
def models(
    as_json: JsonOpt = False,
    merge: Annotated[Optional[Path], typer.Option("--merge", help="Write the LLM with its LoRA adapter merged into this folder (transformers models).")] = None,
    adapter: Annotated[Optional[str], typer.Option("--adapter", help="The PEFT LoRA folder to merge (default: llm.adapter).")] = None,
    llm: LlmOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List the known LLMs and embedding models and whether each is on this machine.

    Example: kbqa models --json
    Merge a LoRA (Chinese-Alpaca, Chinese-Vicuna, Luotuo publish theirs as adapters) into its base:
      kbqa models --llm ~/models/llama-7b-hf --adapter ~/models/chinese-alpaca-lora-7b --merge ~/models/alpaca-merged
    """
    if merge is not None:
        _merge_adapter(merge, adapter, llm, config)
        return
    from kbqa.models import embedding_models, is_available, llm_models
    from kbqa.offline import how_to_get

    rows = [("llm", m.name, m.backend, m.quantization or "", m.memory_gb, is_available(m.source), m.source) for m in llm_models().values()]
    rows += [("embeddings", m.name, m.backend, "", None, is_available(m.source), m.source) for m in embedding_models().values()]
    if as_json:
        keys = ("role", "name", "backend", "quantization", "memory_gb", "installed", "source")
        print(json.dumps([{**dict(zip(keys, r)), "get": "" if r[5] else how_to_get(r[6])[1]} for r in rows], ensure_ascii=False, indent=2))
        return
    _print_table(("role", "name", "backend", "quant", "≈GB", "here", "source"),
                 [(role, name, backend, quant, f"{mem:g}" if mem else "", "yes" if here else "no", str(source or ""))
                  for role, name, backend, quant, mem, here, source in rows])
    missing = [(name, *how_to_get(source)) for _, name, _, _, _, here, source in rows if not here]
    if missing:
        out = _console()
        out.print("\nNot here; kbqa downloads nothing unless llm.allow_download: true. To get one:", markup=False)
        for name, kind, what in missing:
            out.print(f"  {name}: " + (f"download {what} and set llm.path to it" if kind == "file" else what), markup=False)


def _print_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A table that never cuts a name or a path: cells wrap on a terminal; piped, plain columns
    aligned by display width (a CJK character is two columns), one row a line."""
    out = _console()
    if out.is_terminal:
        from rich.table import Table

        table = Table(*headers)
        for column in table.columns:
            column.overflow = "fold"
        for row in rows:
            table.add_row(*(_n(cell) for cell in row))
        out.print(table)
        return
    from rich.cells import cell_len

    rows = [tuple(_shown(c) for c in r) for r in rows]
    widths = [max(cell_len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        cells = [str(c) + " " * (w - cell_len(str(c))) for c, w in zip(row, widths)]
        print("  ".join(cells).rstrip())


def _merge_adapter(out: Path, adapter: str | None, llm: str | None, config: Path | None) -> None:
    cfg, _ = _config(config, llm)
    from kbqa.llm import resolve_model

    model = resolve_model(cfg.llm)
    adapter = adapter or cfg.llm.adapter
    if model.backend != "transformers":
        _fail(f"--merge works on transformers models; {model.name!r} uses the {model.backend} backend (give --llm a model folder)")
    if not adapter:
        _fail("--merge needs an adapter: --adapter FOLDER or llm.adapter in the config")
    from kbqa.llm.hf import merge_adapter

    source = cfg.llm.path or model.source or model.name
    trust = cfg.llm.trust_remote_code if cfg.llm.trust_remote_code is not None else model.trust_remote_code
    try:
        target = merge_adapter(source, adapter, str(out), cfg.llm, trust)
    except (RuntimeError, OSError, ValueError) as exc:
        _fail(f"merge failed: {exc}")
    _console().print(_e(f"merged {adapter} into {source} -> {target}\nuse it with: kbqa ask --llm {target} ..."))


@kb_app.command("list")
def kb_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List knowledge bases with their file and chunk counts.

    Example: kbqa kb list --json
    """
    cfg, _ = _config(config)
    from kbqa.kb import KnowledgeBase, list_knowledge_bases, milvus_uri

    from kbqa.kb import KnowledgeBaseError

    stats = []
    try:
        for name in list_knowledge_bases(cfg):
            try:
                with KnowledgeBase.open(name, cfg, create=False) as k:
                    stats.append(k.stats())
            except KnowledgeBaseError as exc:  # e.g. the unfinished copy of an interrupted migrate: said, not fatal
                stats.append({"name": name, "error": str(exc)})
    except RuntimeError as exc:  # a store that cannot be opened
        _fail(str(exc))
    if as_json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
        return
    if not stats:
        where = f"Milvus at {milvus_uri(cfg)}" if cfg.store.backend == "milvus" else str(cfg.home_dir() / "kbs")
        _console().print(f"no knowledge bases in {_e(where)}")
    for s in stats:
        if "error" in s:
            _console().print(f"{_e(s['name'])}: [yellow]{_e(s['error'])}[/]")
            continue
        unsupported = f", {s['unsupported']} unsupported" if s.get("unsupported") else ""
        _console().print(f"{_e(s['name'])}: {_count(s['files'], 'file')} ({s['failed']} failed{unsupported}), {_count(s['chunks'], 'chunk')}, "
                         f"{_e(s['embedding_model'])}  [dim]{_e(s['folder'])}[/]")


@kb_app.command("files")
def kb_files(kb: Annotated[str, typer.Argument(help="Knowledge base.", envvar="KBQA_KB")] = "default", kb_option: KbAlsoOpt = None,
             config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List the files of a knowledge base with status, pages, chunks, description and errors.

    Example: kbqa kb files mykb   (or: kbqa kb files -k mykb)
    """
    cfg, _ = _config(config)
    knowledge_base = _open(_one_kb(kb, kb_option), cfg)
    from kbqa.kb import KnowledgeBaseError

    rows = knowledge_base.files()
    try:
        missing = {r.id for r in knowledge_base.missing_files()}
    except KnowledgeBaseError:  # busy: listed without the marks
        missing = set()
    if as_json:
        print(json.dumps([{**r.__dict__, "missing": r.id in missing} for r in rows], ensure_ascii=False, indent=2))
        return
    home = str(Path.home())
    folder = lambda path: str(Path(path).parent).replace(home, "~", 1) if path.startswith(home) else str(Path(path).parent)  # noqa: E731
    about = lambda text: text if len(text) <= 48 else text[:47] + "…"  # noqa: E731
    # an ok file's note is a warning (a damaged PDF ingested as repaired); a failed file's, its error
    problem = lambda r: (f"warning: {r.error}" if r.status == "ok" else r.error) if r.error else ""  # noqa: E731
    _print_table(("id", "file", "folder", "status", "pages", "chunks", "seconds", "description", "error / warning"),
                 [(str(r.id), r.name, folder(r.path), r.status, str(r.pages or ""), str(r.chunks), f"{r.seconds or 0:.2f}",
                   about(r.description), problem(r) or ("not on disk: kbqa kb prune" if r.id in missing else "")) for r in rows])


@kb_app.command("rm")
def kb_rm(
    file: Annotated[str, typer.Argument(help="File id, name or path (see kbqa kb files).")],
    kb: KbOpt = "default",
    config: ConfigOpt = None,
) -> None:
    """Remove one file and its chunks from a knowledge base (your file itself is not touched).

    Example: kbqa kb rm 报销.docx --kb mykb
    """
    cfg, _ = _config(config)
    knowledge_base = _open(kb, cfg)
    from kbqa.kb import KnowledgeBaseError

    try:
        row = knowledge_base.remove_file(file)
    except KnowledgeBaseError as exc:  # a name as kbqa shows it ("bad\nname.txt", a newline escaped) names that file too
        shown_as = [f for f in knowledge_base.files() if f.name != file and _shown(f.name) == file]  # (found by review)
        if len(shown_as) != 1:
            _fail(str(exc))
        try:
            row = knowledge_base.remove_file(str(shown_as[0].id))
        except KnowledgeBaseError as again:
            _fail(str(again))
    _console().print(f"removed {_n(row.name)} ({_count(row.chunks, 'chunk')})")


@kb_app.command("prune")
def kb_prune(
    kb: Annotated[str, typer.Argument(help="Knowledge base.", envvar="KBQA_KB")] = "default",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed.")] = False,
    kb_option: KbAlsoOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove the files no longer where they were ingested from, and their chunks.

    For folders deleted or moved away; `kbqa ingest FOLDER --prune` does this under a folder that
    still exists. A drive or share that is not mounted counts as gone: look first with --dry-run.
    A folder that is there but cannot be read (permissions) does not: its files are kept.
    Example: kbqa kb prune mykb --dry-run

    A Milvus store that servers on several hosts share: run it on the host that ingested the files
    (a file of another host is missing here too); --dry-run shows what would go.
    """
    cfg, _ = _config(config)
    knowledge_base = _open(_one_kb(kb, kb_option), cfg)
    from kbqa.kb import KnowledgeBaseError

    try:
        rows = knowledge_base.missing_files() if dry_run else knowledge_base.prune_missing()
    except KnowledgeBaseError as exc:
        _fail(str(exc))
    finally:
        knowledge_base.close()
    if as_json:
        print(json.dumps([{"id": r.id, "name": r.name, "path": r.path, "chunks": r.chunks} for r in rows], ensure_ascii=False, indent=2))
        return
    out = _console()
    for row in rows:
        out.print(f"{'would remove' if dry_run else '[green]removed[/]'} {_n(row.name)} ({_count(row.chunks, 'chunk')}; was at {_n(row.path)})")
    verb = "would be removed" if dry_run else "removed"
    out.print(f"[bold]{_e(knowledge_base.name)}[/]: {_count(len(rows), 'file')} no longer on disk {verb}" if rows
              else f"[bold]{_e(knowledge_base.name)}[/]: every file is where it was ingested from")


@kb_app.command("drop")
def kb_drop(
    kb: Annotated[str, typer.Argument(help="Knowledge base to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Delete a whole knowledge base (its catalog and index; your documents are not touched).

    Example: kbqa kb drop mykb --yes
    """
    from kbqa.kb import KnowledgeBase, KnowledgeBaseError, _folder_of, drop_store, kb_exists

    cfg, _ = _config(config)
    try:
        knowledge_base = KnowledgeBase.open(kb, cfg, create=False)
    except KnowledgeBaseError as exc:
        folder = _folder_of(kb, cfg)
        if not kb_exists(cfg, folder):  # (found by review: it advised creating it with kbqa ingest)
            _fail(f"no knowledge base {kb!r} to delete: `kbqa kb list` shows them")
        if "unfinished copy" not in str(exc):
            _fail(str(exc))
        if not yes and not typer.confirm(f"delete the unfinished copy {kb!r}?"):
            _console(stderr=True).print("not deleted")
            raise typer.Exit(1) from None
        drop_store(cfg, folder)  # what an interrupted migrate left: it cannot be opened, only deleted
        _console().print(f"dropped {_e(kb)}")
        return
    except RuntimeError as exc:
        _fail(str(exc))
    if not yes and not typer.confirm(f"delete knowledge base {knowledge_base.name!r} at {knowledge_base.location}?"):
        _console(stderr=True).print("not deleted")  # (found by review: answering n exited 1 without a word)
        raise typer.Exit(1)
    left = knowledge_base.drop()
    _console().print(f"dropped {_e(knowledge_base.name)}")
    if left:  # --kb PATH in a folder of the user's own files: only kbqa's files went
        _console().print(f"{knowledge_base.location} still holds {_n(', '.join(left[:5]))}{', …' if len(left) > 5 else ''}: kept "
                         "(a knowledge base given as a folder path loses only the files kbqa made there, never an uploads/ folder)")


@contextmanager
def _progress_bar(description: str) -> Iterator[Callable[[Any], None]]:
    """A progress bar on stderr (when it is a terminal) fed with kbqa.types.Progress events."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = _console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[name]}"), console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(description, total=None, name="")
        yield lambda p: bar.update(task, total=p.total, completed=p.done, name=p.name)


@kb_app.command("migrate")
def kb_migrate(
    kb: Annotated[str, typer.Argument(help="Knowledge base to move.")],
    to: Annotated[str, typer.Option("--to", help="milvus (the whole KB into Milvus) | embedded (back into a folder) | faiss (vectors of store.vector_index milvus back into FAISS)")] = "milvus",
    uri: Annotated[Optional[str], typer.Option("--uri", help="Milvus server URI (http://host:19530) or a Milvus Lite folder (.db); default store.milvus_uri.")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the source after the copy (default: deleted once every file and chunk arrived).")] = False,
    faiss_index: Annotated[str, typer.Option("--faiss-index", help="flat | hnsw, with --to faiss")] = "flat",
    config: ConfigOpt = None,
) -> None:
    """Move a knowledge base to another store, without embedding anything again.

    Example: kbqa kb migrate mykb --to milvus --uri http://milvus.internal:19530
    then serve it with store.backend: milvus (KBQA_STORE__BACKEND=milvus KBQA_STORE__MILVUS_URI=...).
    Back: KBQA_STORE__BACKEND=milvus kbqa kb migrate mykb --to embedded
    """
    from kbqa.kb import KnowledgeBaseError

    cfg, _ = _config(config)
    if to not in ("milvus", "embedded", "faiss"):
        _fail("--to must be milvus, embedded or faiss")
    knowledge_base = _open(kb, cfg)
    files = len(knowledge_base.files())
    try:
        with _progress_bar(f"moving {knowledge_base.name} to {to}") as notify:
            moved = knowledge_base.migrate(to, milvus_uri=uri, faiss_index=faiss_index, keep=keep, progress=notify)
    except (RuntimeError, KnowledgeBaseError) as exc:
        _fail(str(exc))
    if to == "faiss":
        _console().print(_e(f"{knowledge_base.name}: {moved} vectors now in FAISS"))
        return
    use = "store.backend: milvus (KBQA_STORE__BACKEND=milvus" + (f", KBQA_STORE__MILVUS_URI={uri})" if uri else ")") if to == "milvus" else "store.backend: embedded (the default)"
    kept = "; the source was kept (--keep)" if keep else ""
    _console().print(_e(f"{knowledge_base.name}: {_count(files, 'file')}, {_count(moved, 'chunk')} now in {knowledge_base.location}{kept}. Open it with {use}"))


@config_app.command("show")
def config_show(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Print the merged configuration and where each value came from.

    Example: KBQA_RETRIEVAL__TOP_K=6 kbqa config show --config my.yaml
    """
    from kbqa.config import _flatten

    cfg, origin = _config(config)
    flat = _flatten(cfg.model_dump())
    if as_json:
        print(json.dumps({k: {"value": v, "from": origin.get(k, "default")} for k, v in flat.items()}, ensure_ascii=False, indent=2))
        return
    for key, value in flat.items():
        _console().print(f"{_e(key)} = {_e(repr(value))}  [dim]# {_e(origin.get(key, 'default'))}[/]")
    _console().print(f"[dim]home: {_e(cfg.home_dir())}[/]")


def _version(shown: bool) -> None:
    if shown:
        from kbqa import __version__

        print(f"kbqa {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the log, libraries' messages included (also KBQA_LOG=debug).")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print kbqa's version and exit.", callback=_version, is_eager=True)] = False,
) -> None:
    import logging

    if verbose:
        os.environ["KBQA_LOG"] = "debug"  # the file loader process reads it too
    debug = os.environ.get("KBQA_LOG", "").lower() == "debug"
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not debug:
        for noisy in ("httpx", "httpcore", "urllib3", "faiss", "jieba"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main() -> None:
    from kbqa.offline import ModelNotAvailable

    args = sys.argv[1:]
    as_json = "--json" in (args[: args.index("--")] if "--" in args else args)  # (after "--" it is a value)
    try:
        if as_json:  # usage errors too come back as the one JSON document: click's own handling is not used
            code = app(standalone_mode=False)
            sys.exit(code if isinstance(code, int) else 0)
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except _Failure as exc:
        _say_failure(exc.message, exc.code, as_json)
        sys.exit(exc.code)
    except ModelNotAvailable as exc:  # a model loaded later than the command's own check (e.g. by a library call)
        _say_failure(str(exc), EXIT_USAGE, as_json)
        sys.exit(EXIT_USAGE)
    except Exception as exc:
        message, code = getattr(exc, "format_message", None), getattr(exc, "exit_code", None)
        if as_json and callable(message) and isinstance(code, int):  # a usage error (an option out of range, a missing argument)
            _say_failure(str(message()), code, True)
            sys.exit(code)
        raise


if __name__ == "__main__":
    main()
