"""The report's document model: blocks (heading, paragraph, bullets, table, figure) rendered to Markdown and to
one self-contained HTML page (figures inlined as base64 PNG)."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    path: Path
    caption: str


Block = Heading | Para | Bullets | Table | Figure


def _png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _rel(path: Path, base: Path | None) -> str:
    if base is None:
        return str(path)
    try:
        return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def to_markdown(blocks: Sequence[Block], *, base: Path | None = None, inline_images: bool = False) -> str:
    """Markdown; figures link relative to `base` (the report's folder), or are inlined as base64 PNG."""
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_cell(c) for c in b.columns) + " |",
                     "|" + "---|" * len(b.columns)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("\n".join(lines))
        elif isinstance(b, Figure):
            src = _png_uri(b.path) if inline_images else _rel(b.path, base)
            out.append(f"![{b.caption}]({src})\n\n*{b.caption}*")
    return "\n\n".join(out) + "\n"


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*([^*]+)\*(?![\w*])")


def _inline_html(text: str) -> str:
    parts = re.split(r"(`[^`]+`)", str(text))
    out = []
    for part in parts:
        if _CODE.fullmatch(part):
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            escaped = html.escape(part, quote=False)
            escaped = _BOLD.sub(r"<strong>\1</strong>", escaped)
            out.append(_ITALIC.sub(r"<em>\1</em>", escaped))
    return "".join(out)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
code { background: #f5f5f5; padding: 0 0.2em; } figure { margin: 1em 0; } figcaption { font-style: italic; }
img { max-width: 100%; } td.wrap { white-space: normal; min-width: 16em; max-width: 30em; text-align: left; }
div.scroll { overflow-x: auto; }
"""


def _td(cell: str) -> str:
    wrap = ' class="wrap"' if len(str(cell)) > 40 else ""  # long texts wrap, numbers never do
    return f"<td{wrap}>{_inline_html(cell)}</td>"


def to_html(blocks: Sequence[Block], title: str) -> str:
    """One self-contained HTML page (figures inlined)."""
    body = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{_inline_html(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_inline_html(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{_inline_html(c)}</th>" for c in b.columns)
            rows = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in b.rows)
            body.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>')
        elif isinstance(b, Figure):
            body.append(f'<figure><img src="{_png_uri(b.path)}" alt="{html.escape(b.caption)}">'
                        f"<figcaption>{_inline_html(b.caption)}</figcaption></figure>")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
