"""MultiscaleFeatures: audio -> multiscale representation -> windows -> whitening -> dictionary -> pooled features.

Dieleman & Schrauwen 2013, section 2: per level of a multiresolution
spectrogram or a Gaussian/Laplacian pyramid of the log-mel spectrogram,
windows of frames are PCA-whitened (:mod:`msk.pca`), a dictionary is learned
with spherical K-means (:mod:`msk.kmeans`), and every window is encoded and
pooled by one fused kernel (``msk._encoding``). Model files are read and
written by :mod:`msk._persist`.
"""

import itertools
import numbers
import operator
import os
import warnings
from collections import deque
from collections.abc import Iterable

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _persist
from ._blas_threads import SingleThreadedBlas
from ._encoding import ENCODINGS, NORMALIZATIONS, WindowEncoder, check_pooling, pooled_positions, standardize_windows
from ._validation import as_float_array, check_float, check_int, check_option, check_sample_rate
from ._windows import WindowReservoir
from .audio import load_audio, stream
from .kmeans import SphericalKMeans
from .pca import WHITENINGS, PCAWhitening, whitening_matrix
from .pyramid import gaussian_pyramid, laplacian_pyramid
from .spectral import log_melspectrogram

__all__ = ["MultiscaleFeatures", "track_vector"]

# The multiscale representations, in the order the experiment and the CLI list them.
REPRESENTATIONS = ("multiresolution", "gaussian", "laplacian")
# What happens to the partial pooling window at the end of a clip (see MultiscaleFeatures.transform).
LAST_WINDOWS = ("drop", "pad", "keep")
# How a clip's window features become one track vector (see track_vector), and how many
# times n_features wide each track vector is.
SUMMARIES = ("mean", "mean+max", "mean+std")
SUMMARY_WIDTHS = {"mean": 1, "mean+max": 2, "mean+std": 2}
# Normalisations of each level's pooled rows (see MultiscaleFeatures' pooled_normalization).
POOLED_NORMALIZATIONS = ("none", "power", "standardize", "power+standardize")
# "standardize": the per-dimension statistics are learned from the pooled rows of at most
# _STANDARDIZE_CLIPS training clips (a uniform sample); each standard deviation is floored
# at _STD_FLOOR times the mean standard deviation of its level.
_STANDARDIZE_CLIPS = 256
_STD_FLOOR = 1e-2
# Audio longer than _WHOLE_FRAMES level-0 frames (8192 frames = 4.4 min at the default
# analysis; every 30 s clip is shorter) is processed in segments of about _SEGMENT_FRAMES
# frames (2.2 min). The pyramids need context around a segment (see _PYRAMID_CONTEXT), so
# their segments are long; the multiresolution spectrograms need none beyond the audio under
# the FFT windows, and keep every level's frames, so theirs are short. Spectrograms are
# computed _PIECE_FRAMES frames at a time; audio is read in msk.audio.stream's blocks
# (_READ_BLOCK: None is its default).
_WHOLE_FRAMES = 8192
_SEGMENT_FRAMES = 4096
_SEGMENT_FRAMES_MULTIRES = 1024
_PIECE_FRAMES = 512
_READ_BLOCK = None
# Frames of context kept on both sides of a segment at every pyramid level (in that
# level's frames): the Laplacian level l at frame i depends on frames i-4 .. i+4 of
# Gaussian level l and, through the expansion, on level l + 1; 5 covers both borders.
_PYRAMID_CONTEXT = 5

def _is_clip_collection(clips):
    return not isinstance(clips, (str, bytes, os.PathLike, np.ndarray)) and isinstance(
        clips, Iterable
    )




def _looks_numeric(clip):
    """A list or tuple of numbers (or of rows of numbers) is one waveform or spectrogram."""
    if not isinstance(clip, (list, tuple)) or not clip:
        return False
    first = clip[0]
    return isinstance(first, numbers.Number) or (
        isinstance(first, (list, tuple, np.ndarray)) and len(first) > 0
        and isinstance(first[0], numbers.Number)
    )


def _check_clip_type(clip):
    if isinstance(clip, (bytes, dict)) or clip is None:
        raise TypeError(
            f"a clip must be an audio file path, a waveform or a spectrogram; got {type(clip).__name__}."
        )


def _clip_name(clip, i):
    return repr(os.fspath(clip)) if isinstance(clip, (str, os.PathLike)) else f"clip {i}"


class _Samples:
    """A sliding window over a stream of sample blocks, zero outside the signal.

    Blocks are kept as they come (no concatenation), so the memory held is the
    blocks overlapping the current segment plus the segment's own copy.
    """

    def __init__(self, blocks):
        self._blocks = iter(blocks)
        self._held = deque()  # (signal index of the block's first sample, block)
        self.end = 0  # signal index one past the last held sample
        self.eof = False

    def fill(self, stop):
        """Read until the held samples reach sample ``stop`` or the signal ends."""
        while not self.eof and self.end < stop:
            try:
                block = next(self._blocks)
            except StopIteration:
                self.eof = True
                break
            if block.shape[0]:
                self._held.append((self.end, block))
                self.end += block.shape[0]

    def drop(self, start):
        """Forget the blocks that end before ``start``."""
        while self._held and self._held[0][0] + self._held[0][1].shape[0] <= start:
            self._held.popleft()

    def read(self, start, stop):
        """Samples ``start .. stop`` (zeros outside the signal); needs ``fill(stop)`` first."""
        out = np.zeros(stop - start, dtype=np.float32)
        for first, block in self._held:
            lo, hi = max(start, first), min(stop, first + block.shape[0])
            if hi > lo:
                out[lo - start : hi - start] = block[lo - first : hi - first]
        return out


class _ClipSample:
    """A uniform random sample of at most ``size`` clips of a stream (Algorithm R), seeded.

    Clips are kept as given (a path, or a reference to an array).
    """

    def __init__(self, size, seed):
        self.size = size
        self.clips = []
        self._seen = 0
        self._rng = np.random.RandomState(seed)

    def offer(self, clip):
        if len(self.clips) < self.size:
            self.clips.append(clip)
        else:
            j = self._rng.randint(0, self._seen + 1)
            if j < self.size:
                self.clips[j] = clip
        self._seen += 1


def _no_progress(stage, level, done, total, value):
    """The default ``progress`` of :meth:`MultiscaleFeatures.fit`: report nothing."""


