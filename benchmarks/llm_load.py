"""Load time, peak memory and generation speed of each LLM loading path, each in a fresh process.

    python benchmarks/llm_load.py            # tiny random Llama: fp32, int8, int4 (+ the shipped GGUF)
    python benchmarks/llm_load.py --no-gguf

The transformers rows use a small random Llama built here (no hub): they show the paths work and
what each costs in this process, not how fast a real 7B model runs. The GGUF row is the shipped
gemma-3-270m Q4_K_M through llama.cpp. Peak RSS includes the Python, torch and kbqa imports.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT = [{"role": "user", "content": "资料：[1] 年假十天。\n\n问题：年假几天？"}]


def build_llama(folder: Path) -> Path:
    """A random Llama of ~30M parameters with a small byte-level tokenizer and a chat template."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = ["知识库问答系统根据文档回答问题。", "The knowledge base answers questions from documents.", "年假十天，报销三十天。"] * 50
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=500, special_tokens=["<unk>", "<s>", "</s>", "<pad>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
        num_key_value_heads=4, max_position_embeddings=1024, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def measure(kind: str, path: str, cache: str) -> dict[str, Any]:
    """In this (fresh) process: load through kbqa's registry, generate 64 tokens, report."""
    from kbqa.config import LLMConfig
    from kbqa.llm import make_llm

    if kind == "gguf":
        config = LLMConfig(model="gemma-3-270m")
    else:
        config = LLMConfig(model="tiny", path=path, backend="transformers", device="cpu", quantization=None if kind == "fp32" else kind)
    t0 = time.perf_counter()
    llm = make_llm(config, Path(cache))
    load = time.perf_counter() - t0
    t1 = time.perf_counter()
    first = None
    pieces = 0
    for _ in llm.stream(PROMPT, max_tokens=64, temperature=0.0):
        first = first or time.perf_counter() - t1
        pieces += 1
    total = time.perf_counter() - t1
    rate = (pieces - 1) / max(total - (first or 0), 1e-6) if pieces > 1 else None
    return {"kind": kind, "load_s": load, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "ttft_s": first, "pieces": pieces, "pieces_per_s": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-gguf", action="store_true")
    parser.add_argument("--one", nargs=3, metavar=("KIND", "PATH", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one)))
        return
    try:
        import bitsandbytes  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        print("needs the hf extra (make test installs it); skipped")
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = build_llama(Path(tmp) / "llama")
        size = sum(f.stat().st_size for f in model.iterdir()) / 2**20
        print(f"random Llama, {size:.0f} MB on disk (fp32)")
        kinds = ["fp32", "int8", "int4"] + ([] if args.no_gguf else ["gguf"])
        for kind in kinds:
            cache = str(Path.home() / ".cache" / "kbqa" / "models")
            done = subprocess.run([sys.executable, __file__, "--one", kind, str(model), cache], capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{kind:5s} FAILED: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            rate = f"{row['pieces_per_s']:.0f}" if row["pieces_per_s"] else "-"
            print(f"{kind:5s} load {row['load_s']:6.2f} s  peak RSS {row['peak_rss_mb']:6.0f} MB  "
                  f"first token {row['ttft_s'] or 0:.2f} s  {rate} tokens/s ({row['pieces']} pieces)", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
