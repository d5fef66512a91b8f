"""Gaussian and Laplacian pyramids of a spectrogram along its time axis.

A spectrogram ``S`` of shape (n_frames, n_bands) is smoothed and subsampled
along time only (axis 0, frames are rows); the frequency axis is untouched, as
in Dieleman & Schrauwen (2013), Sections 3.2-3.3. Level ``l`` has
``ceil(n_frames / 2**l)`` frames.

Border rule
-----------
All smoothing uses whole-sample mirror borders, ``... c b | a b c d ...``: the
frame at the edge is not repeated. This is ``scipy.ndimage``'s
``mode='mirror'`` (``numpy.pad``'s ``mode='reflect'``, OpenCV's
``BORDER_REFLECT_101``, the border ``cv2.pyrDown`` uses). It is chosen over the
half-sample ``d c b a | a b c d`` rule (``scipy.ndimage``'s ``mode='reflect'``)
because only the whole-sample mirror keeps the expansion of a constant signal
constant up to the borders: with it the Laplacian levels of a constant
spectrogram are zero everywhere instead of carrying a spurious edge response.
A signal of one frame mirrors to a constant, so it smooths to itself; a level of
one frame expands to that same frame.

The kernels live in ``msk._core._pyramid`` (C++); this module validates input,
allocates the outputs and calls one kernel entry point per transform. The NaN/inf test of ``S`` rides along the
kernel's pass over ``S`` (a separate pass would cost as much as the whole
Gaussian pyramid); the error raised is the same.
"""

import numpy as np

from ._core import _pyramid
from ._validation import as_float_array, check_int

__all__ = ["gaussian_pyramid", "laplacian_pyramid", "reconstruct_laplacian"]

MAX_LEVELS = 8


# Same message as msk._validation.as_float_array: the kernels test for NaN/inf in
# the pass that reads the input anyway (a separate np.isfinite pass would cost as
# much as the whole Gaussian pyramid) and the wrappers raise it.
_NONFINITE = "`{}` contains NaN or infinite values."


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _as_2d(name, x, *, finite):
    """``as_float_array(name, x, ndim=2, finite=finite)``, skipped for an array that is ready.

    The fast path (a C-contiguous, non-empty 2-D float32/float64 ndarray, whose
    values the kernel tests) saves the few microseconds of generic checks that
    are comparable to the kernel on short inputs.
    """
    if (
        not finite
        and type(x) is np.ndarray
        and x.ndim == 2
        and x.dtype in _FLOAT_DTYPES
        and x.flags.c_contiguous
        and x.size
    ):
        return x
    return as_float_array(name, x, ndim=2, finite=finite)


def _owned(x, original):
    """``x`` if validation made it a new array, else a copy (never alias the caller's data)."""
    return x if (x is not original and x.flags.owndata) else x.copy()


def _empty_levels(X, levels, *, first=None):
    """Level buffers, level l of shape (ceil(n_frames / 2**l), n_bands); level 0 is ``first`` if given."""
    n, n_bands = X.shape
    out = [np.empty((n, n_bands), dtype=X.dtype) if first is None else first]
    for _ in range(levels - 1):
        n = (n + 1) // 2
        out.append(np.empty((n, n_bands), dtype=X.dtype))
    return out


