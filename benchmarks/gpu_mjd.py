"""GPU throughput of MJD letter logits over the prefix tree: a random Llama-3-8B-shaped model, bf16, on CUDA.

Self-contained: needs torch and transformers only (no tokenizer, no network, no data pack); the scoring is the
repository's own `TransformersBackend.score_token_ids`, run three ways on the same prompts:

- ``forward``: one forward pass per prompt (``prefix_reuse=False``);
- ``prefix``: one-level prefix reuse (prompts sharing a long prefix are grouped; the prefix runs once);
- ``tree``: the prefix tree (``prefix_tree=True``, `hlv_assets.llm.transformers_tree`): every distinct prefix
  of all the prompts runs once, on its parent's KV cache.

The prompts are synthetic token sequences with the shape of the MJD grid with explanations (SPEC §3; Llama-3
token ids, letters A/B/C = 32/33/34): per item, a header shared by every prompt (chat template + instruction),
the item body (premise, hypothesis), then its 4 explanation blocks ("\\nComment i: ...", 25-40 tokens each) in
every order (24; ``--orders K`` samples K, seeded), each followed by the 6 option-order suffixes and the tail:
144 prompts of about 300 tokens per item.

Default size: 16 items = 2,304 prompts, about 0.7 M prompt tokens. One-forward-per-prompt is then about 10 PFLOP
(2 × 7.0 G dense parameters × 0.7 M tokens), 20-35 s at 30-50 % of the H200's peak; the prefix and tree runs
are a quarter of that or less. Two timed runs of each, after a warm-up and the model build, stay around two
minutes, and no further repeat starts once it would end past ``--budget-s`` (120 s): well under 3 minutes on
one H200, while 2,304 prompts are enough rows for every method's batches to fill the GPU.

Reports per method: seconds (best of the repeats), prompts/s, tokens run and forward calls (the backend's
``last_stats``), TFLOP, achieved TFLOP/s and its fraction of the H200's dense bf16 peak (989 TFLOP/s), the
``effective`` rate (forward's FLOPs over this method's time: credit for reuse), peak GPU memory, and max |Δlogit|
and max |Δp| (softmax of the 3 letter logits, T = 1) against ``forward``. FLOPs count real tokens only (padding
is waste, not work): 2 × dense (non-embedding) parameters per token run, 4 × layers × heads × head_dim per
attended (query, key) pair (causal), 2 × LM-head parameters per logits row. For ``forward`` every prompt runs
whole; for ``prefix`` each group's prefix once and each member's suffix on it; for ``tree`` each node once
(attending to its whole prefix, ``node.start`` tokens) and the LM head once per sequence end. Prints one JSON
object.

    python benchmarks/gpu_mjd.py                  # CUDA, bf16, Llama-3-8B shape
    python benchmarks/gpu_mjd.py --dry-run        # CPU smoke test (CI): tiny Llama, float32, 2 items

``--dry-run`` also checks the tree (exit status 1 otherwise): max |Δp| against forward ≤ 1e-5, fewer tokens run
than one-level reuse, and exactly the tree's distinct-prefix tokens (what its FLOPs count).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
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
DRY_RUN_MAX_DP = 1e-5
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
OPTION_ORDERS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
N_COMMENTS = 4


def synthetic_prompts(n_items: int, vocab: int, orders: int | None = None, seed: int = 0) -> list[list[int]]:
    """Token sequences shaped like an item's MJD grid with explanations: shared header + item body + the 4
    comment blocks in each explanation order (all 24, or `orders` seeded samples) + each of the 6 option-order
    suffixes + tail; per item, explanation orders outer, option orders inner."""
    rng = random.Random(seed)
    low, high = 1000 if vocab > 2000 else 3, min(vocab, 120000)

    def tokens(n: int) -> list[int]:
        return [rng.randrange(low, high) for _ in range(n)]

    header = tokens(60)  # begin_of_text, user header, the instruction up to "Context:"
    words = [tokens(3), tokens(3), tokens(4)]  # " Entailment", " Neutral", " Contradiction"
    tail = tokens(12)  # ". \nAnswer:" + eot + assistant header
    comment = tokens(1)  # "Comment"
    labels = [[198] + comment + [220, 16 + i, 25] for i in range(N_COMMENTS)]  # "\nComment 1:" ... "4:"
    suffixes = [
        [t for letter, label in zip(LETTER_IDS, order, strict=True) for t in [198, letter, 13] + words[label]]
        for order in OPTION_ORDERS  # "\nA. Entailment \nB. ..."
    ]
    every = list(itertools.permutations(range(N_COMMENTS)))
    if orders is None or orders >= len(every):
        chosen = every
    else:
        chosen = sorted(random.Random(seed + 1).sample(every, orders))
    seqs = []
    for _ in range(n_items):
        body = tokens(rng.randint(30, 90))  # "\nContext: {premise} \nStatement: {hypothesis} "
        texts = [tokens(rng.randint(25, 40)) for _ in range(N_COMMENTS)]
        for eorder in chosen:
            comments = [t for position, k in enumerate(eorder) for t in labels[position] + texts[k]]
            for suffix in suffixes:
                seqs.append(header + body + comments + suffix + tail)
    return seqs


def flop_rates(config) -> tuple[float, float, float]:
    """FLOPs per token of the dense layers, per logits row of the LM head, per attended (query, key) pair."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    per_layer = (
        hidden * heads * head_dim * 2
        + hidden * kv_heads * head_dim * 2
        + 3 * hidden * config.intermediate_size
    )
    return 2.0 * layers * per_layer, 2.0 * hidden * config.vocab_size, 4.0 * layers * heads * head_dim


