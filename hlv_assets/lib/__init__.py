"""Dagster-free science: prompts, parsing, selection, distributions, metrics, validation, fine-tuning."""
