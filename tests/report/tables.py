"""Tables read back from the rendered page and from the Markdown twin, to compare them."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser


class PageTables(HTMLParser):
    """Every ``<table>``'s rows (header first) as lists of cell texts; every ``<img>``'s ``src``;
    section ids."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self.sections: list[str] = []
        self.links: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "section":
            self.sections.append(attrs["id"])
        elif tag == "a":
            self.links.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def page(html: str) -> PageTables:
    parser = PageTables()
    parser.feed(html)
    return parser


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Rows of every pipe table (the separator row left out); links shown as their text."""
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            if not re.fullmatch(r"\|(---\|)+", line):
                cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
                current.append([unescape(re.sub(r"\[(.*?)\]\(.*?\)", r"\1", c.strip()).replace("\\|", "|"))
                                for c in cells])
        else:
            current = None
    return tables
