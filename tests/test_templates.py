"""Chat templates of the model catalog rendered against golden strings."""

from __future__ import annotations

from kbqa.llm.templates import render
from kbqa.models import llm_models

M = [
    {"role": "system", "content": "SYS"},
    {"role": "user", "content": "Q1"},
    {"role": "assistant", "content": "A1"},
    {"role": "user", "content": "Q2"},
]

GOLDEN = {
    "llama2": "<s>[INST] <<SYS>>\nSYS\n<</SYS>>\n\nQ1 [/INST] A1 </s><s>[INST] Q2 [/INST]",
    "alpaca2": "<s>[INST] <<SYS>>\nSYS\n<</SYS>>\n\nQ1 [/INST] A1 </s><s>[INST] Q2 [/INST]",
    "alpaca": "SYS\n\n### Instruction:\nQ1\n\n### Response:\nA1\n\n### Instruction:\nQ2\n\n### Response:\n",
    "chatml": "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
    "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n",
    "chatglm": "<|system|>\n SYS<|user|>\n Q1<|assistant|>\n A1<|user|>\n Q2<|assistant|>",
    "completion": "SYS\n\nQ1\n\nA1\n\nQ2",
}


def test_golden_strings() -> None:
    for name, expected in GOLDEN.items():
        assert render(name, M) == expected, name


def test_alpaca2_default_system_prompt() -> None:
    out = render("alpaca2", [{"role": "user", "content": "你好"}])
    assert out == "<s>[INST] <<SYS>>\nYou are a helpful assistant. 你是一个乐于助人的助手。\n<</SYS>>\n\n你好 [/INST]"


def test_every_catalog_template_is_known() -> None:
    for model in llm_models().values():
        assert model.template in set(GOLDEN) | {"gguf", "tokenizer", "none"}, model.name
