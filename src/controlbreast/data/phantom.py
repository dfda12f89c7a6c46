"""Seeded breast-ultrasound phantom: B-mode-like images with lesion masks, no data set needed.

The pipeline (ingest, controls, training, evaluation) must run offline and in tests, so this module
stands in for a real data set. It models a linear-probe B-mode image: a scatterer-strength map in dB
(skin, subcutaneous fat with Cooper's ligaments, fibroglandular tissue with fat lobules, pectoral
muscle, sometimes a rib), a lesion following BI-RADS descriptors with its posterior artefact, then
complex Gaussian scatterers blurred by an anisotropic point-spread function (Rayleigh speckle),
imperfect depth gain and log compression to 8 bit.

Geometry is in image widths (x lateral, y depth, both 0..1), so a patient looks the same at any
render size. Every image is keyed by (patient seed, class, view) alone: the patient's tissue and
lesion come from one generator, the view's shift, lesion jitter and speckle from another, so views
of one patient are frames of one breast and adding patients never changes earlier images.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from controlbreast.data import portable
from controlbreast.data.config import PhantomConfig
from controlbreast.data.records import Candidate, RawSample

PHANTOM_LABELS = ("normal", "benign", "malignant")
_PATIENT_TAG, _VIEW_TAG = 0, 1  # keep patient and view seed sequences apart
_PSF_SIGMA = (0.013, 0.007)  # lateral, axial point-spread sigma in image widths
_NOISE_DB = -50.0  # electronic noise floor relative to glandular tissue
_HEADROOM_DB = 11.0  # display level above mean glandular echo power
_CONTOUR_POINTS = 720
_TAU = 2.0 * np.pi
_LN10 = 2.302585092994046  # ln 10: a constant, not a libm call


@dataclass(frozen=True, eq=False)
class _Lesion:
    """One mass in patient coordinates; arrays are (rows, columns) as commented."""

    cx: float
    cy: float
    ax: float  # lateral semi-axis
    ay: float  # axial semi-axis
    angle: float
    harmonics: np.ndarray  # (K, 3): order, relative amplitude, phase of the radius r(theta)
    spikes: np.ndarray  # (S, 3): angle, length (fraction of radius), angular half-width
    interior_db: float
    texture: np.ndarray  # (N, 4): sinusoids (fx, fy, phase, amplitude dB) of interior echo
    margin: float  # edge softness sigma: small = circumscribed, large = indistinct
    rim_db: float  # echogenic capsule (benign) or halo (malignant); 0 for none
    rim_width: float
    posterior_db: float  # > 0 enhancement, < 0 shadowing


@dataclass(frozen=True, eq=False)
class _Patient:
    """Tissue of one breast: what all its views share."""

    layers: np.ndarray  # (3, 10): base depth + 3 sinusoids (freq, amp, phase) per boundary
    levels: np.ndarray  # (4,): dermis, fat, gland, muscle echo in dB
    gland_field: np.ndarray  # (N, 4) sinusoids of glandular heterogeneity
    lobules: np.ndarray  # (L, 5): cx, cy, ax, ay, angle of dark fat lobules
    ligaments: np.ndarray  # (G, 4): start x, span, relative height, skew of Cooper's ligaments
    fibres: np.ndarray  # (2,): angle, frequency of muscle striations
    rib: np.ndarray | None  # (4,): cx, depth, half-width, arc height
    gain: np.ndarray  # (3,): overall dB, residual depth tilt dB, dynamic range dB
    tgc: np.ndarray  # (2, 3): depth, width, dB of bumps left by imperfect time-gain compensation
    lesion: _Lesion | None


def keyed_rng(*keys: int) -> np.random.Generator:
    """A generator keyed by the integers alone (negative keys wrap to 64 bits)."""
    return np.random.default_rng(np.random.SeedSequence([k & (2**64 - 1) for k in keys]))


def _sinusoids(rng: np.random.Generator, n: int, fx: tuple, fy: tuple, db: float) -> np.ndarray:
    """(n, 4) random 2-D cosines with total standard deviation about ``db``."""
    amp = rng.uniform(0.5, 1.0, n) * db * math.sqrt(2.0 / n)
    lateral = rng.uniform(*fx, n) * rng.choice([-1, 1], n)
    return np.column_stack([lateral, rng.uniform(*fy, n), rng.uniform(0, _TAU, n), amp])


def _field(terms: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sinusoids at lateral u (W,) and depth v (H,): (H, W), as one small matrix product.

    cos(a + b) = cos a cos b - sin a sin b makes the sum separable, far cheaper than per pixel.
    """
    fx, fy, phase, amp = terms.T
    a, b = _TAU * np.outer(v, fy) + phase, _TAU * np.outer(fx, u)
    rows = np.hstack([amp * portable.cos(a), -amp * portable.sin(a)])
    return portable.matmul(rows, np.vstack([portable.cos(b), portable.sin(b)])).astype(np.float32)


