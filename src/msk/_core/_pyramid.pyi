"""Time-axis Gaussian/Laplacian pyramid kernels (C++). Private: see msk.pyramid."""

from typing import overload

import numpy as np
from numpy.typing import NDArray

_F32 = NDArray[np.float32]
_F64 = NDArray[np.float64]

@overload
def blur_decimate(src: _F32, out: list[_F32]) -> bool: ...
@overload
def blur_decimate(src: _F64, out: list[_F64]) -> bool:
    """Gaussian pyramid: out[l + 1] = (smooth out[l])[::2] along axis 0, [1, 4, 6, 4, 1] / 16.

    IN  src (n, b) C-contiguous float32/float64
    OUT out: list of 2..8 arrays, out[l] of shape (ceil(n / 2**l), b), same dtype, C-contiguous;
        out[0] is src itself and is not written
    Returns False if src holds a value that is NaN, infinite or of magnitude >= 2**(emax - 1)
    (8.5e37 for float32, 4.5e307 for float64): the outputs are then not meaningful. The shapes
    are checked (ValueError naming them). Releases the GIL.
    """

@overload
def blur_decimate_subtract(src: _F32, out: list[_F32]) -> bool: ...
@overload
def blur_decimate_subtract(src: _F64, out: list[_F64]) -> bool:
    """Laplacian pyramid: out[l] = G_l - expand(G_{l + 1}), out[-1] = G_top, G_0 = src.

    IN  src (n, b) C-contiguous float32/float64
    OUT out: list of 2..8 arrays, out[l] of shape (ceil(n / 2**l), b), same dtype, distinct from src
    Returns False as blur_decimate does. The shapes are checked (ValueError naming them).
    Releases the GIL.
    """

@overload
def expand_add(lap: list[_F32], out: list[_F32]) -> int: ...
@overload
def expand_add(lap: list[_F64], out: list[_F64]) -> int:
    """Reconstruction: out[l] = lap[l] + expand(G_{l + 1}), G_top = lap[-1].

    IN   lap: list of 2..8 arrays, lap[l] of shape (ceil(n / 2**l), b), C-contiguous float32/float64
    OUT  out: list of len(lap) - 1 arrays shaped like lap[:-1], same dtype; out[0] is the result
    WORK out[1:] hold the intermediate Gaussian levels
    Returns -1, or the index of a level of lap[:-1] holding a NaN or infinity. The shapes are
    checked (ValueError naming them). Releases the GIL.
    """
