"""LLM backends behind one protocol, stream(messages, **generation) -> Iterator[str], chosen by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from kbqa.config import LLMConfig
from kbqa.models import LLMModel, llm_models
from kbqa.types import Usage


class LLMServerError(RuntimeError):
    """An LLM server (llm.backend: openai) could not be reached or failed the request. The message
    names the server and what to check; `reason` is what happened without the server's address,
    for clients of a kbqa server."""

    def __init__(self, url: str, reason: str, check: str) -> None:
        super().__init__(f"the LLM server at {url} {reason}: {check}")
        self.reason = reason


class ContextTooSmall(RuntimeError):
    """The prompt is longer than the model's context window (llm.n_ctx set too small)."""


class LLM(Protocol):
    name: str
    context: int
    template: str

    def stream(self, messages: list[dict[str, str]], **generation: Any) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...


def metered(llm: Any, messages: list[dict[str, str]], usage: Usage, **generation: Any) -> Iterator[str]:
    """llm.stream(messages, **generation), adding the prompt's and the generated text's tokens to
    usage when it ends (also when the consumer stops early: those tokens were spent)."""
    pieces = llm.stream(messages, **generation)
    text = ""
    limit = int(generation.get("max_tokens") or 0)
    try:
        for piece in pieces:
            text += piece
            yield piece
    finally:
        close = getattr(pieces, "close", None)
        if close:
            close()
        count = getattr(llm, "count_tokens", None)
        if count is not None:
            generated = count(text) if text else 0
            usage.prompt_tokens += sum(count(m["content"]) for m in messages)
            usage.completion_tokens += generated
            usage.cut = 0 < limit <= generated


def _llamacpp(model: LLMModel, config: LLMConfig, cache_dir: Path) -> LLM:
    from kbqa.llm.llamacpp import LlamaCppLLM

    return LlamaCppLLM(model, config, cache_dir)


def _transformers(model: LLMModel, config: LLMConfig, cache_dir: Path) -> LLM:
    from kbqa.llm.hf import TransformersLLM

    return TransformersLLM(model, config)


def _openai(model: LLMModel, config: LLMConfig, cache_dir: Path) -> LLM:
    from kbqa.llm.openai_backend import OpenAILLM

    return OpenAILLM(model, config)


BACKENDS: dict[str, Callable[[LLMModel, LLMConfig, Path], LLM]] = {
    "llamacpp": _llamacpp,
    "transformers": _transformers,
    "openai": _openai,
}  # "extractive" in the catalog is no LLM: kbqa.answer.ExtractiveAnswerer answers without one


def resolve_model(config: LLMConfig) -> LLMModel:
    """The catalog entry named by config.model, or an entry for a path / hub id / server model."""
    catalog = llm_models()
    if config.model in catalog:
        model = catalog[config.model]
        if config.backend and config.backend != model.backend:
            model = LLMModel(**{**model.__dict__, "backend": config.backend})
        if config.template and config.template != model.template:
            model = LLMModel(**{**model.__dict__, "template": config.template})
        return model
    source = config.path or config.model
    backend = config.backend or ("llamacpp" if source.lower().endswith(".gguf") else "transformers")
    shipped = shipped_gguf(source) if backend == "llamacpp" else None
    if shipped is not None:  # the catalog's own file given by its path: the catalog's template (a base model is no chat model)
        return LLMModel(**{**shipped.__dict__, "source": source, "template": config.template or shipped.template})
    template = config.template or ("gguf" if backend == "llamacpp" else "tokenizer")
    return LLMModel(name=config.model, backend=backend, source=source, template=template, context=0)  # 0: the model's own


def shipped_gguf(path: str) -> LLMModel | None:
    """The catalog's entry for a GGUF file that is one of its shipped models' (by file name): found by review, the
    default model's own file given as `--llm FILE.gguf` was prompted as a chat model, and echoed the question."""
    from kbqa.llm.llamacpp import package_gguf_names

    name = Path(path).name
    return next((m for m in llm_models().values() if m.backend == "llamacpp" and name in package_gguf_names(m.source or "")), None)


def check_llm(config: LLMConfig) -> LLMModel:
    """The model config names, refused (kbqa.offline.ModelNotAvailable, listing the installed ones)
    when it is to be loaded here but its weights are not on this machine and may not be downloaded."""
    from kbqa.offline import require

    model = resolve_model(config)
    if model.backend in ("llamacpp", "transformers"):
        source = config.path or model.source or model.name
        require("llm", model.name, source, from_catalog=not config.path and model.name in llm_models())
    return model


def make_llm(config: LLMConfig, cache_dir: Path) -> LLM:
    from kbqa.offline import apply

    apply(config.allow_download)
    model = check_llm(config)
    if model.backend not in BACKENDS:
        raise RuntimeError(f"unknown llm backend {model.backend!r}; choose one of {', '.join(BACKENDS)} (or llm.model: extractive, no LLM)")
    try:
        return BACKENDS[model.backend](model, config, cache_dir)
    except RuntimeError:
        raise  # kbqa's own errors already say what to do; a missing model is ModelNotAvailable
    except Exception as exc:  # a file that is not a model, a corrupt GGUF, a folder without weights
        where = config.path or model.source or model.name
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LLMLoadFailed(
            f"could not load the LLM {model.name!r} from {where} with {model.backend}: {said[:300]} — give a .gguf file or a "
            "model folder saved by transformers (config.json and weights), or another model: `kbqa models` lists the installed ones"
        ) from exc


class LLMLoadFailed(RuntimeError):
    """A model that was found but could not be loaded."""
