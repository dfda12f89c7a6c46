"""One colour per class and per arm, the same in every figure of the report.

A reader who learnt that orange is ``real+synthetic`` on the ROC plot must find it orange on the
calibration, training and data-efficiency plots too; colours come from here and nowhere else.
Colour-blind-safe (Okabe-Ito) hues.
"""

from __future__ import annotations

from collections.abc import Sequence

ARM_COLOURS = {"real": "#0072B2", "real+synthetic": "#E69F00", "synthetic": "#CC79A7"}
CLASS_HUES = ("#009E73", "#F0E442", "#D55E00", "#56B4E9", "#999999", "#000000")
OTHER = "#555555"


def arm_colour(arm: str) -> str:
    """The arm's colour; a data-efficiency arm (``real@0.5``) takes its base arm's."""
    return ARM_COLOURS.get(arm.split("@")[0], OTHER)


def class_colours(classes: Sequence[str]) -> dict[str, str]:
    """``{class: colour}`` by position in ``data.classes`` (so a class keeps its colour)."""
    return {name: CLASS_HUES[i % len(CLASS_HUES)] for i, name in enumerate(classes)}
