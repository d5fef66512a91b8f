"""Spherical K-means assignment/update kernel (Cython over BLAS). Private: see msk.learn."""

from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

_F = TypeVar("_F", np.float32, np.float64)

def assign_update(
    X: NDArray[_F],
    D: NDArray[_F],
    tile: int,
    labels: NDArray[np.int32],
    values: NDArray[_F],
    accum: NDArray[_F] | None,
    energy: NDArray[np.float64],
    work: NDArray[_F],
    order: NDArray[np.int32],
) -> int:
    """Assign every row of X to its largest-|projection| centroid; optionally accumulate S^T X.

    IN     X (n, p) C-contiguous float32/float64, samples as rows
    IN     D (K, p) same dtype, centroids as rows; 1 <= K, p < 2**31
    IN     tile >= 1 rows per GEMM tile
    OUT    labels (n,) int32: first index of the largest |X[i] . D[j]|
    OUT    values (n,) same dtype: the signed projection X[i] . D[labels[i]]
    IN/OUT accum (K, p) same dtype or None: accum[labels[i]] += values[i] * X[i] (not zeroed)
    OUT    energy (>= 1,) float64: energy[0] = sum of values**2
    WORK   work (>= min(tile, n) * K,) same dtype
    WORK   order (>= min(tile, n) + K + 1,) int32
    Returns the number of rows of X whose projections are not finite. The shapes are checked
    (ValueError naming them), values are not. Releases the GIL.
    """
