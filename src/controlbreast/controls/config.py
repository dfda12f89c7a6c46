"""The ``controls`` section of ``params.yaml``, beside the edge and mask code that draws the controls
(the ControlNet's validation reads its channels too)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from controlbreast.sections import Section


class ControlsConfig(Section):
    """Control images for the ControlNet.

    ``kind``: Canny ``edges``, lesion ``mask`` or both stacked as two channels. Canny thresholds
    are fixed when both ``canny_low`` and ``canny_high`` are set, else derived from each image's
    median (``low, high = (1 -+ canny_sigma) * median``), the usual automatic choice.
    """

    kind: Literal["edges", "mask", "edges+mask"] = "edges"
    canny_low: Annotated[int, Field(ge=0, le=255)] | None = None
    canny_high: Annotated[int, Field(ge=0, le=255)] | None = None
    canny_sigma: Annotated[float, Field(gt=0.0, le=1.0)] = 0.33
    blur_kernel: Annotated[int, Field(ge=0, le=31)] = 5

    @model_validator(mode="after")
    def _thresholds(self) -> ControlsConfig:
        if (self.canny_low is None) != (self.canny_high is None):
            raise ValueError("set both canny_low and canny_high, or neither (automatic)")
        if self.canny_low is not None and self.canny_low >= self.canny_high:
            raise ValueError("canny_low must be below canny_high")
        if self.blur_kernel and self.blur_kernel % 2 == 0:
            raise ValueError("blur_kernel must be odd (or 0 for no blur)")
        return self

    @property
    def channels(self) -> tuple[str, ...]:
        """Names of the control channels, in stacking order."""
        return tuple(self.kind.split("+"))
