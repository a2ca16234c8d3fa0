"""The transformers backend: letter tokens, one forward pass = the generate reference, batch-size and
prefix-reuse invariance, a model whose letter logits are known, generation, and the embedded SmolLM2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hlv_assets.lib import judgments as J
from hlv_assets.lib.paths import REPO_ROOT
from hlv_assets.llm.base import GENERATE, LABEL_LOGITS, GenerationParams, LLMBackend
from hlv_assets.llm.transformers_backend import (
    LetterTokenError,
    PromptTooLongError,
    TransformersBackend,
    plan_prefix_groups,
)

ITEMS_FILE = (
    REPO_ROOT.parent / "shared" / "data" / "mjd_estimator" / "MJD-generator" / "NLI_explanations.json"
)
TOL = 1e-5


def _items(n: int) -> list[dict]:
    assert ITEMS_FILE.is_file(), f"no data pack at {ITEMS_FILE}: set HLV_DATA_DIR"
    with open(ITEMS_FILE) as fh:
        return [json.loads(line) for _, line in zip(range(n), fh, strict=False)]


def _grid(n_items: int = 2, orders: int = 1) -> list[J.JudgmentPrompt]:
    """Per item: the 6 plain prompts and `orders` explanation orders × 6 option orders with human explanations."""
    grid = []
    for i, item in enumerate(_items(n_items)):
        grid += J.prompt_grid(item["premise"], item["hypothesis"], item=f"plain-{i}")
        grid += J.prompt_grid(item["premise"], item["hypothesis"], item["comments"], item=i, orders=orders)
    return grid


def _dists(scores, temperature: float) -> list[list[float]]:
    return [J.softmax(s.scores, temperature) for s in scores]


def _max_gap(a, b) -> float:
    """Largest difference of letter distributions (T = 1 and T = 20) and letter masses between two runs."""
    gaps = [abs(x.letter_mass - y.letter_mass) for x, y in zip(a, b, strict=True)]
    for t in (1.0, 20.0):
        for p, q in zip(_dists(a, t), _dists(b, t), strict=True):
            gaps += [abs(u - v) for u, v in zip(p, q, strict=True)]
    return max(gaps)


@pytest.fixture(scope="module")
def grid():
    return _grid()


@pytest.fixture(scope="module")
def reference_scores(grid, tiny_llama, smollm2_tokenizer):
    backend = TransformersBackend.from_model(tiny_llama, smollm2_tokenizer, prefix_reuse=False, batch_size=16)
    return backend.label_logits([p.prompt for p in grid])


def test_protocol_and_letter_tokens(tiny_llama_backend, smollm2_tokenizer):
    backend = tiny_llama_backend()
    assert isinstance(backend, LLMBackend)
    assert backend.capabilities == {GENERATE, LABEL_LOGITS}
    ids = backend.letter_token_ids()
    assert ids == smollm2_tokenizer.convert_tokens_to_ids(["A", "B", "C"]) == [49, 50, 51]
    # the letter after the assistant header, not the space-prefixed word-start token
    assert smollm2_tokenizer.convert_tokens_to_ids("ĠA") not in ids
    with pytest.raises(LetterTokenError):
        backend.letter_token_ids(("A", "Xylophonic!"))
    ident = backend.identity()
    assert (ident.backend, ident.model_id, ident.dtype) == ("transformers", "tiny-llama", "float32")
    assert ident.extra["chat_template"] != "none"


def test_scores_record_letters_ids_and_mass(grid, reference_scores, tiny_llama_backend):
    assert len(reference_scores) == len(grid) == 24
    for scored, prompt in zip(reference_scores, grid, strict=True):
        assert scored.kind == "logits" and scored.letters == ("A", "B", "C")
        assert scored.token_ids == [49, 50, 51]
        assert 0 < scored.letter_mass < 1 and all(math.isfinite(s) for s in scored.scores)
        assert scored.prompt_tokens == len(tiny_llama_backend().encode([prompt.prompt])[0])


def test_single_forward_equals_generate_reference(grid, reference_scores, tiny_llama_backend):
    backend = tiny_llama_backend()
    reference = backend.reference_label_logits([p.prompt for p in grid], max_new_tokens=2, batch_size=20)
    assert _max_gap(reference, reference_scores) <= TOL
    gap = max(
        abs(u - v)
        for a, b in zip(reference, reference_scores, strict=True)
        for u, v in zip(a.scores, b.scores)
    )
    assert gap <= 1e-4


@pytest.mark.parametrize("prefix_reuse", [False, True])
def test_batch_size_invariance(grid, reference_scores, tiny_llama_backend, prefix_reuse):
    prompts = [p.prompt for p in grid]
    one = tiny_llama_backend(batch_size=1, suffix_batch_size=1, prefix_reuse=prefix_reuse).label_logits(
        prompts
    )
    sixteen = tiny_llama_backend(batch_size=16, prefix_reuse=prefix_reuse).label_logits(prompts)
    assert _max_gap(one, sixteen) <= TOL
    assert _max_gap(sixteen, reference_scores) <= TOL


def test_prefix_reuse_equivalence(grid, reference_scores, tiny_llama_backend):
    backend = tiny_llama_backend(prefix_reuse=True)
    reused = backend.label_logits([p.prompt for p in grid])
    stats = backend.last_stats
    assert stats["groups"] >= 4 and stats["grouped_prompts"] == len(grid)
    assert stats["tokens_run"] < stats["prompt_tokens"] / 2
    assert _max_gap(reused, reference_scores) <= TOL
    records = J.records_from_scores(grid, reused)
    base = J.records_from_scores(grid, reference_scores)
    for conversion in ("softmax",):  # random tiny models give negative logits: normalize is refused
        a, b = J.mjd_from_scores(records, conversion), J.mjd_from_scores(base, conversion)
        assert max(abs(u - v) for k in a for u, v in zip(a[k], b[k], strict=True)) <= TOL


def test_token_ids_without_tokenizer(grid, reference_scores, tiny_llama, tiny_llama_backend):
    seqs = tiny_llama_backend().encode([p.prompt for p in grid])
    bare = TransformersBackend.from_model(tiny_llama, None, model_id="bare")
    scores = bare.score_token_ids(seqs, [49, 50, 51])
    assert _max_gap(scores, reference_scores) <= TOL and bare.last_stats["groups"] >= 4
    with pytest.raises(RuntimeError, match="without a tokenizer"):
        bare.label_logits(["no tokenizer here"])


def test_plan_prefix_groups():
    shared = list(range(100, 140))
    seqs = [shared + [1, 2, k] for k in range(6)]  # one item: 6 option orders
    seqs += [list(range(200, 240)) + [k] for k in range(3)]  # another item
    seqs += [[7, 8, 9]]  # a loner
    seqs += [shared[:5] + [0]]  # shares only 5 tokens: below min_prefix
    groups, singles = plan_prefix_groups(seqs, max_group=64, min_prefix=16)
    assert sorted(singles) == [9, 10]
    assert sorted((g.prefix_len, sorted(g.members)) for g in groups) == [
        (40, [6, 7, 8]),
        (42, [0, 1, 2, 3, 4, 5]),
    ]
    capped, _ = plan_prefix_groups(seqs, max_group=4, min_prefix=16)
    assert max(len(g.members) for g in capped) <= 4
    same, singles = plan_prefix_groups([[1] * 20, [1] * 20, [1] * 20], min_prefix=4)
    assert singles == [] and same[0].prefix_len == 19  # identical prompts keep one token to run


def test_known_letter_logits_toy_model(smollm2_tokenizer):
    """A tiny model whose LM head returns fixed logits: A=3, B=2, C=1, every other token 0."""
    import torch

    from hlv_assets_tests.llm.conftest import build_tiny_llama

    class FixedHead(torch.nn.Module):
        def __init__(self, vocab: int, values: dict[int, float]):
            super().__init__()
            row = torch.zeros(vocab)
            for token, value in values.items():
                row[token] = value
            self.register_buffer("row", row)

        def forward(self, hidden):
            return self.row.expand(*hidden.shape[:-1], -1).to(hidden.dtype)

    model = build_tiny_llama(smollm2_tokenizer, seed=1)
    vocab = model.config.vocab_size
    model.lm_head = FixedHead(vocab, {49: 3.0, 50: 2.0, 51: 1.0})
    backend = TransformersBackend.from_model(model, smollm2_tokenizer, model_id="fixed-head")
    grid = J.prompt_grid("A man is asleep.", "A man sleeps.", item="x")
    scores = backend.label_logits([p.prompt for p in grid])
    expected_mass = (math.exp(3) + math.exp(2) + math.exp(1)) / (
        math.exp(3) + math.exp(2) + math.exp(1) + (vocab - 3)
    )
    for scored in scores:
        assert scored.scores == [3.0, 2.0, 1.0]
        assert scored.letter_mass == pytest.approx(expected_mass, rel=1e-6)
    records = J.records_from_scores(grid, scores)
    for conversion in ("normalize", "softmax"):
        letter_dist = J.convert([3.0, 2.0, 1.0], conversion)
        for record in records:  # each option order puts the letters' values on its own labels
            expected = [0.0] * 3
            for j, label in enumerate(record.option_order):
                expected[label] = letter_dist[j]
            assert J.prompt_distribution(record, conversion) == pytest.approx(expected, abs=1e-15)
        assert J.mjd_from_scores(records, conversion)["x"] == pytest.approx([1 / 3] * 3, abs=1e-15)


def test_generate_and_limits(tiny_llama_backend, smollm2_tokenizer):
    prompts = ["Say A.", "A longer prompt that asks the model to say something about B and C."]
    backend = tiny_llama_backend(batch_size=2)
    out = backend.generate(prompts, GenerationParams(max_new_tokens=5))
    assert len(out) == 2
    for gen, prompt in zip(out, prompts, strict=True):
        assert isinstance(gen.text, str) and 1 <= gen.completion_tokens <= 5
        assert gen.prompt_tokens == len(backend.encode([prompt])[0]) and gen.latency_s > 0
        assert gen.finish_reason == ("length" if gen.completion_tokens == 5 else "stop")
    single = tiny_llama_backend(batch_size=1).generate(prompts, GenerationParams(max_new_tokens=5))
    assert [g.text for g in single] == [g.text for g in out]
    sampled = GenerationParams(max_new_tokens=4, temperature=0.7, top_p=0.9, seed=3)
    assert [g.text for g in backend.generate(prompts, sampled)] == [
        g.text for g in backend.generate(prompts, sampled)
    ]
    with pytest.raises(PromptTooLongError):
        tiny_llama_backend(max_length=10).label_logits(["a prompt that is longer than ten tokens for sure"])


def test_local_identity_fingerprint(tmp_path: Path, smollm2_dir):
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (tmp_path / name).write_bytes((smollm2_dir / name).read_bytes())
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 100)
    first = TransformersBackend(str(tmp_path), dtype="bfloat16").identity()
    assert first.model_id == f"local:{tmp_path.name}" and first.dtype == "bfloat16"
    assert first.revision.startswith("local-")
    assert TransformersBackend(str(tmp_path), dtype="bfloat16").identity() == first
    (tmp_path / "model.safetensors").write_bytes(b"\1" * 100)
    assert TransformersBackend(str(tmp_path), dtype="bfloat16").identity().revision != first.revision
    assert TransformersBackend(str(tmp_path), revision="abc").identity().revision == "abc"
    with pytest.raises(ValueError, match="dtype"):
        TransformersBackend(str(tmp_path), dtype="int8")


def test_embedded_conversion_is_atomic(tmp_path: Path, monkeypatch):
    from hlv_assets.llm import embedded

    assert embedded.smollm2_gguf_path().name == embedded.SMOLLM2_GGUF
    calls = []

    def fake_convert(gguf, out_dir):
        calls.append(out_dir)
        for name in ("config.json", "model.safetensors", embedded.MARKER):
            (out_dir / name).write_text("{}")

    monkeypatch.setattr(embedded, "convert_gguf", fake_convert)
    target = tmp_path / "models" / "smollm2-135m"
    assert embedded.ensure_smollm2(target) == target and embedded.is_converted(target)
    assert embedded.ensure_smollm2(target) == target and len(calls) == 1  # converted once, then reused
    assert [p.name for p in target.parent.iterdir()] == ["smollm2-135m"]  # no temporary folder left

    def broken_convert(gguf, out_dir):
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(embedded, "convert_gguf", broken_convert)
    other = tmp_path / "other" / "smollm2-135m"
    with pytest.raises(RuntimeError, match="disk full"):
        embedded.ensure_smollm2(other)
    assert list(other.parent.iterdir()) == []


@pytest.mark.slow
def test_real_smollm2_letter_logits(smollm2_dir):
    backend = TransformersBackend(str(smollm2_dir), dtype="float32", device="cpu", batch_size=8)
    grid = [p for p in _grid(2, orders=1) if p.variant == "explanations"]  # 2 items x 6 option orders
    scores = backend.label_logits([p.prompt for p in grid])
    assert backend.last_stats["groups"] == 2
    for scored in scores:
        assert scored.token_ids == [49, 50, 51]
        assert all(30.0 <= s <= 34.0 for s in scored.scores), scored.scores
        assert 0.5 < scored.letter_mass < 1.0
    plain = TransformersBackend(str(smollm2_dir), prefix_reuse=False).label_logits(
        [p.prompt for p in grid[:6]]
    )
    assert _max_gap(scores[:6], plain) <= TOL
    mjd = J.mjd_from_scores(J.records_from_scores(grid, scores), "normalize")
    assert len(mjd) == 2
    for dist in mjd.values():  # logits of 31-33 make normalize nearly uniform
        assert dist == pytest.approx([1 / 3] * 3, abs=0.01)
