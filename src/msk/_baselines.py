"""Hand-crafted baseline features for the experiment: MFCC and log-mel statistics.

Both start from the same log-mel spectrogram as the learned features
(:func:`msk.log_melspectrogram`: 200 Slaney mel bands, 64 ms window, 32 ms hop,
``log(mel + log_offset)``) and are pooled over the same pooling windows (128
frames, about 4.1 s; only full windows, a short clip gives one window over
all its frames). Each pooling window is summarised by the mean and the
standard deviation (population, ``ddof=0``) of every coefficient:

* **MFCC** (:func:`mfcc_stats`): the first ``n_mfcc`` coefficients of the
  orthonormal DCT-II of every log-mel frame (``scipy.fft.dct(S, type=2,
  norm="ortho", axis=1)[:, :n_mfcc]``, which is ``librosa.feature.mfcc(S=S.T,
  dct_type=2, norm="ortho")``), giving ``2 * n_mfcc`` features (40 by default);
* **log-mel statistics** (:func:`logmel_stats`): the log-mel bands themselves,
  ``2 * n_mels`` features (400).

The DCT is linear, so both are computed by the same fused encoder as the
learned features (:class:`msk._encoding.WindowEncoder` with the DCT matrix,
or the identity, as its "whitening" and no dictionary) in one pass per clip.
"""

import os

import numpy as np
import scipy.fft
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._encoding import WindowEncoder
from ._validation import as_float_array, check_float, check_int, check_option

__all__ = ["BaselineFeatures", "logmel_stats", "mfcc_stats"]

BASELINE_KINDS = ("mfcc", "logmel-stats")


def _dct_matrix(n_mels, n_mfcc):
    """Rows of the orthonormal DCT-II: ``D @ x == scipy.fft.dct(x, norm='ortho')[:n_mfcc]``."""
    return scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc]


def _encoder(kind, n_mels, n_mfcc, pool_size):
    W = _dct_matrix(n_mels, n_mfcc) if kind == "mfcc" else np.eye(n_mels)
    return WindowEncoder(np.zeros(n_mels), W, None, width=1, pool=pool_size, pooling=("mean", "std"))


def _check_spectrogram(S):
    S = as_float_array("S", S, ndim=2)
    if S.shape[0] < 1 or S.shape[1] < 1:
        raise ValueError(f"`S` must be a log-mel spectrogram of shape (n_frames, n_mels); got shape {S.shape}.")
    return S


def mfcc_stats(S, *, n_mfcc=20, pool_size=128):
    """MFCC mean and standard deviation per pooling window of a log-mel spectrogram.

    Parameters
    ----------
    S : array-like of shape (n_frames, n_mels)
        Log-mel spectrogram, frames as rows (as :func:`msk.log_melspectrogram`
        returns it).
    n_mfcc : int, default=20
        Coefficients kept: the first ``n_mfcc`` of the orthonormal DCT-II of
        every frame (at most ``n_mels``).
    pool_size : int, default=128
        Frames per pooling window (128 frames of 32 ms = 4.1 s). Only full
        windows are kept; fewer than ``pool_size`` frames give one window.

    Returns
    -------
    features : ndarray of shape (n_pools, 2 * n_mfcc)
        The means of the coefficients, then their standard deviations
        (``ddof=0``). float32 for float32 input, float64 otherwise.

    Raises
    ------
    ValueError
        If ``S`` is not 2-D or has NaN, or ``n_mfcc`` exceeds ``n_mels``.

    See Also
    --------
    logmel_stats : the same statistics of the log-mel bands.

    Notes
    -----
    The coefficients equal ``librosa.feature.mfcc(S=S.T, n_mfcc=n_mfcc,
    dct_type=2, norm="ortho")`` (librosa computes MFCCs from a log-power mel
    spectrogram the same way; here the log is the natural one of
    :func:`msk.log_melspectrogram`).

    Examples
    --------
    >>> import msk
    >>> from msk.evaluation import mfcc_stats
    >>> S = msk.log_melspectrogram(msk.load_audio(msk.example_audio()))
    >>> mfcc_stats(S).shape
    (7, 40)
    """
    S = _check_spectrogram(S)
    n_mfcc = check_int("n_mfcc", n_mfcc, low=1, high=S.shape[1])
    pool_size = check_int("pool_size", pool_size, low=1)
    return _encoder("mfcc", S.shape[1], n_mfcc, pool_size)(S)


