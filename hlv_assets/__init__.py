"""hlv-assets: label distributions for NLI with LLMs, as Dagster software-defined assets."""

__version__ = "0.1.0"
