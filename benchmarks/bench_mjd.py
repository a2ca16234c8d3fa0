"""CPU benchmark of first-token letter logits for MJDs (SPEC §3): four ways to the same numbers.

On real MJD prompts (items of ``NLI_explanations.json`` with their 4 human explanations, ``--orders``
explanation orders × the 6 option orders per item) and the same model object, compares

1. ``reference``: the published procedure, greedy ``generate(max_new_tokens=256, output_scores=True)`` in
   batches of 20, keeping the step-0 scores (`TransformersBackend.reference_label_logits`);
2. ``forward``: one forward pass per prompt, length-sorted batches (``prefix_reuse=False``);
3. ``prefix``: one forward pass per prompt with prefix reuse (each item's shared prefix runs once);
4. ``tree``: the prefix tree (``prefix_tree=True``): every distinct prefix of all prompts runs once, level by level.

for SmolLM2-135M-Instruct (float32, the embedded model) and a tiny random Llama with the SmolLM2 tokenizer.
Reports prompts/s, prompt tokens/s, the peak RSS growth while the method runs (sampled with psutil), the speed
ratios and the largest difference of the letter distributions (softmax over A/B/C of the raw logits, T = 1)
and of the raw logits against ``forward``. The reference is slow on CPU, so it runs on the first
``--ref-prompts`` prompts only (its rates are per prompt, its differences on those prompts).

    .venv/bin/python benchmarks/bench_mjd.py [--quick] [--models smollm2,tiny] [--threads N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ITEMS = "mjd_estimator/MJD-generator/NLI_explanations.json"


class PeakRSS:
    """Peak resident memory of this process while the block runs, sampled every few milliseconds."""

    def __init__(self, interval: float = 0.005):
        import psutil

        self.process = psutil.Process()
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def load_prompts(data_dir: Path, n_items: int, orders: int) -> list[str]:
    from hlv_assets.lib.judgments import prompt_grid

    prompts = []
    with open(data_dir / ITEMS) as fh:
        for i, line in enumerate(fh):
            if i >= n_items:
                break
            item = json.loads(line)
            grid = prompt_grid(item["premise"], item["hypothesis"], item["comments"], item=i, orders=orders)
            prompts += [p.prompt for p in grid]
    return prompts


def letter_dists(scores) -> list[list[float]]:
    from hlv_assets.lib.judgments import softmax

    return [softmax(s.scores, temperature=1.0) for s in scores]


def max_gaps(a, b) -> tuple[float, float]:
    """Largest |Δp| of the letter distributions and largest |Δ logit| between two runs on the same prompts."""
    dp = max(abs(x - y) for p, q in zip(letter_dists(a), letter_dists(b), strict=True) for x, y in zip(p, q))
    dl = max(abs(x - y) for s, t in zip(a, b, strict=True) for x, y in zip(s.scores, t.scores))
    return dp, dl


def run_model(name: str, model, tokenizer, prompts: list[str], args) -> list[dict]:
    from hlv_assets.llm.transformers_backend import TransformersBackend

    forward = TransformersBackend.from_model(
        model, tokenizer, model_id=name, prefix_reuse=False, batch_size=args.batch_size
    )
    prefix = TransformersBackend.from_model(
        model, tokenizer, model_id=name, prefix_reuse=True, batch_size=args.batch_size
    )
    tree = TransformersBackend.from_model(
        model, tokenizer, model_id=name, prefix_tree=True, batch_size=args.tree_batch_size
    )
    forward.label_logits(prompts[:2])  # warm-up: letter resolution, first-call allocations
    prefix.label_logits(prompts[:2])
    tree.label_logits(prompts[:2])
    ref_prompts = prompts[: args.ref_prompts]

    rows, results = [], {}
    methods = {
        "reference": (
            forward,
            lambda: forward.reference_label_logits(
                ref_prompts, max_new_tokens=args.max_new_tokens, batch_size=20
            ),
        ),
        "forward": (forward, lambda: forward.label_logits(prompts)),
        "prefix": (prefix, lambda: prefix.label_logits(prompts)),
        "tree": (tree, lambda: tree.label_logits(prompts)),
    }
    # The reference runs once (it is slow); the other two alternate `repeats` times and keep their best run,
    # which damps the noise of a shared machine.
    schedule = ["reference"] + ["forward", "prefix", "tree"] * args.repeats
    timings: dict[str, list[float]] = {}
    memory: dict[str, float] = {}
    stats: dict[str, dict] = {}
    for method in schedule:
        backend, call = methods[method]
        with PeakRSS() as mem:
            started = time.perf_counter()
            scores = call()
            seconds = time.perf_counter() - started
        results[method] = scores
        timings.setdefault(method, []).append(seconds)
        memory[method] = max(memory.get(method, 0.0), mem.growth_mb)
        stats[method] = dict(backend.last_stats)
        print(f"  {name} {method}: {len(scores)} prompts in {seconds:.2f} s", file=sys.stderr, flush=True)
    for method in methods:
        scores, seconds = results[method], min(timings[method])
        n_tokens = sum(s.prompt_tokens for s in scores)
        rows.append(
            {
                "model": name,
                "method": method,
                "prompts": len(scores),
                "prompt_tokens": n_tokens,
                "tokens_run": stats[method].get("tokens_run", n_tokens),
                "generated_tokens": stats[method].get("generated_tokens", 0),
                "seconds": seconds,
                "all_seconds": timings[method],
                "prompts_per_s": len(scores) / seconds,
                "tokens_per_s": n_tokens / seconds,
                "peak_rss_growth_mb": memory[method],
            }
        )
    by = {r["method"]: r for r in rows}
    n_ref = len(results["reference"])
    for row in rows:
        row["speed_vs_reference"] = row["prompts_per_s"] / by["reference"]["prompts_per_s"]
        row["speed_vs_forward"] = row["prompts_per_s"] / by["forward"]["prompts_per_s"]
        row["speed_vs_prefix"] = row["prompts_per_s"] / by["prefix"]["prompts_per_s"]
        row["tokens_vs_prefix"] = row["tokens_run"] / by["prefix"]["tokens_run"]
        other = results[row["method"]]
        base = results["forward"][: len(other)]
        row["max_dp_vs_forward"], row["max_dlogit_vs_forward"] = max_gaps(other, base)
    dp, dl = max_gaps(results["prefix"][:n_ref], results["reference"])
    by["prefix"]["max_dp_vs_reference"], by["prefix"]["max_dlogit_vs_reference"] = dp, dl
    return rows


def markdown(rows: list[dict]) -> str:
    head = (
        "| model | method | prompts | prompt tokens | tokens run | s | prompts/s | tokens/s | peak ΔRSS MB "
        "| × reference | × forward | × prefix | tokens / prefix's | max abs Δp vs forward | max abs Δlogit vs forward |"
    )
    lines = [head, "|" + "---|" * 15]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['method']} | {r['prompts']} | {r['prompt_tokens']} | {r['tokens_run']} "
            f"| {r['seconds']:.2f} | {r['prompts_per_s']:.2f} | {r['tokens_per_s']:.0f} | {r['peak_rss_growth_mb']:.0f} "
            f"| {r['speed_vs_reference']:.1f} | {r['speed_vs_forward']:.2f} | {r['speed_vs_prefix']:.2f} "
            f"| {r['tokens_vs_prefix']:.2f} | {r['max_dp_vs_forward']:.1e} "
            f"| {r['max_dlogit_vs_forward']:.1e} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", default=os.environ.get("HLV_DATA_DIR", str(REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--models", default="smollm2,tiny", help="comma-separated: smollm2, tiny")
    parser.add_argument("--items", type=int, default=5)
    parser.add_argument(
        "--orders", type=int, default=1, help="explanation orders per item (× 6 option orders)"
    )
    parser.add_argument("--ref-prompts", type=int, default=20, help="prompts the slow reference runs on")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="the reference's generation length")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tree-batch-size", type=int, default=32, help="rows per forward call of the tree")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of forward, prefix, tree (best kept)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--quick", action="store_true", help="2 items, reference on 6 prompts")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    if args.quick:
        args.items, args.ref_prompts, args.repeats = 2, 6, 2
    load_before = os.getloadavg()[0]

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from hlv_assets.llm.embedded import ensure_smollm2

    if args.threads:
        torch.set_num_threads(args.threads)
    prompts = load_prompts(Path(args.data), args.items, args.orders)
    smollm2 = ensure_smollm2()
    tokenizer = AutoTokenizer.from_pretrained(str(smollm2), local_files_only=True)
    rows = []
    for name in args.models.split(","):
        if name == "smollm2":
            model = AutoModelForCausalLM.from_pretrained(
                str(smollm2), dtype=torch.float32, local_files_only=True
            )
            label = "SmolLM2-135M fp32"
        elif name == "tiny":
            torch.manual_seed(0)
            config = LlamaConfig(
                vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            )  # fmt: skip
            model = LlamaForCausalLM(config)
            label = "tiny random Llama fp32"
        else:
            parser.error(f"unknown model {name!r}")
        rows += run_model(label, model.eval(), tokenizer, prompts, args)
    print(
        f"\n{args.items} items × {args.orders} explanation order(s) × 6 option orders = {len(prompts)} prompts "
        f"(human explanations); reference = generate(max_new_tokens={args.max_new_tokens}) in batches of 20 "
        f"on the first {min(args.ref_prompts, len(prompts))} prompts; batch size {args.batch_size}; "
        f"torch threads {torch.get_num_threads()}; best of {args.repeats} runs for forward and prefix; "
        f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs\n"
    )
    print(markdown(rows))
    for r in rows:
        if r["method"] == "prefix":
            print(
                f"\n{r['model']}: prefix reuse vs reference {r['max_dp_vs_reference']:.1e} max abs Δp, "
                f"{r['max_dlogit_vs_reference']:.1e} max abs Δlogit; "
                f"{r['speed_vs_reference']:.1f}× the reference (goal ≥ 10), "
                f"{r['speed_vs_forward']:.2f}× one forward without reuse (goal ≥ 2)"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
