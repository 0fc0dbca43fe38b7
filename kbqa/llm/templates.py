"""Chat templates from the model catalog, for models whose files carry none."""

from __future__ import annotations

from collections.abc import Callable

Messages = list[dict[str, str]]

ALPACA2_SYSTEM = "You are a helpful assistant. 你是一个乐于助人的助手。"


def _split(messages: Messages) -> tuple[str, Messages]:
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    return system, [m for m in messages if m["role"] != "system"]


def completion(messages: Messages) -> str:
    """Base models: the messages' text as one completion prompt."""
    return "\n\n".join(m["content"] for m in messages)


def llama2(messages: Messages, default_system: str = "") -> str:
    system, turns = _split(messages)
    system = system or default_system
    out = ""
    first = True
    for i in range(0, len(turns), 2):
        user = turns[i]["content"]
        if first and system:
            user = f"<<SYS>>\n{system}\n<</SYS>>\n\n{user}"
        first = False
        out += f"<s>[INST] {user.strip()} [/INST]"
        if i + 1 < len(turns):
            out += f" {turns[i + 1]['content'].strip()} </s>"
    return out


def alpaca2(messages: Messages) -> str:
    """Chinese-Alpaca-2: the Llama-2 format with its own default system prompt."""
    return llama2(messages, default_system=ALPACA2_SYSTEM)


def alpaca(messages: Messages) -> str:
    """Alpaca v1 / Chinese-Alpaca v1 instruction format."""
    system, turns = _split(messages)
    out = (system or "Below is an instruction that describes a task. Write a response that appropriately completes the request.") + "\n\n"
    for m in turns:
        if m["role"] == "user":
            out += f"### Instruction:\n{m['content']}\n\n### Response:\n"
        else:
            out += f"{m['content']}\n\n"
    return out


def chatml(messages: Messages) -> str:
    """Qwen and other ChatML models."""
    out = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return out + "<|im_start|>assistant\n"


def chatglm(messages: Messages) -> str:
    """ChatGLM3's role-tag format."""
    out = "".join(f"<|{m['role']}|>\n {m['content']}" for m in messages)
    return out + "<|assistant|>"


TEMPLATES: dict[str, Callable[[Messages], str]] = {
    "completion": completion,
    "llama2": llama2,
    "alpaca2": alpaca2,
    "alpaca": alpaca,
    "chatml": chatml,
    "chatglm": chatglm,
}

STOPS: dict[str, list[str]] = {
    "llama2": ["</s>", "[INST]"],
    "alpaca2": ["</s>", "[INST]"],
    "alpaca": ["### Instruction:"],
    "chatml": ["<|im_end|>", "<|im_start|>"],
    "chatglm": ["<|user|>", "<|observation|>"],
}


def render(template: str, messages: Messages) -> str:
    if template not in TEMPLATES:
        raise ValueError(f"unknown chat template {template!r}; known: {', '.join(TEMPLATES)}, gguf, tokenizer")
    return TEMPLATES[template](messages)