def _curve(row: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Undulating boundary depth at lateral positions x: base + sum of low-frequency sines."""
    freq, amp, phase = row[1:].reshape(3, 3).T
    wave = amp[:, None] * portable.sin(_TAU * freq[:, None] * x + phase[:, None])
    return (row[0] + wave.sum(0)).astype(np.float32)


def _step(d: np.ndarray, width: float) -> np.ndarray:
    """Smooth 0->1 step at d = 0 of the given width."""
    return 0.5 + 0.5 * portable.tanh(d / width)


def _blur(a: np.ndarray, sx: float, sy: float | None = None) -> np.ndarray:
    """Gaussian blur with sigmas in pixels (sy=0: lateral only); tiny sigmas are no-ops."""
    sy = sx if sy is None else sy
    kx, ky = (2 * math.ceil(3 * s) + 1 if s >= 0.3 else 1 for s in (sx, sy))
    return a if kx == ky == 1 else portable.gaussian_blur(a, (kx, ky), max(sx, 0.1), max(sy, 0.1))


def _draw_patient(label: str, patient_seed: int) -> _Patient:
    """All shared tissue parameters of one patient, drawn from the patient's own generator."""
    rng = keyed_rng(patient_seed, PHANTOM_LABELS.index(label), _PATIENT_TAG)
    layers = np.zeros((3, 10))
    layers[:, 0] = rng.uniform([0.025, 0.17, 0.68], [0.045, 0.36, 0.88])
    terms = rng.uniform([0.3, 0.0, 0.0], [2.2, 1.0, _TAU], (3, 3, 3))
    terms[..., 1] *= np.array([0.004, 0.05, 0.03])[:, None]
    layers[:, 1:] = terms.reshape(3, 9)
    n_lob = rng.integers(4, 10)
    lobules = rng.uniform([-0.1, 0.2, 0.03, 0.01, -15], [1.1, 0.8, 0.08, 0.025, 15], (n_lob, 5))
    ligaments = rng.uniform([-0.1, 0.12, 0.3, 0.5], [0.9, 0.3, 0.8, 2.0], (rng.integers(2, 5), 4))
    rib = None
    if rng.random() < 0.2:
        rib = np.array([rng.uniform(0.2, 0.8), layers[2, 0] + rng.uniform(0.09, 0.14), 0.13, 0.05])
    levels = rng.uniform([-3, -22, -2, -17], [1, -16, 2, -12])
    malignant, fat_db = label == "malignant", float(levels[1])
    lesion = None if label == "normal" else _draw_lesion(rng, malignant, layers, fat_db)
    return _Patient(
        layers=layers,
        levels=levels,
        gland_field=_sinusoids(rng, 12, (1.0, 6.0), (2.0, 12.0), rng.uniform(3.0, 5.0)),
        lobules=lobules,
        ligaments=ligaments,
        fibres=rng.uniform([0.12, 26.0], [0.4, 38.0]),
        rib=rib,
        gain=rng.uniform([-4, -9, 46], [4, 1, 58]),
        tgc=rng.uniform([0.1, 0.05, -3], [0.9, 0.2, 3], (2, 3)),
        lesion=lesion,
    )


def _draw_lesion(rng: np.random.Generator, malignant: bool, layers: np.ndarray, fat_db: float) -> _Lesion:
    """A BI-RADS-like mass; benign and malignant ranges overlap so no single cue decides.

    Echogenicity is relative to subcutaneous fat, the BI-RADS reference (hypoechoic = below fat).
    """
    diameter = np.clip(rng.normal(0.22 if malignant else 0.17, 0.06), 0.10, 0.35)
    if malignant:  # height/width: mostly not parallel
        tall = rng.uniform(0.9, 1.6) if rng.random() < 0.75 else rng.uniform(0.6, 0.9)
    else:  # mostly parallel, wider than tall
        tall = 1.0 / (rng.uniform(1.2, 2.2) if rng.random() < 0.85 else rng.uniform(0.95, 1.2))
    ax, ay = diameter / 2 / math.sqrt(tall), diameter / 2 * math.sqrt(tall)
    cx = rng.uniform(0.25, 0.75)
    cy = _lesion_depth(rng, layers, cx, ay)
    traits = _malignant_traits(rng, fat_db) if malignant else _benign_traits(rng, fat_db)
    return _Lesion(*(float(v) for v in (cx, cy, ax, ay)), *traits)


def _lesion_depth(rng: np.random.Generator, layers: np.ndarray, cx: float, ay: float) -> float:
    """Centre depth: mostly in the glandular zone, where most masses arise, sometimes in fat."""
    skin, fat, fascia = (float(_curve(row, np.array([cx]))[0]) for row in layers)
    top = skin + ay + 0.015
    top = top if rng.random() < 0.25 else max(top, fat - 0.3 * ay)
    return min(rng.uniform(top, max(top, fascia - 0.5 * ay)), 0.9 - ay)


def _benign_traits(rng: np.random.Generator, fat_db: float) -> tuple:
    """Oval, circumscribed (sometimes gently lobulated), homogeneous hypo/anechoic; capsule
    sometimes, posterior enhancement often: the ``_Lesion`` fields after the semi-axes."""
    k = np.arange(2, 5)
    amp = rng.uniform(0, 0.03, 3) + (rng.random() < 0.2) * (k == rng.integers(2, 4)) * 0.07
    harmonics = np.column_stack([k, amp, rng.uniform(0, _TAU, 3)])
    interior, texture = fat_db - rng.uniform(4, 20), _sinusoids(rng, 4, (0.5, 1.5), (0.5, 1.5), 1.0)
    rim = (rng.uniform(3, 7), rng.uniform(0.003, 0.006)) if rng.random() < 0.35 else (0.0, 0.0)
    posterior = rng.uniform(3, 8) if rng.random() < 0.7 else rng.uniform(-4, 1)
    margin = rng.uniform(0.001, 0.004)
    return rng.uniform(-0.25, 0.25), harmonics, np.zeros((0, 3)), interior, texture, margin, *rim, posterior


def _malignant_traits(rng: np.random.Generator, fat_db: float) -> tuple:
    """Irregular, angular/microlobulated, often spiculated, heterogeneous hypoechoic, indistinct;
    halo sometimes, shadowing often: the ``_Lesion`` fields after the semi-axes."""
    k = np.arange(2, 13)
    amp = rng.uniform(0.2, 1.0, k.size) * rng.uniform(0.12, 0.3) / portable.power(k, 0.7)
    harmonics = np.column_stack([k, amp, rng.uniform(0, _TAU, k.size)])
    n_spikes = rng.integers(8, 20) if rng.random() < 0.6 else 0
    spikes = rng.uniform([0, 0.2, 0.08], [_TAU, 0.6, 0.16], (n_spikes, 3))
    interior = fat_db - rng.uniform(5, 12)
    texture = _sinusoids(rng, 8, (0.5, 3.0), (0.5, 3.0), rng.uniform(1.5, 3.5))
    rim = (rng.uniform(3, 7), rng.uniform(0.012, 0.025)) if rng.random() < 0.3 else (0.0, 0.0)
    posterior = rng.uniform(-14, -5) if rng.random() < 0.7 else rng.uniform(-2, 4)
    margin = rng.uniform(0.003, 0.008)
    return rng.uniform(-0.4, 0.4), harmonics, spikes, interior, texture, margin, *rim, posterior


def _jitter(lesion: _Lesion, rng: np.random.Generator) -> _Lesion:
    """The same lesion seen in another frame: slight shift, scale, rotation and shape change."""
    n = len(lesion.harmonics)
    shift_x, shift_y, turn = rng.normal(0, [0.015, 0.01, 0.07])
    scale, stretch = rng.uniform([0.92, 0.95], [1.08, 1.05])
    harmonics = lesion.harmonics + np.column_stack([np.zeros((n, 2)), rng.normal(0, 0.1, n)])
    moved = {"cx": lesion.cx + shift_x, "cy": lesion.cy + shift_y, "angle": lesion.angle + turn}
    return replace(lesion, **moved, ax=lesion.ax * scale, ay=lesion.ay * scale * stretch, harmonics=harmonics)


def _tissue_db(p: _Patient, x: np.ndarray, y: np.ndarray, dx: float, size: int) -> np.ndarray:
    """(H, W) echo of the layered breast in dB; x (W,) patient lateral, y (H, 1) depth."""
    skin, fat, fascia = (_curve(row, x) for row in p.layers)
    dermis_db, fat_db, gland_db, muscle_db = p.levels.tolist()
    t_gland, t_muscle = _step(y - fat, 0.012), _step(y - fascia, 0.005)
    mottle = _field(p.gland_field, x, y[:, 0])
    gland = gland_db + mottle
    lobules = _lobule_layer(p.lobules, dx, size) * t_gland * (1.0 - t_muscle)
    db = fat_db + (gland - fat_db) * t_gland * (1.0 - 0.75 * lobules)
    db += 12.0 * _ligament_layer(p, dx, size) * (1.0 - t_gland)
    angle, freq = p.fibres.tolist()
    turn_cos, turn_sin = portable.cos(angle), portable.sin(angle)
    fibres = portable.cos(_TAU * freq * (y * turn_cos - x * turn_sin) + portable.sin(_TAU * x))
    stripes = np.square(np.square(np.square((1.0 + fibres) / 2)))  # thin bright lines
    muscle = muscle_db + stripes * (10.0 + 0.8 * mottle)
    db += (muscle - db) * t_muscle + 9.0 * portable.exp(-(((y - fascia) / 0.006) ** 2))
    db += (dermis_db - db) * _step(skin - y, 0.003) + 14.0 * portable.exp(-(((y - 0.008) / 0.005) ** 2))
    return db if p.rib is None else db + _rib_db(p.rib, x, y)


def _lobule_layer(lobules: np.ndarray, dx: float, size: int) -> np.ndarray:
    """(H, W) 0..1 cover of dark fat lobules (soft-edged ellipses), drawn sub-pixel."""
    layer = np.zeros((size, size), np.uint8)
    for cx, cy, ax, ay, angle in lobules * [size * 16, size * 16, size * 16, size * 16, 1]:
        centre = (round(cx - dx * size * 16 - 8), round(cy - 8))  # 1/16 px; pixel centres at +0.5
        cv2.ellipse(layer, centre, (round(ax), round(ay)), angle, 0, 360, 255, -1, cv2.LINE_AA, 4)
    return _blur(layer.astype(np.float32) / 255.0, 0.006 * size)


def _ligament_layer(p: _Patient, dx: float, size: int) -> np.ndarray:
    """(H, W) 0..1 thin bright arcs of Cooper's ligaments rising from the gland towards the skin."""
    layer = np.zeros((size, size), np.uint8)
    t = np.linspace(0.0, 1.0, 24)
    for x0, span, height, skew in p.ligaments:
        xs = x0 + span * t
        skin, fat = _curve(p.layers[0], xs), _curve(p.layers[1], xs)
        ys = fat - (fat - skin) * height * portable.power(portable.sin(np.pi * portable.power(t, skew)), 0.7)
        pts = np.column_stack([(xs - dx) * size - 0.5, ys * size - 0.5]) * 16
        width = max(1, round(size / 128))
        cv2.polylines(layer, [pts.astype(np.int32)], False, 255, width, cv2.LINE_AA, 4)
    return layer.astype(np.float32) / 255.0


def _rib_db(rib: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(H, W) dB of a rib: bright curved anterior surface and a dark acoustic shadow below."""
    cx, depth, half_width, arc = rib.tolist()
    lateral = np.clip(1.0 - ((x - cx) / half_width) ** 2, 0.0, 1.0)
    surface = depth - arc * np.sqrt(lateral)
    bright = 20.0 * portable.exp(-(((y - surface) / 0.01) ** 2))
    return lateral * (bright - 22.0 * _step(y - surface - 0.015, 0.01))


def _lesion_mask(lesion: _Lesion, dx: float, size: int) -> np.ndarray:
    """(size, size) bool lesion region: radius r(theta) with harmonics and spikes, filled."""
    theta = np.linspace(0.0, _TAU, _CONTOUR_POINTS, endpoint=False)
    order, amp, phase = lesion.harmonics.T[:, :, None]
    radius = 1.0 + (amp * portable.cos(order * theta + phase)).sum(0)
    angle, length, half = lesion.spikes.T[:, :, None]
    off = np.abs((theta - angle + np.pi) % _TAU - np.pi)
    radius = np.maximum(radius + (length * np.clip(1.0 - off / half, 0.0, None)).sum(0), 0.3)
    px, py = radius * portable.cos(theta) * lesion.ax, radius * portable.sin(theta) * lesion.ay
    c, s = portable.cos(lesion.angle), portable.sin(lesion.angle)
    pts = np.column_stack([lesion.cx - dx + c * px - s * py, lesion.cy + s * px + c * py])
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [((pts * size - 0.5) * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return mask.astype(bool)


def _lesion_db(db: np.ndarray, lesion: _Lesion, mask: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(H, W) dB with the lesion's interior, margin, rim and posterior column applied."""
    size = mask.shape[0]
    solid = mask.astype(np.float32)
    soft = _blur(solid, lesion.margin * size)
    u, v = (x - lesion.cx) / lesion.ax, (y - lesion.cy) / lesion.ay
    db = db + (lesion.interior_db + _field(lesion.texture, u, v[:, 0]) - db) * soft
    if lesion.rim_db:
        outside = _blur(solid, lesion.rim_width * size) - solid
        db += lesion.rim_db * np.clip(2.0 * outside, 0.0, 1.0)
    below = (np.logical_or.accumulate(mask, axis=0) & ~mask).astype(np.float32)
    return db + lesion.posterior_db * _blur(below, 0.02 * size, 0.0)


@dataclass(frozen=True)
class Scanner:
    """What a different scanner changes: speckle grain (PSF scale), overall gain, gain over depth."""

    speckle_size: float = 1.0
    gain_db: float = 0.0
    depth_db: float = 0.0


def _speckle(db: np.ndarray, rng: np.random.Generator, speckle_size: float = 1.0) -> np.ndarray:
    """(H, W) echo amplitude of scatterers of strength 10^(dB/20) above a noise floor.

    Random complex scatterers convolved with an anisotropic Gaussian PSF (longer laterally) give
    fully developed, spatially correlated speckle (Rayleigh envelope); two independent looks are
    averaged, as spatial compounding does on breast scanners. Uniform scatterers are cheaper to
    draw than Gaussian ones and sum to the same complex Gaussian field under the PSF.
    """
    size = db.shape[0]
    sx, sy = (max(0.6, s * speckle_size * size) for s in _PSF_SIGMA)
    kx, ky = (2 * math.ceil(3 * s) + 1 for s in (sx, sy))
    power = math.prod(math.fsum(portable.gaussian_kernel(k, s) ** 2) for k, s in ((kx, sx), (ky, sy)))
    strength = portable.exp(db * np.float32(_LN10 / 20)) + np.float32(10 ** (_NOISE_DB / 20))
    scatter = (rng.random((size, size, 4), dtype=np.float32) - np.float32(0.5)) * strength[..., None]
    echo = portable.gaussian_blur(scatter, (kx, ky), sx, sy)
    looks = _magnitude(echo[..., 0], echo[..., 1]) + _magnitude(echo[..., 2], echo[..., 3])
    return looks / np.float32(2 * math.sqrt(power / 6))


def _magnitude(re: np.ndarray, im: np.ndarray) -> np.ndarray:
    """|re + i im|, from correctly rounded operations only (``cv2.magnitude`` may fuse them)."""
    return np.sqrt(re * re + im * im)


def _compress(amplitude: np.ndarray, dynamic_range: float) -> np.ndarray:
    """(H, W) uint8 display: log compression of the top ``dynamic_range`` dB below the headroom."""
    level = portable.log(amplitude + np.float32(1e-6)) * np.float32(20 / _LN10)
    image = (level + np.float32(dynamic_range - _HEADROOM_DB)) * np.float32(255 / dynamic_range)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def render_phantom(label: str, patient_seed: int, view: int, size: int,
                   scanner: Scanner = Scanner()) -> tuple[np.ndarray, np.ndarray]:
    """One B-mode frame of one patient: (size, size) uint8 image and (size, size) bool lesion mask.

    The mask is all False for 'normal'. The same arguments always give the same pixels; ``scanner``
    changes how the same breast is imaged, not the breast.
    """
    if label not in PHANTOM_LABELS:
        raise ValueError(f"unknown phantom label {label!r}; expected one of {PHANTOM_LABELS}")
    patient = _draw_patient(label, patient_seed)
    rng = keyed_rng(patient_seed, PHANTOM_LABELS.index(label), _VIEW_TAG, view)
    dx = rng.uniform(-0.06, 0.06)
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = grid + np.float32(dx), grid[:, None]
    db = _tissue_db(patient, x, y, dx, size)
    mask = np.zeros((size, size), bool)
    if patient.lesion is not None:
        lesion = _jitter(patient.lesion, rng)
        mask = _lesion_mask(lesion, dx, size)
        db = _lesion_db(db, lesion, mask, x, y)
    overall, tilt, dynamic_range = patient.gain.tolist()
    depth, width, bump = patient.tgc.astype(np.float32).T[:, :, None, None]
    bumps = (bump * portable.exp(-(((y - depth) / width) ** 2))).sum(0)
    db += overall + rng.normal(0.0, 1.0) + tilt * y + bumps
    db += np.float32(scanner.gain_db) + np.float32(scanner.depth_db) * y
    return _compress(_speckle(db, rng, scanner.speckle_size), dynamic_range), mask


def _load(label: str, patient_seed: int, view: int, size: int, scanner: Scanner = Scanner()) -> RawSample:
    """Render one candidate (module level so the partial pickles into worker processes)."""
    image, mask = render_phantom(label, patient_seed, view, size, scanner)
    digest = hashlib.sha256(image.tobytes() + mask.tobytes()).hexdigest()
    return RawSample(image=image, mask=mask, sha256=digest, bit_depth=8)


def phantom_candidates(cfg: PhantomConfig) -> list[Candidate]:
    """Every phantom image, sorted by source path, grouped by patient.

    Each patient's seed and view count come from (cfg.seed, class, patient) alone, so growing
    ``patients_per_class`` adds images without changing earlier ones.
    """
    candidates, scanner = [], Scanner(cfg.speckle_size, cfg.gain_db, cfg.depth_db)
    for class_index, label in enumerate(PHANTOM_LABELS):
        for patient in range(cfg.patients_per_class):
            rng = keyed_rng(cfg.seed, class_index, patient)
            patient_seed = int(rng.integers(2**63))
            group = f"phantom-{label}-p{patient:04d}"
            for view in range(int(rng.integers(1, cfg.max_images_per_patient + 1))):
                path = f"phantom/{label}/p{patient:04d}-v{view}"
                load = functools.partial(_load, label, patient_seed, view, cfg.render_size, scanner)
                candidates.append(Candidate(path, label, group, load))
    return sorted(candidates, key=lambda c: c.source_path)
