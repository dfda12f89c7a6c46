"""Assemble the report from the collected inputs and write the page, its twin and its figures.

Layout under ``paths.reports``: ``index.html`` (self-contained), ``summary.md`` (the same tables;
pictures as ``figures/<name>.png``), ``figures/`` and ``classifier/training.csv`` (every arm's and
seed's per-epoch history: small, committed, drawn by ``dvc plots show``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from controlbreast.config import Config
from controlbreast.outputs import atomic_folder, csv_bytes, write_atomic
from controlbreast.report.answer_section import answer_section
from controlbreast.report.data_sections import data_section, synthetic_section
from controlbreast.report.document import Report
from controlbreast.report.html import render_html
from controlbreast.report.inputs import Inputs
from controlbreast.report.markdown import render_markdown
from controlbreast.report.provenance import StageRun, provenance_section
from controlbreast.report.result_sections import classifier_section, glance_section, tuning_section

FIGURES = "figures"
TRAINING_COLUMNS = ("arm", "seed", "epoch", "train_loss", "lr", "val_auc")


@dataclass(frozen=True)
class ReportFiles:
    """What ``write_report`` wrote."""

    html: Path
    markdown: Path
    figures: list[Path]
    training: Path | None


def build_report(config: Config, inputs: Inputs, commit: str | None, dirty: bool | None,
                 runs: list[StageRun]) -> Report:
    """Every section, in reading order: the answer at a glance (did synthetic images help, and did
    that travel off-site), every recipe × fraction × set, data, synthetic images, classifiers,
    tuning, provenance."""
    subtitle = (f"Built {time.strftime('%Y-%m-%d %H:%M %Z')} from commit {(commit or 'unknown')[:12]}"
                f"{' (dirty)' if dirty else ''}: what data, what synthetic images, did they help, "
                "where, and how sure we are.")
    sections = [glance_section(inputs), answer_section(inputs), data_section(inputs),
                synthetic_section(inputs), classifier_section(inputs), tuning_section(inputs),
                provenance_section(config, inputs.lock, commit, dirty, runs)]
    return Report("controlbreast report", subtitle, sections)


def training_csv(rows: list[dict]) -> bytes:
    """The classifiers' histories in one table (columns ``TRAINING_COLUMNS``), for DVC plots."""
    return csv_bytes(({key: row.get(key, "") for key in TRAINING_COLUMNS} for row in rows), TRAINING_COLUMNS)


def write_report(report: Report, inputs: Inputs, reports: Path) -> ReportFiles:
    """Write the page, the Markdown twin, its figures and the training-curve CSV under ``reports``."""
    reports = Path(reports)
    with atomic_folder(reports / FIGURES) as build:
        for picture in report.pictures():
            (build / picture.name).write_bytes(picture.png)
    write_atomic(reports / "index.html", render_html(report).encode())
    write_atomic(reports / "summary.md", render_markdown(report, FIGURES).encode())
    training = None
    if inputs.training:
        training = reports / "classifier" / "training.csv"
        write_atomic(training, training_csv(inputs.training))
    return ReportFiles(reports / "index.html", reports / "summary.md",
                   [reports / FIGURES / p.name for p in report.pictures()], training)