def logmel_stats(S, *, pool_size=128):
    """Mean and standard deviation of every log-mel band per pooling window.

    Parameters
    ----------
    S : array-like of shape (n_frames, n_mels)
        Log-mel spectrogram, frames as rows.
    pool_size : int, default=128
        Frames per pooling window, as in :func:`mfcc_stats`.

    Returns
    -------
    features : ndarray of shape (n_pools, 2 * n_mels)
        Band means, then band standard deviations (``ddof=0``).

    Examples
    --------
    >>> import msk
    >>> from msk.evaluation import logmel_stats
    >>> S = msk.log_melspectrogram(msk.load_audio(msk.example_audio()))
    >>> logmel_stats(S).shape
    (7, 400)
    """
    S = _check_spectrogram(S)
    pool_size = check_int("pool_size", pool_size, low=1)
    return _encoder("logmel-stats", S.shape[1], 0, pool_size)(S)


class BaselineFeatures(TransformerMixin, BaseEstimator):
    """A baseline feature extractor with :class:`msk.MultiscaleFeatures`' interface.

    ``transform`` takes one clip (an audio file, a mono waveform at ``sr``
    Hz or a log-mel spectrogram) and returns one row per pooling window, so
    that the experiment treats baselines and learned features alike. Nothing
    is learned: ``fit`` only checks the parameters and records the number of
    features.

    Parameters
    ----------
    kind : {"mfcc", "logmel-stats"}, default="mfcc"
        :func:`mfcc_stats` or :func:`logmel_stats`.
    n_mfcc : int, default=20
        MFCCs per frame (``kind="mfcc"``).
    pool_size : int, default=128
        Frames per pooling window.
    sr : int, default=16000
        Sampling rate of the analysis.
    log_offset : float, default=1e-10
        ``log(mel + log_offset)`` of the spectrogram.

    Attributes
    ----------
    n_features_out_ : int
        ``2 * n_mfcc`` or ``2 * n_mels``.
    n_mels_ : int
        Mel bands (200).

    Examples
    --------
    >>> import msk
    >>> from msk.evaluation import BaselineFeatures
    >>> base = BaselineFeatures("mfcc").fit([msk.example_audio()])
    >>> base.transform(msk.example_audio()).shape
    (7, 40)
    """

    def __init__(self, kind="mfcc", *, n_mfcc=20, pool_size=128, sr=16000, log_offset=1e-10):
        self.kind = kind
        self.n_mfcc = n_mfcc
        self.pool_size = pool_size
        self.sr = sr
        self.log_offset = log_offset

    def _check_params(self):
        check_option("kind", self.kind, BASELINE_KINDS)
        check_int("n_mfcc", self.n_mfcc, low=1)
        check_int("pool_size", self.pool_size, low=1)
        check_int("sr", self.sr, low=1)
        check_float("log_offset", self.log_offset, low=0.0, low_inclusive=False)

    def _frontend(self):
        from .multiscale import MultiscaleFeatures

        # level 0 of any one-level representation is the plain log-mel spectrogram
        return MultiscaleFeatures("gaussian", levels=1, sr=self.sr, log_offset=self.log_offset)

    def fit(self, clips=None, y=None):
        """Check the parameters (nothing is learned); ``clips`` is ignored.

        Returns
        -------
        self : BaselineFeatures
        """
        self._check_params()
        from .spectral import log_melspectrogram

        n_mels = log_melspectrogram(np.zeros(self.sr // 10, dtype=np.float32), sr=self.sr).shape[1]
        if self.kind == "mfcc" and self.n_mfcc > n_mels:
            raise ValueError(f"`n_mfcc` must be at most n_mels ({n_mels}); got {self.n_mfcc}.")
        self.n_mels_ = int(n_mels)
        self._encoder = _encoder(self.kind, n_mels, self.n_mfcc, self.pool_size)
        self.n_features_out_ = int(self._encoder.n_features_out_)
        return self

    def transform(self, clip):
        """Features of one clip: one row per pooling window.

        Parameters
        ----------
        clip : str, os.PathLike or array-like
            An audio file, a mono waveform at ``sr`` Hz, or a log-mel
            spectrogram of shape (n_frames, n_mels).

        Returns
        -------
        features : ndarray of shape (n_pools, n_features_out_), dtype float32
        """
        check_is_fitted(self, "n_features_out_")
        if not isinstance(clip, (str, os.PathLike, np.ndarray, list, tuple)):
            raise TypeError(
                f"a clip must be an audio file path, a waveform or a spectrogram; got {type(clip).__name__}."
            )
        S = self._frontend().represent(clip)[0]
        if S.shape[1] != self.n_mels_:
            raise ValueError(f"the clip has {S.shape[1]} mel bands; expected {self.n_mels_}.")
        return np.ascontiguousarray(self._encoder(S), dtype=np.float32)
