"""Offline by default: a model name kbqa cannot find on this machine is a clear error listing the
installed models, through the real CLI, the service layer and the HTTP API — never a download, unless
llm.allow_download is true. The network is a trap here: every proxy variable and HF_ENDPOINT point at
a local listener that counts the connections it gets and answers 404."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, run_kbqa

PROXIES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")


class Trap:
    """A local TCP listener standing in for the internet: it records every connection."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self.requests.append(conn.recv(4096)[:120])
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    self.requests.append(b"?")

    def env(self, hf_home: Path) -> dict[str, str]:
        """The environment of a process that may only reach this trap, with an empty Hugging Face cache."""
        return {**dict.fromkeys(PROXIES, self.url), "HF_ENDPOINT": self.url, "NO_PROXY": "", "no_proxy": "", "HF_HOME": str(hf_home)}


@pytest.fixture
def trap(tmp_path: Path) -> Iterator[Trap]:
    t = Trap()
    yield t
    t.server.close()


@pytest.fixture
def hf_home(tmp_path: Path) -> Path:
    folder = tmp_path / "hf"
    folder.mkdir()
    return folder


@pytest.fixture
def policy(monkeypatch: pytest.MonkeyPatch, trap: Trap, hf_home: Path) -> Iterator[None]:
    """In this process: only the trap to talk to, no hub variables, and the download switch put back after."""
    from kbqa import offline

    for name, value in trap.env(hf_home).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    for name in offline.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    offline._ours.clear()
    yield
    offline.apply(False)


