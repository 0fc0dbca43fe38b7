"""Hugging Face transformers models: local path or hub id, fp16/bf16/fp32, int8/int4 (bitsandbytes),
an optional PEFT LoRA adapter, the tokenizer's chat template or the catalog's, streamed output."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kbqa.config import LLMConfig
from kbqa.llm import ContextTooSmall
from kbqa.llm.templates import STOPS, render
from kbqa.types import Capabilities
from kbqa.models import LLMModel


def resolve_source(source: str) -> tuple[str, bool]:
    """(what to load, whether it is local). A hub id is loaded from the Hugging Face cache, or
    downloaded when llm.allow_download is true; otherwise it is a clear error (kbqa.offline), never a download."""
    from kbqa.offline import require

    path = Path(source).expanduser()
    if path.exists():
        return str(path), True
    require("llm", source, source, from_catalog=False)
    return source, False


def _dtype(name: str) -> Any:
    import torch

    return {"auto": "auto", "fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


def load_model(source: str, config: LLMConfig, trust_remote_code: bool = False, cpu_fp32: bool = True) -> tuple[Any, Any]:
    """Load (model, tokenizer) as configured: dtype, quantization, device, adapter.
    dtype auto means fp32 on CPU (half precision is slow there) unless cpu_fp32 is False: then the checkpoint's."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise RuntimeError("the transformers backend needs: pip install 'kbqa[hf]'") from exc
    where, local = resolve_source(source)
    common: dict[str, Any] = {"trust_remote_code": trust_remote_code, "local_files_only": local}
    tokenizer = AutoTokenizer.from_pretrained(where, **common)
    kwargs: dict[str, Any] = dict(common)
    device = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if config.quantization in ("int8", "int4"):
        try:
            from transformers import BitsAndBytesConfig
        except ImportError as exc:
            raise RuntimeError("int8/int4 loading needs bitsandbytes: pip install 'kbqa[hf]'") from exc
        if config.quantization == "int8":
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        else:
            compute = torch.bfloat16 if device == "cuda" else torch.float32
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute, bnb_4bit_use_double_quant=True
            )
        kwargs["device_map"] = device
    else:
        kwargs["dtype"] = _dtype("fp32" if config.dtype == "auto" and device == "cpu" and cpu_fp32 else config.dtype)
    model = AutoModelForCausalLM.from_pretrained(where, **kwargs)
    if "device_map" not in kwargs:
        model = model.to(device)
    if config.adapter:
        try:
            from peft import PeftModel
        except ImportError as exc:
            raise RuntimeError("llm.adapter needs peft: pip install 'kbqa[hf]'") from exc
        model = PeftModel.from_pretrained(model, str(Path(config.adapter).expanduser()))
    model.eval()
    return model, tokenizer


def merge_adapter(source: str, adapter: str, out: str, config: LLMConfig, trust_remote_code: bool = False) -> Path:
    """Write base model + LoRA adapter merged into one model folder (no PEFT needed to load it)."""
    cfg = config.model_copy(update={"adapter": adapter, "quantization": None, "device": "cpu"})
    model, tokenizer = load_model(source, cfg, trust_remote_code, cpu_fp32=False)  # keep the checkpoint's dtype
    merged = model.merge_and_unload()
    target = Path(out).expanduser()
    merged.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


