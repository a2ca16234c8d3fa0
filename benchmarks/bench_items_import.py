"""Memory and speed of `hlv items add`: a streaming import must not grow with the file.

Writes a 10,000- and a 100,000-item JSON Lines file (and the 100k one as CSV), then runs each case in a fresh
Python process (peak RSS from `resource.getrusage`, RSS after the imports from /proc, wall time of the work):

* `import` 10k / 100k JSONL, 100k CSV: `hlv_assets.store.item_sets.import_item_set` into a new SQLite store
  (validate every line, insert in batches, duplicate check in SQL, one transaction);
* `check` 100k: `validate_file` (what `--check` runs; duplicate ids checked in memory);
* baseline `pandas.read_json(lines=True)` of the same 100k file: the whole file in memory, nothing validated.

Prints a Markdown table and the ratios (memory 100k / 10k; ours / pandas).

    .venv/bin/python benchmarks/bench_items_import.py [--items 100000] [--small 10000] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WORDS = ("a man woman child dog street park runs sits plays holds looks red blue old young small large two three "
         "near under beside while during inside outside").split()


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_files(folder: Path, n: int) -> tuple[Path, Path]:
    """n items with labels (5 annotators), an HJD and two explanations each: about 400 bytes a line."""
    rng = random.Random(n)
    jsonl, csv_path = folder / f"items-{n}.jsonl", folder / f"items-{n}.csv"
    import csv

    with open(jsonl, "w", encoding="utf-8") as fj, open(csv_path, "w", encoding="utf-8", newline="") as fc:
        writer = csv.writer(fc)
        writer.writerow(["id", "premise", "hypothesis", "labels", "hjd", "explanations"])
        for i in range(n):
            votes = [rng.random() for _ in range(3)]
            total = sum(votes)
            hjd = [round(v / total, 4) for v in votes[:2]]
            hjd.append(round(1 - sum(hjd), 4))
            item = {"id": f"item-{i}", "premise": _sentence(rng, 18), "hypothesis": _sentence(rng, 8),
                    "labels": [rng.choice("enc") for _ in range(5)], "hjd": hjd,
                    "explanations": [[_sentence(rng, 10), "e"], [_sentence(rng, 10), "c"]]}
            fj.write(json.dumps(item) + "\n")
            writer.writerow([item["id"], item["premise"], item["hypothesis"], "|".join(item["labels"]),
                             json.dumps(hjd), json.dumps(item["explanations"])])
    return jsonl, csv_path


def _rss_now_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child(case: str, path: str, db: str) -> None:
    """One measured case in this (fresh) process; prints one JSON line."""
    import resource

    if case == "pandas":
        import pandas as pd
    else:
        from hlv_assets.store import item_sets
        from hlv_assets.store.db import get_engine

        engine = get_engine(f"sqlite:///{db}") if case == "import" else None
        if engine is not None:
            item_sets.ensure_tables(engine)
    base = _rss_now_kb()
    started = time.perf_counter()
    if case == "pandas":
        n = len(pd.read_json(path, lines=True))
    elif case == "check":
        n = item_sets.validate_file(path).n_items
    else:
        n = item_sets.import_item_set(engine, "bench", path).version.n_items
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"items": n, "wall_s": wall, "peak_mb": peak / 1024, "base_mb": base / 1024}))


def run_case(case: str, path: Path, folder: Path) -> dict:
    db = folder / f"bench-{case}-{path.stem}-{path.suffix[1:]}.db"
    out = subprocess.run([sys.executable, __file__, "--child", case, str(path), str(db)], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", nargs=3, metavar=("CASE", "PATH", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-items-") as tmp:
        folder = Path(tmp)
        small_jsonl, _ = write_files(folder, args.small)
        big_jsonl, big_csv = write_files(folder, args.items)
        cases = [
            ("import", f"import JSONL {args.small:,}", small_jsonl),
            ("import", f"import JSONL {args.items:,}", big_jsonl),
            ("import", f"import CSV {args.items:,}", big_csv),
            ("check", f"--check JSONL {args.items:,}", big_jsonl),
            ("pandas", f"baseline pandas.read_json {args.items:,}", big_jsonl),
        ]
        results = []
        for case, label, path in cases:
            r = run_case(case, path, folder)
            r.update(case=label, file_mb=path.stat().st_size / 2**20)
            results.append(r)
            print(f"{label}: {r['wall_s']:.1f} s, peak {r['peak_mb']:.0f} MB", file=sys.stderr, flush=True)
    print("| case | items | file MB | wall s | items/s | peak RSS MB | RSS after imports MB | growth MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['case']} | {r['items']:,} | {r['file_mb']:.1f} | {r['wall_s']:.2f} | "
              f"{r['items'] / r['wall_s']:,.0f} | {r['peak_mb']:.0f} | {r['base_mb']:.0f} | "
              f"{r['peak_mb'] - r['base_mb']:.0f} |")
    small, big, _, _, pandas = results
    print()
    print(f"- peak RSS, import of {args.items:,} / of {args.small:,}: {big['peak_mb'] / small['peak_mb']:.2f}x "
          f"(growth over the imports: {big['peak_mb'] - big['base_mb']:.0f} MB vs "
          f"{small['peak_mb'] - small['base_mb']:.0f} MB for {args.items // args.small}x the items)")
    print(f"- import of {args.items:,} vs pandas.read_json of the same file: memory growth "
          f"{(big['peak_mb'] - big['base_mb']) / max(pandas['peak_mb'] - pandas['base_mb'], 1e-9):.2f}x, "
          f"wall time {big['wall_s'] / pandas['wall_s']:.1f}x (pandas validates nothing and writes nothing)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