def _same_param(a, b):
    """Whether two parameter values are equal (tuples and lists alike, arrays element-wise)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_param(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b


class MultiscaleFeatures(BaseEstimator):
    """Multiscale features of music audio (Dieleman & Schrauwen 2013).

    Every clip becomes a multiscale time-frequency representation of
    ``levels`` levels (multiresolution spectrograms, or a Gaussian or Laplacian
    pyramid of the log-mel spectrogram). At each level, windows of ``width``
    consecutive frames are PCA-whitened (:class:`PCAWhitening`), a dictionary
    of ``n_clusters`` unit-norm atoms is learned with spherical K-means
    (:class:`SphericalKMeans`), and every window position is encoded linearly
    (``D W (x - mean)``) and max-pooled over pooling windows of about 4 s. The
    pooled features of all levels are concatenated: one feature vector per
    pooling window [1]_.

    Parameters
    ----------
    representation : {"laplacian", "gaussian", "multiresolution"}, default="laplacian"
        The multiscale representation. "multiresolution": log-mel spectrograms
        with ``n_fft = 1024 * 2**l`` (same frames at every level); "gaussian":
        Gaussian pyramid of the log-mel spectrogram along time (level ``l`` has
        ``ceil(T / 2**l)`` frames); "laplacian": its Laplacian pyramid.
    levels : int, default=6
        Number of levels, 1 to 8 (1 is the single-scale baseline: the plain log-mel).
    width : int, default=1
        Frames per window ``w`` (the paper uses 1, 2 and 4).
    n_clusters : int, sequence of int or None, default=500
        Dictionary size ``K`` per level: one int for every level, or one
        positive int per level (``levels`` of them, finest level first).
        ``None`` gives the PCA-only features (the whitened components
        themselves, "PMSC" in the paper).
    pool_size : int, default=128
        Pooling window at level 0, in frames (128 frames of 32 ms = 4.1 s).
        Pyramid level ``l`` pools ``max(1, pool_size // 2**l)`` positions so that the
        pooling windows line up across levels; multiresolution levels pool ``pool_size``.
    n_samples : int, default=200_000
        Training windows sampled uniformly at random per level (reservoir
        sampling over all clips: memory is bounded whatever the number of clips).
    variance : float, default=0.99
        Fraction of the variance kept by the PCA whitening.
    eps : float, default=1e-5
        Whitening regulariser, relative to the mean eigenvalue (see :class:`PCAWhitening`).
    whitening : {"pca", "zca"}, default="pca"
        :class:`PCAWhitening`'s ``whitening``. "zca" rotates the whitened
        components back into the window space (``width * n_mels``
        dimensions), where the dictionary is then learned. Spherical K-means
        sees only dot products, which the rotation keeps: from rotated
        starting points it learns the rotated dictionary and the same
        features, so with a dictionary "zca" differs from "pca" only through
        its random start (drawn in the larger space) and costs more to fit.
        It changes the PCA-only features (``n_clusters=None``).
    encoding : {"linear", "threshold", "split", "triangle"}, default="linear"
        "linear" is the paper's ``f = D W (x - mean)``; "threshold" is Coates &
        Ng's ``max(0, f - threshold)``; "split" their both-sign split
        ``[max(0, f - threshold), max(0, -f - threshold)]``, ``2 K`` codes per
        level (the K positive halves, then the K negative ones); "triangle"
        Coates et al.'s ``max(0, mean_k(z) - z_k)`` with ``z_k`` the distance
        from the unit-length whitened window to atom ``k`` [3]_ (it needs
        ``n_clusters``).
    threshold : float, default=0.25
        Threshold of ``encoding="threshold"`` and ``"split"``.
    window_normalization : {"none", "standardize"}, default="none"
        "standardize" is Coates & Ng's brightness and contrast normalisation:
        every window ``x`` (``width * n_mels`` values) becomes
        ``(x - mean(x)) / sqrt(var(x) + eps_l)`` before whitening, the same in
        ``fit`` (the training windows, before PCA) and :meth:`transform`. It
        removes the window's loudness and scales its spectral contrast to one.
    window_normalization_eps : float, default=0.1
        Variance floor of "standardize", relative to the level's mean window
        variance: ``eps_l = window_normalization_eps * mean(var(x))`` over the
        level's training windows (``window_eps_``). Relative, because the
        levels' scales differ: on log-mel frames a window's variance is ~15
        (natural-log units squared) at every Gaussian level but 0.05-1 at the
        band-pass Laplacian levels, so no single absolute floor suits them all.
        With 0.1, a window of the level's typical variance ends with variance
        0.91 (close to Coates & Ng's unit contrast), and no window is scaled up
        more than ``sqrt(10)`` times as much as a typical one: low-contrast
        windows (near silence, a steady hum) keep their small contrast instead
        of having their noise blown up to unit variance.
    pooling : {"max", "mean", "std"} or tuple of them, default="max"
        Statistics over each pooling window, concatenated in the order max,
        mean, std. "max" is the paper's.
    pooled_normalization : {"none", "power", "standardize", "power+standardize"}, default="none"
        Normalisation of each row of :meth:`transform`'s result, after
        pooling. "none" is the paper's. "power": each level's part of the
        row gets a signed square root, ``sign(f) sqrt(|f|)``, and is then
        divided by its L2 norm (the improved Fisher vector's normalisation
        [4]_; a level's part that is all zero stays zero). "standardize":
        every column has the mean subtracted and is divided by the standard
        deviation that ``fit`` measured on the pooled rows of the training
        clips (at most 256 clips, sampled with ``random_state``; each
        standard deviation is floored at 1 % of the mean standard deviation
        of its level). "power+standardize": "power", then "standardize"
        (its statistics measured after "power"). "power" leaves the
        ``envelope`` columns as they are (they are logarithms already).
    envelope : bool, default=False
        Append to every row the log of the mean mel power of every band over
        the row's pooling window, ``log(mean_t(mel[t, b]) + log_offset)``
        over the level-0 frames ``t`` from ``r * pool_size`` to ``(r + 1) *
        pool_size`` (to the end of the clip for a last partial window):
        ``n_mels`` more columns, after all levels'. The dictionary codes are
        whitened, so the level and the long-term spectrum of the sound weigh
        no more in them than any other direction, and the mean *log*-mel is a
        poor measure of either (bands near silence sit at
        ``log(log_offset)`` and swamp it); the mean *power* of each band keeps
        both. Computed from the log-mel frames the levels are built from, in
        float32, with each band's largest value factored out.
    max_iter : int, default=20
        Spherical K-means iterations.
    sr : int, default=16000
        Sampling rate at which audio is analysed (files are resampled to it;
        waveforms given as arrays must already be at this rate).
    log_offset : float, default=1e-10
        ``log(mel + log_offset)`` compression of the mel spectrogram. It
        also covers the ``log1p(C * mel)`` compression:
        ``log1p(C * mel) = log(C) + log(mel + 1 / C)``, and the constant
        ``log(C)`` changes no feature (the pyramids' smoothing keeps
        constants, a Laplacian level other than the coarsest removes them,
        and the PCA mean removes what is left), so ``log_offset=1 / C`` gives
        the features of ``log1p(C * mel)``. The default is the paper's.
    random_state : int, RandomState instance or None, default=None
        Seeds window sampling and the K-means initialisation of every level.

    Attributes
    ----------
    pca_ : list of PCAWhitening
        The whitening of each level.
    kmeans_ : list of SphericalKMeans or None
        The dictionary of each level (None when ``n_clusters`` is None).
    n_mels_ : int
        Mel bands of the training spectrograms.
    n_features_out_ : int
        Columns of :meth:`transform`'s result.
    n_features_per_level_ : list of int
        Columns of each level in :meth:`transform`'s result (level 0's
        first); the ``envelope`` columns, if any, are the ``n_mels_`` after them.
    window_eps_ : list of float or None
        Each level's absolute variance floor of ``window_normalization``
        (None without it).
    n_clips_ : int
        Clips used for fitting.
    pooled_mean_, pooled_std_ : ndarray of shape (n_features_out_,) or None
        The per-column mean and (floored) standard deviation of
        ``pooled_normalization``'s "standardize" (float64); None without it.
    skipped_ : list of tuple (str, str)
        Clips that could not be read during ``fit`` and their reasons.

    See Also
    --------
    PCAWhitening, SphericalKMeans : the per-level learners.
    log_melspectrogram, multiresolution, gaussian_pyramid, laplacian_pyramid :
        the representations.

    Notes
    -----
    Clips may be given as audio file paths, as mono waveforms at ``sr`` Hz
    (1-D arrays), or as precomputed log-mel spectrograms of shape
    ``(n_frames, n_mels)`` (2-D arrays; not for "multiresolution", which needs
    the audio). Features are computed in float32, and the fitted principal
    axes are kept at float32 precision (so a saved model is half the size and
    loads bit-identical); the rest of the whitening is float64.

    By default (``last_window="drop"``, the paper's setting) pooling keeps
    only full pooling windows; the number of pooling windows is the smallest
    over the levels (coarse levels lose a window to the width of the encoding
    windows first), and every level is cut to it. A clip shorter than one
    pooling window gives one pooling window over all it has. A level with
    fewer frames than ``width`` (a very short clip at a coarse pyramid level)
    is padded by repeating its edge frames. :meth:`transform`'s
    ``last_window="keep"`` also pools the partial window at the end of the
    clip over what there is, and ``"pad"`` fills it with silence; see
    :meth:`n_pools` and :meth:`window_times` for the rows and the seconds
    each covers.

    The class is a scikit-learn estimator (``get_params``, ``set_params``,
    ``clone``) but deliberately not a ``TransformerMixin``: a sample is a
    whole clip and its features are a matrix with one row per pooling window,
    whose number depends on the clip's length, so there is no fixed-width
    ``(n_samples, n_features)`` output a ``Pipeline`` step could pass on.
    :meth:`transform` takes one clip; :meth:`fit_transform` returns a list.
    To use the features in a ``Pipeline``, reduce each clip to one row first
    (e.g. its mean over pooling windows) or put its rows into the pipeline
    with the clip as a group.

    References
    ----------
    .. [1] S. Dieleman and B. Schrauwen, "Multiscale approaches to music audio
       feature learning", ISMIR 2013.
    .. [2] A. Coates and A. Y. Ng, "Learning feature representations with
       K-means", Neural Networks: Tricks of the Trade, Springer, 2012.
    .. [3] A. Coates, H. Lee and A. Y. Ng, "An analysis of single-layer
       networks in unsupervised feature learning", AISTATS 2011.
    .. [4] F. Perronnin, J. Sánchez and T. Mensink, "Improving the Fisher
       kernel for large-scale image classification", ECCV 2010.

    Examples
    --------
    >>> import msk
    >>> model = msk.MultiscaleFeatures("laplacian", levels=3, n_clusters=16,
    ...                                n_samples=2000, random_state=0)
    >>> model = model.fit([msk.example_audio()])
    >>> F = model.transform(msk.example_audio())
    >>> F.shape, F.dtype
    ((7, 48), dtype('float32'))
    """

    def __init__(self, representation="laplacian", *, levels=6, width=1, n_clusters=500, pool_size=128,
                 n_samples=200_000, variance=0.99, eps=1e-5, encoding="linear", threshold=0.25,
                 window_normalization="none", window_normalization_eps=0.1,
                 pooling="max", max_iter=20, sr=16000, n_fft=1024, hop_length=512, n_mels=200,
                 log_offset=1e-10, whitening="pca", pooled_normalization="none", envelope=False,
                 random_state=None):
        self.representation = representation
        self.levels = levels
        self.width = width
        self.n_clusters = n_clusters
        self.pool_size = pool_size
        self.n_samples = n_samples
        self.variance = variance
        self.eps = eps
        self.encoding = encoding
        self.threshold = threshold
        self.window_normalization = window_normalization
        self.window_normalization_eps = window_normalization_eps
        self.pooling = pooling
        self.max_iter = max_iter
        self.sr = sr
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.log_offset = log_offset
        self.whitening = whitening
        self.pooled_normalization = pooled_normalization
        self.envelope = envelope
        self.random_state = random_state

    # -- parameters and representations ------------------------------------------------------

    # Parameters that only steer fitting; every other one defines the fitted arrays or the output.
    _FIT_ONLY_PARAMS = ("n_samples", "max_iter", "random_state")

    def set_params(self, **params):
        """Set parameters; on a fitted model, refuse those that fitting has fixed.

        A fitted model's dictionaries, whitening and pooling were computed
        with its parameters, so changing ``pool_size``, ``levels``, ``n_clusters``,
        ... afterwards would make ``transform`` and a saved copy disagree.
        Only ``n_samples``, ``max_iter`` and ``random_state`` (which act in
        ``fit`` alone) may change; setting a parameter to its current value
        is always allowed.

        Parameters
        ----------
        **params
            Estimator parameters.

        Returns
        -------
        self : MultiscaleFeatures

        Raises
        ------
        ValueError
            If the model is fitted and a parameter other than the fit-only
            ones would change; the message names them. Refit (``fit``) a
            clone with the new parameters instead.
        """
        if hasattr(self, "pca_"):
            current = self.get_params(deep=False)
            fixed = sorted(
                k for k, v in params.items()
                if k in current and k not in self._FIT_ONLY_PARAMS and not _same_param(current[k], v)
            )
            if fixed:
                raise ValueError(
                    f"cannot change {', '.join(map(repr, fixed))} of a fitted MultiscaleFeatures: the "
                    "fitted arrays depend on them. Fit a new model, e.g. "
                    "sklearn.base.clone(model).set_params(...).fit(clips)."
                )
        return super().set_params(**params)


    def _check_params(self):
        check_option("representation", self.representation, REPRESENTATIONS)
        check_int("levels", self.levels, low=1, high=8)
        check_int("width", self.width, low=1)
        self._level_clusters()
        check_int("pool_size", self.pool_size, low=1)
        check_int("n_samples", self.n_samples, low=1)
        check_int("max_iter", self.max_iter, low=1)
        check_sample_rate("sr", self.sr)
        n_fft = check_int("n_fft", self.n_fft, low=16, high=65536)
        if n_fft & (n_fft - 1):
            raise ValueError(f"`n_fft` must be a power of two from 16 to 65536; got {n_fft}.")
        if self.representation == "multiresolution" and n_fft << (self.levels - 1) > 65536:
            raise ValueError(
                f"`levels`={self.levels} is too many for n_fft={n_fft} with 'multiresolution': "
                f"level {self.levels - 1} would need an FFT of {n_fft << (self.levels - 1)} > 65536 points."
            )
        check_int("hop_length", self.hop_length, low=1)
        check_int("n_mels", self.n_mels, low=1)
        check_float("log_offset", self.log_offset, low=0.0, low_inclusive=False)
        check_option("whitening", self.whitening, WHITENINGS)
        check_option("pooled_normalization", self.pooled_normalization, POOLED_NORMALIZATIONS)
        if not isinstance(self.envelope, (bool, np.bool_)):
            raise TypeError(f"`envelope` must be True or False; got {self.envelope!r}.")
        # the encoder validates encoding, threshold and pooling; fail before the slow part
        check_pooling(self.pooling)
        check_option("encoding", self.encoding, ENCODINGS)
        check_float("threshold", self.threshold)
        if self.encoding == "triangle" and self.n_clusters is None:
            raise ValueError("`encoding`='triangle' needs a dictionary; got n_clusters=None.")
        check_option("window_normalization", self.window_normalization, NORMALIZATIONS)
        check_float("window_normalization_eps", self.window_normalization_eps, low=0.0, low_inclusive=False)

    def _level_clusters(self):
        """``n_clusters`` as one K per level (a list), or None for PCA-only features."""
        k = self.n_clusters
        if k is None:
            return None
        if isinstance(k, (str, bytes)) or not isinstance(k, (numbers.Integral, Iterable)):
            raise TypeError(
                f"`n_clusters` must be an integer, a sequence of one integer per level, or None; got {k!r}."
            )
        if isinstance(k, numbers.Integral):
            return [check_int("n_clusters", k, low=1)] * self.levels
        ks = list(k)
        if len(ks) != self.levels:
            raise ValueError(
                f"`n_clusters` must have one entry per level (levels={self.levels}); got {len(ks)}: {k!r}."
            )
        return [check_int(f"n_clusters[{lev}]", v, low=1) for lev, v in enumerate(ks)]

    def _level_pool(self, level):
        if self.representation == "multiresolution":
            return self.pool_size
        return max(1, self.pool_size >> level)

    def pooling_geometry(self):
        """Each level's frame step and pooling window, from the parameters.

        Returns
        -------
        geometry : list of tuple (int, int)
            Per level, finest first: ``(step, pool)``, the level-0 frames per
            frame of the level (``2**l`` in a pyramid, 1 for multiresolution)
            and the pooling window in the level's own window positions. A
            pooling window spans ``step * pool`` level-0 frames at every level.

        Examples
        --------
        >>> import msk
        >>> msk.MultiscaleFeatures("laplacian", levels=3).pooling_geometry()
        [(1, 128), (2, 64), (4, 32)]
        """
        pyramid = self.representation != "multiresolution"
        return [(1 << lev if pyramid else 1, self._level_pool(lev)) for lev in range(self.levels)]

    def n_pools(self, n_frames, last_window="drop"):
        """Rows of :meth:`transform`'s result for a clip of ``n_frames`` level-0 frames.

        Parameters
        ----------
        n_frames : int
            Frames of the clip's level-0 spectrogram (``1 + n_samples // hop_length``).
        last_window : {"drop", "pad", "keep"}, default="drop"
            "drop": the number of full pooling windows, the smallest over the
            levels (a clip shorter than one pooling window has one). "keep"
            and "pad": the pooling windows that hold at least one of level 0's
            window positions, ``ceil((n_frames - width + 1) / pool_size)``, so
            that every frame is in a row.

        Returns
        -------
        n_pools : int

        Examples
        --------
        >>> import msk
        >>> model = msk.MultiscaleFeatures("laplacian")
        >>> model.n_pools(913), model.n_pools(913, last_window="keep")  # a 29.2 s clip
        (7, 8)
        """
        n_frames = check_int("n_frames", n_frames, low=1)
        check_option("last_window", last_window, LAST_WINDOWS)
        w = self.width
        if last_window != "drop":
            if any(step * pool > self.pool_size for step, pool in self.pooling_geometry()):
                raise ValueError(
                    f"last_window={last_window!r} needs pooling windows that line up across levels: "
                    f"pool_size={self.pool_size} is smaller than 2**(levels - 1) = {1 << (self.levels - 1)}, "
                    "so the coarsest levels pool longer windows than level 0. Use last_window='drop' "
                    "or a model with a larger pool_size."
                )
            return -(-(max(n_frames, w) - w + 1) // self.pool_size)
        return min(pooled_positions(max(-(-n_frames // step), w), w, pool)[0]
                   for step, pool in self.pooling_geometry())

    def window_times(self, n_frames, *, last_window="drop", duration=None):
        """Start and end (seconds) of each row of :meth:`transform`'s result.

        Row ``i`` covers level-0 frames ``i * pool_size`` to
        ``(i + 1) * pool_size - 1``; frame ``t`` is centred on sample
        ``t * hop_length`` and taken to cover ``hop_length`` samples from
        there, so the row covers ``[i, i + 1) * pool_size * hop_length / sr``
        seconds (4.096 s with the defaults). No row ends after ``duration``.
        The last row ends at ``duration`` when it reaches the end of the
        audio: always with "keep" and "pad" (whose last window is the partial
        one, or full when the audio ends on a window boundary), and with
        "drop" for a clip shorter than one pooling window.

        Parameters
        ----------
        n_frames : int
            Frames of the clip's level-0 spectrogram (``1 + n_samples // hop_length``).
        last_window : {"drop", "pad", "keep"}, default="drop"
            The policy the features were computed with (see :meth:`transform`).
        duration : float or None, default=None
            The audio's duration in seconds (``n_samples / sr``). None: the
            span of the frames, ``n_frames * hop_length / sr`` (for a
            spectrogram, whose audio is not known).

        Returns
        -------
        start, end : ndarray of shape (n_pools,), dtype float64
            ``n_pools = self.n_pools(n_frames, last_window)``.

        Examples
        --------
        >>> import msk
        >>> model = msk.MultiscaleFeatures("laplacian")
        >>> start, end = model.window_times(100, duration=3.2)  # shorter than a window
        >>> start.tolist(), end.tolist()
        ([0.0], [3.2])
        >>> start, end = model.window_times(329, last_window="keep", duration=10.5)
        >>> start.tolist(), end.tolist()
        ([0.0, 4.096, 8.192], [4.096, 8.192, 10.5])
        """
        n = self.n_pools(n_frames, last_window)
        if duration is None:
            duration = n_frames * self.hop_length / self.sr
        else:
            duration = check_float("duration", duration, low=0.0)
        step = self.pool_size * self.hop_length / self.sr
        start = np.arange(n, dtype=np.float64) * step
        end = np.minimum(start + step, duration)
        short = max(n_frames, self.width) - self.width + 1 < self.pool_size
        if last_window != "drop" or short:
            end[-1] = duration
        return start, end

    def _pad_frames(self, n_frames):
        """Level-0 frames after ``last_window="pad"``: every level holds n_pools(keep) full windows."""
        n_rows = self.n_pools(n_frames, "keep")
        w = self.width
        # level l (``step`` level-0 frames per frame) needs n_rows * pool + w - 1 frames
        return max([n_frames] + [step * (n_rows * pool + w - 2) + 1 for step, pool in self.pooling_geometry()])

    def represent(self, clip):
        """The multiscale representation of one clip (finest level first).

        Parameters
        ----------
        clip : str, os.PathLike or array-like
            An audio file, a mono waveform at ``sr`` Hz of shape (n_samples,),
            or a log-mel spectrogram of shape (n_frames, n_mels).

        Returns
        -------
        levels : list of ndarray of shape (n_frames_l, n_mels), dtype float32
            The ``levels`` levels of the representation.

        Examples
        --------
        >>> import msk
        >>> model = msk.MultiscaleFeatures("gaussian", levels=3)
        >>> [S.shape for S in model.represent(msk.example_audio())]
        [(913, 200), (457, 200), (229, 200)]
        """
        self._check_params()
        return self._represent(clip)

    def _represent(self, clip):
        if isinstance(clip, (str, os.PathLike)):
            y = load_audio(clip, sr=self.sr)
        else:
            _check_clip_type(clip)
            a = np.asarray(clip)
            if a.ndim == 2:
                if self.representation == "multiresolution":
                    raise ValueError(
                        "representation='multiresolution' needs audio (a file or a waveform), "
                        f"not a spectrogram; got an array of shape {a.shape}."
                    )
                S = as_float_array("clip", a, ndim=2, dtype=np.float32)
                return self._pyramid(S)
            if a.ndim != 1:
                raise ValueError(
                    "a clip array must be a waveform of shape (n_samples,) or a spectrogram "
                    f"of shape (n_frames, n_mels); got shape {a.shape}."
                )
            y = as_float_array("clip", a, ndim=1, dtype=np.float32)
        return self._waveform_levels(y)

    def _log_mel(self, y, n_fft, *, center=True):
        if center and y.shape[0] < n_fft:
            # A clip shorter than one FFT is legitimate here: the centring zeros are added
            # explicitly (the same frames as center=True, without its warning).
            y, center = np.pad(y, n_fft // 2), False
        return log_melspectrogram(y, sr=self.sr, n_fft=n_fft, hop_length=self.hop_length, n_mels=self.n_mels,
                              log_offset=self.log_offset, center=center)

    def _waveform_levels(self, y):
        """The representation of a whole waveform (float32, at ``sr``)."""
        return self._levels_and_log_mel(y)[0]

    def _levels_and_log_mel(self, y):
        """(levels, log-mel frames at ``n_fft``) of a whole waveform: the frames the envelope is measured on."""
        if self.representation == "multiresolution":
            levels = [self._log_mel(y, self.n_fft << lev) for lev in range(self.levels)]
            return levels, levels[0]
        S = self._log_mel(y, self.n_fft)
        return self._pyramid(S), S

    def _pyramid(self, S):
        if self.representation == "gaussian":
            return gaussian_pyramid(S, levels=self.levels)
        return laplacian_pyramid(S, levels=self.levels)

    def _padded(self, frames):
        w = self.width
        if frames.shape[0] >= w:
            return frames
        return np.ascontiguousarray(np.pad(frames, ((0, w - frames.shape[0]), (0, 0)), mode="edge"))

    # -- fitting -----------------------------------------------------------------------------

    def fit(self, clips, y=None, *, progress=None):
        """Learn the whitening and the dictionary of every level from ``clips``.

        Parameters
        ----------
        clips : iterable of clips
            Audio file paths, waveforms at ``sr`` Hz or log-mel spectrograms
            (see :meth:`represent`). Iterated once; a generator is fine. Files
            that cannot be read are skipped and listed in ``skipped_`` (with a
            warning); fitting fails only if no clip is usable. With
            ``pooled_normalization`` "standardize", a uniform sample of at most
            256 of the clips is transformed once more after the dictionaries
            are learned (their files are read again; clips given as arrays are
            held until then).
        y : None
            Ignored.
        progress : callable or None, default=None
            Called as ``progress(stage, level, done, total, value)`` as the
            fit advances; None (the default) reports nothing. The stages are

            - ``"sample"`` after every clip read (``level`` None, ``done``
              clips so far, ``total`` the number of clips or None for an
              iterable without a length, ``value`` None; skipped files count);
            - ``"pca"`` after each level's whitening (``done = level + 1``
              of ``total = levels``, ``value`` the components kept);
            - ``"kmeans"`` after each K-means iteration of a level (``done``
              the iteration, ``total`` ``max_iter``, ``value`` the objective
              reported by :meth:`SphericalKMeans.fit`'s ``callback``).

        Examples
        --------
        >>> import numpy as np
        >>> from msk import MultiscaleFeatures
        >>> rng = np.random.default_rng(0)
        >>> clips = [rng.standard_normal((200, 16)).astype(np.float32) for _ in range(3)]
        >>> events = []
        >>> model = MultiscaleFeatures(levels=2, n_clusters=4, max_iter=3, random_state=0).fit(
        ...     clips, progress=lambda *e: events.append(e[:4]))
        >>> events[:4]
        [('sample', None, 1, 3), ('sample', None, 2, 3), ('sample', None, 3, 3), ('pca', 0, 1, 2)]

        Returns
        -------
        self : MultiscaleFeatures
            The fitted model.
        """
        self._check_params()
        if not _is_clip_collection(clips):
            raise TypeError(
                "`clips` must be an iterable of clips (paths, waveforms or spectrograms); got "
                f"{type(clips).__name__}. Wrap a single clip in a list."
            )
        if progress is None:
            progress = _no_progress
        elif not callable(progress):
            raise TypeError(f"`progress` must be a callable or None; got {type(progress).__name__}.")
        total = len(clips) if hasattr(clips, "__len__") else None
        rng = check_random_state(self.random_state)
        seeds = rng.randint(0, 2**31 - 1, size=(self.levels, 2))
        reservoirs = [
            WindowReservoir(self.width, self.n_samples, random_state=int(seeds[lev, 0]))
            for lev in range(self.levels)
        ]
        skipped, n_clips, n_mels = [], 0, None
        standardize = self.pooled_normalization.endswith("standardize")
        sample = _ClipSample(_STANDARDIZE_CLIPS, rng.randint(0, 2**31 - 1)) if standardize else None
        for i, clip in enumerate(clips):
            try:
                levels = self._represent(clip)
            except (OSError, ValueError) as exc:
                if not isinstance(clip, (str, os.PathLike)):
                    raise
                skipped.append((os.fspath(clip), str(exc)))
                progress("sample", None, i + 1, total, None)
                continue
            if n_mels is None:
                n_mels = levels[0].shape[1]
            elif levels[0].shape[1] != n_mels:
                raise ValueError(
                    f"every clip must have {n_mels} mel bands like the first; {_clip_name(clip, i)} "
                    f"has {levels[0].shape[1]}."
                )
            for res, frames in zip(reservoirs, levels):
                res.update(self._padded(frames), name="clip")
            if sample is not None:
                sample.offer(clip)
            n_clips += 1
            progress("sample", None, i + 1, total, None)
        if skipped:
            listed = "; ".join(f"{p}: {r}" for p, r in skipped[:5])
            more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
            warnings.warn(
                f"{len(skipped)} clip(s) could not be read and were skipped: {listed}{more}. "
                "They are listed in `skipped_`.",
                UserWarning,
                stacklevel=2,
            )
        if n_clips == 0:
            raise ValueError("`clips` holds no usable clip: nothing to fit.")
        pcas, kms, window_eps = [], [], []
        level_k = self._level_clusters()
        for lev, res in enumerate(reservoirs):
            X = res.windows()
            if level_k is not None and X.shape[0] < level_k[lev]:
                raise ValueError(
                    f"level {lev} has only {X.shape[0]} training windows, fewer than "
                    f"`n_clusters`={level_k[lev]}; give more clips or lower n_clusters."
                )
            if X.shape[0] < 2:
                raise ValueError(
                    f"level {lev} has only {X.shape[0]} training window(s); at least 2 are needed "
                    "to estimate a covariance. Give more or longer clips."
                )
            if self.window_normalization == "standardize":
                window_eps.append(self._window_eps(X))
                standardize_windows(X, window_eps[-1])  # the reservoir's own buffer: no copy
            pca = PCAWhitening(variance=self.variance, eps=self.eps, whitening=self.whitening).fit(X)
            # Features are float32: keep the principal axes at float32 precision too, so that a
            # saved model stores them as float32 (half the size) and loads bit-identical.
            pca.components_ = pca.components_.astype(np.float32).astype(np.float64)
            pca.whitening_ = whitening_matrix(pca.components_, pca.explained_variance_, pca.eps_, self.whitening)
            pcas.append(pca)
            progress("pca", lev, lev + 1, self.levels, int(pca.n_components_))
            if level_k is None:
                kms.append(None)
                continue
            Z = pca.transform(X)
            del X
            kms.append(
                SphericalKMeans(n_clusters=level_k[lev], max_iter=self.max_iter,
                                random_state=int(seeds[lev, 1])).fit(
                    Z, callback=lambda it, obj, lev=lev: progress("kmeans", lev, it, self.max_iter, obj))
            )
        self.pca_ = pcas
        self.kmeans_ = kms if level_k is not None else None
        self.window_eps_ = window_eps or None
        self.n_mels_ = int(n_mels)
        self.n_clips_ = n_clips
        self.skipped_ = skipped
        self.pooled_mean_ = self.pooled_std_ = None
        self._build_encoders()
        if standardize:
            self._fit_standardization(sample.clips)
        return self

    def _window_eps(self, X):
        """The absolute variance floor of one level: relative eps times the mean window variance."""
        var = sum(float(np.var(X[a:a + 4096], axis=1, dtype=np.float64).sum())
                  for a in range(0, X.shape[0], 4096)) / X.shape[0]
        # all training windows constant (silence): no scale to be relative to
        return float(self.window_normalization_eps * var) if var > 0 else float(self.window_normalization_eps)

    def _fit_standardization(self, clips):
        """``pooled_mean_`` and ``pooled_std_`` from the pooled rows of ``clips`` (after "power")."""
        rows = np.vstack([self._normalize_pooled(self._features(clip, None, "drop")[0], standardize=False)
                          for clip in clips]).astype(np.float64)
        mean, std = rows.mean(axis=0), rows.std(axis=0)
        start = 0
        for n in self._blocks():
            level = std[start:start + n]
            floor = _STD_FLOOR * level.mean()
            np.maximum(level, floor if floor > 0 else 1.0, out=level)
            start += n
        self.pooled_mean_, self.pooled_std_ = mean, std

    def _normalize_pooled(self, F, standardize=True):
        """``pooled_normalization`` of the float32 rows ``F``, in place (``F`` is returned)."""
        norm = self.pooled_normalization
        if norm.startswith("power"):
            widths = self.n_features_per_level_
            F_all, F = F, F[:, :sum(widths)]  # the envelope's columns (logarithms) stay as they are
            root = np.abs(F)
            # each level's L2 norm after the signed square root is sqrt(sum |f|) over the level
            sums = np.add.reduceat(root, np.cumsum([0] + widths[:-1]), axis=1, dtype=np.float64)
            np.sqrt(root, out=root)
            np.copysign(root, F, out=F)
            norms = np.sqrt(sums).astype(np.float32)
            norms[norms == 0] = 1  # a level's part that is all zero stays zero
            F /= np.repeat(norms, widths, axis=1)
            F = F_all
        if standardize and norm.endswith("standardize"):
            F -= self.pooled_mean_.astype(np.float32)
            F /= self.pooled_std_.astype(np.float32)
        return F

    def _build_encoders(self):
        self._encoders = [
            WindowEncoder(
                pca.mean_, pca.whitening_,
                None if self.kmeans_ is None else self.kmeans_[lev].cluster_centers_,
                width=self.width, pool=self._level_pool(lev), pooling=self.pooling,
                encoding=self.encoding, threshold=self.threshold,
                normalization=self.window_normalization,
                normalization_eps=self.window_eps_[lev] if self.window_eps_ else 1.0,
            )
            for lev, pca in enumerate(self.pca_)
        ]
        self.n_features_per_level_ = [int(enc.n_features_out_) for enc in self._encoders]
        self.n_features_out_ = sum(self._blocks())

    def _blocks(self):
        """Widths of the row's blocks: every level's codes, then the envelope's bands (if any)."""
        return self.n_features_per_level_ + ([int(self.n_mels_)] if self.envelope else [])

    # -- features ----------------------------------------------------------------------------

    def transform(self, clip, *, sr=None, last_window="drop", return_times=False):
        """Multiscale features of one clip: one row per pooling window.

        Parameters
        ----------
        clip : str, os.PathLike or array-like
            An audio file, a mono waveform of shape (n_samples,), or a log-mel
            spectrogram of shape (n_frames, n_mels) (see :meth:`represent`).
        sr : int or None, default=None
            Sampling rate of a waveform; None means the model's ``sr``. A
            waveform at another rate is resampled (soxr). Ignored for a file,
            whose header gives its rate, and for a spectrogram.
        last_window : {"drop", "pad", "keep"}, default="drop"
            The partial pooling window at the end of the clip. "drop" (the
            paper's setting): only full pooling windows (a clip shorter than
            one gives one row pooled over what there is). "keep": one more
            row, pooled at every level over the window positions that are
            left (the full windows' rows are those of "drop", bit for bit).
            "pad": the audio is extended with silence (zeros; a
            spectrogram with frames of ``log(log_offset)``) so that the last
            window is full, and pooled like the others: the silence takes part
            in its statistics (and, through the pyramid's smoothing, in the
            coarse levels of the windows just before it). With "keep" and
            "pad" every frame of the clip is in a row.
        return_times : bool, default=False
            Also return each row's start and end in seconds
            (:meth:`window_times`; the last row of "keep" and "pad" ends at
            the end of the audio).

        Returns
        -------
        features : ndarray of shape (n_pools, n_features_out_), dtype float32
            Level 0's features first. With the defaults ``n_features_out_`` is
            ``levels * n_clusters``; ``n_pools`` is :meth:`n_pools` of the
            clip's frames and ``last_window``.
        start, end : ndarray of shape (n_pools,), dtype float64
            Only with ``return_times=True``.

        Notes
        -----
        Audio is read through :func:`msk.audio.stream`. Audio longer than
        8192 frames (4.4 minutes at the default analysis) is analysed in
        segments of 4096 frames (1024 for multiresolution), so that the memory
        used does not grow with the length of the recording. Segment
        boundaries fall on pooling-window boundaries at every level (see
        :meth:`pooling_geometry`). Each segment is analysed with the frames it
        needs plus context: half an FFT of audio on each side (the spectrogram
        frames are then exactly those of the whole signal), and for the
        pyramids 5 frames at every level on both sides, aligned to
        ``2**(levels - 1)`` frames, which is more than the support of the
        smoothing and expansion filters, so that no border of a segment
        reaches a frame that is pooled. The features equal those of the whole
        signal computed at once up to float32 rounding of the encoder's matrix
        products (whose tiles differ), and are identical in every other step,
        for every ``last_window``.

        With "keep", the last row pools, at each level, the positions from
        the start of the last window to the end of the level (pyramid level
        ``l`` has ``2**l`` times fewer frames and positions, so every level's
        last window covers the same seconds); where a coarse level's frames end
        before the window's first position (windows wider than one frame),
        that level repeats its last frame, as for a level shorter than
        ``width``.

        Examples
        --------
        >>> import msk
        >>> model = msk.MultiscaleFeatures("laplacian", levels=3, n_clusters=16,
        ...                                n_samples=2000, random_state=0)
        >>> model = model.fit([msk.example_audio()])
        >>> F, start, end = model.transform(msk.example_audio(), last_window="keep",
        ...                                 return_times=True)
        >>> F.shape, round(float(start[-1]), 3), round(float(end[-1]), 3)
        ((8, 48), 28.672, 29.196)
        """
        check_is_fitted(self, "pca_")
        check_option("last_window", last_window, LAST_WINDOWS)
        if _is_clip_collection(clip) and not _looks_numeric(clip):
            raise TypeError(
                "`transform` takes one clip; for several use "
                "`[model.transform(c) for c in clips]`."
            )
        F, n_frames, n_samples = self._features(clip, sr, last_window)
        # after pooling, on whole rows: the same for every path above
        self._normalize_pooled(F)
        if not return_times:
            return F
        duration = None if n_samples is None else n_samples / self.sr
        start, end = self.window_times(n_frames, last_window=last_window, duration=duration)
        return F, start, end

    def _features(self, clip, sr, last_window):
        """(pooled rows before ``pooled_normalization``, level-0 frames, samples or None) of a clip."""
        if isinstance(clip, (str, os.PathLike)):
            blocks = stream(clip, sr=self.sr, block_frames=_READ_BLOCK)
            F, n_frames, n_samples = self._transform_blocks(blocks, last_window)
        else:
            _check_clip_type(clip)
            a = np.asarray(clip)
            if a.ndim == 1:
                y = as_float_array("clip", a, ndim=1, dtype=np.float32)
                sr = self.sr if sr is None else check_sample_rate("sr", sr)
                blocks = stream(y, sr=self.sr, source_sr=sr, block_frames=_READ_BLOCK)
                F, n_frames, n_samples = self._transform_blocks(blocks, last_window)
            else:
                levels, S, n_frames = self._spectrogram_levels(a, last_window)
                self._check_n_mels(levels[0].shape[1])
                F, n_samples = self._transform(levels, last_window, n_frames, S), None
        return F, n_frames, n_samples

    def _spectrogram_levels(self, a, last_window):
        """(levels, log-mel frames, level-0 frames) of a clip given as an array that is not a waveform."""
        if a.ndim != 2 or self.representation == "multiresolution":
            self._represent(a)  # refuses what is not a spectrogram, with its message
        S = as_float_array("clip", a, ndim=2, dtype=np.float32)
        n_frames = S.shape[0]
        if last_window == "pad":
            # frames of digital silence: the log-mel of zero power
            silence = np.full((self._pad_frames(n_frames) - n_frames, S.shape[1]), np.log(self.log_offset),
                              np.float32)
            S = np.ascontiguousarray(np.vstack([S, silence]))
        return self._pyramid(S), S, n_frames

    def _check_n_mels(self, n_mels):
        if n_mels != self.n_mels_:
            raise ValueError(
                f"the clip has {n_mels} mel bands; this model was fitted on {self.n_mels_}."
            )

    def _whole(self, y, last_window):
        """(features, level-0 frames, samples) of a whole waveform at ``sr``."""
        n_samples = y.shape[0]
        n_frames = 1 + n_samples // self.hop_length
        if last_window == "pad":
            padded = (self._pad_frames(n_frames) - 1) * self.hop_length
            if padded > n_samples:
                y = np.concatenate([y, np.zeros(padded - n_samples, np.float32)])
        levels, S = self._levels_and_log_mel(y)
        self._check_n_mels(levels[0].shape[1])
        return self._transform(levels, last_window, n_frames, S), n_frames, n_samples

    def _transform_blocks(self, blocks, last_window):
        """(features, level-0 frames, samples) of a stream of sample blocks: whole when short, else in segments."""
        if operator.length_hint(blocks) <= _WHOLE_FRAMES * self.hop_length:  # short: in one piece
            blocks = list(blocks)
            y = blocks[0] if len(blocks) == 1 else np.concatenate(blocks or [np.zeros(0, np.float32)])
            return self._whole(y, last_window)
        self._check_n_mels(self.n_mels)
        samples = _Samples(blocks)
        frames = _SEGMENT_FRAMES_MULTIRES if self.representation == "multiresolution" else _SEGMENT_FRAMES
        segment_pools = max(1, frames // self.pool_size)
        hop = self.hop_length
        half = self._context_samples()
        out, p0, n_frames, n_pools, n_analysed = [], 0, None, None, None
        while n_pools is None or p0 < n_pools:
            p1 = p0 + segment_pools
            g0, g1, _ = self._segment_bounds(p0, p1)
            samples.fill((g1 - 1) * hop + half)
            if samples.eof and n_frames is None:
                if p0 == 0:  # shorter than one segment: in one piece
                    return self._whole(samples.read(0, samples.end), last_window)
                n_frames = 1 + samples.end // hop
                n_pools = self.n_pools(n_frames, last_window)
                # "pad": the frames beyond the audio are analysed from zeros (_Samples.read)
                n_analysed = self._pad_frames(n_frames) if last_window == "pad" else n_frames
            if n_pools is not None:
                if p0 >= n_pools:
                    break
                p1 = min(p1, n_pools)
            g0_next = self._segment_bounds(p1, p1 + segment_pools)[0]
            out.append(self._segment_features(samples, p0, p1, n_analysed, g0_next * hop - half,
                                              last_window == "keep", p1 == n_pools))
            p0 = p1
        return np.ascontiguousarray(np.vstack(out), dtype=np.float32), n_frames, samples.end

    def _context_samples(self):
        """Samples needed beyond a segment's last frame (half the largest FFT)."""
        multires = self.representation == "multiresolution"
        return (self.n_fft << (self.levels - 1) if multires else self.n_fft) // 2

    def _segment_bounds(self, p0, p1):
        """Level-0 frames [g0, g1) to analyse for pools [p0, p1), and each level's frame range."""
        w = self.width
        geometry = self.pooling_geometry()
        ranges = [(p0 * pool, p1 * pool + w - 1) for _, pool in geometry]
        if self.representation == "multiresolution":
            return ranges[0][0], max(hi for _, hi in ranges), ranges
        align = 1 << (self.levels - 1)
        c = _PYRAMID_CONTEXT
        g0 = min((lo - c) * step for (lo, _), (step, _) in zip(ranges, geometry))
        g1 = max((hi + c) * step for (_, hi), (step, _) in zip(ranges, geometry))
        g0 = max(0, (g0 // align) * align)
        g1 = -(-g1 // align) * align
        return g0, g1, ranges

    def _mel_segment(self, samples, g0, g1, n_fft):
        """Log-mel frames [g0, g1) of the signal, computed in pieces (bounded copies of the audio).

        Frames are computed from exactly the samples the whole-signal analysis
        uses (``center=False`` on the zero-padded signal), so they are identical.
        """
        half, hop = n_fft // 2, self.hop_length
        S = np.empty((g1 - g0, self.n_mels), dtype=np.float32)
        for a in range(g0, g1, _PIECE_FRAMES):
            b = min(a + _PIECE_FRAMES, g1)
            y = samples.read(a * hop - half, (b - 1) * hop + half)
            S[a - g0 : b - g0] = self._log_mel(y, n_fft, center=False)
        return S

    def _segment_features(self, samples, p0, p1, n_frames, keep_from, keep=False, last=False):
        """Features of pools [p0, p1) (``n_frames``: the frames analysed, None while unknown).

        ``keep``: ``last_window="keep"``; ``last``: the segment ends with the clip's last window.
        Samples before ``keep_from`` are forgotten as soon as the segment's
        spectrogram is computed.
        """
        g0, g1, ranges = self._segment_bounds(p0, p1)
        if n_frames is not None:
            g1 = min(g1, n_frames)
        level_frames, envelope = [], None
        if self.representation == "multiresolution":
            for lev, (lo, hi) in enumerate(ranges):
                S = self._mel_segment(samples, g0, g1, self.n_fft << lev)
                if lev == 0 and self.envelope:
                    envelope = self._envelope(S, p0, p1, g0)
                level_frames.append(S[lo - g0 : hi - g0])
                del S
            samples.drop(keep_from)
        else:
            S = self._mel_segment(samples, g0, g1, self.n_fft)
            samples.drop(keep_from)
            levels = self._pyramid(S)
            if self.envelope:
                envelope = self._envelope(S, p0, p1, g0)
            del S
            for lev, (lo, hi) in enumerate(ranges):
                off = g0 >> lev
                level_frames.append(levels[lev][lo - off : hi - off])
        pooled = []
        for lev, frames in enumerate(level_frames):
            p = self._encoders[lev]._encode(self._padded(frames))
            if keep and (last or p.shape[0] < p1 - p0):
                p = self._keep_rows(lev, frames, p, p1 - p0, last)
            if p.shape[0] < p1 - p0:  # an invariant of the geometry above
                raise RuntimeError(f"level {lev}: {p.shape[0]} pools for pools {p0}..{p1}")
            pooled.append(p[: p1 - p0])
        if envelope is not None:
            pooled.append(envelope)
        return np.hstack(pooled)

    def _transform(self, levels, last_window="drop", n_frames=None, S=None):
        """Rows of a whole clip's levels: ``n_pools(n_frames, last_window)`` of them.

        ``S`` is the log-mel frames the levels were built from (for the envelope).
        """
        # The levels come from msk's own kernels (C-contiguous, finite, float32): the
        # encoders' unchecked path, under one BLAS thread limit for all levels.
        levels = [frames.astype(np.float32, copy=False) for frames in levels]
        with SingleThreadedBlas():
            pooled = [enc._encode(self._padded(frames)) for enc, frames in zip(self._encoders, levels)]
            if last_window == "keep":
                n = self.n_pools(n_frames, "keep")
                pooled = [self._keep_rows(lev, frames, p, n) for lev, (frames, p) in enumerate(zip(levels, pooled))]
        # "pad": the audio was padded so that every level has exactly the kept number of full windows
        n = min(p.shape[0] for p in pooled)
        pooled = [p[:n] for p in pooled]
        if self.envelope:
            pooled.append(self._envelope(S, 0, n))
        return np.ascontiguousarray(np.hstack(pooled), dtype=np.float32)

    def _envelope(self, S, p0, p1, g0=0):
        """Envelope rows of pools [p0, p1): ``S`` holds the log-mel frames from level-0 frame ``g0`` on.

        Pool ``r`` covers frames ``r * pool_size`` to ``(r + 1) * pool_size``, cut at the end
        of ``S`` (the clip's last partial window); its row is ``log(mean(exp(S)))`` per band,
        computed as ``m + log(mean(exp(S - m)))`` with ``m`` the band's largest value.
        """
        out = np.empty((p1 - p0, S.shape[1]), dtype=np.float32)
        pool = self.pool_size
        for r in range(p0, p1):
            a = min(r * pool - g0, S.shape[0] - 1)
            frames = S[a : min((r + 1) * pool - g0, S.shape[0])]
            top = frames.max(axis=0)
            out[r - p0] = top + np.log(np.exp(frames - top).mean(axis=0))
        return out

    def _keep_rows(self, lev, frames, pooled, n_rows, last=True):
        """``n_rows`` rows of one level for ``last_window="keep"``.

        ``frames`` are the level's frames from the first row's window to (at
        most) the end of the clip, and ``pooled`` the encoder's rows for them
        (its full windows, or one short window). Rows that are full windows
        are taken from ``pooled``. With ``last``, the last row is the clip's
        last window, encoded alone by the same encoder over the positions that
        are left (at most ``pool``; the encoder pools a clip with fewer
        positions than ``pool`` over all of them). A level whose frames end
        before a window's positions (windows wider than one frame at a coarse
        level) repeats its last frame, so the whole clip and its segments see
        the same frames.
        """
        enc = self._encoders[lev]
        pool, w = enc.pool, self.width
        n_full = max(0, frames.shape[0] - w + 1) // pool
        if n_full >= n_rows:
            return pooled[:n_rows]
        full = n_rows - 1 if last else n_rows  # rows that are full windows
        need = full * pool + (w if last else w - 1)  # the last window has at least one position
        if frames.shape[0] < need:
            frames = np.ascontiguousarray(np.pad(frames, ((0, need - frames.shape[0]), (0, 0)), mode="edge"))
        rows = [pooled[: min(n_full, full)]]  # the encoder's rows of full windows, as "drop" has them
        if n_full < full:  # full windows that need the repeated frame
            rows.append(enc._encode(frames[n_full * pool : full * pool + w - 1]))
        if last:
            rows.append(enc._encode(frames[full * pool : n_rows * pool + w - 1]))
        return np.vstack(rows)

    def fit_transform(self, clips, y=None):
        """Fit on ``clips``, then return the features of each.

        Parameters
        ----------
        clips : iterable of clips
            As in :meth:`fit`.
        y : None
            Ignored.

        Returns
        -------
        features : list of ndarray of shape (n_pools, n_features_out_)
            :meth:`transform` of each clip, in order.
        """
        clips = list(clips) if _is_clip_collection(clips) else clips
        self.fit(clips)
        return [self.transform(c) for c in clips]

    # -- persistence -------------------------------------------------------------------------

    def save(self, path):
        """Save the fitted model to ``path`` (``.npz``, no pickle, versioned).

        The file holds a JSON header (format name and version, the msk
        version, every parameter, per-level shapes) and the fitted arrays of
        every level. It is written to a temporary file and moved into place,
        so an interrupted save never leaves a corrupt model.

        Parameters
        ----------
        path : str or os.PathLike
            Destination file (``.npz`` is appended by NumPy if missing, so give it).
        """
        check_is_fitted(self, "pca_")
        _persist.save_model(self, path)

    @classmethod
    def load(cls, path):
        """Load a model written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            The ``.npz`` file.

        Returns
        -------
        model : MultiscaleFeatures
            The fitted model, ready for :meth:`transform`.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not an msk model, is truncated or corrupt, or has
            another format version. The message names the file.
        """
        model = _persist.load_model(cls, path)
        model._build_encoders()
        _persist.check_feature_arrays(model, path)
        return model


def track_vector(features, summary="mean"):
    """One vector for a whole clip from its window features (the clip's "track vector").

    Parameters
    ----------
    features : array-like of shape (n_windows, n_features)
        A clip's window features (:meth:`MultiscaleFeatures.transform`).
    summary : {"mean", "mean+max", "mean+std"}, default="mean"
        The mean of the windows (accumulated in float64), or that mean
        followed by their maximum ("mean+max") or by their standard deviation
        ("mean+std": the population one, ``ddof=0``, in float64; zero for a
        clip of one window). Every window counts once, whatever the seconds it
        covers (a kept partial last window too).

    Returns
    -------
    vector : ndarray of shape (SUMMARY_WIDTHS[summary] * n_features,), dtype float32
        ``n_features`` values for "mean", ``2 * n_features`` for the others.

    Raises
    ------
    ValueError
        If ``summary`` is not an option or ``features`` is not a non-empty 2-D array.

    See Also
    --------
    msk.extract : its ``summary`` argument returns this vector beside the features.
    msk.store.FeatureStore.tracks : the stored track vectors of a library.

    Examples
    --------
    >>> import numpy as np
    >>> from msk.multiscale import track_vector
    >>> track_vector(np.array([[1, 2], [3, 0]], np.float32), "mean+max").tolist()
    [2.0, 1.0, 3.0, 2.0]
    >>> track_vector(np.array([[1, 2], [3, 0]], np.float32), "mean+std").tolist()
    [2.0, 1.0, 1.0, 1.0]
    """
    check_option("summary", summary, SUMMARIES)
    X = np.asarray(features, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"`features` must have shape (n_windows, n_features) with n_windows >= 1; got {X.shape}.")
    mean = X.mean(axis=0, dtype=np.float64)
    if summary == "mean":
        return mean.astype(np.float32)
    if summary == "mean+std":
        return np.concatenate([mean, X.std(axis=0, dtype=np.float64)]).astype(np.float32)
    return np.concatenate([mean.astype(np.float32), X.max(axis=0)])
