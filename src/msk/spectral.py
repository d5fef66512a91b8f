"""Mel spectrograms and multiresolution spectrograms.

The front end of the paper: audio -> log-mel spectrogram with frames as rows.
Conventions are librosa's defaults (the test oracle): periodic Hann window of
``n_fft`` samples, frames centred (``n_fft // 2`` zeros padded on both sides,
so frame ``t`` sits at sample ``t * hop_length`` whatever ``n_fft`` is), power
spectrum, Slaney mel scale with area-normalised ("slaney") triangles.

On the FFT: msk carries its own real FFT, written in C++ in
``msk/_core/_spectral.cpp``. It transforms 16 frames side by side (8 in
float64), one SIMD lane per frame, as a radix-4 complex FFT of ``n_fft / 2``
points plus the real split step, with the bit reversal folded into the framing
and window, power, the sparse mel projection and the log fused behind it in
the same pass over a block of frames. Calling ``scipy.fft`` instead would
leave a full ``(n_frames, n_fft / 2 + 1)`` complex array between the FFT and
the mel projection; the benchmark in ``bench/bench_spectral.py`` measures the
fused kernel against both librosa and the best ``scipy.fft`` pipeline.
Only power-of-two ``n_fft`` are supported (16 ... 65536), which covers every
resolution the paper uses (1024 ... 32768).
"""

import functools
import warnings

import numpy as np

from ._core import _spectral
from ._validation import all_finite, as_float_array, check_float, check_int, check_option

__all__ = ["mel_filters", "log_melspectrogram", "multiresolution"]

# Slaney's Auditory Toolbox mel scale: linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0
# The kernel takes hop_length and n_threads as C ints.
_INT_MAX = 2**31 - 1


def _hz_to_mel(f, htk):
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    mel = f / _F_SP
    log_part = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log_part, mel)


def _mel_to_hz(m, htk):
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f = _F_SP * m
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(m >= _MIN_LOG_MEL, log_part, f)


def _check_power_of_two_fft(n_fft):
    n_fft = check_int("n_fft", n_fft, low=16, high=65536)
    if n_fft & (n_fft - 1):
        raise ValueError(f"`n_fft` must be a power of two between 16 and 65536; got {n_fft}.")
    return n_fft


def _check_band_edges(sr, fmin, fmax):
    sr = check_int("sr", sr, low=1)
    fmin = check_float("fmin", fmin, low=0.0)
    fmax = sr / 2.0 if fmax is None else check_float("fmax", fmax, low=0.0, high=sr / 2.0)
    if fmin >= fmax:
        raise ValueError(f"`fmin` must be below `fmax`; got fmin={fmin} and fmax={fmax}.")
    return sr, fmin, fmax


def mel_filters(*, sr=16000, n_fft=1024, n_mels=200, fmin=0.0, fmax=None, htk=False,
                norm="slaney", dtype=np.float32):
    """Mel filter bank: triangular filters on the mel scale.

    Identical to ``librosa.filters.mel`` with the same arguments. The result
    is cached and read-only.

    Parameters
    ----------
    sr : int, default=16000
        Sampling rate in Hz.
    n_fft : int, default=1024
        FFT size; the bank has ``n_fft // 2 + 1`` columns.
    n_mels : int, default=200
        Number of mel bands.
    fmin, fmax : float, default=0.0 and None
        Lowest and highest frequency in Hz; ``fmax=None`` means ``sr / 2``.
    htk : bool, default=False
        Use the HTK mel formula instead of Slaney's.
    norm : {"slaney", None}, default="slaney"
        "slaney" divides each triangle by its width in Hz (constant energy per
        band); None leaves peak-1 triangles.
    dtype : {np.float32, np.float64}, default=np.float32
        Data type of the result.

    Returns
    -------
    weights : ndarray of shape (n_mels, n_fft // 2 + 1)
        Read-only filter bank.

    Warns
    -----
    UserWarning
        If some bands contain no FFT bin (too many bands for ``n_fft``).

    Examples
    --------
    >>> import msk
    >>> msk.mel_filters(sr=16000, n_fft=1024, n_mels=200).shape
    (200, 513)
    """
    n_fft = check_int("n_fft", n_fft, low=2)
    n_mels = check_int("n_mels", n_mels, low=1)
    sr, fmin, fmax = _check_band_edges(sr, fmin, fmax)
    if norm is not None:
        check_option("norm", norm, ("slaney", None))
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"`dtype` must be np.float32 or np.float64; got {dtype!r}.")
    key = (sr, n_fft, n_mels, fmin, fmax, bool(htk), norm, np.dtype(dtype).str)
    _warn_empty_bands(_sparse_bands(*key)[3], n_mels, sr, n_fft, stacklevel=3)
    return _mel_filters(*key)