def causal(n: int, past: int = 0) -> int:
    """(query, key) pairs of `n` new tokens attending causally to themselves and `past` earlier ones."""
    return n * past + n * (n + 1) // 2


def count_flops(config, seqs, groups, singles) -> float:
    """FLOPs of the real tokens actually run: plain prompts, shared prefixes once, suffixes on their cache."""
    dense, lm_head, attention = flop_rates(config)
    flops = 0.0
    for k in singles:
        n = len(seqs[k])
        flops += dense * n + lm_head + attention * causal(n)
    for group in groups:
        p = group.prefix_len
        flops += dense * p + lm_head + attention * causal(p)
        for k in group.members:
            s = len(seqs[k]) - p
            flops += dense * s + lm_head + attention * causal(s, p)
    return flops


def count_tree_flops(config, root) -> float:
    """FLOPs of the prefix tree: every node's tokens once, on its whole prefix; the LM head once a sequence end."""
    from hlv_assets.llm.prefix_tree import walk

    dense, lm_head, attention = flop_rates(config)
    return sum(
        dense * node.length + attention * causal(node.length, node.start) + lm_head * len(node.terminals)
        for node in walk(root)
    )


def letter_probabilities(scores) -> list[list[float]]:
    """Softmax (T = 1) of each prompt's 3 letter logits."""
    probs = []
    for s in scores:
        top = max(s.scores)
        e = [math.exp(v - top) for v in s.scores]
        probs.append([v / sum(e) for v in e])
    return probs


def gaps(reference, scores) -> tuple[float, float]:
    """max |Δlogit| and max |Δp| of `scores` against `reference` over all prompts and letters."""
    dlogit = max(
        abs(x - y) for a, b in zip(reference, scores, strict=True) for x, y in zip(a.scores, b.scores, strict=True)
    )
    pa, pb = letter_probabilities(reference), letter_probabilities(scores)
    dp = max(abs(x - y) for a, b in zip(pa, pb, strict=True) for x, y in zip(a, b, strict=True))
    return dlogit, dp


def time_method(backend, seqs, repeats: int, budget_s: float, started: float, cuda: bool):
    """Best wall time of up to `repeats` runs (none started that would end past `budget_s` since `started`),
    the scores of the last run and the peak GPU memory in GiB (None on CPU)."""
    import torch

    best = math.inf
    for repeat in range(repeats):
        if repeat and time.perf_counter() - started + best > budget_s:
            break  # keep well inside the 3-minute allowance
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        scores = backend.score_token_ids(seqs, LETTER_IDS)
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    return best, scores, peak


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny Llama on CPU in float32, 2 items (CI)")
    parser.add_argument("--items", type=int, default=16, help="items; 6 prompts per explanation order each")
    parser.add_argument("--orders", type=int, default=None, help="explanation orders per item (default all 24)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--suffix-batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per method (the best is kept)")
    parser.add_argument("--budget-s", type=float, default=120.0, help="no repeat that would end after this")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.dry_run:
        args.items, args.orders, args.batch_size, args.repeats = 2, None, 16, 1
    if args.items < 1 or (args.orders is not None and args.orders < 1):
        parser.error("--items and --orders must be at least 1")
    return args


def build_model(dry_run: bool):
    """The random model (seeded) on its device and dtype, or None when a GPU run has no CUDA device."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    if dry_run:
        device, dtype, shape = "cpu", torch.float32, TINY
    elif torch.cuda.is_available():
        device, dtype, shape = "cuda", torch.bfloat16, LLAMA3_8B
    else:
        return None
    torch.manual_seed(0)
    with torch.device(device):  # built directly on the GPU, in its dtype: no 32 GB float32 detour on the host
        model = AutoModelForCausalLM.from_config(LlamaConfig(**shape), dtype=dtype).eval()
    if device == "cuda":
        torch.cuda.synchronize()
    return model


def method_report(backend, best: float, peak: float | None, flops: float, forward_flops: float,
                  report: dict) -> dict:
    """One method's figures: time and rates, what the backend ran, achieved and effective TFLOP/s."""
    achieved = flops / best / 1e12
    effective = forward_flops / best / 1e12  # credit for reuse: the FLOPs the prompts need without it
    return {
        "seconds": best,
        "prompts_per_s": report["prompts"] / best,
        "prompt_tokens_per_s": report["prompt_tokens"] / best,
        "tokens_run": backend.last_stats["tokens_run"],
        "forward_calls": backend.last_stats["forward_calls"],
        "tflop": flops / 1e12,
        "achieved_tflops": achieved,
        "effective_tflops": effective,
        "fraction_of_h200_bf16_peak": achieved / H200_BF16_DENSE_TFLOPS,
        "effective_fraction_of_h200_bf16_peak": effective / H200_BF16_DENSE_TFLOPS,
        "peak_gpu_memory_gb": peak,
    }


