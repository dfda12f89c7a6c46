"""The report as one self-contained HTML page: images embedded as ``data:`` URIs, CSS inline, no
script and no external resource, so it opens from ``file://`` (or as an MLflow artifact) with no
server and no network."""

from __future__ import annotations

import base64
from html import escape

from controlbreast.report.document import Cell, Link, Picture, Report, ReportSection, Table, Text

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; margin: 0;
       background: #f6f6f4; }
header, main, nav > div { max-width: 1240px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 24px; }
nav { position: sticky; top: 0; background: #f6f6f4ee; padding: 8px 0; border-bottom: 1px solid #ddd;
      z-index: 1; }
nav a { margin-right: 18px; color: #0b5394; text-decoration: none; font-weight: 600; }
section { background: #fff; border-radius: 10px; padding: 8px 24px 20px; margin: 20px 0;
          box-shadow: 0 1px 3px #0001; }
h1 { margin: 0 0 4px; } h2 { border-bottom: 2px solid #eee; padding-bottom: 6px; }
p.note { color: #666; font-style: italic; }
table { border-collapse: collapse; margin: 4px 0 16px; font-size: 12.5px; }
.caption { font-weight: 600; padding: 4px 0; font-size: 13.5px; }
p.key { font-weight: 600; background: #fff6e0; border-left: 4px solid #E69F00; padding: 8px 12px; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 4px 7px; text-align: left; vertical-align: top; }
th { background: #f0f0ee; font-size: 12.5px; } td { font-variant-numeric: tabular-nums; white-space: nowrap; }
.scroll { overflow-x: auto; display: inline-block; vertical-align: top; margin-right: 32px;
          max-width: calc(100% - 32px); }
.scroll td { white-space: normal; } .scroll td:first-child { white-space: nowrap; }
figure { display: inline-block; margin: 8px 16px 16px 0; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #e4e4e4; }
figure img.pixels { image-rendering: pixelated; min-width: 320px; }
figure img.half { width: 540px; }
figcaption { font-size: 13px; color: #444; max-width: 560px; }
"""


def data_uri(png: bytes) -> str:
    """A PNG as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def cell(value: Cell) -> str:
    if isinstance(value, Link):
        return f'<a href="{escape(value.url)}">{escape(value.text)}</a>'
    text = escape(value)
    if ", p " in text:  # a difference: estimate, interval and p on three short lines
        text = text.replace(" [", " <br>[", 1).replace(", p ", ", <br>p ")
    return text


def table(block: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in block.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in block.rows)
    html = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if block.folded:
        return f"<details><summary>{escape(block.caption)}</summary>{html}</details>"
    return f'<div class="scroll"><div class="caption">{escape(block.caption)}</div>{html}</div>'


def picture(block: Picture) -> str:
    """A figure; grids of small images are scaled up without blurring (``pixels``), the tuning
    figures two to a row (``half``)."""
    kind = (' class="pixels"' if block.name.startswith("synthetic-") else
            ' class="half"' if block.name.startswith("tune-") else "")
    return (f'<figure><img{kind} src="{data_uri(block.png)}" alt="{escape(block.caption)}" '
            f'data-name="{escape(block.name)}"><figcaption>{escape(block.caption)}</figcaption></figure>')


def block_html(block: Text | Table | Picture) -> str:
    if isinstance(block, Table):
        return table(block)
    if isinstance(block, Picture):
        return picture(block)
    kind = " class=note" if block.note else " class=key" if block.key else ""
    return f"<p{kind}>{escape(block.text)}</p>"


def section(part: ReportSection) -> str:
    inner = "\n".join(block_html(b) for b in part.blocks)
    return f'<section id="{part.key}"><h2>{escape(part.title)}</h2>\n{inner}\n</section>'


def render_html(report: Report) -> str:
    """The page: title, a sticky table of contents, one card per section."""
    links = "".join(f'<a href="#{s.key}">{escape(s.title)}</a>' for s in report.sections)
    body = "\n".join(section(s) for s in report.sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(report.title)}</title><style>{STYLE}</style></head><body>"
            f"<header><h1>{escape(report.title)}</h1><p>{escape(report.subtitle)}</p></header>"
            f"<nav><div>{links}</div></nav><main>\n{body}\n</main></body></html>\n")