def gaussian_pyramid(S, *, levels=6):
    """Gaussian pyramid of a spectrogram along time.

    ``G[0]`` is ``S`` and ``G[l + 1]`` keeps the even frames of ``G[l]``
    smoothed along time with the binomial kernel [1, 4, 6, 4, 1] / 16
    (whole-sample mirror borders, see the module notes). The bands are never
    mixed.

    Parameters
    ----------
    S : array-like of shape (n_frames, n_bands)
        The spectrogram, frames as rows (e.g. the output of
        ``msk.log_melspectrogram``). Must be finite. float32 and float64 are kept,
        any other real dtype is converted to float64.
    levels : int, default=6
        Number of levels, from 1 to 8, including ``S`` itself as level 0.

    Returns
    -------
    G : list of ndarray
        ``levels`` C-contiguous arrays, finest first; ``G[l]`` has shape
        ``(ceil(n_frames / 2**l), n_bands)``. ``G[0]`` is ``S`` itself
        when ``S`` is already a C-contiguous float32 or float64 array (no
        copy is made, as in ``skimage.transform.pyramid_gaussian``), else
        its converted copy. Levels beyond ``log2(n_frames)`` have a single
        frame.

    Raises
    ------
    TypeError
        If ``S`` is not a real numeric array or ``levels`` not an integer.
    ValueError
        If ``S`` is not 2-D, is empty or has non-finite values, or ``levels``
        is outside 1..8.

    See Also
    --------
    laplacian_pyramid : Band-pass levels that reconstruct ``S`` exactly.

    Notes
    -----
    ``G[l + 1]`` equals ``scipy.ndimage.correlate1d(G[l], [1, 4, 6, 4, 1] / 16,
    axis=0, mode='mirror')[::2]``. The kernel computes only the kept frames and
    runs all levels in one cascade: each new frame of ``G[l + 1]`` is used for
    ``G[l + 2]`` while it is still in cache.

    References
    ----------
    .. [1] P. J. Burt and E. H. Adelson, "The Laplacian pyramid as a compact
           image code", IEEE Trans. Communications 31(4), 1983.
    .. [2] S. Dieleman and B. Schrauwen, "Multiscale approaches to music audio
           feature learning", ISMIR 2013.

    Examples
    --------
    >>> import numpy as np
    >>> import msk
    >>> S = np.random.default_rng(0).standard_normal((910, 200)).astype(np.float32)
    >>> G = msk.gaussian_pyramid(S, levels=6)
    >>> [g.shape[0] for g in G]
    [910, 455, 228, 114, 57, 29]
    >>> G[5].dtype
    dtype('float32')
    """
    levels = check_int("levels", levels, low=1, high=MAX_LEVELS)
    X = _as_2d("S", S, finite=levels == 1)
    G = _empty_levels(X, levels, first=X)
    if levels > 1 and not _pyramid.blur_decimate(X, G):
        raise ValueError(_NONFINITE.format("S"))
    return G


def laplacian_pyramid(S, *, levels=6):
    """Laplacian pyramid of a spectrogram along time.

    ``L[l] = G[l] - expand(G[l + 1])`` for the Gaussian levels ``G`` of
    :func:`gaussian_pyramid`, and the top level is ``L[levels - 1] =
    G[levels - 1]``. ``expand`` inserts a zero frame after every frame of
    ``G[l + 1]``, smooths the result with twice the binomial kernel (mirror
    borders) and keeps ``G[l]``'s frame count. :func:`reconstruct_laplacian`
    inverts it.

    Parameters
    ----------
    S : array-like of shape (n_frames, n_bands)
        The spectrogram, frames as rows. Must be finite. float32 and float64
        are kept, any other real dtype is converted to float64.
    levels : int, default=6
        Number of levels, from 1 to 8. ``levels=1`` returns ``[S]`` (a copy).

    Returns
    -------
    L : list of ndarray
        ``levels`` C-contiguous arrays, finest first; ``L[l]`` has shape
        ``(ceil(n_frames / 2**l), n_bands)``. Band-pass levels are close to
        zero where ``S`` is locally linear in time; a level of one frame
        whose coarser neighbour also has one frame is (almost) zero.

    Raises
    ------
    TypeError
        If ``S`` is not a real numeric array or ``levels`` not an integer.
    ValueError
        If ``S`` is not 2-D, is empty or has non-finite values, or ``levels``
        is outside 1..8.

    See Also
    --------
    gaussian_pyramid : The low-pass levels.
    reconstruct_laplacian : The inverse.

    Notes
    -----
    Level by level this equals ``G[l] - 2 * correlate1d(U, [1, 4, 6, 4, 1] /
    16, axis=0, mode='mirror')`` where ``U`` has ``G[l]``'s shape, ``U[::2] =
    G[l + 1]`` and zeros elsewhere (``scipy.ndimage``). The kernel runs all
    levels in one cascade: each frame of ``G[l + 1]`` is computed once, its
    expansion subtracted from the frames of ``G[l]`` it touches, and passed on
    to the next level, all while those frames are in cache; the Gaussian
    levels are stored in the output buffers and turned into Laplacian levels
    in place.

    References
    ----------
    .. [1] P. J. Burt and E. H. Adelson, "The Laplacian pyramid as a compact
           image code", IEEE Trans. Communications 31(4), 1983.
    .. [2] S. Dieleman and B. Schrauwen, "Multiscale approaches to music audio
           feature learning", ISMIR 2013.

    Examples
    --------
    >>> import numpy as np
    >>> import msk
    >>> S = np.random.default_rng(0).standard_normal((910, 200)).astype(np.float32)
    >>> L = msk.laplacian_pyramid(S, levels=6)
    >>> [l.shape[0] for l in L]
    [910, 455, 228, 114, 57, 29]
    >>> bool(np.allclose(msk.reconstruct_laplacian(L), S, atol=1e-5))
    True
    >>> float(np.abs(msk.laplacian_pyramid(np.ones((7, 3)), levels=3)[0]).max())
    0.0
    """
    levels = check_int("levels", levels, low=1, high=MAX_LEVELS)
    X = _as_2d("S", S, finite=levels == 1)
    if levels == 1:
        return [_owned(X, S)]
    L = _empty_levels(X, levels)
    if not _pyramid.blur_decimate_subtract(X, L):
        raise ValueError(_NONFINITE.format("S"))
    return L


