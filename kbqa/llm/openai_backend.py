"""Any OpenAI-compatible chat server: vLLM, Ollama, FastChat, Xinference, LM Studio, llama.cpp server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from kbqa.config import LLMConfig
from kbqa.llm import ContextTooSmall, LLMServerError
from kbqa.models import LLMModel
from kbqa.types import Capabilities


# how servers say a prompt is longer than their context: vLLM and OpenAI ("maximum context length",
# "context_length_exceeded"), llama.cpp's server ("exceed_context_size_error", "exceeds the available context
# size"), llama-cpp-python's ("exceed context window")
_CONTEXT_FULL = re.compile(r"maximum context length|context_length_exceeded|exceed_context_size|exceeds? the available context"
                           r"|exceed context window", re.I)


class OpenAILLM:
    def __init__(self, model: LLMModel, config: LLMConfig, cache_dir: object = None) -> None:
        if not config.base_url:
            raise RuntimeError("llm.backend=openai needs llm.base_url, e.g. http://127.0.0.1:11434/v1 for Ollama")
        import httpx

        self.name = model.name
        self.template = "server"
        self.capabilities = Capabilities(chat=True)
        self.context = config.n_ctx or model.context or 4096
        self._model = config.path or model.source or model.name
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._base_url = config.base_url.rstrip("/")
        self._client = httpx.Client(base_url=self._base_url, headers=headers, timeout=httpx.Timeout(600, connect=10))

    def count_tokens(self, text: str) -> int:
        from kbqa.prompts import approx_tokens

        return approx_tokens(text)

    def stream(self, messages: list[dict[str, str]], **generation: Any) -> Iterator[str]:
        body = {
            "model": self._model,
            "messages": messages,
            "max_tokens": generation.get("max_tokens", 256),
            "temperature": generation.get("temperature", 0.0),
            "stream": True,
        }
        if generation.get("stop"):
            body["stop"] = list(generation["stop"])
        import httpx

        try:
            with self._client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    said = response.text[:300].strip()
                    if response.status_code == 400 and _CONTEXT_FULL.search(response.text):
                        raise ContextTooSmall(f"the LLM server at {self._base_url} says the prompt does not fit its context ({said}): "
                                              f"set llm.n_ctx to the context it serves (kbqa assumes {self.context} tokens)")
                    raise LLMServerError(self._base_url, f"answered {response.status_code} ({said})",
                                         f"is llm.model {self._model!r} served there?")
                streamed = False
                lines = []
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        if not streamed and len(lines) < 10_000:
                            lines.append(line)  # a server that ignores "stream": one JSON body
                        continue
                    streamed = True
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    if text := self._text(data, "delta"):
                        yield text
                if not streamed and "".join(lines).strip():
                    if text := self._text("\n".join(lines), "message"):
                        yield text
        except httpx.HTTPError as exc:
            raise LLMServerError(self._base_url, f"cannot be reached ({type(exc).__name__}: {exc})",
                                 "start it, or set llm.base_url to where it listens") from None

    def _text(self, data: str, part: str) -> str:
        """The text of one OpenAI chunk (part "delta") or whole reply ("message"); anything else the
        server sends is its failure, said as such."""
        try:
            choices = json.loads(data).get("choices") or []
            content = (choices[0].get(part) or {}).get("content") if choices else None
        except (ValueError, AttributeError, TypeError, IndexError):
            content = 0  # not the shape of an OpenAI reply
        if content is not None and not isinstance(content, str):
            raise LLMServerError(self._base_url, f"sent something that is not an OpenAI chat reply ({data[:100]!r})",
                                 "is it an OpenAI-compatible server (its /v1 address)?")
        return content or ""