def _warn_empty_bands(empty, n_mels, sr, n_fft, *, stacklevel):
    if empty:
        warnings.warn(
            f"{empty} of {n_mels} mel bands contain no FFT bin at n_fft={n_fft}, "
            f"sr={sr} and will be zero. Lower n_mels or raise n_fft.",
            UserWarning,
            stacklevel=stacklevel,
        )


@functools.lru_cache(maxsize=64)
def _mel_filters(sr, n_fft, n_mels, fmin, fmax, htk, norm, dtype):
    fftfreqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    weights = weights.astype(dtype)
    weights.flags.writeable = False
    return weights


@functools.lru_cache(maxsize=64)
def _sparse_bands(sr, n_fft, n_mels, fmin, fmax, htk, norm, dtype):
    """Band start bins, weight offsets, the concatenated non-zero run of each band, and the
    number of empty bands."""
    weights = _mel_filters(sr, n_fft, n_mels, fmin, fmax, htk, norm, dtype)
    start = np.zeros(n_mels, dtype=np.int64)
    offset = np.zeros(n_mels + 1, dtype=np.int64)
    runs = []
    for b in range(n_mels):
        nz = np.flatnonzero(weights[b])
        if nz.size:
            start[b] = nz[0]
            runs.append(weights[b, nz[0]: nz[-1] + 1])
            offset[b + 1] = offset[b] + nz[-1] + 1 - nz[0]
        else:
            offset[b + 1] = offset[b]
    flat = np.concatenate(runs) if runs else np.zeros(0, dtype=dtype)
    for a in (start, offset, flat):
        a.flags.writeable = False
    n_empty = int(np.count_nonzero(offset[1:] == offset[:-1]))
    return start, offset, np.ascontiguousarray(flat, dtype=dtype), n_empty


def _n_frames(n_samples, n_fft, hop_length, center):
    pad = n_fft // 2 if center else 0
    return 1 + (n_samples + 2 * pad - n_fft) // hop_length


