"""Further `hlv` subcommands, each defined next to what it manages; each registrar adds one subparser."""

from __future__ import annotations

from hlv_assets import cli_items

REGISTRARS: list = [cli_items.register]
