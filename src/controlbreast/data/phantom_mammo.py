"""Seeded mammography phantom: two-view screening films with masses and calcifications, no data set.

The mammography path (breast crop, laterality, lesion patches) must run offline and in tests, so
this module draws films like a screening mammogram: a breast of fat and fibroglandular tissue on a
black film, pressed against the chest-wall edge (left for a left breast, right for a right one, as
films are displayed), thinner and darker towards the skin line; the pectoral muscle as a bright
triangle in the upper chest-wall corner of the MLO view; a burned-in view label in a far corner.
Benign patients have a round, circumscribed mass and sometimes coarse calcifications; malignant
ones an irregular, spiculated mass with a cluster of fine calcifications, or the cluster alone.

Films are 12-bit (uint16), ``render_size`` high and three quarters as wide, with a pixel spacing of
240 mm / ``render_size``. Geometry is in fractions of the film, keyed by (patient seed, class) for
the breast and lesion and by the view for compression and noise, so the two views of a patient show
one breast and adding patients never changes earlier ones.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from controlbreast.data import portable
from controlbreast.data.config import PhantomConfig
from controlbreast.data.phantom import PHANTOM_LABELS, keyed_rng
from controlbreast.data.records import Candidate, RawSample

VIEWS = ("CC", "MLO")
FILM_MM = 240.0  # film height
_TOP = 4095.0  # 12-bit white; tissue is drawn at up to 0.85 of it so dense masses do not saturate
_TAU = 2.0 * np.pi


@dataclass(frozen=True)
class _Breast:
    """One patient's imaged breast: ``side`` L/R, shape and tissue seeds, and its lesion, if any."""

    side: str
    reach: float  # chest wall to nipple, fraction of film width
    height: float  # half-height of the breast at the chest wall, fraction of film height
    density: float  # 0..1 share of fibroglandular tissue
    tissue_seed: int
    # depth (0 chest wall..1 nipple), height (-1..1), radius, spiculation
    mass: tuple[float, float, float, float] | None
    calcs: tuple[float, float, int] | None  # depth, height, count (cluster)
    coarse: bool  # benign-looking coarse calcifications


def _draw_breast(label: str, seed: int) -> _Breast:
    rng = keyed_rng(seed, PHANTOM_LABELS.index(label), 0)
    side = "LR"[int(rng.integers(2))]
    place = (float(rng.uniform(0.25, 0.7)), float(rng.uniform(-0.5, 0.5)))
    mass, calcs = None, None
    if label == "benign":
        mass = (*place, float(rng.uniform(0.035, 0.06)), 0.0)
    elif label == "malignant":
        has_mass = rng.random() < 0.75
        mass = (*place, float(rng.uniform(0.03, 0.055)), float(rng.uniform(0.5, 1.0))) if has_mass else None
        if not has_mass or rng.random() < 0.5:
            calcs = (*place, int(rng.integers(8, 18)))
    return _Breast(side=side, reach=float(rng.uniform(0.6, 0.85)), height=float(rng.uniform(0.32, 0.42)),
                   density=float(rng.uniform(0.15, 0.7)), tissue_seed=int(rng.integers(2**63)),
                   mass=mass, calcs=calcs, coarse=label == "benign" and rng.random() < 0.4)


