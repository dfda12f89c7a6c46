"""The report as data: sections of text, tables and pictures, rendered twice (HTML, Markdown).

Building the content once and rendering it twice is what keeps the Markdown twin's tables equal
to the page's.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Link:
    """A table cell or line that points somewhere (an MLflow run)."""

    text: str
    url: str


Cell = str | Link


@dataclass(frozen=True)
class Text:
    """A paragraph; ``note`` marks a one-line "this part is absent" remark, ``key`` a finding the
    reader must not miss (the verdict on synthetic images, the gate's result)."""

    text: str
    note: bool = False
    key: bool = False


@dataclass(frozen=True)
class Table:
    """A table with a caption; every cell already formatted. A ``folded`` one (long, for the
    curious: every param) starts closed."""

    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    folded: bool = False


@dataclass(frozen=True)
class Picture:
    """A PNG with the file name it gets beside the Markdown twin, and a caption saying what to see."""

    name: str
    png: bytes
    caption: str


@dataclass(frozen=True)
class ReportSection:
    """One part of the page: ``key`` is its anchor (``#data``)."""

    key: str
    title: str
    blocks: list[Text | Table | Picture] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    """The whole page."""

    title: str
    subtitle: str
    sections: list[ReportSection]

    def pictures(self) -> list[Picture]:
        """Every picture, in page order."""
        return [b for s in self.sections for b in s.blocks if isinstance(b, Picture)]

    def tables(self) -> list[Table]:
        """Every table, in page order."""
        return [b for s in self.sections for b in s.blocks if isinstance(b, Table)]
