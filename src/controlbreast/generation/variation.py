"""Small random warps of a control image, so that many synthetic images can share one control.

A ``Variation`` is an explicit set of numbers (mirror, rotation, scale, shift, elastic warp with
its own seed), drawn from one image's seed and stored in the synthetic manifest as JSON, so the
varied control of any synthetic image can be rebuilt from its manifest row alone. Controls are
binary (edge maps, masks): they are warped bilinearly and thresholded back to 0/255, an edge
channel at a lower level so that thin lines stay connected.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from controlbreast.generation.config import VariationConfig

THRESHOLD = {"edges": 64, "mask": 128}


@dataclass(frozen=True)
class Variation:
    """One control's warp: degrees, a scale factor, shifts as fractions of the side, elastic
    displacement std and smoothness in pixels (``elastic_alpha`` 0: none)."""

    hflip: bool = False
    rotation: float = 0.0
    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    elastic_alpha: float = 0.0
    elastic_sigma: float = 4.0
    elastic_seed: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Variation:
        return cls(**json.loads(text))

    @property
    def is_identity(self) -> bool:
        return self == Variation(elastic_sigma=self.elastic_sigma, elastic_seed=self.elastic_seed)


def draw_variation(cfg: VariationConfig, seed: int) -> Variation:
    """The variation of the image with ``seed``; every number is drawn whatever the switches, so
    turning one option off leaves the others' draws unchanged."""
    rng = np.random.default_rng(seed)
    flip, rotation, scale, shift_x, shift_y = rng.random(), *rng.uniform(-1.0, 1.0, size=4)
    elastic_seed = int(rng.integers(2**31 - 1))
    return Variation(hflip=bool(cfg.hflip and flip < 0.5),
                     rotation=round(float(rotation) * cfg.max_rotation, 4),
                     scale=round(1.0 + float(scale) * cfg.max_scale, 4),
                     shift_x=round(float(shift_x) * cfg.max_shift, 4),
                     shift_y=round(float(shift_y) * cfg.max_shift, 4),
                     elastic_alpha=cfg.elastic_alpha, elastic_sigma=cfg.elastic_sigma,
                     elastic_seed=elastic_seed)


def _sampling_maps(variation: Variation, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 source coordinates of each output pixel: inverse affine, then elastic."""
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    forward = cv2.getRotationMatrix2D(centre, variation.rotation, variation.scale)
    forward[:, 2] += (variation.shift_x * width, variation.shift_y * height)
    inverse = cv2.invertAffineTransform(forward)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if variation.elastic_alpha > 0:
        rng = np.random.default_rng(variation.elastic_seed)
        for grid in (xs, ys):
            field = cv2.GaussianBlur(rng.normal(size=(height, width)), (0, 0), variation.elastic_sigma)
            grid += (field * variation.elastic_alpha / (field.std() + 1e-12)).astype(np.float32)
    map_x = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    map_y = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    return map_x.astype(np.float32), map_y.astype(np.float32)


def _warped(planes: np.ndarray, variation: Variation) -> np.ndarray:
    """(C, H, W) uint8 planes mirrored and warped bilinearly as ``variation`` says (black outside)."""
    planes = planes[..., ::-1] if variation.hflip else planes
    map_x, map_y = _sampling_maps(variation, *planes.shape[-2:])
    return np.stack([cv2.remap(np.ascontiguousarray(plane), map_x, map_y, cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0) for plane in planes])


def apply_variation(control: np.ndarray, variation: Variation, channels: tuple[str, ...]) -> np.ndarray:
    """(C, H, W) uint8 0/255 control → the varied (C, H, W) uint8 0/255 control."""
    if variation.is_identity:
        return control.copy()
    warped = _warped(control, variation)
    levels = np.array([THRESHOLD.get(name, 128) for name in channels]).reshape(-1, 1, 1)
    return np.where(warped >= levels, 255, 0).astype(np.uint8)


def vary_image(image: np.ndarray, variation: Variation) -> np.ndarray:
    """(H, W) uint8 grey image → the same image moved as its control was (real-guided generation
    starts from it, so it must lie under the varied control)."""
    return image.copy() if variation.is_identity else _warped(image[None], variation)[0]
