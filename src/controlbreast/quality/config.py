"""The ``quality`` section of ``params.yaml``: the bounds the data-quality gate beside it checks."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from controlbreast.sections import Fraction, Section


class QualityConfig(Section):
    """Bounds of the data-quality gate (``controlbreast validate``); failures name the key to relax.

    Intensities are fractions of the 8-bit range. ``black_level``/``saturated_level`` are the pixel
    values at or below/above which a pixel counts as black/saturated. Letterbox padding is black,
    so ``max_black_fraction`` must leave room for it; a mammogram is mostly background even when
    cropped, so it is held to ``mammography_max_black_fraction`` instead (an empty film fails).
    Mammograms have their own ``mammography_min_std`` (a patch of fatty tissue is smooth: 18 of a
    real set's 0.2 mm/px patches fell below 0.02) and ``mammography_max_mask_coverage`` (a patch
    centred on a mass larger than itself lies inside it: 22 real lesion patches covered over 0.7).
    """

    min_std: Annotated[float, Field(ge=0.0, le=0.5)] = 0.02
    black_level: Annotated[int, Field(ge=0, le=255)] = 5
    saturated_level: Annotated[int, Field(ge=0, le=255)] = 250
    max_black_fraction: Fraction = 0.9
    mammography_max_black_fraction: Fraction = 0.98
    mammography_min_std: Annotated[float, Field(ge=0.0, le=0.5)] = 0.005
    max_saturated_fraction: Fraction = 0.1
    min_mask_coverage: Fraction = 0.001
    max_mask_coverage: Fraction = 0.7
    mammography_max_mask_coverage: Fraction = 1.0
    split_tolerance: Fraction = 0.05
    near_duplicate_bits: Annotated[int, Field(ge=0, le=32)] = 6
    near_duplicate_similarity: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.6
    max_listed_ids: Annotated[int, Field(ge=1, le=1000)] = 5