def kbqa(*args: str, trap: Trap, hf_home: Path, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    clean = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kbqa.cli", *args], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**clean, **trap.env(hf_home), **(env or {})})
    return done, time.perf_counter() - started


@pytest.fixture(scope="module")
def faq_kb(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A knowledge base (by folder) that holds the answer: a question to it would call the LLM."""
    from kbqa.config import load_config
    from kbqa.kb import KnowledgeBase

    root = tmp_path_factory.mktemp("faq")
    (root / "faq.md").write_text("# FAQ\n\n## 出水变慢\n\n出水变慢多半是 PP 棉滤芯堵塞，请更换 PP 棉滤芯。\n", encoding="utf-8")
    with KnowledgeBase.open(str(root / "kb"), load_config(overrides={"home": str(root / "home")})[0]) as kb:
        kb.ingest([root / "faq.md"])
    return str(root / "kb")


# --- the CLI --------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["--llm", "KBQA_LLM__MODEL"])
@pytest.mark.slow
def test_an_unknown_llm_name_exits_2_with_the_installed_list_and_no_network(
    home: Path, trap: Trap, hf_home: Path, faq_kb: str, how: str
) -> None:
    name = "qwen-7b-chat-nowhere"
    question = "出水变慢怎么办？"
    args, env = (["ask", question, "--kb", faq_kb, "--llm", name], {}) if how == "--llm" else (["ask", question, "--kb", faq_kb], {how: name})
    done, seconds = kbqa(*args, trap=trap, hf_home=hf_home, env=env)
    assert done.returncode == 2, done.stderr
    assert f"unknown LLM {name!r}" in done.stderr
    assert "Installed on this machine: gemma-3-270m" in done.stderr and "extractive" in done.stderr
    assert "llm.allow_download: true" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
    assert trap.requests == []  # not one connection: no hub, no retries
    assert seconds < 20  # it refuses at once (the CLI starts in about a second)


@pytest.mark.slow
def test_the_servers_refuse_an_unknown_llm_at_start(home: Path, trap: Trap, hf_home: Path) -> None:
    for command in ("serve", "api"):
        done, seconds = kbqa(command, "--port", "9", trap=trap, hf_home=hf_home, env={"KBQA_LLM__MODEL": "no-such-llm"})
        assert done.returncode == 2 and "unknown LLM 'no-such-llm'" in done.stderr and "gemma-3-270m" in done.stderr, done.stderr
        assert seconds < 20
    assert trap.requests == []


@pytest.mark.parametrize("command", [["search", "年假"], ["ingest", "."]])
@pytest.mark.slow
def test_an_unknown_embedding_model_exits_2_with_the_installed_list(home: Path, trap: Trap, hf_home: Path, command: list[str]) -> None:
    done, seconds = kbqa(*command, "--kb", "nokb", trap=trap, hf_home=hf_home, env={"KBQA_EMBEDDINGS__MODEL": "text2vec-nowhere"})
    assert done.returncode == 2, done.stderr
    assert "unknown embedding model 'text2vec-nowhere'" in done.stderr
    assert "Installed on this machine: multilingual-e5-small" in done.stderr
    assert trap.requests == [] and seconds < 20
    assert not (home / "kbs" / "nokb").exists()  # refused before anything was made


@pytest.mark.slow
def test_a_catalog_hub_model_not_downloaded_is_a_clear_error(home: Path, trap: Trap, hf_home: Path) -> None:
    done, _ = kbqa("ask", "q", "--kb", "nokb", "--llm", "chatglm3-6b", trap=trap, hf_home=hf_home)
    assert done.returncode == 2
    assert "LLM 'chatglm3-6b' (THUDM/chatglm3-6b) is not on this machine" in done.stderr
    assert "hf download THUDM/chatglm3-6b" in done.stderr and "llm.allow_download: true" in done.stderr
    assert "gemma-3-270m" in done.stderr
    done, _ = kbqa("search", "q", "--kb", "nokb", trap=trap, hf_home=hf_home, env={"KBQA_EMBEDDINGS__MODEL": "bge-small-zh-v1.5"})
    assert done.returncode == 2 and "hf download BAAI/bge-small-zh-v1.5" in done.stderr and "multilingual-e5-small" in done.stderr
    assert trap.requests == []


def test_models_says_what_is_here_and_how_to_get_the_rest(home: Path, trap: Trap, hf_home: Path) -> None:
    import json

    done, _ = kbqa("models", "--json", trap=trap, hf_home=hf_home)
    by_name = {m["name"]: m for m in json.loads(done.stdout)}
    assert by_name["chatglm3-6b"]["installed"] is False and by_name["chatglm3-6b"]["get"] == "hf download THUDM/chatglm3-6b"
    assert by_name["gemma-3-270m"]["installed"] is True and by_name["gemma-3-270m"]["get"] == ""


@pytest.mark.slow
def test_nothing_is_written_outside_the_home(home: Path, tmp_path: Path) -> None:
    """Found by review: ONNX Runtime (the embedder's runtime) wrote a device id and a queue of usage
    events to upload under ~/.cache/Microsoft on every command."""
    user = tmp_path / "user-home"
    user.mkdir()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.md").write_text("# Canteen\n\nThe staff canteen opens at seven in the morning.\n", encoding="utf-8")
    env = {"HOME": str(user), "XDG_CACHE_HOME": "", "XDG_DATA_HOME": ""}
    assert run_kbqa("ingest", str(docs), "--kb", "n", env=env).returncode == 0
    found = run_kbqa("search", "When does the canteen open?", "--kb", "n", env=env)
    assert found.returncode == 0 and "seven" in found.stdout, found.stderr
    assert [str(p.relative_to(user)) for p in user.rglob("*")] == []


# --- in this process: the check, the switch, the cache ----------------------------------------------
def test_a_hub_model_in_the_cache_is_installed_and_loads_offline(policy: None, hf_home: Path) -> None:
    from kbqa.config import EmbeddingsConfig
    from kbqa.embeddings import check_embeddings
    from kbqa.offline import installed

    assert "bge-small-zh-v1.5" not in installed("embeddings")
    snapshot = hf_home / "hub" / "models--BAAI--bge-small-zh-v1.5" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert "bge-small-zh-v1.5" not in installed("embeddings")  # no weights yet: a partial download
    (snapshot / "model.safetensors").write_bytes(b"0")
    assert "bge-small-zh-v1.5" in installed("embeddings")
    assert check_embeddings(EmbeddingsConfig(model="bge-small-zh-v1.5")).source == "BAAI/bge-small-zh-v1.5"


def test_unknown_models_are_refused_before_any_library_is_asked(policy: None, trap: Trap) -> None:
    from kbqa.config import EmbeddingsConfig, LLMConfig
    from kbqa.embeddings import make_embedder
    from kbqa.llm import make_llm
    from kbqa.offline import ModelNotAvailable
    from kbqa.rerank import CrossEncoderReranker

    with pytest.raises(ModelNotAvailable) as llm:
        make_llm(LLMConfig(model="kbqa-test/no-such-model"), Path("."))
    assert llm.value.installed[:1] == ["gemma-3-270m"] and "extractive" in llm.value.installed and not llm.value.known
    with pytest.raises(ModelNotAvailable) as missing:
        make_llm(LLMConfig(model="chatglm3-6b"), Path("."))
    assert missing.value.known and missing.value.get == ("hub", "hf download THUDM/chatglm3-6b")
    with pytest.raises(ModelNotAvailable, match="multilingual-e5-small"):
        make_embedder(EmbeddingsConfig(model="kbqa-test/no-such-embedder"))
    with pytest.raises(ModelNotAvailable, match="local folder"):
        CrossEncoderReranker("kbqa-test/no-such-reranker")
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert trap.requests == []


@pytest.mark.slow
def test_with_allow_download_the_hub_is_asked(trap: Trap, hf_home: Path) -> None:
    """llm.allow_download: true gets past the check and the loader asks the hub (here: the trap, which
    says 404). In a fresh process: huggingface_hub reads HF_ENDPOINT once, when imported."""
    pytest.importorskip("transformers")
    script = ("from pathlib import Path\n"
              "from kbqa.config import LLMConfig\n"
              "from kbqa.llm import make_llm\n"
              "from kbqa.offline import ModelNotAvailable\n"
              "try:\n"
              "    make_llm(LLMConfig(model='kbqa-test/no-such-model', allow_download=True), Path('.'))\n"
              "except ModelNotAvailable:\n"
              "    print('refused')\n"
              "except Exception as exc:\n"
              "    print('asked the hub:', type(exc).__name__)\n")
    clean = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT, env={**clean, **trap.env(hf_home)})
    assert done.stdout.startswith("asked the hub:"), done.stdout + done.stderr
    assert any(b"no-such-model" in r for r in trap.requests)
    assert time.perf_counter() - started < 60  # a 404 ends it: no retry loop


def test_the_check_alone_passes_with_allow_download(policy: None) -> None:
    from kbqa.config import LLMConfig
    from kbqa.llm import check_llm
    from kbqa.offline import apply

    apply(True)
    assert check_llm(LLMConfig(model="kbqa-test/no-such-model", allow_download=True)).source == "kbqa-test/no-such-model"
    assert "HF_HUB_OFFLINE" not in os.environ


@pytest.mark.slow
def test_hf_hub_offline_follows_the_switch(tmp_path: Path, trap: Trap, hf_home: Path) -> None:
    script = ("import os, huggingface_hub.constants as hub\n"
              "from kbqa.config import load_config\n"
              "print(hub.HF_HUB_OFFLINE)\n"  # imported first: its reading of the variables must be corrected too
              "load_config()\n"
              "print(os.environ.get('HF_HUB_OFFLINE'), os.environ.get('TRANSFORMERS_OFFLINE'), hub.HF_HUB_OFFLINE)\n")
    clean = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    for allow, expected in (("false", "1 1 True"), ("true", "None None False")):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT,
                              env={**clean, **trap.env(hf_home), "KBQA_LLM__ALLOW_DOWNLOAD": allow})
        assert done.returncode == 0, done.stderr
        assert done.stdout.split("\n")[:2] == ["False", expected]
    # set by the user, it stays: kbqa is then offline whatever the switch says
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**clean, **trap.env(hf_home), "KBQA_LLM__ALLOW_DOWNLOAD": "true", "HF_HUB_OFFLINE": "1"})
    assert done.stdout.split("\n")[1].startswith("1 ")


# --- the service layer and the HTTP API ---------------------------------------------------------------
def test_the_service_answers_an_unknown_model_with_400(home: Path, policy: None, monkeypatch: pytest.MonkeyPatch, trap: Trap) -> None:
    from kbqa.config import load_config
    from kbqa.service import BadRequest, Service

    monkeypatch.setenv("KBQA_LLM__MODEL", "kbqa-test/no-such-model")
    service = Service(load_config()[0])
    assert service.llm_choices()[0] == "kbqa-test/no-such-model" and "extractive" in service.llm_choices()
    with pytest.raises(BadRequest) as err:
        service.llm()
    assert err.value.status == 400 and err.value.code == "llm_unknown"
    assert "extractive" in err.value.message and "extractive" in str(err.value.params["installed"])
    with pytest.raises(BadRequest) as err:
        service.llm("/etc/passwd")  # a request names a model, never a path on the server
    assert err.value.code == "not_here"
    with pytest.raises(BadRequest) as err:
        service.chat([{"role": "user", "content": "你好"}])
    assert err.value.code == "llm_unknown"
    assert ("chatglm3-6b", "hub", "hf download THUDM/chatglm3-6b") in service.llm_missing()
    monkeypatch.setenv("KBQA_EMBEDDINGS__MODEL", "kbqa-test/no-such-embedder")
    service = Service(load_config()[0])
    with pytest.raises(BadRequest) as err:
        service.create("kb")
    assert err.value.code == "embeddings_unknown" and "multilingual-e5-small" in err.value.message
    assert trap.requests == []


def test_the_http_api_answers_an_unknown_model_with_400(home: Path, policy: None, monkeypatch: pytest.MonkeyPatch, trap: Trap) -> None:
    from fastapi.testclient import TestClient

    from kbqa.api import create_app
    from kbqa.config import load_config

    monkeypatch.setenv("KBQA_LLM__MODEL", "kbqa-test/no-such-model")
    with TestClient(create_app(load_config()[0])) as client:
        r = client.post("/v1/chat/completions", json={"model": "kbqa-test/no-such-model", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400, r.text
    assert "Installed on this machine: gemma-3-270m" in r.json()["detail"]
    assert trap.requests == []


@pytest.mark.slow
def test_the_web_chat_says_a_failed_load_in_the_page_language_and_goes_on(home: Path, policy: None, docs: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gradio")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(home / "cache" / "gradio"))  # (what build_app sets: restored after the test)
    from kbqa.config import load_config
    from kbqa.kb import KnowledgeBase
    from webui.app import build_app

    config = load_config(overrides={"llm": {"model": "chatglm3-6b"}})[0]
    with KnowledgeBase.open("web", config) as kb:
        kb.ingest([docs / "faq.md"])
    app = build_app(config, kb="web")
    ask = next(block.fn for block in app.fns.values() if block.api_name == "ask")
    text, _ = ask("出水变慢怎么办？", "web", 4, 0.0, "chatglm3-6b", "zh")
    assert "本机没有大模型" in text and "chatglm3-6b" in text and "hf download THUDM/chatglm3-6b" in text
    assert "Traceback" not in text
    text, _ = ask("出水变慢怎么办？", "web", 4, 0.0, "extractive", "zh")  # the chat goes on with an installed model
    assert text and not text.startswith("⚠️")
    notes = [c.get("props", {}).get("value") for c in app.config["components"] if c.get("props", {}).get("elem_id") == "llm-missing-list"]
    assert notes and "hf download THUDM/chatglm3-6b" in notes[0]