def reconstruct_laplacian(L):
    """Spectrogram from its Laplacian pyramid.

    Runs from the coarsest level down: ``G[l] = L[l] + expand(G[l + 1])``
    with the same expansion as :func:`laplacian_pyramid`, whose output it
    inverts to floating-point rounding of the levels' dtype.

    Parameters
    ----------
    L : list or tuple of array-like
        The 1 to 8 levels, finest first, as returned by :func:`laplacian_pyramid`:
        each of shape (n_frames_l, n_bands) with
        ``n_frames_{l+1} = ceil(n_frames_l / 2)``. Must be finite. The result
        is float32 if every level is float32, otherwise float64.

    Returns
    -------
    S : ndarray of shape (n_frames_0, n_bands)
        The reconstructed spectrogram, C-contiguous, a new array.

    Raises
    ------
    TypeError
        If ``L`` is not a sequence of real numeric arrays.
    ValueError
        If ``L`` holds no level or more than 8, a level is not 2-D or has
        non-finite values, or the levels' shapes do not chain as above.

    See Also
    --------
    laplacian_pyramid : The forward transform.

    Notes
    -----
    The kernel runs all levels in one cascade that always advances the finest
    level it can: each frame of an intermediate ``G[l]`` is computed just
    before the finer level needs it and read back from cache.

    Examples
    --------
    >>> import numpy as np
    >>> import msk
    >>> S = np.random.default_rng(0).standard_normal((100, 40))
    >>> S2 = msk.reconstruct_laplacian(msk.laplacian_pyramid(S, levels=4))
    >>> S2.shape, bool(np.abs(S2 - S).max() < 1e-12)
    ((100, 40), True)
    """
    if isinstance(L, np.ndarray) or not isinstance(L, (list, tuple)):
        raise TypeError(f"`L` must be a list or tuple of 2-D arrays (the levels); got {type(L).__name__}.")
    if not 1 <= len(L) <= MAX_LEVELS:
        raise ValueError(f"`L` must hold between 1 and {MAX_LEVELS} levels; got {len(L)}.")
    levels = [_as_2d(f"L[{i}]", x, finite=i == len(L) - 1) for i, x in enumerate(L)]
    if any(x.dtype != np.float32 for x in levels):
        levels = [x.astype(np.float64, copy=False) for x in levels]
    n_bands = levels[0].shape[1]
    for i in range(1, len(levels)):
        want = ((levels[i - 1].shape[0] + 1) // 2, n_bands)
        if levels[i].shape != want:
            raise ValueError(
                f"`L[{i}]` must have shape {want} (ceil of L[{i - 1}]'s {levels[i - 1].shape[0]} frames / 2, "
                f"{n_bands} bands); got shape {levels[i].shape}."
            )
    if len(levels) == 1:
        return _owned(levels[0], L[0])
    # out[0] is the result, out[1:] hold the intermediate Gaussian levels. The top
    # level is tested above; the kernel tests the others as it reads them.
    out = _empty_levels(levels[0], len(levels) - 1)
    bad = _pyramid.expand_add(levels, out)
    if bad >= 0:
        raise ValueError(_NONFINITE.format(f"L[{bad}]"))
    return out[0]
