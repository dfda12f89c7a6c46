"""Float maths whose results are the same bytes on any x86-64 CPU: exp, log, sin, cos, tanh,
power, a Gaussian blur and fixed-order products, for the phantom and the near-duplicate checks.

Ingest's output is a DVC output: a fresh clone must hash it as ``dvc.lock`` does. NumPy's
transcendental ufuncs (``np.exp``, ``np.sin``, ``np.tanh``, ``np.log``, ``np.power``, float32 and
float64) pick an AVX-512, AVX2 or baseline kernel at run time, and the kernels round differently;
OpenCV's float ``GaussianBlur`` dispatches the same way (AVX2 against SSE), and OpenBLAS's matrix
products sum in a per-CPU order. Forcing the other code paths on one machine
(``NPY_DISABLE_CPU_FEATURES=X86_V3``, ``OPENCV_CPU_DISABLE=AVX2``, ``OPENBLAS_CORETYPE``) changes
``data/prepared``; see ``tests/data/test_portable.py``. IEEE-754 addition, subtraction,
multiplication, division and square root are correctly rounded on every path, so everything here
is built from those alone, in float64, with a fixed order of operations: range reduction, then a
Taylor polynomial by Horner's rule (relative error near 1e-16, far below what the uint8 images
resolve). Results come back in the input's float dtype (float64 for other inputs).
"""

from __future__ import annotations

import math

import numpy as np

_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10  # fdlibm's split of ln 2
_PIO2 = (1.57079632673412561417e+00, 6.07710050630396597660e-11, 2.02226624871116645580e-21)
_EXP_TERMS = tuple(1.0 / math.factorial(k) for k in range(15))  # |r| <= ln2 / 2
_SIN_TERMS = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(10))  # |r| <= pi / 4
_COS_TERMS = tuple((-1.0) ** k / math.factorial(2 * k) for k in range(11))
_ATANH_TERMS = tuple(1.0 / (2 * k + 1) for k in range(11))  # |s| <= 0.172


def _float64(x: np.ndarray | float) -> tuple[np.ndarray, np.dtype]:
    """``x`` as float64 and the dtype results go back to (float32 stays float32)."""
    array = np.asarray(x)
    dtype = array.dtype if array.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    return array.astype(np.float64), dtype


def _horner(terms: tuple[float, ...], z: np.ndarray) -> np.ndarray:
    """sum(terms[k] * z**k), highest term first: one rounding per step, in a fixed order."""
    total = np.full_like(z, terms[-1])
    for term in reversed(terms[:-1]):
        total *= z
        total += term
    return total


def exp(x: np.ndarray | float) -> np.ndarray:
    """e**x: x = n ln2 + r, e**r by its Taylor series, times 2**n (exact)."""
    x64, dtype = _float64(x)
    x64 = np.clip(x64, -745.0, 709.0)
    n = np.rint(x64 / (_LN2_HI + _LN2_LO))
    r = (x64 - n * _LN2_HI) - n * _LN2_LO
    return np.ldexp(_horner(_EXP_TERMS, r), n.astype(np.int32)).astype(dtype)


def log(x: np.ndarray | float) -> np.ndarray:
    """Natural log of x > 0 (0 gives -inf): x = m 2**e with m in [1/sqrt 2, sqrt 2), then
    log m = 2 atanh(s), s = (m - 1) / (m + 1), by its series."""
    x64, dtype = _float64(x)
    m, e = np.frexp(np.where((x64 > 0) & np.isfinite(x64), x64, 1.0))
    low = m < math.sqrt(0.5)
    m, e = np.where(low, m * 2.0, m), np.where(low, e - 1, e).astype(np.float64)
    f = m - 1.0
    s = f / (2.0 + f)
    result = e * _LN2_HI + (e * _LN2_LO + 2.0 * s * _horner(_ATANH_TERMS, s * s))
    result = np.where(x64 > 0, result, np.where(x64 == 0, -np.inf, np.nan))
    return np.where(np.isposinf(x64), np.inf, result).astype(dtype)