class TransformersLLM:
    def __init__(self, model: LLMModel, config: LLMConfig) -> None:
        source = config.path or model.source or model.name
        trust = config.trust_remote_code if config.trust_remote_code is not None else model.trust_remote_code
        self._model, self._tokenizer = load_model(source, config, trust)
        self.name = model.name
        self.template = model.template
        if self.template == "tokenizer" and not getattr(self._tokenizer, "chat_template", None):
            raise RuntimeError(
                f"model {source!r} has no chat template in its tokenizer: set its template in configs/models.yaml "
                "(llama2, alpaca2, alpaca, chatml, chatglm or completion)"
            )
        limit = getattr(self._model.config, "max_position_embeddings", None) or getattr(self._model.config, "seq_length", None)
        self.context = config.n_ctx or model.context or limit or 2048
        self.capabilities = Capabilities.of_template(self.template)
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prompt(self, messages: list[dict[str, str]]) -> str:
        if self.template == "tokenizer":
            return str(self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        return render(self.template, messages).removeprefix("<s>")  # the tokenizer adds the BOS token itself

    def stream(self, messages: list[dict[str, str]], **generation: Any) -> Iterator[str]:
        if self.template == "chatglm" and hasattr(self._model, "stream_chat"):
            yield from self._stream_chat(messages, **generation)
            return
        from transformers import TextIteratorStreamer

        prompt = self._prompt(messages)
        inputs = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=self.template != "tokenizer")
        length = int(inputs["input_ids"].shape[-1])
        if length >= self.context:
            raise ContextTooSmall(f"the prompt does not fit {self.name}'s context window: {length} tokens, {self.context} at most "
                                  "(llm.n_ctx, else the model's own positions): raise llm.n_ctx if the model reads more, or use a model with a longer context")
        inputs = {k: v.to(self._model.device) for k, v in inputs.items()}
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        temperature = float(generation.get("temperature", 0.0))
        kwargs: dict[str, Any] = {
            **inputs,
            "streamer": streamer,
            "max_new_tokens": max(1, min(int(generation.get("max_tokens", 256)), self.context - length)),
            "do_sample": temperature > 0,
            "pad_token_id": self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else self._tokenizer.eos_token_id,
        }
        if temperature > 0:
            kwargs["temperature"] = temperature
        stops = [x for x in list(generation.get("stop") or []) + STOPS.get(self.template, []) if x]
        halt = threading.Event()
        kwargs["stopping_criteria"] = _halt_criteria(halt)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self._model.generate(**kwargs)
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                streamer.end()

        with self._lock:
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            try:
                yield from _cut_at_stops(streamer, stops)
            finally:  # also when the reader stops early: generation ends at its next token
                halt.set()
                worker.join()
        if errors:
            raise RuntimeError(f"generation failed: {errors[0]}")


    def _stream_chat(self, messages: list[dict[str, str]], **generation: Any) -> Iterator[str]:
        """ChatGLM2/3 (trust_remote_code): their own stream_chat builds the prompt; it yields the
        whole response so far, and we pass on what is new."""
        *earlier, last = messages
        query = last["content"]
        if hasattr(self._tokenizer, "build_chat_input"):  # ChatGLM3: history as role/content dicts, system included
            history: list[Any] = [{"role": m["role"], "content": m["content"]} for m in earlier]
        else:  # ChatGLM2: (question, answer) pairs; the system text goes in front of the question
            system = "\n".join(m["content"] for m in earlier if m["role"] == "system")
            turns = [m for m in earlier if m["role"] in ("user", "assistant")]
            history = [(q["content"], a["content"]) for q, a in zip(turns[::2], turns[1::2])]
            query = f"{system}\n\n{query}" if system else query
        temperature = float(generation.get("temperature", 0.0))
        kwargs: dict[str, Any] = {
            "history": history,
            "max_new_tokens": int(generation.get("max_tokens", 256)),
            "do_sample": temperature > 0,
            "temperature": temperature if temperature > 0 else 1.0,
            "top_p": 0.8 if temperature > 0 else 1.0,
        }
        stops = [x for x in list(generation.get("stop") or []) + STOPS.get(self.template, []) if x]

        def deltas() -> Iterator[str]:
            emitted = ""
            for response, _ in self._model.stream_chat(self._tokenizer, query, **kwargs):
                text = response if isinstance(response, str) else str(response)
                new = text[len(emitted) :] if text.startswith(emitted) else text
                emitted = text
                if new:
                    yield new

        with self._lock:
            yield from _cut_at_stops(deltas(), stops)


def _halt_criteria(halt: threading.Event) -> Any:
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Halt(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
            return halt.is_set()

    return StoppingCriteriaList([Halt()])


def _cut_at_stops(pieces: Iterator[str], stops: list[str]) -> Iterator[str]:
    """Pass text through until a stop string appears; hold back just enough to see one whole."""
    hold = max((len(x) for x in stops), default=1) - 1
    text, emitted = "", 0
    for piece in pieces:
        text += piece
        cuts = [i for i in (text.find(x) for x in stops) if i >= 0]
        if cuts:
            if min(cuts) > emitted:
                yield text[emitted : min(cuts)]
            return
        safe = len(text) - hold
        if safe > emitted:
            yield text[emitted:safe]
            emitted = safe
    if len(text) > emitted:
        yield text[emitted:]