def dry_run_failures(report: dict) -> list[str]:
    methods = report["methods"]
    failures = []
    if not methods["tree"]["max_abs_dp_vs_forward"] <= DRY_RUN_MAX_DP:
        failures.append(f"tree max |Δp| {methods['tree']['max_abs_dp_vs_forward']:.3g} > {DRY_RUN_MAX_DP}")
    if not methods["tree"]["tokens_run"] < methods["prefix"]["tokens_run"]:
        failures.append("the tree runs no fewer tokens than one-level prefix reuse")
    if methods["tree"]["tokens_run"] != report["tree_tokens"]:
        failures.append(f"the tree ran {methods['tree']['tokens_run']} tokens, not its {report['tree_tokens']}")
    return failures


def main() -> int:
    args = parse_args()
    started = time.perf_counter()
    import torch
    import transformers

    from hlv_assets.llm.prefix_tree import build_prefix_tree, tree_tokens
    from hlv_assets.llm.transformers_backend import TransformersBackend, plan_prefix_groups

    model = build_model(args.dry_run)
    if model is None:
        print(json.dumps({"error": "no CUDA device: use --dry-run for the CPU smoke test"}))
        return 2
    cuda = model.device.type == "cuda"
    config = model.config
    built = time.perf_counter()

    seqs = synthetic_prompts(args.items, config.vocab_size, args.orders, args.seed)
    options = {"model_id": "random-llama3-8b", "batch_size": args.batch_size,
               "suffix_batch_size": args.suffix_batch_size}
    backends = {
        "forward": TransformersBackend.from_model(model, None, prefix_reuse=False, **options),
        "prefix": TransformersBackend.from_model(model, None, prefix_reuse=True, **options),
        "tree": TransformersBackend.from_model(model, None, prefix_tree=True, **options),
    }
    groups, singles = plan_prefix_groups(seqs, backends["prefix"].max_group, backends["prefix"].min_prefix_tokens)
    root = build_prefix_tree(seqs)
    flops = {
        "forward": count_flops(config, seqs, [], list(range(len(seqs)))),
        "prefix": count_flops(config, seqs, groups, singles),
        "tree": count_tree_flops(config, root),
    }
    per_item = len(seqs) // args.items
    for backend in backends.values():  # warm-up (kernels, allocator) on one item's prompts; on CPU just a few
        backend.score_token_ids(seqs[: 6 if args.dry_run else per_item], LETTER_IDS)

    report: dict = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "dtype": str(model.dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "shape": {k: getattr(config, k) for k in ("hidden_size", "num_hidden_layers", "intermediate_size",
                                                   "vocab_size")},
        "items": args.items,
        "prompts_per_item": per_item,
        "prompts": len(seqs),
        "prompt_tokens": sum(len(s) for s in seqs),
        "mean_prompt_tokens": sum(len(s) for s in seqs) / len(seqs),
        "batch_size": args.batch_size,
        "groups": len(groups),
        "tree_tokens": tree_tokens(root),
        "build_seconds": built - started,
        "methods": {},
    }
    results = {}
    for name, backend in backends.items():
        best, results[name], peak = time_method(backend, seqs, args.repeats, args.budget_s, started, cuda)
        report["methods"][name] = method_report(backend, best, peak, flops[name], flops["forward"], report)
        dlogit, dp = gaps(results["forward"], results[name])
        report["methods"][name].update(max_abs_dlogit_vs_forward=dlogit, max_abs_dp_vs_forward=dp)
    seconds = {name: m["seconds"] for name, m in report["methods"].items()}
    report["speedup_prefix_vs_forward"] = seconds["forward"] / seconds["prefix"]
    report["speedup_tree_vs_forward"] = seconds["forward"] / seconds["tree"]
    report["speedup_tree_vs_prefix"] = seconds["prefix"] / seconds["tree"]
    report["total_seconds"] = time.perf_counter() - started
    print(json.dumps(report, indent=2))
    failures = dry_run_failures(report) if args.dry_run else []
    for failure in failures:
        print(f"gpu_mjd.py --dry-run: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