def log_melspectrogram(y, *, sr=16000, n_fft=1024, hop_length=512, n_mels=200, fmin=0.0, fmax=None,
                       htk=False, norm="slaney", center=True, power=2.0, log=True, log_offset=1e-10,
                       log_scale=1.0, n_threads=1):
    """Log-mel spectrogram of a waveform, frames as rows.

    One compiled pass per block of frames does framing, the periodic Hann
    window, a real FFT, the power spectrum, the sparse mel projection and the
    log compression, with the GIL released. The result is logarithmic by
    default, unlike librosa's ``melspectrogram`` (power); with ``log=False``
    it equals ``librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft,
    hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk,
    norm=norm, center=center, power=power).T``.

    Parameters
    ----------
    y : array_like of shape (n_samples,)
        Mono waveform. float32 and float64 are kept; other types become float64.
    sr : int, default=16000
        Sampling rate of ``y`` in Hz.
    n_fft : int, default=1024
        FFT size and window length: a power of two between 16 and 65536.
    hop_length : int, default=512
        Samples between successive frames.
    n_mels : int, default=200
        Number of mel bands.
    fmin, fmax : float, default=0.0 and None
        Band edges in Hz; ``fmax=None`` means ``sr / 2``.
    htk : bool, default=False
        HTK mel formula instead of Slaney's.
    norm : {"slaney", None}, default="slaney"
        Normalisation of the mel triangles (see :func:`mel_filters`).
    center : bool, default=True
        Pad ``n_fft // 2`` zeros on both sides so that frame ``t`` is centred on
        sample ``t * hop_length``. With ``center=False`` frames start at
        ``t * hop_length`` and ``y`` must hold at least ``n_fft`` samples.
    power : {1.0, 2.0}, default=2.0
        Exponent of the magnitude spectrum (1 for magnitude, 2 for power).
    log : bool, default=True
        Return ``log(log_scale * mel + log_offset)`` instead of ``mel``.
    log_offset : float, default=1e-10
        Added before the log (> 0). The paper's ``log(mel + 1e-10)`` is the default;
        ``log_offset=1, log_scale=C`` gives ``log1p(C * mel)``.
    log_scale : float, default=1.0
        Multiplies the mel energies before the log (> 0).
    n_threads : int, default=1
        Threads used for this one signal. Keep 1 when clips are processed in
        parallel (the usual case); raise it for one long recording.

    Returns
    -------
    S : ndarray of shape (n_frames, n_mels)
        C-contiguous, dtype of ``y`` (float32 or float64). With ``center=True``,
        ``n_frames = 1 + n_samples // hop_length``.

    Raises
    ------
    TypeError
        If ``y`` is not a real numeric array.
    ValueError
        If ``y`` is not 1-D, empty or not finite, or a parameter is out of range.

    Warns
    -----
    UserWarning
        If ``n_fft`` is longer than the signal, or some mel bands are empty.

    See Also
    --------
    multiresolution : the same spectrogram at several FFT sizes.
    mel_filters : the filter bank used here.

    References
    ----------
    .. [1] S. Dieleman and B. Schrauwen, "Multiscale approaches to music audio
       feature learning", ISMIR 2013.

    Examples
    --------
    >>> import numpy as np, msk
    >>> y = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    >>> S = msk.log_melspectrogram(y, sr=16000)
    >>> S.shape, S.dtype
    ((32, 200), dtype('float32'))
    >>> int(S[10].argmax())  # the band around 440 Hz
    28
    """
    # Non-finite samples are looked for in the result (see below), not in a separate pass.
    y = as_float_array("y", y, ndim=1, finite=False)
    n_fft = _check_power_of_two_fft(n_fft)
    hop_length = check_int("hop_length", hop_length, low=1, high=_INT_MAX)
    n_mels = check_int("n_mels", n_mels, low=1)
    sr, fmin, fmax = _check_band_edges(sr, fmin, fmax)
    if norm is not None:
        check_option("norm", norm, ("slaney", None))
    power = check_float("power", power, low=0.0)
    if power not in (1.0, 2.0):
        raise ValueError(f"`power` must be 1.0 (magnitude) or 2.0 (power); got {power}.")
    log_offset = check_float("log_offset", log_offset, low=0.0, low_inclusive=False)
    log_scale = check_float("log_scale", log_scale, low=0.0, low_inclusive=False)
    tiny = np.finfo(y.dtype).tiny
    if log and log_offset < tiny:
        raise ValueError(
            f"`log_offset` must be at least {tiny:.3g} (the smallest normal {y.dtype}); got {log_offset}."
        )
    n_threads = check_int("n_threads", n_threads, low=1, high=_INT_MAX)
    if not center and y.shape[0] < n_fft:
        raise ValueError(
            f"`y` must hold at least n_fft={n_fft} samples when center=False; got {y.shape[0]}."
        )
    if center and n_fft > y.shape[0]:
        warnings.warn(
            f"n_fft={n_fft} is longer than the signal ({y.shape[0]} samples); frames are mostly "
            "zero padding. Use a smaller n_fft or a longer signal.",
            UserWarning,
            stacklevel=2,
        )
    start, offset, weights, n_empty = _sparse_bands(sr, n_fft, n_mels, fmin, fmax, bool(htk), norm,
                                                    y.dtype.str)
    _warn_empty_bands(n_empty, n_mels, sr, n_fft, stacklevel=3)
    out = np.empty((_n_frames(y.shape[0], n_fft, hop_length, center), n_mels), dtype=y.dtype)
    _spectral.mel_power(y, n_fft, hop_length, bool(center), start, offset, weights, int(power),
                        bool(log), log_scale, log_offset, n_threads, out)
    # A NaN or inf sample makes every frame that contains it non-finite (NaN * 0 is NaN), and
    # every sample lies in a frame when center=True and hop_length <= n_fft / 2: then checking
    # the (2.5x smaller) result replaces the check of the input. Otherwise check the input too.
    covered = center and hop_length <= n_fft // 2
    if not (all_finite(out) and (covered or all_finite(y))):
        if not all_finite(y):
            raise ValueError("`y` contains NaN or infinite values.")
        raise ValueError(
            f"`y` is too loud for {y.dtype}: its spectrum overflows (max |y| = "
            f"{float(np.abs(y).max()):.3g}). Scale the signal to [-1, 1] or pass float64."
        )
    return out


