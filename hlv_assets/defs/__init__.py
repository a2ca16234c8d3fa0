"""Dagster wiring: thin assets over `hlv_assets.lib`, one domain per folder."""
