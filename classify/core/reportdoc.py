"""A tiny document model rendered twice: Markdown (report.md) and self-contained HTML (report.html).

Building the report once as blocks keeps the two outputs saying exactly the same thing; the
HTML embeds every image as base64 so the single file can be mailed or attached to a ticket.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Image:
    path: str  # relative to the report folder
    caption: str


Block = Heading | Para | Bullets | Table | Image


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_cell(h) for h in b.headers) + " |",
                     "|" + "|".join("---" for _ in b.headers) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("\n".join(lines))
        elif isinstance(b, Image):
            out.append(f"![{b.caption}]({b.path})\n\n*{b.caption}*")
    return "\n\n".join(out) + "\n"


_STYLE = """body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:0.5rem 0 1.5rem;font-size:0.9rem}
th,td{border:1px solid #ccc;padding:0.25rem 0.5rem;text-align:left}th{background:#f2f2f2}
figure{margin:1rem 0}img{max-width:100%}figcaption{font-style:italic;color:#555}"""


# What a page may embed: PNG files inside the report's own folder, which the suite wrote there.
# A path from anywhere else (an absolute path, `..`, a link out) is shown as text, never read:
# Markdown that carries user data must not be able to inline a local file into a shared page.
EMBEDDABLE = (".png",)


def _html_image(b: Image, base_dir: Path) -> str:
    path = (base_dir / b.path).resolve()
    caption = html.escape(b.caption)
    if base_dir.resolve() not in path.parents or path.suffix.lower() not in EMBEDDABLE:
        return f"<p><em>not embedded (not a PNG inside the report folder): {html.escape(b.path)}</em></p>"
    if not path.is_file():
        return f"<p><em>missing image {html.escape(b.path)}</em></p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>")


def inline_html(text: str) -> str:
    """Escape, then show the two inline marks the reports use: `code` and **bold**."""
    out = html.escape(str(text))
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def render_html_body(blocks: list[Block], base_dir: Path, heading_offset: int = 0) -> str:
    """The blocks as HTML fragments; `heading_offset` demotes headings to nest in a bigger page."""
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            level = min(b.level + heading_offset, 6)
            body.append(f"<h{level}>{html.escape(b.text)}</h{level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{inline_html(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{inline_html(h)}</th>" for h in b.headers)
            rows = "".join("<tr>" + "".join(f"<td>{inline_html(c)}</td>" for c in r) + "</tr>"
                           for r in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Image):
            body.append(_html_image(b, base_dir))
    return "\n".join(body)


def render_html(blocks: list[Block], base_dir: Path, title: str) -> str:
    """One HTML file with every image inlined; `base_dir` resolves the images' paths."""
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>\n" + render_html_body(blocks, base_dir)
            + "\n</body></html>\n")


# The parser reads back exactly what render_markdown writes (plus the hand-built prepare
# report, which uses the same subset), so a Markdown file can be shown as HTML elsewhere,
# e.g. in the pipeline's index.html, without a Markdown dependency.
_TABLE_RULE = re.compile(r"^\|(\s*:?-+:?\s*\|)+$")
_IMAGE = re.compile(r"^!\[(.*)\]\((.*)\)$")
_HEADING = re.compile(r"^(#{1,6}) (.*)$")


def _md_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
    return [c.strip().replace("\\|", "|") for c in cells]


def _is_block_start(line: str) -> bool:
    return bool(_HEADING.match(line) or _IMAGE.match(line)) or line.startswith(("- ", "|"))


def _take(lines: list[str], i: int, keep) -> tuple[list[str], int]:
    taken = []
    while i < len(lines) and keep(lines[i]):
        taken.append(lines[i])
        i += 1
    return taken, i


def parse_markdown(text: str) -> list[Block]:
    """Blocks from the Markdown subset render_markdown writes (the inverse of it)."""
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif m := _HEADING.match(line):
            blocks.append(Heading(m[2], len(m[1])))
            i += 1
        elif line.startswith("- "):
            items, i = _take(lines, i, lambda x: x.startswith("- "))
            blocks.append(Bullets([x[2:] for x in items]))
        elif line.startswith("|"):
            rows, i = _take(lines, i, lambda x: x.startswith("|"))
            body = rows[2:] if len(rows) > 1 and _TABLE_RULE.match(rows[1].strip()) else rows[1:]
            blocks.append(Table(_md_row(rows[0]), [_md_row(r) for r in body]))
        elif m := _IMAGE.match(line):
            blocks.append(Image(m[2], m[1]))
            rest = [j for j in range(i + 1, len(lines)) if lines[j].strip()]
            i = rest[0] + 1 if rest and lines[rest[0]].strip() == f"*{m[1]}*" else i + 1
        else:
            para, i = _take(lines, i, lambda x: bool(x.strip()) and not _is_block_start(x))
            blocks.append(Para(" ".join(para)))
    return blocks
