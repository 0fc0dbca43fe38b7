"""GLM models through the transformers backend: a tiny random GLM-4 built with transformers' native
classes, and a ChatGLM3-style trust_remote_code model folder whose own stream_chat kbqa must use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from kbqa.config import LLMConfig  # noqa: E402
from kbqa.llm import make_llm  # noqa: E402
from test_llm_transformers import MESSAGES, build_tiny_llama, generate  # noqa: E402

pytestmark = pytest.mark.slow  # real models or servers in subprocesses: `pytest -m "not slow"` skips them


def test_tiny_native_glm4(tmp_path: Path) -> None:
    from transformers import AutoTokenizer, GlmConfig, GlmForCausalLM

    tokenizer_dir = build_tiny_llama(tmp_path / "tok")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = GlmConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
    )
    folder = tmp_path / "tiny-glm"
    GlmForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    llm = make_llm(LLMConfig(model="tiny-glm", path=str(folder), backend="transformers"), Path("."))
    assert type(llm._model).__name__ == "GlmForCausalLM"  # type: ignore[attr-defined]
    assert llm.context == 256
    text = generate(llm)
    assert text and text == generate(llm)


CONFIG_CODE = '''
from transformers import LlamaConfig


class TinyChatGLMConfig(LlamaConfig):
    model_type = "tiny_chatglm"
'''

# ChatGLM3's contract: stream_chat(tokenizer, query, history=[{"role", "content"}...], ...) yields
# (whole response so far, new history); its tokenizer has build_chat_input.
MODEL_CODE = '''
import torch
from transformers import LlamaForCausalLM

from .configuration_tiny_chatglm import TinyChatGLMConfig


class TinyChatGLMForCausalLM(LlamaForCausalLM):
    config_class = TinyChatGLMConfig

    @torch.no_grad()
    def stream_chat(self, tokenizer, query, history=None, role="user", max_length=8192, do_sample=True,
                    top_p=0.8, temperature=0.8, max_new_tokens=16, **kwargs):
        history = list(history or [])
        self.seen_history = [dict(h) for h in history]
        self.seen_query = query
        messages = history + [{"role": role, "content": query}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
        start = ids.shape[1]
        for _ in range(max_new_tokens):
            next_id = self(input_ids=ids).logits[0, -1].argmax().view(1, 1)
            ids = torch.cat([ids, next_id], dim=1)
            response = tokenizer.decode(ids[0, start:], skip_special_tokens=True)
            yield response, history + [{"role": role, "content": query}, {"role": "assistant", "content": response}]
'''


def test_chatglm_remote_code_uses_its_own_stream_chat(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    folder = build_tiny_llama(tmp_path / "tiny-chatglm")
    (folder / "configuration_tiny_chatglm.py").write_text(CONFIG_CODE)
    (folder / "modeling_tiny_chatglm.py").write_text(MODEL_CODE)
    config = json.loads((folder / "config.json").read_text())
    config.update(
        model_type="tiny_chatglm",
        architectures=["TinyChatGLMForCausalLM"],
        auto_map={
            "AutoConfig": "configuration_tiny_chatglm.TinyChatGLMConfig",
            "AutoModelForCausalLM": "modeling_tiny_chatglm.TinyChatGLMForCausalLM",
        },
    )
    (folder / "config.json").write_text(json.dumps(config))
    AutoTokenizer.from_pretrained(folder)  # the tokenizer itself is a plain one

    with pytest.raises(Exception):  # remote code is never run without consent
        make_llm(LLMConfig(model="glm", path=str(folder), backend="transformers", trust_remote_code=False), Path("."))
    # the catalog's chatglm3-6b entry (template chatglm, trust_remote_code) with a local path
    llm = make_llm(LLMConfig(model="chatglm3-6b", path=str(folder)), Path("."))
    model = llm._model  # type: ignore[attr-defined]
    assert type(model).__name__ == "TinyChatGLMForCausalLM"
    pieces = list(llm.stream(MESSAGES, max_tokens=8, temperature=0.0))
    assert pieces and "".join(pieces)
    # the tokenizer has no build_chat_input: treated as ChatGLM2, system text put before the question
    assert model.seen_history == []
    assert model.seen_query.startswith(MESSAGES[0]["content"]) and model.seen_query.endswith(MESSAGES[1]["content"])
    # same text as the model's own greedy generation through stream_chat, cut into deltas
    expected = list(model.stream_chat(llm._tokenizer, model.seen_query, max_new_tokens=8))[-1][0]  # type: ignore[attr-defined]
    assert "".join(pieces) == expected

    # a ChatGLM3 tokenizer (it has build_chat_input): history goes as role/content dicts, system first
    llm._tokenizer.build_chat_input = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    turns = [{"role": "user", "content": "年假几天？"}, {"role": "assistant", "content": "十天。"}]
    list(llm.stream([MESSAGES[0], *turns, MESSAGES[1]], max_tokens=4, temperature=0.0))
    assert model.seen_history == [MESSAGES[0], *turns]
    assert model.seen_query == MESSAGES[1]["content"]
