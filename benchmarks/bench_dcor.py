"""Time and memory of distance correlation (D.Corr, SPEC §4): the blockwise O(N) estimator against the N×N one.

Two N×3 label distributions (Dirichlet rows, the second correlated with the first, a quarter of the rows in
fifths as five annotators give) compared by

* ``blockwise``: `hlv_assets.lib.metrics.distance_correlation`, the N×N distance matrices visited in
  512×512 tiles of their upper triangle, row sums and products summed as it goes (O(N) memory);
* ``nxn``: `distance_correlation_nxn`, the textbook double-centred N×N matrices (the implementation before
  2026-12, which capped item-set comparisons at 2,000 items), the baseline of the same run.

Each case runs in a fresh Python process: wall time of the call, the peak of Python/numpy allocations
(tracemalloc) and the peak RSS growth over the process after the data is built (`resource.getrusage`). The N×N
estimator is skipped where it would not fit in the memory available (it needs about 48·N² bytes at its peak).
Prints a Markdown table, the ratios at the sizes both ran, and the difference of their values.

    .venv/bin/python benchmarks/bench_dcor.py [--quick] [--sizes 10000,100000] [--nxn-sizes 2000,10000]
                                              [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NXN_PEAK_BYTES_PER_PAIR = 48  # N×N×3 differences (24 B per pair) and what follows them: 40 B measured at 3,000


def make_pair(n: int, seed: int = 0):
    """Two dependent N×3 distributions with ties: the data every case of one size shares."""
    import numpy as np

    rng = np.random.default_rng(seed)
    p = rng.dirichlet([1, 2, 3], n)
    p[: n // 4] = rng.multinomial(5, [0.3, 0.3, 0.4], n // 4) / 5
    return p, 0.6 * p + 0.4 * rng.dirichlet([2, 2, 1], n)


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def child(method: str, n: int) -> None:
    """One measured case in this (fresh) process; prints one JSON line."""
    import resource

    from hlv_assets.lib.metrics import distance_correlation, distance_correlation_nxn

    fn = distance_correlation if method == "blockwise" else distance_correlation_nxn
    p, q = make_pair(n)
    fn(p[:50], q[:50])  # first-call costs out of the measurement
    base_kb = _rss_kb()
    tracemalloc.start()
    started = time.perf_counter()
    value = fn(p, q)
    wall = time.perf_counter() - started
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"method": method, "items": n, "wall_s": wall, "dcor": value,
                      "traced_mb": traced_peak / 2**20, "rss_growth_mb": (peak_kb - base_kb) / 1024}))


def run_case(method: str, n: int) -> dict:
    if method == "nxn":
        need, have = NXN_PEAK_BYTES_PER_PAIR * n * n, _available_bytes()
        if need > have * 0.6:
            return {"method": method, "items": n, "skipped": f"needs ~{need / 2**30:.1f} GiB at its peak, "
                                                             f"{have / 2**30:.1f} GiB available"}
    out = subprocess.run([sys.executable, __file__, "--child", method, str(n)], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def print_report(results: list[dict]) -> None:
    print("| method | items | wall s | pairs/s | tracemalloc peak MiB | peak RSS growth MiB | D.Corr |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if "skipped" in r:
            print(f"| {r['method']} | {r['items']:,} | skipped: {r['skipped']} | | | | |")
            continue
        pairs = r["items"] ** 2 / 2
        print(f"| {r['method']} | {r['items']:,} | {r['wall_s']:.2f} | {pairs / r['wall_s']:,.3g} | "
              f"{r['traced_mb']:.1f} | {r['rss_growth_mb']:.0f} | {r['dcor']:.12f} |")
    print()
    done = {(r["method"], r["items"]): r for r in results if "skipped" not in r}
    for (method, n), nxn in sorted(done.items()):
        block = done.get(("blockwise", n))
        if method != "nxn" or block is None:
            continue
        print(f"- {n:,} items, N×N / blockwise: time {nxn['wall_s'] / block['wall_s']:.2f}x, tracemalloc peak "
              f"{nxn['traced_mb'] / block['traced_mb']:.0f}x, RSS growth {nxn['rss_growth_mb']:.0f} MiB vs "
              f"{block['rss_growth_mb']:.0f} MiB; |Δ D.Corr| = {abs(nxn['dcor'] - block['dcor']):.1e}")
    for (method, n), r in sorted(done.items()):
        if method == "blockwise" and ("nxn", n) not in done:
            print(f"- {n:,} items, blockwise: {r['traced_mb']:.1f} MiB traced at its peak, where the N×N "
                  f"estimator would need ~{NXN_PEAK_BYTES_PER_PAIR * n * n / 2**30:,.0f} GiB "
                  f"({n * n * 8 / 2**30:,.1f} GiB for one float64 N×N matrix)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="item counts for the blockwise estimator")
    parser.add_argument("--nxn-sizes", default="2000,10000", help="item counts for the N×N baseline")
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 1,000 and 3,000 items, both methods")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    sizes, nxn_sizes = (_sizes("1000,3000"),) * 2 if args.quick else (_sizes(args.sizes), _sizes(args.nxn_sizes))
    cases = [("nxn", n) for n in nxn_sizes] + [("blockwise", n) for n in sorted(set(sizes) | set(nxn_sizes))]
    results = []
    for method, n in cases:
        r = run_case(method, n)
        results.append(r)
        note = r.get("skipped") or f"{r['wall_s']:.2f} s, {r['traced_mb']:.1f} MiB traced"
        print(f"{method} {n:,}: {note}", file=sys.stderr, flush=True)
    print_report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
