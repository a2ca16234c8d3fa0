"""Fixtures for the transformers backend: the converted SmolLM2-135M (converted once, then reused from
``models_dir()``), its tokenizer, and tiny random Llama-shaped models that use that tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

#: A tiny Llama: 2 layers, 64 wide, grouped-query attention like SmolLM2 (the vocabulary is the tokenizer's).
TINY_LLAMA = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
}


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The converted SmolLM2-135M-Instruct folder (the first run converts the GGUF, about a minute)."""
    from hlv_assets.llm.embedded import ensure_smollm2

    return ensure_smollm2()


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_dir), local_files_only=True)


def build_tiny_llama(tokenizer, seed: int = 0, **overrides):
    """A seeded random tiny LlamaForCausalLM (float32, eval) whose vocabulary fits `tokenizer`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **{**TINY_LLAMA, **overrides},
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny_llama(smollm2_tokenizer):
    return build_tiny_llama(smollm2_tokenizer)


@pytest.fixture
def tiny_llama_backend(tiny_llama, smollm2_tokenizer):
    """Factory: a TransformersBackend around the shared tiny model, with the given backend options."""
    from hlv_assets.llm.transformers_backend import TransformersBackend

    def make(**kwargs):
        return TransformersBackend.from_model(tiny_llama, smollm2_tokenizer, model_id="tiny-llama", **kwargs)

    return make
