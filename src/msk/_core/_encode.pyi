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
    encoding: int,
    threshold: float,
    first_sums: NDArray[_F],
    normalize_eps: float,
    hidden_bias: NDArray[_F],
    center_sq: NDArray[_F],
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
    IN   bias (K,) added to every code (K = n_first for one stage); unused by encoding 3
    IN   encoding: 0 linear (codes + bias), 1 threshold (max(0, codes + bias)), 2 split
         ([max(0, f - threshold), max(0, -f - threshold)], f = codes + bias: n_out = 2K codes),
         3 triangle (two stages; h = first-stage row + hidden_bias scaled to unit length,
         z_k = sqrt(max(0, 1 + center_sq[k] - 2 h . c_k)), codes max(0, mean_k z - z_k))
    IN   threshold: alpha of encoding 2 (finite)
    IN   first_sums (width, n_first): row j sums first's rows of frame offset j; each window x
         becomes (x - mean(x)) / sqrt(var(x) + normalize_eps) first. Shape (0, 0): no normalisation
    IN   normalize_eps > 0 when normalising
    IN   hidden_bias (n_first,), center_sq (K,) for encoding 3; shape (0,) otherwise
    IN   pool >= 1 positions per pooling window; 0 <= n_positions <= T - width + 1
    IN   tile >= 1 positions per GEMM tile
    IN   do_max, do_mean, do_std: statistics written, in this order (at least one)
    WORK work (>= (tile + 6) * n_out + (tile * n_first if staged else 0)
         + ((tile + width - 1) * (n_mels + 3) if normalising else 0),); n_out = K, 2K for split
    OUT  out (ceil(n_positions / pool), n_out * (do_max + do_mean + do_std))
    Returns the number of values of out that are NaN or infinite.
    All arrays share one dtype and are C-contiguous (TypeError/ValueError otherwise); the
    shapes are checked (ValueError naming them), values are not. Releases the GIL.
    """
