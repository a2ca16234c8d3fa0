"""Dagster wiring: thin assets over `hlv_assets.lib`, one domain per folder."""

import warnings

import dagster as dg

# `Output(data_version=...)` is marked beta; we rely on it on purpose (data versions make staleness visible).
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
