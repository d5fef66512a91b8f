"""Fused whiten -> encode -> pool for one level (private building block).

Every window of ``width`` consecutive frames is whitened, encoded against a
dictionary and pooled over non-overlapping pooling windows, in one pass of the
compiled kernel ``msk._core._encode.whiten_encode_pool``. The codes of a whole
clip are never stored: the kernel works on tiles of at most a few hundred
window positions (a few whole pooling windows) and merges pooling statistics
across tiles, so the working memory does not depend on the clip's length.

``MultiscaleFeatures.transform`` builds one :class:`WindowEncoder` per level
at fit time (the matrix products below are computed once) and calls it on
every clip.
"""

import numpy as np

from ._core._encode import whiten_encode_pool as _whiten_encode_pool
from ._blas_threads import SingleThreadedBlas
from ._validation import all_finite, as_float_array, check_float, check_int, check_option

__all__ = ["ENCODINGS", "NORMALIZATIONS", "WindowEncoder", "encode_pool", "pooled_positions",
           "standardize_windows"]

_STATS = ("max", "mean", "std")
# Encodings, in the order of the kernel's `encoding` codes 0..3.
ENCODINGS = ("linear", "threshold", "split", "triangle")
# Per-window normalisations before whitening.
NORMALIZATIONS = ("none", "standardize")
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Rows of one GEMM tile: at most as many positions as fit their codes (and the
# hidden PCA codes when staged) in _TILE_BYTES, clamped to [_MIN_TILE, _MAX_TILE],
# balanced over the clip and rounded to whole pooling windows. sgemm needs a few
# hundred rows to reach its full rate (bench/bench_encode.py::test_tile_rows measures
# where), and 768 rows split even a 29 s clip's level 0 into two tiles. Each tile
# re-packs the weights inside sgemm, so with large, cache-cold weights (w=4, K=1000:
# 2.9 MB per level) fewer, larger tiles are cheaper.
_TILE_BYTES = 3 << 20
_MIN_TILE = 128
_MAX_TILE = 768


def pooled_positions(n_frames, width, pool):
    """Return ``(n_pools, n_positions)``: pooling windows and window positions encoded.

    A clip of ``n_frames`` frames has ``n_frames - width + 1`` window positions.
    Only full pooling windows of ``pool`` positions are kept (trailing positions
    are dropped), except that a clip with fewer positions than one pooling
    window gives one pooling window over all its positions.
    """
    n_windows = n_frames - width + 1
    if n_windows < pool:
        return 1, n_windows
    n_pools = n_windows // pool
    return n_pools, n_pools * pool


def check_pooling(pooling):
    if isinstance(pooling, str):
        pooling = (pooling,)
    try:
        pooling = tuple(pooling)
    except TypeError:
        raise TypeError(
            f"`pooling` must be a string or a sequence of strings from 'max', 'mean', 'std'; got {pooling!r}."
        ) from None
    if not pooling:
        raise ValueError("`pooling` must name at least one of 'max', 'mean', 'std'; got an empty sequence.")
    for p in pooling:
        check_option("pooling", p, _STATS)
    if len(set(pooling)) != len(pooling):
        raise ValueError(f"`pooling` must not repeat a statistic; got {pooling!r}.")
    return tuple(s for s in _STATS if s in pooling)


class WindowEncoder:
    """Whiten, encode and pool every window of ``width`` frames of one level.

    For every window position ``t`` of a level's frames ``S`` (shape
    ``(n_frames, n_mels)``), the window ``x_t = S[t : t + width].ravel()`` of
    ``d = width * n_mels`` values is encoded as ``f_t = D W (x_t - mean)``
    (``encoding="linear"``, the paper) or ``max(0, f_t - threshold)``
    (``encoding="threshold"``, Coates & Ng's soft threshold), and the codes are
    pooled over non-overlapping windows of ``pool`` positions. With
    ``dictionary=None`` the codes are the whitened components ``W (x_t - mean)``
    themselves (PCA-only features).

    Parameters
    ----------
    mean : array-like of shape (d,)
        Mean of the training windows.
    whitening : array-like of shape (p, d)
        PCA whitening matrix (components scaled by ``1 / sqrt(lambda + eps)``).
    dictionary : array-like of shape (K, p) or None, default=None
        Dictionary (K-means centroids as rows), or None for PCA-only codes.
    width : int, default=1
        Frames per window; ``d`` must be a multiple of it.
    pool : int, default=128
        Window positions per pooling window.
    pooling : {"max", "mean", "std"} or sequence of them, default="max"
        Statistics computed over each pooling window, concatenated always in
        the order max, mean, std. ``"std"`` is the population standard
        deviation (``ddof=0``).
    encoding : {"linear", "threshold", "split", "triangle"}, default="linear"
        ``"threshold"`` gives ``max(0, f - threshold)``; ``"split"`` gives the
        ``2 K`` codes ``[max(0, f - threshold), max(0, -f - threshold)]`` (the K
        positive halves, then the K negative ones); ``"triangle"`` gives
        ``max(0, mean_k(z) - z_k)`` with ``z_k = ||h / ||h|| - c_k||`` the distance
        from the unit-length whitened window ``h = W (x - mean)`` to atom ``c_k``
        (row ``k`` of ``dictionary``; ``h / ||h||`` is 0 when ``h`` is 0). Triangle
        needs a dictionary and the staged factorisation.
    threshold : float, default=0.25
        Threshold of ``encoding="threshold"`` and ``"split"`` (ignored otherwise).
    normalization : {"none", "standardize"}, default="none"
        ``"standardize"`` replaces every window ``x`` by
        ``(x - mean(x)) / sqrt(var(x) + normalization_eps)`` (mean and variance
        over its ``d`` values) before the whitening's mean is subtracted: Coates
        & Ng's brightness and contrast normalisation. ``mean`` and ``whitening``
        must have been fitted on windows normalised the same way.
    normalization_eps : float, default=1.0
        Variance floor of ``normalization="standardize"``, in the squared units
        of the frames (ignored otherwise). It keeps windows of little contrast
        (near silence) from being amplified to unit variance.
    factorization : {"auto", "fused", "staged"}, default="auto"
        How ``D W`` is applied. ``"fused"`` precomputes the product ``D W``
        (K x d) and applies it directly: ``2 d K`` FLOPs per position.
        ``"staged"`` goes through the ``p`` whitened dimensions: ``2 (d p + p K)``
        FLOPs per position. ``"auto"`` picks the one with fewer FLOPs (fused on a
        tie), and "staged" for ``encoding="triangle"`` (which needs the whitened
        window). Both give the same codes up to rounding. Ignored when
        ``dictionary`` is None (one matrix, ``W``).

    Attributes
    ----------
    factorization_ : {"fused", "staged"}
        The factorisation used.
    n_codes_ : int
        Codes per position (``K``, or ``p`` without a dictionary; twice that
        for ``encoding="split"``).
    n_features_out_ : int
        Columns of the output: ``n_codes_`` times the number of statistics.
    flops_per_position_ : int
        Multiply-add FLOPs (counted as 2) per window position.

    Notes
    -----
    The window product is a 1-D convolution over frames:
    ``x_t M^T = sum_j S[t + j] M_j^T``, where ``M_j`` is the block of ``M``'s
    columns for frame offset ``j``. For a tile of positions ``t0 .. t0 + n`` this
    is ``width`` GEMMs of the contiguous frame block ``S[t0 + j : t0 + j + n]``
    against ``M_j``, accumulated; no window is copied. The constant
    ``-D W mean`` (minus ``threshold`` when thresholding) is a bias added in the
    pooling pass. The window normalisation copies no window either: each tile's
    frames are centred on their own means (so float32 products do not lose the
    window's contrast to a large offset), and with ``M`` the first product and
    ``c_j`` the centre of frame ``t + j``, ``M (x_t - m_t) / s_t =
    (M x_t^c + sum_j (c_j - m_t) M_j 1) / s_t``, where ``x_t^c`` is the window of
    centred frames and the window's mean ``m_t`` and scale ``s_t`` come from each
    frame's centre, sum and sum of squares; the correction is applied to the rows
    of the first product (the hidden layer when staged). Codes exist for one
    tile at a time (a few whole pooling windows, at most 768 positions and
    about 3 MiB), and pooling statistics of a pooling window
    that spans several tiles are merged exactly (Chan et al.'s update for the
    variance), so the extra memory does not depend on the clip's length.

    Examples
    --------
    >>> import numpy as np
    >>> from msk._encoding import WindowEncoder
    >>> rng = np.random.default_rng(0)
    >>> mean = rng.standard_normal(2 * 40)
    >>> whitening = rng.standard_normal((30, 2 * 40))
    >>> dictionary = rng.standard_normal((16, 30))
    >>> enc = WindowEncoder(mean, whitening, dictionary, width=2, pool=32,
    ...                     pooling=("max", "std"))
    >>> frames = rng.standard_normal((300, 40)).astype(np.float32)
    >>> out = enc(frames)
    >>> out.shape, out.dtype, enc.factorization_
    ((9, 32), dtype('float32'), 'fused')
    """

    def __init__(self, mean, whitening, dictionary=None, *, width=1, pool=128, pooling="max",
                 encoding="linear", threshold=0.25, normalization="none", normalization_eps=1.0,
                 factorization="auto"):
        self.width = check_int("width", width, low=1)
        self.pool = check_int("pool", pool, low=1)
        self.pooling = check_pooling(pooling)
        self.encoding = check_option("encoding", encoding, ENCODINGS)
        self.threshold = check_float("threshold", threshold)
        self.normalization = check_option("normalization", normalization, NORMALIZATIONS)
        self.normalization_eps = check_float("normalization_eps", normalization_eps, low=0.0,
                                             low_inclusive=False)
        factorization = check_option("factorization", factorization, ("auto", "fused", "staged"))

        mean = as_float_array("mean", mean, ndim=1, dtype=np.float64)
        whitening = _check_matrix("whitening", whitening, "p")
        d = mean.shape[0]
        if whitening.shape[1] != d:
            raise ValueError(
                f"`whitening` must have shape (p, d) with d = len(mean) = {d}; "
                f"got whitening of shape {whitening.shape} and mean of shape {mean.shape}."
            )
        if d % self.width:
            raise ValueError(
                f"`mean` must have width * n_mels entries, a multiple of `width`={self.width}; "
                f"got mean of shape {mean.shape}."
            )
        p = whitening.shape[0]
        if dictionary is not None:
            dictionary = _check_matrix("dictionary", dictionary, "K")
            if dictionary.shape[1] != p:
                raise ValueError(
                    f"`dictionary` must have shape (K, p) with p = whitening.shape[0] = {p}; "
                    f"got dictionary of shape {dictionary.shape} and whitening of shape {whitening.shape}."
                )
        triangle = self.encoding == "triangle"
        if triangle and dictionary is None:
            raise ValueError(
                "`encoding`='triangle' needs a dictionary (distances to its atoms); got dictionary=None."
            )
        if triangle and factorization == "fused":
            raise ValueError(
                "`encoding`='triangle' needs the whitened window's norm, so `factorization` must be "
                "'auto' or 'staged'; got 'fused'."
            )
        self.n_mels_ = d // self.width
        self.n_features_in_ = d

        if dictionary is None:
            self.factorization_ = "fused"
            first, second = whitening, None
            bias = -(whitening @ mean)
            self.flops_per_position_ = 2 * d * p
        else:
            K = dictionary.shape[0]
            fused_flops = 2 * d * K
            staged_flops = 2 * (d * p + p * K)
            if factorization == "auto":
                factorization = "fused" if fused_flops <= staged_flops and not triangle else "staged"
            self.factorization_ = factorization
            bias = -(dictionary @ (whitening @ mean))
            if factorization == "fused":
                first, second = dictionary @ whitening, None
                self.flops_per_position_ = fused_flops
            else:
                first, second = whitening, dictionary
                self.flops_per_position_ = staged_flops
        if self.encoding == "threshold":
            bias = bias - self.threshold
        empty = np.zeros(0)
        if triangle:
            # the hidden layer gets -W mean itself (its norm is needed); the codes no bias
            hidden_bias, center_sq = -(whitening @ mean), np.einsum("kp,kp->k", dictionary, dictionary)
            bias = np.zeros_like(bias)
        else:
            hidden_bias = center_sq = empty
        # Sum of the rows of the first product for each frame offset: M_j 1.
        first_sums = (first.T.reshape(self.width, self.n_mels_, -1).sum(axis=1)
                      if self.normalization == "standardize" else np.zeros((0, 0)))
        # Kernel operands: transposed so every block of frame offset j is a
        # contiguous (n_mels, n_out) slab; float64 master copies, cast per dtype.
        self._operands = {
            np.dtype(np.float64): (
                np.ascontiguousarray(first.T),
                np.zeros((0, 0)) if second is None else np.ascontiguousarray(second.T),
                np.ascontiguousarray(bias),
                np.ascontiguousarray(first_sums),
                np.ascontiguousarray(hidden_bias),
                np.ascontiguousarray(center_sq),
            )
        }
        self._encoding_code = ENCODINGS.index(self.encoding)
        self.n_codes_ = bias.shape[0] * (2 if self.encoding == "split" else 1)
        self.n_features_out_ = self.n_codes_ * len(self.pooling)
        self._do_max, self._do_mean, self._do_std = (s in self.pooling for s in _STATS)

    def _operands_for(self, dtype):
        ops = self._operands.get(dtype)
        if ops is None:
            # Values beyond the dtype's range become inf here; the test of the pooled
            # output then reports them (see _nonfinite_reason).
            with np.errstate(over="ignore"):
                ops = tuple(a.astype(dtype) for a in self._operands[np.dtype(np.float64)])
            self._operands[dtype] = ops  # benign race: every thread computes the same
        return ops

    def tile_rows(self, n_positions):
        """Window positions per GEMM tile for a clip with ``n_positions`` encoded positions.

        The bound does not depend on ``n_positions``: the tiles of a long clip are
        as large as those of a short one.
        """
        first, second = self._operands[np.dtype(np.float64)][:2]
        n_hidden = first.shape[1] if second.shape[0] else 0
        row_bytes = 4 * (n_hidden + self.n_codes_)
        cap = min(max(_TILE_BYTES // row_bytes, _MIN_TILE), _MAX_TILE)
        if self.pool <= cap:
            cap = (cap // self.pool) * self.pool
        # Balance the tiles so the last one is not a small, slow remainder.
        n_tiles = -(-n_positions // cap)
        rows = -(-n_positions // n_tiles)
        if self.pool <= cap:
            rows = min(-(-rows // self.pool) * self.pool, cap)
        return max(1, min(rows, n_positions))

    def __call__(self, frames):
        """Return the pooled codes of one clip's frames.

        Parameters
        ----------
        frames : array-like of shape (n_frames, n_mels)
            Frames of one level, ``n_frames >= width``. float32 and float64
            are kept, other dtypes are computed in float64.

        Returns
        -------
        pooled : ndarray of shape (n_pools, n_features_out_)
            ``n_pools = (n_frames - width + 1) // pool``, or 1 when the clip
            has fewer window positions than one pooling window (the pool then
            covers all of them).
        """
        if (type(frames) is np.ndarray and frames.ndim == 2 and frames.dtype in _KERNEL_DTYPES
                and frames.flags.c_contiguous and frames.shape[0] > 0):
            # Fast path for what transform passes (the checks of as_float_array, minus copies).
            if not all_finite(frames):
                raise ValueError("`frames` contains NaN or infinite values.")
        else:
            frames = as_float_array("frames", frames, ndim=2)
        if frames.shape[1] != self.n_mels_:
            raise ValueError(
                f"`frames` must have n_mels = {self.n_mels_} columns (len(mean) / width = "
                f"{self.n_features_in_} / {self.width}); got frames of shape {frames.shape}."
            )
        if frames.shape[0] < self.width:
            raise ValueError(
                f"`frames` must have at least width = {self.width} frames; got frames of shape {frames.shape}."
            )
        return self._encode(frames)

    def _encode(self, frames):
        """:meth:`__call__` without the checks, for frames msk computed itself.

        ``frames`` must be a C-contiguous, finite float32 or float64 array of shape
        ``(n_frames, n_mels_)`` with ``n_frames >= width``; its values are not tested
        (a pass over the frames costs a few percent of the encoding, and
        ``MultiscaleFeatures.transform`` validates a clip once and derives every level
        from it). Its shape is checked, and the kernel checks every shape it is given,
        so a wrong array raises ValueError instead of being read out of bounds.

        Raises ValueError if the pooled features are not finite (model values, or
        frames, too large for the dtype): the kernel tests each pooled row as it
        writes it, which costs nothing next to the encoding.
        """
        # Shapes are checked here and again by the kernel (which refuses anything it cannot
        # index safely); values are trusted, and the kernel counts non-finite features.
        if frames.ndim != 2 or frames.shape[0] < self.width or frames.shape[1] != self.n_mels_:
            raise ValueError(
                f"`frames` must have shape (n_frames >= width = {self.width}, n_mels = {self.n_mels_}); "
                f"got frames of shape {frames.shape}."
            )
        first, second, bias, first_sums, hidden_bias, center_sq = self._operands_for(frames.dtype)
        n_pools, n_positions = pooled_positions(frames.shape[0], self.width, self.pool)
        tile = self.tile_rows(n_positions)
        n_work = (6 + tile) * self.n_codes_ + (tile * first.shape[1] if second.shape[0] else 0)
        if first_sums.shape[0]:
            n_work += (tile + self.width - 1) * (self.n_mels_ + 3)
        work = np.empty(n_work, dtype=frames.dtype)
        out = np.empty((n_pools, self.n_features_out_), dtype=frames.dtype)
        with SingleThreadedBlas():
            n_bad = _whiten_encode_pool(
                frames, self.width, first, second, bias, self._encoding_code, self.threshold,
                first_sums, self.normalization_eps, hidden_bias, center_sq,
                self.pool, n_positions, tile, self._do_max, self._do_mean, self._do_std, work, out,
            )
        if n_bad:
            raise ValueError(self._nonfinite_reason(frames))
        return out

    def _nonfinite_reason(self, frames):
        """The message for pooled features that are not finite although ``frames`` is."""
        dtype = frames.dtype
        big = max(float(np.abs(a).max(initial=0.0)) for a in self._operands[np.dtype(np.float64)])
        scale = float(np.abs(frames).max(initial=0.0))
        return (
            f"The encoded features are not finite: the model's values are too large for {dtype} "
            f"(largest magnitude of the encoder's matrices and bias {big:.3g}, of the frames "
            f"{scale:.3g}; the largest {dtype} is {float(np.finfo(dtype).max):.3g}). The model's "
            "whitening or dictionary is corrupt or was not fitted on data of this scale."
        )


def _check_matrix(name, value, rows):
    arr = as_float_array(name, value, ndim=2, dtype=np.float64, min_len=0)
    if arr.shape[0] == 0:
        raise ValueError(f"`{name}` must have at least one row ({rows} >= 1); got shape {arr.shape}.")
    return arr


def encode_pool(frames, mean, whitening, dictionary=None, **params):
    """Whiten, encode and pool one level's frames (one-off form of :class:`WindowEncoder`).

    Parameters
    ----------
    frames : array-like of shape (n_frames, n_mels)
        Frames of one level.
    mean, whitening, dictionary, **params
        As for :class:`WindowEncoder`.

    Returns
    -------
    pooled : ndarray of shape (n_pools, n_features)
        See :meth:`WindowEncoder.__call__`.

    Examples
    --------
    >>> import numpy as np
    >>> from msk._encoding import encode_pool
    >>> rng = np.random.default_rng(0)
    >>> frames = rng.standard_normal((100, 8))
    >>> encode_pool(frames, np.zeros(8), np.eye(8), pool=40).shape
    (2, 8)
    """
    return WindowEncoder(mean, whitening, dictionary, **params)(frames)


def standardize_windows(windows, eps, *, chunk=4096):
    """Normalise every row to zero mean and variance ``var / (var + eps)``, in place.

    Row ``x`` becomes ``(x - mean(x)) / sqrt(var(x) + eps)`` (mean and
    population variance over the row's values): the per-window normalisation
    that :class:`WindowEncoder` applies with ``normalization="standardize"``,
    for windows that are materialised (the training sample of
    ``MultiscaleFeatures.fit``). Computed in float64 a chunk of rows at a
    time and stored back in the array's dtype.

    Parameters
    ----------
    windows : ndarray of shape (n_windows, d), float32 or float64, writable
        Windows as rows; modified in place.
    eps : float
        Variance floor (> 0), in the squared units of the values.
    chunk : int, default=4096
        Rows per float64 chunk (the extra memory).

    Returns
    -------
    windows : ndarray
        The same array.

    Examples
    --------
    >>> import numpy as np
    >>> from msk._encoding import standardize_windows
    >>> x = np.array([[1.0, 3.0], [5.0, 5.0]])
    >>> standardize_windows(x, 1.0).round(4).tolist()
    [[-0.7071, 0.7071], [0.0, 0.0]]
    """
    eps = check_float("eps", eps, low=0.0, low_inclusive=False)
    for a in range(0, windows.shape[0], chunk):
        x = windows[a:a + chunk].astype(np.float64)
        x -= x.mean(axis=1, keepdims=True)
        x /= np.sqrt(np.einsum("ij,ij->i", x, x)[:, None] / x.shape[1] + eps)
        windows[a:a + chunk] = x
    return windows