def _outline(breast: _Breast, view: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W) uint8 0/1 breast against the left edge: a half-ellipse, taller in the MLO view."""
    height, width = shape
    mask = np.zeros(shape, np.uint8)
    stretch = 1.25 if view == "MLO" else 1.0
    centre = (0, round(height * (0.45 if view == "MLO" else 0.5)))
    axes = (round(breast.reach * width * rng.uniform(0.95, 1.05)),
            round(min(0.48, breast.height * stretch) * height))
    cv2.ellipse(mask, centre, axes, 0, -90, 90, 1, -1, cv2.LINE_AA)
    return mask


def _tissue(breast: _Breast, mask: np.ndarray, view: str) -> np.ndarray:
    """(H, W) float32 attenuation 0..1: fat, fibroglandular clouds near the chest wall, thinner
    (darker) towards the skin line, and the pectoral muscle in the MLO view."""
    height, width = mask.shape
    rng = keyed_rng(breast.tissue_seed, VIEWS.index(view))
    clouds = sum(portable.gaussian_blur(rng.normal(size=mask.shape).astype(np.float32), (0, 0), s * height)
                 * w for s, w in ((0.04, 1.0), (0.012, 0.5), (0.004, 0.25)))
    clouds /= float(clouds.std()) + 1e-6
    x = np.arange(width, dtype=np.float32)[None, :] / width
    drive = clouds + 2.5 * (breast.density - 0.5) - 2.0 * x / breast.reach + 0.8
    gland = 1.0 / (1.0 + portable.exp(-1.3 * drive))
    edge = cv2.distanceTransform(mask, cv2.DIST_L2, 5) / (0.06 * height)
    thickness = 1.0 - portable.exp(-edge)
    values = (0.35 + 0.35 * gland) * thickness
    if view == "MLO":
        muscle = np.zeros(mask.shape, np.uint8)
        top = rng.uniform([0.25, 0.35], [0.4, 0.55])
        cv2.fillPoly(muscle, [np.array([[0, 0], [round(top[0] * width), 0], [0, round(top[1] * height)]])], 1)
        values = np.where(muscle > 0, np.maximum(values, 0.8 + 0.05 * clouds), values)
    return np.where(mask > 0, values, 0.0).astype(np.float32)


def _place(breast: _Breast, where: tuple[float, float], mask: np.ndarray, view: str) -> tuple[float, float]:
    """(row, column) in pixels of a point at ``where`` = (depth from the chest wall as a fraction
    of the reach, height -1..1 of the breast's half-height) in this view."""
    height, width = mask.shape
    depth, level = where
    centre = 0.45 if view == "MLO" else 0.5
    half = breast.height * (1.25 if view == "MLO" else 1.0) * np.sqrt(max(0.0, 1 - depth**2)) * 0.8
    shift = 0.05 if view == "MLO" else 0.0  # the MLO projection moves a lesion up and back
    return (centre + (level * half - shift)) * height, (depth - shift) * breast.reach * width


def _mass(values: np.ndarray, lesion: np.ndarray, centre: tuple[float, float], radius: float,
          spiculation: float, rng: np.random.Generator) -> None:
    """Draw a dense mass (in place): round and sharp, or irregular with spicules."""
    height = values.shape[0]
    theta = np.linspace(0, _TAU, 180, endpoint=False)
    bumps = sum(rng.uniform(0, 0.12 * spiculation) * portable.cos(k * theta + rng.uniform(0, _TAU))
                for k in range(2, 8))
    r = radius * height * (1 + bumps)
    points = np.column_stack([centre[1] + r * portable.cos(theta), centre[0] + r * portable.sin(theta)])
    blob = np.zeros(values.shape, np.uint8)
    cv2.fillPoly(blob, [np.round(points).astype(np.int32)], 1)
    for _ in range(int(spiculation * 14)):
        angle, length = rng.uniform(0, _TAU), radius * height * rng.uniform(1.6, 2.8)
        end = (round(centre[1] + length * float(portable.cos(angle))),
               round(centre[0] + length * float(portable.sin(angle))))
        cv2.line(blob, (round(centre[1]), round(centre[0])), end, 1, max(1, round(height / 400)))
    sigma = max(0.6, (0.6 + 1.2 * spiculation) * height / 512)
    soft = portable.gaussian_blur(blob.astype(np.float32), (0, 0), sigma)
    values += 0.22 * soft
    lesion |= blob > 0


def _calcifications(values: np.ndarray, lesion: np.ndarray | None, centre: tuple[float, float], count: int,
                    fine: bool, rng: np.random.Generator) -> None:
    """Draw a cluster of bright specks (in place); a fine cluster's hull joins the lesion mask."""
    height = values.shape[0]
    spread = (0.02 if fine else 0.08) * height
    points = np.asarray(centre)[None, :] + rng.normal(0, spread, (count, 2))
    dots = np.zeros(values.shape, np.float32)
    for y, x in points:
        size = max(1, round(height / (320 if fine else 160)))
        cv2.circle(dots, (round(x), round(y)), size, 1.0, -1)
    values += 0.35 * portable.gaussian_blur(dots, (0, 0), 0.6)
    if lesion is not None:
        hull = cv2.convexHull(np.round(points[:, ::-1]).astype(np.int32))
        cv2.fillConvexPoly(lesion.view(np.uint8), hull, 1)
        lesion |= cv2.dilate(dots, np.ones((3, 3), np.uint8)) > 0


def render_mammogram(label: str, patient_seed: int, view: str,
                     size: int) -> tuple[np.ndarray, np.ndarray, str]:
    """One film: (size, 3/4 size) uint16 12-bit image, bool lesion mask (empty for normal) and the
    breast's side ``L``/``R``. The same arguments always give the same pixels."""
    breast = _draw_breast(label, patient_seed)
    rng = keyed_rng(patient_seed, PHANTOM_LABELS.index(label), 1, VIEWS.index(view))
    shape = (size, round(size * 0.75))
    mask = _outline(breast, view, shape, rng)
    values = _tissue(breast, mask, view)
    lesion = np.zeros(shape, bool)
    if breast.mass is not None:
        _mass(values, lesion, _place(breast, breast.mass[:2], mask, view), *breast.mass[2:], rng)
    if breast.calcs is not None:
        centre = _place(breast, breast.calcs[:2], mask, view)
        _calcifications(values, lesion, centre, breast.calcs[2], True, rng)
    if breast.coarse:
        _calcifications(values, None, _place(breast, (0.5, 0.0), mask, view), 4, False, rng)
    lesion &= mask > 0
    values = np.where(mask > 0, 0.85 * values, 0.0) + rng.normal(0.0, 0.004, shape).astype(np.float32)
    film = np.clip(values, 0.0, 1.0) * _TOP
    film[-round(0.05 * size):-round(0.02 * size), -round(0.2 * size):-round(0.05 * size)] = _TOP  # label
    film, lesion = (film[:, ::-1], lesion[:, ::-1]) if breast.side == "R" else (film, lesion)
    return np.rint(film).astype(np.uint16), np.ascontiguousarray(lesion), breast.side


def _load(label: str, patient_seed: int, view: str, size: int) -> RawSample:
    """Render one candidate (module level so the partial pickles into worker processes)."""
    image, mask, side = render_mammogram(label, patient_seed, view, size)
    digest = hashlib.sha256(image.tobytes() + mask.tobytes()).hexdigest()
    return RawSample(image=image, mask=mask, sha256=digest, bit_depth=12, modality="MG",
                     laterality=side, spacing_mm=FILM_MM / size)


def mammo_phantom_candidates(cfg: PhantomConfig) -> list[Candidate]:
    """Two views (CC, MLO) of one breast per patient, sorted by source path, grouped by patient;
    each patient's seed comes from (cfg.seed, class, patient) alone."""
    candidates = []
    for class_index, label in enumerate(PHANTOM_LABELS):
        for patient in range(cfg.patients_per_class):
            patient_seed = int(keyed_rng(cfg.seed, class_index, patient, 7).integers(2**63))
            group = f"phantom-mammo-{label}-p{patient:04d}"
            for view in VIEWS:
                load = functools.partial(_load, label, patient_seed, view, cfg.render_size)
                path = f"phantom-mammo/{label}/p{patient:04d}-{view}"
                candidates.append(Candidate(path, label, group, load))
    return sorted(candidates, key=lambda c: c.source_path)
