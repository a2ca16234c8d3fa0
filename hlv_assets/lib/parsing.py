"""Parse an LLM answer to the generation prompt of SPEC §2 into a list of explanations.

SPEC §2: bullet lines (`* `, `- `, `1.`) are explanations, intro lines ending in `:` are dropped; with no
markers, each non-empty line (or the one paragraph) is one explanation.

The three published generators were parsed with slightly different conventions, read off the released
selection files (`python -m hlv_assets.lib.released` prints how well each is reproduced):

* Llama3: only bullet lines (`* `, `1. `) count, the rest (intro "Here are ...:", trailing notes) is
  dropped; texts stripped. This is the SPEC reading and the platform default (:data:`DEFAULT_OPTIONS`).
* GPT4o: bullet lines (`- `, `1. `) only, but the text after the marker is kept *verbatim*: trailing
  spaces and the line's newline stay (the released files hold e.g. ``"... context.\\n"``), so "longest"
  counts that newline. Without markers every non-empty line is kept verbatim.
* Mixtral: *every* non-empty line is an explanation, stripped, with a leading `N.` or `*` marker removed
  (`-` is not a marker: "- Tacit knowledge" is kept with its dash); intro lines ending in `:` are kept;
  when the generation ended normally (`</s>`), a last line that is not a list item (a closing
  "Note: ..." / "In summary, ...") is dropped; it is kept when the generation was cut.

Every one of these choices is a field of :class:`ParseOptions`; :data:`RELEASED_PARSE_OPTIONS` holds the
three published conventions. The default also handles what small local models write and the released
answers do not contain: markdown bold/italics, numbered lists with `)`, nested bullets, wrapped lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = [
    "DEFAULT_OPTIONS",
    "RELEASED_PARSE_OPTIONS",
    "ParseOptions",
    "ParseResult",
    "parse_explanations",
]

#: Marker names usable in :attr:`ParseOptions.markers`.
MARKER_PATTERNS: dict[str, str] = {
    "*": r"\*",
    "-": r"-",
    "+": r"\+",
    "•": r"[•·▪●◦‣]",
    "1.": r"\d{1,3}\.",
    "1)": r"\(?\d{1,3}\)",
}


@dataclass(frozen=True)
class ParseOptions:
    """How an answer is cut into explanations; each field is one "our reading" choice.

    markers: the list markers recognised at the start of a line (keys of :data:`MARKER_PATTERNS`); a marker
        must be followed by whitespace (or end the line: a bare "9." left by a cut generation is empty and
        dropped).
    unmarked_lines: when the answer has list items, what the other non-empty lines are: "drop" (intro
        and closing remarks; SPEC), "keep" (each is an explanation too: Mixtral) or "continue" (an
        indented line right after an item continues that item; other lines dropped).
    drop_intro_colon: drop lines ending in ":" (intro / heading lines; SPEC). With markers and
        unmarked_lines="drop" this only matters for list items that end in ":" (group headings).
    drop_closing_line: when the generation ended normally, drop a last line that is not a list item
        (Mixtral's reading; only meaningful with unmarked_lines="keep" or without markers).
    verbatim: keep the text after the marker exactly, trailing spaces and line end included (GPT4o's
        reading); otherwise strip surrounding whitespace.
    strip_markdown: remove markdown emphasis (`**bold**`, `__bold__`, `*it*`), inline code ticks and
        leading `#` heading marks from each explanation (no effect on the released answers).
    nested: "flatten" (an indented sub-item is an explanation of its own; a parent item ending in ":"
        is a heading and is dropped when drop_intro_colon) or "merge" (sub-items are appended to their
        parent, joined with a space).
    paragraph_fallback: without any marker, "lines" = each non-empty line is an explanation; "paragraph"
        = each blank-line separated paragraph is one (its lines joined with a space).
    """

    markers: tuple[str, ...] = ("*", "-", "+", "•", "1.", "1)")
    unmarked_lines: Literal["drop", "keep", "continue"] = "continue"
    drop_intro_colon: bool = True
    drop_closing_line: bool = False
    verbatim: bool = False
    strip_markdown: bool = True
    nested: Literal["flatten", "merge"] = "flatten"
    paragraph_fallback: Literal["lines", "paragraph"] = "lines"

    def __post_init__(self):
        unknown = [m for m in self.markers if m not in MARKER_PATTERNS]
        if unknown:
            raise ValueError(f"unknown list markers {unknown}: expected some of {list(MARKER_PATTERNS)}")
        if self.unmarked_lines not in ("drop", "keep", "continue"):
            raise ValueError(f"unmarked_lines must be drop/keep/continue, not {self.unmarked_lines!r}")
        if self.nested not in ("flatten", "merge"):
            raise ValueError(f"nested must be flatten/merge, not {self.nested!r}")
        if self.paragraph_fallback not in ("lines", "paragraph"):
            raise ValueError(f"paragraph_fallback must be lines/paragraph, not {self.paragraph_fallback!r}")


#: The platform default: SPEC §2 plus robustness for markdown, `1)` lists, nesting and wrapped lines.
DEFAULT_OPTIONS = ParseOptions()

#: The conventions of the three published generators, read off their released selection files.
RELEASED_PARSE_OPTIONS: dict[str, ParseOptions] = {
    "llama3": ParseOptions(
        markers=("*", "-", "1."), unmarked_lines="drop", strip_markdown=False, drop_intro_colon=True
    ),
    "gpt4o": ParseOptions(
        markers=("*", "-", "1."), unmarked_lines="drop", verbatim=True, strip_markdown=False
    ),
    "mixtral": ParseOptions(
        markers=("*", "1."),
        unmarked_lines="keep",
        drop_intro_colon=False,
        drop_closing_line=True,
        strip_markdown=False,
    ),
}


@dataclass
class ParseResult:
    """The explanations found in one answer.

    ok: at least one explanation was found; a caller must count answers with ok=False (an empty or
        unusable generation) rather than silently select nothing.
    style: "list" (list markers found), "lines" / "paragraph" (no markers), or "empty".
    dropped: the non-empty lines that were not used (intros, notes, headings, empty items), for audits.
    """

    explanations: list[str]
    ok: bool
    style: str
    dropped: list[str] = field(default_factory=list)


_MD_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_MD_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_MD_CODE = re.compile(r"`([^`\n]*)`")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+")


def _strip_markdown(text: str) -> str:
    text = _MD_HEADING.sub("", text)
    text = _MD_BOLD.sub(r"\2", text)
    text = _MD_ITALIC.sub(r"\1", text)
    text = _MD_CODE.sub(r"\1", text)
    return text


def _marker_regex(markers: tuple[str, ...]) -> re.Pattern:
    alternatives = "|".join(MARKER_PATTERNS[m] for m in markers)
    # indent, marker, separator (whitespace or end of line), rest of line (line end excluded)
    return re.compile(
        rf"^(?P<indent>[ \t]*)(?P<marker>{alternatives})(?P<sep>[ \t]+|(?=\r?\n?$))(?P<rest>.*?)(?P<eol>\r?\n?)$",
        re.S,
    )


@dataclass
class _Line:
    raw: str  # the line with its line end
    text: str  # the line without its line end
    indent: int
    is_item: bool
    body: str  # item text after the marker (verbatim, line end excluded) or the whole line


def _split_lines(answer: str, options: ParseOptions) -> list[_Line]:
    regex = _marker_regex(options.markers) if options.markers else None
    out = []
    for raw in answer.splitlines(keepends=True):
        text = raw.rstrip("\r\n")
        if not text.strip():
            out.append(_Line(raw, text, 0, False, ""))
            continue
        m = regex.match(raw) if regex else None
        if m:
            indent = len(m.group("indent").expandtabs(4))
            out.append(_Line(raw, text, indent, True, m.group("rest")))
        else:
            indent = len(text) - len(text.lstrip(" \t"))
            out.append(_Line(raw, text, indent, False, text))
    return out


def _finish(text: str, raw_line: _Line, options: ParseOptions) -> str:
    if options.verbatim:
        eol = raw_line.raw[len(raw_line.text) :]
        return text + eol
    text = text.strip()
    if options.strip_markdown:
        text = _strip_markdown(text).strip()
    return text


def _is_heading(text: str) -> bool:
    """An intro / heading line: ends in ":" (markdown emphasis around it ignored, e.g. `**Reasons:**`)."""
    return text.rstrip().rstrip("*_").rstrip().endswith(":")


def parse_explanations(
    answer: str, options: ParseOptions | None = None, *, complete: bool = True
) -> ParseResult:
    """Cut one answer into explanations (see :class:`ParseOptions` for every convention).

    `complete`: the generation ended normally (end-of-sequence token, not the token limit); only used by
    `drop_closing_line`.
    """
    options = options or DEFAULT_OPTIONS
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a string, not {type(answer).__name__}")
    lines = _split_lines(answer, options)
    non_empty = [ln for ln in lines if ln.text.strip()]
    if not non_empty:
        return ParseResult([], False, "empty", [])
    has_items = any(ln.is_item for ln in non_empty)
    if has_items:
        explanations, dropped = _parse_list(lines, options, complete)
        style = "list"
    else:
        explanations, dropped = _parse_plain(lines, options, complete)
        style = options.paragraph_fallback
    return ParseResult(explanations, bool(explanations), style if explanations else "empty", dropped)


def _closing_line(lines: list[_Line], options: ParseOptions, complete: bool) -> _Line | None:
    """The last non-empty line when it is a closing remark to drop (drop_closing_line), else None."""
    non_empty = [ln for ln in lines if ln.text.strip()]
    if options.drop_closing_line and complete and len(non_empty) > 1 and not non_empty[-1].is_item:
        return non_empty[-1]
    return None


def _parse_plain(lines: list[_Line], options: ParseOptions, complete: bool) -> tuple[list[str], list[str]]:
    closing = _closing_line(lines, options, complete)
    dropped: list[str] = []
    kept: list[_Line] = []
    for ln in lines:
        if not ln.text.strip():
            kept.append(ln)  # paragraph separator
            continue
        heading = options.drop_intro_colon and _is_heading(ln.text)
        md_heading = options.strip_markdown and _MD_HEADING.match(ln.text)
        if ln is closing or heading or md_heading:
            dropped.append(ln.text.strip())
            continue
        kept.append(ln)
    if options.paragraph_fallback == "lines":
        return [_finish(ln.text, ln, options) for ln in kept if ln.text.strip()], dropped
    paragraphs: list[list[_Line]] = [[]]
    for ln in kept:
        if ln.text.strip():
            paragraphs[-1].append(ln)
        elif paragraphs[-1]:
            paragraphs.append([])
    out = []
    for para in paragraphs:
        if not para:
            continue
        if options.verbatim:
            out.append("".join(ln.raw for ln in para))
        else:
            out.append(_finish(" ".join(ln.text.strip() for ln in para), para[-1], options))
    return out, dropped


def _parse_list(lines: list[_Line], options: ParseOptions, complete: bool) -> tuple[list[str], list[str]]:
    closing = _closing_line(lines, options, complete)
    dropped: list[str] = []
    # entries: [text, last_line, indent, is_item]
    entries: list[list] = []
    base_indent = min(ln.indent for ln in lines if ln.is_item)
    prev: _Line | None = None
    for ln in lines:
        if not ln.text.strip():
            prev = None
            continue
        if ln is closing:
            dropped.append(ln.text.strip())
            prev = ln
            continue
        if ln.is_item:
            if (
                options.nested == "merge"
                and entries
                and entries[-1][3]
                and ln.indent > entries[-1][2]
                and not _is_heading(entries[-1][0])
            ):
                entries[-1][0] = f"{entries[-1][0].rstrip()} {ln.body.strip()}"
                entries[-1][1] = ln
            else:
                entries.append([ln.body, ln, ln.indent, True])
        elif options.unmarked_lines == "keep":
            entries.append([ln.text, ln, ln.indent, False])
        elif (
            options.unmarked_lines == "continue"
            and prev is not None
            and prev.is_item
            and entries
            and entries[-1][3]
            and ln.indent > base_indent
        ):
            entries[-1][0] = f"{entries[-1][0].rstrip()} {ln.text.strip()}"
            entries[-1][1] = ln
            ln = replace(ln, is_item=True)  # a further wrapped line continues the same item
        else:
            dropped.append(ln.text.strip())
        prev = ln
    out = []
    for text, last_line, _indent, _is_item in entries:
        if not text.strip():
            dropped.append(last_line.text.strip())
            continue
        if options.drop_intro_colon and _is_heading(text):
            dropped.append(text.strip())
            continue
        out.append(_finish(text, last_line, options))
    return out, dropped
