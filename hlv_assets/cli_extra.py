"""Further `hlv` subcommands, each defined next to what it manages; each registrar adds one subparser."""

from __future__ import annotations

from hlv_assets import cli_audit, cli_items, cli_llm, cli_report

REGISTRARS: list = [cli_items.register, cli_llm.register, cli_audit.register, cli_report.register]
