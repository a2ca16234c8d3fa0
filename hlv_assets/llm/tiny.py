"""A tiny random causal LM with a byte-level tokenizer, built from a config: the `tiny` profile's stand-in for
every local transformers LLM (fast, offline, deterministic). Its answers are noise; its plumbing is real."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from hlv_assets.lib.paths import models_dir
from hlv_assets.llm.transformers_backend import TransformersBackend

TINY_DIRNAME = "tiny-random-llm"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIALS = ["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]


def _byte_vocab() -> dict[str, int]:
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    return {tok: i for i, tok in enumerate(SPECIALS + alphabet)}


def build_tokenizer():
    """Byte-level tokenizer: every byte one token, so each option letter is one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = _byte_vocab()
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
                                                 pre_tokenizers.Split("", behavior="isolated")])
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="<|end|>",
                                   additional_special_tokens=SPECIALS[3:])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def ensure_tiny_llm(target: Path | None = None, seed: int = 0) -> Path:
    """Write the tiny model (seeded random weights, safetensors) and its tokenizer once; return the folder."""
    target = Path(target or models_dir() / TINY_DIRNAME)
    if (target / "hlv_tiny.json").exists():
        return target
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{TINY_DIRNAME}-"))
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "hlv_tiny.json").write_text(json.dumps({"seed": seed, "vocab": len(tokenizer)}))
    try:
        os.replace(tmp, target)
    except OSError:  # another process won the race: keep theirs
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return target


def tiny_backend(batch_size: int = 16):
    return TransformersBackend(str(ensure_tiny_llm()), dtype="float32", device="cpu", batch_size=batch_size)