def multiresolution(y, *, sr=16000, levels=6, n_fft=1024, hop_length=512, n_mels=200, fmin=0.0,
                    fmax=None, log=True, log_offset=1e-10, log_scale=1.0, n_threads=1):
    """Multiresolution mel spectrograms: the same frames at growing FFT sizes.

    Level ``l`` is :func:`log_melspectrogram` with ``n_fft * 2**l`` (1024 ... 32768
    by default), the same hop, the same bands and the same centring, so every
    level has exactly the frame count of level 0 and frame ``t`` of every
    level is centred on sample ``t * hop_length``. Longer windows trade time
    resolution for frequency resolution: this is the paper's first multiscale
    representation.

    Parameters
    ----------
    y : array_like of shape (n_samples,)
        Mono waveform.
    sr : int, default=16000
        Sampling rate in Hz.
    levels : int, default=6
        Number of resolutions, 1 to 8 (the FFT size must stay <= 65536).
    n_fft : int, default=1024
        FFT size of level 0 (a power of two).
    hop_length, n_mels, fmin, fmax, log, log_offset, log_scale, n_threads
        As in :func:`log_melspectrogram`.

    Returns
    -------
    levels : list of ndarray of shape (n_frames, n_mels)
        Finest time resolution (level 0, the plain log-mel) first.

    Examples
    --------
    >>> import numpy as np, msk
    >>> y = np.random.default_rng(0).standard_normal(16000 * 3).astype(np.float32)
    >>> [S.shape for S in msk.multiresolution(y, levels=3)]
    [(94, 200), (94, 200), (94, 200)]
    """
    levels = check_int("levels", levels, low=1, high=8)
    n_fft = _check_power_of_two_fft(n_fft)
    if n_fft << (levels - 1) > 65536:
        raise ValueError(
            f"`levels` too large for n_fft={n_fft}: level {levels - 1} would need an FFT of "
            f"{n_fft << (levels - 1)} > 65536 points; got levels={levels}."
        )
    y = as_float_array("y", y, ndim=1)
    return [
        log_melspectrogram(y, sr=sr, n_fft=n_fft << lev, hop_length=hop_length, n_mels=n_mels,
                       fmin=fmin, fmax=fmax, log=log, log_offset=log_offset, log_scale=log_scale,
                       n_threads=n_threads)
        for lev in range(levels)
    ]
