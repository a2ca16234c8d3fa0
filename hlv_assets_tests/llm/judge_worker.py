"""A judging process for the kill -9 test (`test_judge_resume.py`): judges the first items of the human
explanations with a tiny random Llama through the prefix tree and the SQL call cache, one item per call, slowly
(DELAY seconds a call) so that the test can kill it part-way.

    python -m hlv_assets_tests.llm.judge_worker DB_URL TOKENIZER_DIR N_ITEMS DELAY
"""

from __future__ import annotations

import json
import sys
import time

import pandas as pd

ITEMS = "mjd_estimator/MJD-generator/NLI_explanations.json"


class Slow:
    """`backend` with a pause before every label_logits call."""

    def __init__(self, backend, delay: float):
        self.backend = backend
        self.delay = delay

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def label_logits(self, prompts, *args, **kwargs):
        time.sleep(self.delay)
        return self.backend.label_logits(prompts, *args, **kwargs)


def explanation_set(n_items: int) -> pd.DataFrame:
    from hlv_assets.lib.datasource import DataSource

    rows = []
    with open(DataSource.from_env().path(ITEMS)) as fh:
        for i, line in zip(range(n_items), fh, strict=False):
            item = json.loads(line)
            rows.append({"uid": f"item{i}", "premise": item["premise"], "hypothesis": item["hypothesis"],
                         "explanations": [list(c) for c in item["comments"]]})
    return pd.DataFrame(rows)


def judge_items(db_url: str, tokenizer_dir: str, n_items: int, delay: float):
    """(records, the CachedLLM) of judging `n_items` items, 2 explanation orders each (12 prompts an item)."""
    from transformers import AutoTokenizer

    from hlv_assets.lib.mjd_run import JudgeOptions, judge
    from hlv_assets.llm.cache import CachedLLM
    from hlv_assets.llm.transformers_backend import TransformersBackend
    from hlv_assets.store.db import get_engine
    from hlv_assets.store.results import SqlCallStore
    from hlv_assets_tests.llm.conftest import build_tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    backend = TransformersBackend.from_model(build_tiny_llama(tokenizer), tokenizer, model_id="tiny-resume",
                                             prefix_tree=True)
    llm = CachedLLM(Slow(backend, delay), SqlCallStore(get_engine(db_url)), chunk_size=backend.chunk_prompts)
    _, records = judge(llm, explanation_set(n_items), JudgeOptions(orders=2), items_per_call=1,
                       progress=lambda line: print(line, file=sys.stderr, flush=True))
    return records, llm


if __name__ == "__main__":
    url, tok, n, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    judge_items(url, tok, n, delay)
