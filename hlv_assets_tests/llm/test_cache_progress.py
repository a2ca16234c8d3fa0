"""CachedLLM's progress lines: what is sent is announced, the last chunk always reports, and the lines change
nothing about the calls (same batches, same answers)."""

from __future__ import annotations

from hlv_assets.llm.cache import CachedLLM
from hlv_assets.llm.callstore import MemoryCallStore
from hlv_assets_tests.llm.fakes import CountingBackend


def _prompts(n: int) -> list[str]:
    return [f"prompt {i}" for i in range(n)]


def test_progress_lines_for_the_uncached_prompts_only():
    backend, store, lines = CountingBackend(), MemoryCallStore(), []
    CachedLLM(backend, store).label_logits(_prompts(10))  # 10 answers in the call cache
    llm = CachedLLM(backend, store, chunk_size=8, progress=lines.append)
    llm.label_logits(_prompts(30))
    assert lines[0] == "label_logits on fake-model: 20 of 30 prompts to send (the others: call cache)"
    assert lines[-1].startswith("label_logits on fake-model: 20/20 prompts (100%), ") and "done in" in lines[-1]
    assert len(lines) <= 1 + 3  # the start, at most one line per chunk of 8 (in practice: the last)
    lines.clear()
    llm.label_logits(_prompts(30))  # all cached now: nothing to report
    assert lines == []


def test_progress_changes_neither_batches_nor_answers():
    quiet, loud = CountingBackend(), CountingBackend()
    a = CachedLLM(quiet, MemoryCallStore(), chunk_size=7).label_logits(_prompts(25))
    b = CachedLLM(loud, MemoryCallStore(), chunk_size=7, progress=lambda line: None).label_logits(_prompts(25))
    assert quiet.batches == loud.batches == [7, 7, 7, 4]
    assert [s.scores for s in a] == [s.scores for s in b]
