"""A tiny document model, rendered twice: GitHub Markdown and self-contained HTML.

:mod:`loadtests.report` says *what* a ramp's report holds once, as blocks; this module says
how each block looks in ``summary.md`` (fit for ``$GITHUB_STEP_SUMMARY``) and ``report.html``
(inline CSS, images as data URIs, no scripts, no external assets). HTML escapes everything.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Code:
    """Inline code: a formula, a metric name, a threshold."""

    text: str


Inline = str | Code


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    parts: tuple[Inline, ...]
    strong: bool = False
    tone: str = ""
    """``pass`` or ``fail`` for the verdict; the HTML colours it."""


def para(*parts: Inline, strong: bool = False, tone: str = "") -> Para:
    return Para(parts, strong, tone)


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[Inline, ...], ...]
    numeric: frozenset[int] = field(default_factory=frozenset)
    """Columns aligned right."""


@dataclass(frozen=True)
class Images:
    """PNG files of the run folder: linked from Markdown, embedded in HTML."""

    files: tuple[tuple[str, str], ...]
    """(caption, file name) pairs."""


@dataclass(frozen=True)
class Pre:
    """Preformatted text (the configuration as JSON)."""

    text: str


Block = Heading | Para | Table | Images | Pre

_MD_SPECIAL = re.compile(r"([\\`*|<])")


def _md(part: Inline) -> str:
    if isinstance(part, Code):
        tick = "``" if "`" in part.text else "`"
        text = part.text.replace("|", "\\|")  # GFM unescapes \| even inside code in a table
        return f"{tick}{text}{tick}"
    return _MD_SPECIAL.sub(r"\\\1", part).replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    """GitHub-flavoured Markdown: headings, tables, links to the PNGs next to the file."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {_md(block.text)}")
        elif isinstance(block, Para):
            text = "".join(_md(p) for p in block.parts)
            out.append(f"**{text}**" if block.strong else text)
        elif isinstance(block, Table):
            align = ["---:" if i in block.numeric else "---" for i in range(len(block.headers))]
            lines = [block.headers, align, *([_md(c) for c in row] for row in block.rows)]
            out.append("\n".join("| " + " | ".join(cells) + " |" for cells in lines))
        elif isinstance(block, Images):
            out.append("\n".join(f"- [{_md(cap)}]({name})" for cap, name in block.files))
        else:
            out.append("```\n" + block.text.replace("```", "'''") + "\n```")
    return "\n\n".join(out) + "\n"


_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
       max-width: 1000px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #eaeef2; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; display: block;
        overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
code, pre { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
code { background: #f0f2f4; padding: .1em .3em; border-radius: 4px; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; border-radius: 6px; }
.verdict { font-size: 1.3em; padding: .4em .8em; border-radius: 6px; display: inline-block; }
.pass { background: #dafbe1; color: #116329; }
.fail { background: #ffebe9; color: #a40e26; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { color: #59636e; font-size: 13px; }
"""


def _html(part: Inline) -> str:
    if isinstance(part, Code):
        return f"<code>{html.escape(part.text)}</code>"
    return html.escape(part)


def _html_table(table: Table) -> str:
    def cls(i: int) -> str:
        return ' class="num"' if i in table.numeric else ""

    head = "".join(f"<th{cls(i)}>{html.escape(h)}</th>" for i, h in enumerate(table.headers))
    rows = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{_html(c)}</td>" for i, c in enumerate(row)) + "</tr>\n"
        for row in table.rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}</tbody>\n</table>"


def _html_block(block: Block, images: Mapping[str, bytes]) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        text = "".join(_html(p) for p in block.parts)
        text = f"<strong>{text}</strong>" if block.strong else text
        tone = f' class="verdict {html.escape(block.tone)}"' if block.tone else ""
        return f"<p{tone}>{text}</p>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Images):
        figures = []
        for caption, name in block.files:
            if name not in images:
                continue
            data = base64.b64encode(images[name]).decode("ascii")
            figures.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                f"<figcaption>{html.escape(caption)} ({html.escape(name)})</figcaption></figure>"
            )
        return "\n".join(figures)
    return f"<pre>{html.escape(block.text)}</pre>"


def to_html(title: str, blocks: Sequence[Block], images: Mapping[str, bytes]) -> str:
    """One self-contained page: inline CSS, ``images`` (PNG bytes by file name) as data URIs."""
    body = "\n".join(_html_block(b, images) for b in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
