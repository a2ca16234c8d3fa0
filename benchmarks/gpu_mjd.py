"""GPU throughput of MJD letter logits: a randomly initialised Llama-3-8B-shaped model, bf16, on CUDA.

Self-contained: needs torch and transformers only (no tokenizer, no network, no data pack); the scoring is the
repository's own `TransformersBackend.score_token_ids` (one forward pass per prompt, with and without prefix
reuse). It builds synthetic token sequences shaped like the MJD prompts of SPEC §3 with explanations (Llama-3
token ids; letters A/B/C = 32/33/34): per item, a header shared by every prompt (chat template + instruction),
an item body (premise, hypothesis, 4 comments) and 6 option-order suffixes, about 200-330 tokens in all.
Reports prompts/s, prompt tokens/s, peak GPU memory and the fraction of the H200's dense bf16 peak
(989 TFLOP/s) that the prefill reaches, with FLOPs = 2 × (non-embedding parameters) × tokens run + 2 × LM-head
parameters × rows + attention (4 × layers × heads × head_dim × attended key/query pairs, causal), counting real
tokens only (padding is waste, not work). ``effective`` rates credit prefix reuse with the FLOPs the same prompts
need without it. Prints one JSON object. Meant to finish in well under 3 minutes on one H200.

    python benchmarks/gpu_mjd.py                  # CUDA, bf16, Llama-3-8B shape
    python benchmarks/gpu_mjd.py --dry-run        # CPU smoke test: tiny Llama, float32, a few items
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

H200_BF16_DENSE_TFLOPS = 989.0
LLAMA3_8B = {
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 8192,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "bos_token_id": 128000,
    "eos_token_id": 128009,
    "pad_token_id": 128009,
}
TINY = {
    **LLAMA3_8B,
    "vocab_size": 1024,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 2,
}
LETTER_IDS = [32, 33, 34]  # "A", "B", "C" after Llama-3's assistant header


def synthetic_prompts(n_items: int, vocab: int, seed: int = 0) -> list[list[int]]:
    """Token sequences shaped like the MJD prompts: shared header + item body + 6 option-order suffixes."""
    rng = random.Random(seed)
    low, high = 1000 if vocab > 2000 else 3, min(vocab, 120000)

    def tokens(n: int) -> list[int]:
        return [rng.randrange(low, high) for _ in range(n)]

    header = tokens(60)  # begin_of_text, user header, the instruction up to "Context:"
    words = [tokens(3), tokens(3), tokens(4)]  # " Entailment", " Neutral", " Contradiction"
    tail = tokens(12)  # ". \nAnswer:" + eot + assistant header
    seqs = []
    for _ in range(n_items):
        body = tokens(rng.randint(110, 240))  # premise, hypothesis, 4 comments
        for order in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
            suffix = []
            for letter_token, label in zip((32, 33, 34), order, strict=True):
                suffix += [198, letter_token, 13] + words[label]  # "\n", "A", "." + option word
            seqs.append(header + body + suffix + tail)
    return seqs


def count_flops(config, seqs, groups, singles) -> float:
    """FLOPs of the real tokens actually run: plain prompts, shared prefixes once, suffixes on their cache."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    per_layer = (
        hidden * heads * head_dim * 2
        + hidden * kv_heads * head_dim * 2
        + 3 * hidden * config.intermediate_size
    )
    dense = layers * per_layer
    lm_head = hidden * config.vocab_size
    attention = 4 * layers * heads * head_dim  # per attended (query, key) pair: QK^T and AV

    def causal(n: int, past: int = 0) -> int:
        return n * past + n * (n + 1) // 2

    flops = 0.0
    for k in singles:
        n = len(seqs[k])
        flops += 2 * dense * n + 2 * lm_head + attention * causal(n)
    for group in groups:
        p = group.prefix_len
        flops += 2 * dense * p + 2 * lm_head + attention * causal(p)
        for k in group.members:
            s = len(seqs[k]) - p
            flops += 2 * dense * s + 2 * lm_head + attention * causal(s, p)
    return flops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny Llama on CPU in float32 (smoke test)")
    parser.add_argument("--items", type=int, default=128, help="items; 6 prompts each")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--suffix-batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per method (the best is kept)")
    parser.add_argument(
        "--budget-s", type=float, default=120.0, help="no further repeats after this many seconds"
    )
    args = parser.parse_args()

    started = time.perf_counter()
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, LlamaConfig

    from hlv_assets.llm.transformers_backend import TransformersBackend, plan_prefix_groups

    if args.dry_run:
        device, dtype, shape = "cpu", torch.float32, TINY
        args.items = min(args.items, 4)
        args.batch_size = min(args.batch_size, 8)
        args.repeats = 1
    else:
        if not torch.cuda.is_available():
            print(json.dumps({"error": "no CUDA device: use --dry-run for the CPU smoke test"}))
            return 2
        device, dtype, shape = "cuda", torch.bfloat16, LLAMA3_8B
    config = LlamaConfig(**shape)
    torch.manual_seed(0)
    with torch.device(device):  # built directly on the GPU, in its dtype: no 32 GB float32 detour on the host
        model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    if device == "cuda":
        torch.cuda.synchronize()
    built = time.perf_counter()
    n_params = sum(p.numel() for p in model.parameters())

    seqs = synthetic_prompts(args.items, config.vocab_size)
    options = {"batch_size": args.batch_size, "suffix_batch_size": args.suffix_batch_size}
    forward = TransformersBackend.from_model(
        model, None, model_id="random-llama3-8b", prefix_reuse=False, **options
    )
    prefix = TransformersBackend.from_model(
        model, None, model_id="random-llama3-8b", prefix_reuse=True, **options
    )
    groups, singles = plan_prefix_groups(seqs, prefix.max_group, prefix.min_prefix_tokens)
    flops_plain = count_flops(config, seqs, [], list(range(len(seqs))))
    flops_prefix = count_flops(config, seqs, groups, singles)

    # warm-up: kernels, allocator
    forward.score_token_ids(seqs[: min(len(seqs), args.batch_size)], LETTER_IDS)
    prefix.score_token_ids(seqs[:12], LETTER_IDS)

    report: dict = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "parameters": n_params,
        "shape": {
            k: shape[k] for k in ("hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size")
        },
        "prompts": len(seqs),
        "prompt_tokens": sum(len(s) for s in seqs),
        "mean_prompt_tokens": sum(len(s) for s in seqs) / len(seqs),
        "batch_size": args.batch_size,
        "build_seconds": built - started,
        "methods": {},
    }
    results = {}
    for name, backend, flops in (("forward", forward, flops_plain), ("prefix", prefix, flops_prefix)):
        best = None
        for repeat in range(args.repeats):
            if repeat and time.perf_counter() - started > args.budget_s:
                break  # keep well inside the 3-minute allowance: one timed run is enough then
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            scores = backend.score_token_ids(seqs, LETTER_IDS)
            if device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            if best is None or seconds < best:
                best = seconds
        results[name] = scores
        achieved = flops / best / 1e12
        effective = flops_plain / best / 1e12
        report["methods"][name] = {
            "seconds": best,
            "prompts_per_s": len(seqs) / best,
            "prompt_tokens_per_s": report["prompt_tokens"] / best,
            "tokens_run": backend.last_stats["tokens_run"],
            "forward_calls": backend.last_stats["forward_calls"],
            "tflop": flops / 1e12,
            "achieved_tflops": achieved,
            "effective_tflops": effective,
            "fraction_of_h200_bf16_peak": achieved / H200_BF16_DENSE_TFLOPS,
            "effective_fraction_of_h200_bf16_peak": effective / H200_BF16_DENSE_TFLOPS,
            "peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
        }
    gap = max(
        abs(x - y)
        for a, b in zip(results["forward"], results["prefix"], strict=True)
        for x, y in zip(a.scores, b.scores, strict=True)
    )
    report["max_abs_dlogit_prefix_vs_forward"] = gap
    report["speedup_prefix_vs_forward"] = (
        report["methods"]["forward"]["seconds"] / report["methods"]["prefix"]["seconds"]
    )
    report["groups"] = len(groups)
    report["total_seconds"] = time.perf_counter() - started
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