def _quadrant(x64: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x = k pi/2 + r with |r| <= pi/4 (Cody-Waite, three parts of pi/2; |x| up to about 1e6)."""
    k = np.rint(x64 * (2.0 / math.pi))
    r = ((x64 - k * _PIO2[0]) - k * _PIO2[1]) - k * _PIO2[2]
    return r, k.astype(np.int64) % 4


def _sin_cos(x: np.ndarray | float, shift: int) -> np.ndarray:
    """sin x (``shift`` 0) or cos x = sin(x + pi/2) (``shift`` 1) from the reduced argument."""
    x64, dtype = _float64(x)
    r, quadrant = _quadrant(x64)
    quadrant = (quadrant + shift) % 4
    r2 = r * r
    sine, cosine = r * _horner(_SIN_TERMS, r2), _horner(_COS_TERMS, r2)
    value = np.where(quadrant % 2 == 0, sine, cosine)
    return np.where(quadrant >= 2, -value, value).astype(dtype)


def sin(x: np.ndarray | float) -> np.ndarray:
    return _sin_cos(x, 0)


def cos(x: np.ndarray | float) -> np.ndarray:
    return _sin_cos(x, 1)


def tanh(x: np.ndarray | float) -> np.ndarray:
    """tanh x = sign(x) (1 - e**-2|x|) / (1 + e**-2|x|) (absolute error near 1e-16)."""
    x64, dtype = _float64(x)
    t = exp(-2.0 * np.abs(x64))
    return (np.sign(x64) * ((1.0 - t) / (1.0 + t))).astype(dtype)


def power(x: np.ndarray | float, p: float | np.ndarray) -> np.ndarray:
    """x**p for x >= 0 and p > 0, as exp(p log x) (0**p is 0)."""
    x64, dtype = _float64(x)
    safe = np.where(x64 > 0, x64, 1.0)
    return np.where(x64 > 0, exp(np.asarray(p, np.float64) * log(safe)), 0.0).astype(dtype)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, K) @ (K, N) in float64 as K broadcast multiply-adds in index order (BLAS's order of
    summation depends on the CPU it picks a kernel for)."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    total = np.zeros((a64.shape[0], b64.shape[1]))
    for k in range(a64.shape[1]):
        total += a64[:, k, None] * b64[None, k, :]
    return total


def gaussian_ksize(sigma: float) -> int:
    """OpenCV's kernel size for a float image when it is left to ``GaussianBlur`` (ksize 0)."""
    return round(sigma * 8 + 1) | 1


def gaussian_kernel(ksize: int, sigma: float) -> np.ndarray:
    """(ksize,) float64 Gaussian weights summing to 1, as ``cv2.getGaussianKernel`` defines them
    (sigma <= 0: OpenCV's default for the size); the sum is exact (``math.fsum``)."""
    if sigma <= 0:
        sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    offsets = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2
    weights = exp(-(offsets * offsets) / (2.0 * sigma * sigma))
    return weights / math.fsum(weights.tolist())


def _convolve(a: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """``a`` (float64) filtered along ``axis`` by symmetric ``weights``, mirrored borders
    (OpenCV's default BORDER_REFLECT_101), taps summed in index order."""
    radius, n = len(weights) // 2, a.shape[axis]
    if radius == 0:
        return a * weights[0]
    pad = [(0, 0)] * a.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(a, pad, mode="reflect" if n > 1 else "edge")
    total = np.zeros_like(a)
    for tap, weight in enumerate(weights):
        window = [slice(None)] * a.ndim
        window[axis] = slice(tap, tap + n)
        total += weight * padded[tuple(window)]
    return total


def gaussian_blur(image: np.ndarray, ksize: tuple[int, int], sigma_x: float,
                  sigma_y: float | None = None) -> np.ndarray:
    """``cv2.GaussianBlur(image, ksize, sigma_x, sigmaY=sigma_y)`` for a (H, W) or (H, W, C) float
    image, the same on every CPU; a 0 in ``ksize`` is derived from the sigma as OpenCV does."""
    sigma_y = sigma_y or sigma_x
    kx, ky = (k or gaussian_ksize(s) for k, s in zip(ksize, (sigma_x, sigma_y), strict=True))
    a64, dtype = _float64(image)
    rows = _convolve(a64, gaussian_kernel(kx, sigma_x), axis=1)
    return _convolve(rows, gaussian_kernel(ky, sigma_y), axis=0).astype(dtype)
