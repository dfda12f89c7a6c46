"""The report's Markdown twin (GitHub-flavoured), for a CI job to post on a pull request: the same
sections and tables as the page, pictures as relative links to the PNGs written beside it."""

from __future__ import annotations

from controlbreast.report.document import Cell, Link, Picture, Report, Table, Text


def cell(value: Cell) -> str:
    """A cell with the characters that would break a Markdown table escaped."""
    if isinstance(value, Link):
        return f"[{value.text}]({value.url})"
    return value.replace("|", "\\|").replace("\n", " ")


def table(block: Table) -> str:
    lines = [f"**{block.caption}**", "", "| " + " | ".join(map(cell, block.columns)) + " |",
             "|" + "---|" * len(block.columns)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in block.rows]
    text = "\n".join(lines)
    if block.folded:
        return f"<details><summary>{block.caption}</summary>\n\n{text}\n\n</details>"
    return text


def block_markdown(block: Text | Table | Picture, folder: str) -> str:
    if isinstance(block, Table):
        return table(block)
    if isinstance(block, Picture):
        return f"![{block.caption}]({folder}/{block.name})"
    if block.key:
        return f"**{block.text}**"
    return f"_{block.text}_" if block.note else block.text


def render_markdown(report: Report, folder: str) -> str:
    """Markdown with pictures referenced as ``<folder>/<name>`` (relative to the file)."""
    parts = [f"# {report.title}", report.subtitle]
    for part in report.sections:
        parts.append(f"## {part.title}")
        parts += [block_markdown(b, folder) for b in part.blocks]
    return "\n\n".join(parts) + "\n"
