"""LLM backends behind one interface (importable without Dagster): transformers, vLLM, OpenAI-compatible, released."""
