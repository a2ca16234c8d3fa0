"""Further `hlv` subcommands; each registrar adds one subparser."""

from __future__ import annotations

REGISTRARS: list = []
