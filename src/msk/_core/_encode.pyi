"""Fused whiten -> encode -> pool kernel (Cython over BLAS). Private: see msk._encoding."""

from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

_F = TypeVar("_F", np.float32, np.float64)

def whiten_encode_pool(
    frames: NDArray[_F],
    width: int,
    first: NDArray[_F],
    second: NDArray[_F],
    bias: NDArray[_F],
    rectify: bool,
    pool: int,
    n_positions: int,
    tile: int,
    do_max: bool,
    do_mean: bool,
    do_std: bool,
    work: NDArray[_F],
    out: NDArray[_F],
) -> int:
    """Encode every window position of one level and pool the codes, tile by tile.

    IN   frames (T, n_mels) C-contiguous float32/float64; window t is frames[t : t + width]
    IN   width >= 1 frames per window
    IN   first (width * n_mels, n_first), the first (or only) projection, transposed
    IN   second (n_first, K), the second projection, transposed; shape (0, 0) for one stage
    IN   bias (K,) added to every code (K = n_first for one stage)
    IN   rectify: codes = max(0, codes + bias) instead of codes + bias
    IN   pool >= 1 positions per pooling window; 0 <= n_positions <= T - width + 1
    IN   tile >= 1 positions per GEMM tile
    IN   do_max, do_mean, do_std: statistics written, in this order (at least one)
    WORK work (>= (tile + 6) * K + (tile * n_first if staged else 0),)
    OUT  out (ceil(n_positions / pool), K * (do_max + do_mean + do_std))
    Returns the number of values of out that are NaN or infinite.
    All arrays share one dtype and are C-contiguous (TypeError/ValueError otherwise); the
    shapes are checked (ValueError naming them), values are not. Releases the GIL.
    """
