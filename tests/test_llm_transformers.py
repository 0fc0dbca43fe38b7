"""The transformers backend on a tiny random Llama built here: fp32, int8 and int4 (bitsandbytes on CPU),
a LoRA adapter that changes the output, merging it, and offline behaviour. No hub, no mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from kbqa.config import LLMConfig  # noqa: E402
from kbqa.llm import make_llm  # noqa: E402

pytestmark = pytest.mark.slow  # real models or servers in subprocesses: `pytest -m "not slow"` skips them

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tiny_llama(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = ["知识库问答系统根据文档回答问题。", "The knowledge base answers questions from documents.", "年假十天，报销三十天。"] * 20
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<pad>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


MESSAGES = [{"role": "system", "content": "只根据资料回答。"}, {"role": "user", "content": "资料：[1] 年假十天。\n\n问题：年假几天？"}]


def generate(llm: object, n: int = 12) -> str:
    return "".join(llm.stream(MESSAGES, max_tokens=n, temperature=0.0))  # type: ignore[attr-defined]


def test_fp32_generates_with_the_tokenizer_template(tiny: Path) -> None:
    llm = make_llm(LLMConfig(model="tiny", path=str(tiny), backend="transformers"), Path("."))
    assert llm.template == "tokenizer" and llm.context == 512
    text = generate(llm)
    assert text  # real tokens came out of a real forward pass
    assert text == generate(llm)  # greedy: deterministic
    assert llm.count_tokens("年假十天") > 0


@pytest.mark.parametrize("quantization", ["int8", "int4"])
def test_bitsandbytes_quantized_loading_on_cpu(tiny: Path, quantization: str) -> None:
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    llm = make_llm(LLMConfig(model="tiny", path=str(tiny), backend="transformers", quantization=quantization, device="cpu"), Path("."))
    layer = {"int8": bnb.nn.Linear8bitLt, "int4": bnb.nn.Linear4bit}[quantization]
    assert any(isinstance(m, layer) for m in llm._model.modules())  # type: ignore[attr-defined]
    assert generate(llm)


def test_lora_adapter_changes_the_output_and_merges(tiny: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny)
    torch.manual_seed(1)
    peft_model = get_peft_model(base, LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)

    plain = make_llm(LLMConfig(model="tiny", path=str(tiny), backend="transformers"), Path("."))
    adapted = make_llm(LLMConfig(model="tiny", path=str(tiny), backend="transformers", adapter=str(adapter)), Path("."))
    ids = plain._tokenizer("年假十天", return_tensors="pt")  # type: ignore[attr-defined]
    with torch.no_grad():
        a = plain._model(**ids).logits  # type: ignore[attr-defined]
        b = adapted._model(**ids).logits  # type: ignore[attr-defined]
    assert not torch.allclose(a, b, atol=1e-4)

    # merged by the CLI, as a user would: kbqa models --llm BASE --adapter LORA --merge OUT
    import subprocess
    import sys

    merged = tmp_path / "merged"
    done = subprocess.run(
        [sys.executable, "-m", "kbqa.cli", "models", "--llm", str(tiny), "--adapter", str(adapter), "--merge", str(merged)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "merged" in done.stdout and (merged / "config.json").exists()
    assert not (merged / "adapter_config.json").exists()
    reloaded = make_llm(LLMConfig(model="tiny", path=str(merged), backend="transformers"), Path("."))
    with torch.no_grad():
        c = reloaded._model(**ids).logits  # type: ignore[attr-defined]
    assert torch.allclose(b, c, atol=1e-4)


def test_merge_without_an_adapter_is_a_usage_error(tiny: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "kbqa.cli", "models", "--llm", str(tiny), "--merge", str(tmp_path / "out")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "--adapter" in done.stderr


def test_hub_id_while_offline_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE"):
        make_llm(LLMConfig(model="chatglm3-6b"), Path("."))


def test_tokenizer_without_template_needs_one_from_the_catalog(tiny: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    bare = tmp_path / "bare"
    import shutil

    shutil.copytree(tiny, bare)
    tok = AutoTokenizer.from_pretrained(bare)
    tok.chat_template = None
    tok.save_pretrained(bare)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(RuntimeError, match="no chat template"):
        make_llm(LLMConfig(model="bare", path=str(bare), backend="transformers"), Path("."))


def test_a_stream_closed_early_stops_generating_and_a_long_prompt_is_said(tiny: Path) -> None:
    """Closing the stream ends model.generate at its next token (the thread generated on to
    max_tokens beside the next answer); a prompt longer than the model's 512 positions is
    ContextTooSmall, naming llm.n_ctx (it was 'generation failed: index out of range in self')."""
    import threading

    from kbqa.llm import ContextTooSmall

    llm = make_llm(LLMConfig(model="tiny", path=str(tiny), backend="transformers"), Path("."))
    generate(llm, 2)
    before = threading.active_count()
    pieces = llm.stream(MESSAGES, max_tokens=400, temperature=1.0)
    next(pieces)
    pieces.close()
    assert threading.active_count() == before  # the generating thread has ended
    long = [{"role": "user", "content": "年假十天，报销三十天。" * 100}]
    with pytest.raises(ContextTooSmall, match="llm.n_ctx"):
        "".join(llm.stream(long, max_tokens=8))
