"""Tests of msk.mel_filters, msk.log_melspectrogram and msk.multiresolution.

Oracles (STYLE.md rule 33): ``librosa.feature.melspectrogram`` and ``librosa.filters.mel``
with the same keyword arguments (librosa's output is transposed, never ours), and an
independent STFT (hand framing + periodic Hann window + ``scipy.fft.rfft``) for the
property tests. The shipped example clip is an oracle input: a feature is done when it
works on real audio.
"""

import concurrent.futures
import functools
import warnings

import librosa
import numpy as np
import pytest
import scipy.fft
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import msk
from conftest import assert_close

SR = 16000
POWERS_OF_TWO = [2**k for k in range(4, 16)]  # 16 ... 32768

# hypothesis: compiled warm-up makes the first call slow, and the CI budget is fixed.
PROPERTY = settings(deadline=None, max_examples=25, derandomize=True)

# float32 FFT rounding: every bin of an n-point float32 FFT carries an absolute error of
# about log2(n) * eps32 * (energy of the frame), whatever its own size, so quiet bins far
# below the loudest one can be off by much more than 1e-4 *relative*. Loud bins are held
# to rtol=1e-4; the rest get this absolute floor, proportional to the spectrum's maximum
# (measured worst case on the example clip: 5e-7 * max for n_fft up to 32768).
F32_ATOL = 5e-6
# float64 against librosa's float64 pipeline (float64 STFT and dtype=np.float64 filters):
# agreement is at the level of float64 rounding (measured: 3e-10 relative, 5e-16 * max).
F64_RTOL = 1e-9
F64_ATOL = 1e-13


def n_mels_for(n_fft):
    """The largest round band count that leaves no mel band empty at 16 and 22.05 kHz."""
    return min(200, n_fft // 4)


def librosa_mel(y, **kwargs):
    """The oracle: librosa on float64 samples with float64 filters, frames as rows.

    Upcasting float32 samples to float64 is exact, so this is the mel spectrogram of the
    very same signal computed in double precision: the tightest oracle available
    (librosa's own default keeps float32 filter weights and a complex64 STFT for float32
    input, both noisier than the implementation under test).
    """
    y64 = np.asarray(y, dtype=np.float64)
    with warnings.catch_warnings():
        # librosa warns when n_fft exceeds the signal; msk's own warning is tested apart.
        warnings.simplefilter("ignore", UserWarning)
        S = librosa.feature.melspectrogram(y=y64, dtype=np.float64, **kwargs)
    return S.T


def assert_matches_oracle(S, R, dtype):
    """Power spectrogram ``S`` (ours) against the float64 oracle ``R``."""
    assert S.shape == R.shape
    assert S.dtype == dtype
    assert S.flags.c_contiguous
    if dtype == np.float32:
        assert_close(S, R, rtol=1e-4, atol=F32_ATOL * R.max())
    else:
        assert_close(S, R, rtol=F64_RTOL, atol=F64_ATOL * R.max())


def melspec(y, **kwargs):
    """msk.log_melspectrogram without the log (the quantity compared with librosa)."""
    return msk.log_melspectrogram(y, log=False, **kwargs)


# --------------------------------------------------------------------------- fixtures


@functools.lru_cache(maxsize=None)
def _clip(sr):
    y = msk.load_audio(msk.example_audio(), sr=sr)
    y.flags.writeable = False
    return y


@pytest.fixture(scope="module")
def clip():
    """The shipped example clip: 29.2 s of real music, mono float32 at 16 kHz."""
    return _clip(16000)


@pytest.fixture(scope="module")
def clip22():
    """The example clip resampled to 22.05 kHz by load_audio (soxr)."""
    return _clip(22050)


@pytest.fixture(scope="module")
def excerpt(clip):
    """3 s of the example clip from 5 s on: real music, short enough for sweeps."""
    return clip[5 * SR: 8 * SR]


# ------------------------------------------------------------------- oracle: librosa


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_fft", POWERS_OF_TWO)
def test_matches_librosa_every_n_fft(excerpt, n_fft, dtype):
    y = excerpt.astype(dtype)
    kw = dict(sr=SR, n_fft=n_fft, hop_length=512, n_mels=n_mels_for(n_fft))
    assert_matches_oracle(melspec(y, **kw), librosa_mel(y, **kw), dtype)


def test_matches_librosa_n_fft_65536(clip):
    # The largest supported FFT (level 6 of a 1024-point multiresolution).
    y = clip[: 6 * SR].astype(np.float64)
    kw = dict(sr=SR, n_fft=65536, hop_length=4096, n_mels=200)
    assert_matches_oracle(melspec(y, **kw), librosa_mel(y, **kw), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sr", [16000, 22050])
@pytest.mark.parametrize("hop_length", [160, 512, 1001])
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("power", [1.0, 2.0])
@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None])
def test_matches_librosa_options(clip, clip22, sr, hop_length, center, power, htk, norm, dtype):
    y = (clip if sr == 16000 else clip22)[sr: 3 * sr].astype(dtype)
    kw = dict(sr=sr, n_fft=1024, hop_length=hop_length, n_mels=128, center=center, power=power,
              htk=htk, norm=norm)
    assert_matches_oracle(melspec(y, **kw), librosa_mel(y, **kw), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "sr, fmin, fmax, htk",
    [
        (16000, 0.0, None, False),
        (16000, 60.0, 7600.0, False),
        (16000, 300.0, 3400.0, True),
        (16000, 0.0, 8000.0, True),
        (22050, 27.5, 11025.0, False),
        (22050, 1000.0, None, True),
    ],
)
def test_matches_librosa_band_edges(clip, clip22, sr, fmin, fmax, htk, dtype):
    y = (clip if sr == 16000 else clip22)[2 * sr: 4 * sr].astype(dtype)
    kw = dict(sr=sr, n_fft=2048, hop_length=256, n_mels=96, fmin=fmin, fmax=fmax, htk=htk)
    assert_matches_oracle(melspec(y, **kw), librosa_mel(y, **kw), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sr", [16000, 22050])
def test_whole_example_clip_defaults(clip, clip22, sr, dtype):
    # The paper's setting on the full real clip: 1024/512, 200 bands, log(mel + 1e-10).
    y = (clip if sr == 16000 else clip22).astype(dtype)
    S = msk.log_melspectrogram(y, sr=sr)
    R = librosa_mel(y, sr=sr, n_fft=1024, hop_length=512, n_mels=200)
    assert S.shape == (1 + y.shape[0] // 512, 200) == R.shape
    P = melspec(y, sr=sr)
    assert_matches_oracle(P, R, dtype)
    # The log is applied to exactly the spectrogram that matched.
    eps = np.finfo(dtype).eps
    assert_close(S, np.log(P + dtype(1e-10)), rtol=4 * eps, atol=4 * eps)
    assert np.isfinite(S).all()
    # Real music: energy where the music is, not a flat floor.
    assert S.max() - np.median(S) > 5.0


@pytest.mark.parametrize("n_samples", [1, 2, 15, 16, 17, 511, 512, 513, 1023, 1025, 16001])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_odd_lengths_match_librosa(excerpt, n_samples, dtype):
    y = excerpt[:n_samples].astype(dtype)
    kw = dict(sr=SR, n_fft=1024, hop_length=512, n_mels=200)
    if n_samples < 1024:
        with pytest.warns(UserWarning, match="longer than the signal"):
            S = melspec(y, **kw)
    else:
        S = melspec(y, **kw)
    R = librosa_mel(y, **kw)
    assert S.shape == (1 + n_samples // 512, 200)
    assert_matches_oracle(S, R, dtype)


@pytest.mark.parametrize("n_samples, n_fft, hop_length", [(1024, 1024, 512), (1500, 1024, 4096),
                                                          (16, 16, 1), (4096, 4096, 1)])
def test_single_frame_without_centering(excerpt, n_samples, n_fft, hop_length):
    y = excerpt[:n_samples].astype(np.float64)
    kw = dict(sr=SR, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels_for(n_fft), center=False)
    S = melspec(y, **kw)
    expected = 1 + (n_samples - n_fft) // hop_length
    assert S.shape[0] == expected
    assert_matches_oracle(S, librosa_mel(y, **kw), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_bands_are_zero_like_librosa(excerpt, dtype):
    # 200 bands on 129 FFT bins: the lowest bands hold no bin; msk warns and leaves them 0.
    y = excerpt.astype(dtype)
    kw = dict(sr=SR, n_fft=256, hop_length=128, n_mels=200)
    with pytest.warns(UserWarning, match="mel bands contain no FFT bin at n_fft=256"):
        S = melspec(y, **kw)
    R = librosa_mel(y, **kw)
    empty = R.max(axis=0) == 0
    assert empty.any()
    np.testing.assert_array_equal(S[:, empty], 0.0)
    assert_matches_oracle(S, R, dtype)
    with pytest.warns(UserWarning, match="mel bands contain no FFT bin"):
        L = msk.log_melspectrogram(y, **kw)
    np.testing.assert_array_equal(L[:, empty], np.log(dtype(1e-10)))


def test_read_only_input(excerpt):
    y = np.array(excerpt)
    y.flags.writeable = False
    np.testing.assert_array_equal(msk.log_melspectrogram(y), msk.log_melspectrogram(y.copy()))


def test_single_sample():
    with pytest.warns(UserWarning, match="longer than the signal"):
        S = msk.log_melspectrogram(np.array([0.5]), n_fft=16, n_mels=4)
    assert S.shape == (1, 4)
    assert np.isfinite(S).all()


# ----------------------------------------------------------------------------- log


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("log_offset", [1e-10, 1e-6, 1e-2, 1.0])
def test_log_is_log_of_mel_plus_offset(excerpt, dtype, log_offset):
    y = excerpt.astype(dtype)
    P = melspec(y)
    L = msk.log_melspectrogram(y, log_offset=log_offset)
    # A correctly rounded log vs msk's polynomial: a few ulps of the result.
    assert_close(L, np.log(P + dtype(log_offset)), rtol=4 * np.finfo(dtype).eps,
                 atol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C", [1.0, 100.0, 1e4])
def test_log1p_through_log_offset_and_scale(excerpt, dtype, C):
    y = excerpt.astype(dtype)
    P = melspec(y).astype(np.float64)
    L = msk.log_melspectrogram(y, log_offset=1.0, log_scale=C)
    # msk forms 1 + C*mel in the input's precision and takes its log; np.log1p is exact in
    # float64. The rounding of 1 + x costs up to eps of absolute error in the log.
    eps = np.finfo(dtype).eps
    assert_close(L, np.log1p(C * P), rtol=1e-4 if dtype == np.float32 else 1e-12, atol=2 * eps)
    assert (L >= 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("log_offset", [1e-10, 1e-3, 1.0])
def test_silence_is_exactly_log_offset(dtype, log_offset):
    S = msk.log_melspectrogram(np.zeros(20000, dtype=dtype), log_offset=log_offset)
    assert S.shape == (1 + 20000 // 512, 200)
    assert np.isfinite(S).all()
    np.testing.assert_array_equal(S, np.full(S.shape, np.log(dtype(log_offset)), dtype=dtype))
    P = melspec(np.zeros(20000, dtype=dtype))
    np.testing.assert_array_equal(P, 0.0)


def test_log_of_near_silence_is_finite():
    # Denormal-sized samples: the power underflows to zero or a denormal, never NaN/-inf.
    y = np.full(5000, 1e-30, dtype=np.float32)
    y[::2] = -1e-30
    S = msk.log_melspectrogram(y)
    assert np.isfinite(S).all()
    assert_close(S, np.log(np.float32(1e-10)), rtol=1e-6)


# ------------------------------------------------------------------ mel_filters


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sr", [8000, 16000, 22050])
@pytest.mark.parametrize("n_fft, n_mels", [(16, 4), (256, 40), (1000, 128), (1024, 200),
                                           (4096, 200), (32768, 200)])
@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None])
def test_mel_filters_match_librosa(sr, n_fft, n_mels, htk, norm, dtype):
    kw = dict(sr=sr, n_fft=n_fft, n_mels=n_mels, htk=htk, norm=norm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 8 kHz leaves some low bands empty
        M = msk.mel_filters(**kw, dtype=dtype)
        R = librosa.filters.mel(**kw, dtype=dtype)
    assert M.shape == (n_mels, n_fft // 2 + 1)
    assert M.dtype == dtype
    np.testing.assert_array_equal(M == 0, R == 0)
    if dtype == np.float64:
        np.testing.assert_array_equal(M, R)
    else:
        # librosa rounds the triangle to float32 and then multiplies by the float32 norm
        # (two roundings); msk rounds once: one ulp apart.
        assert_close(M, R, rtol=1.5 * np.finfo(np.float32).eps)


@pytest.mark.parametrize("fmin, fmax", [(0.0, 4000.0), (50.0, None), (133.33, 6855.4976),
                                        (1000.0, 1500.0)])
def test_mel_filters_band_edges_match_librosa(fmin, fmax):
    kw = dict(sr=16000, n_fft=2048, n_mels=40, fmin=fmin, fmax=fmax)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        M = msk.mel_filters(**kw, dtype=np.float64)
        R = librosa.filters.mel(**kw, dtype=np.float64)
    np.testing.assert_array_equal(M, R)


def test_mel_filters_read_only_and_cached():
    M = msk.mel_filters(sr=16000, n_fft=1024, n_mels=200)
    assert M.dtype == np.float32  # librosa's default dtype
    assert not M.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        M[0, 0] = 1.0
    assert msk.mel_filters(sr=16000, n_fft=1024, n_mels=200) is M
    # Equal arguments of another type hit the same cache entry.
    assert msk.mel_filters(sr=16000, n_fft=1024, n_mels=200, fmin=0, fmax=8000) is M
    assert msk.mel_filters(sr=16000, n_fft=1024, n_mels=200, dtype=np.float64) is not M


def test_mel_filters_warn_on_empty_bands():
    with pytest.warns(UserWarning, match="mel bands contain no FFT bin"):
        M = msk.mel_filters(sr=16000, n_fft=256, n_mels=200)
    assert (M.max(axis=1) == 0).any()
    with pytest.warns(UserWarning, match="mel bands contain no FFT bin"):
        msk.log_melspectrogram(np.ones(4000), n_fft=256, n_mels=200)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_mels=0), ValueError, "`n_mels`"),
        (dict(n_mels=2.5), TypeError, "`n_mels`"),
        (dict(n_fft=1), ValueError, "`n_fft`"),
        (dict(sr=0), ValueError, "`sr`"),
        (dict(fmin=-1.0), ValueError, "`fmin`"),
        (dict(fmin=5000.0, fmax=4000.0), ValueError, "`fmin` must be below `fmax`"),
        (dict(fmin=4000.0, fmax=4000.0), ValueError, "`fmin` must be below `fmax`"),
        (dict(fmax=8000.5), ValueError, "`fmax`"),
        (dict(fmax=float("nan")), ValueError, "`fmax`"),
        (dict(norm="l2"), ValueError, "`norm` must be one of 'slaney' or None; got 'l2'"),
        (dict(dtype=np.int32), ValueError, "`dtype`"),
        (dict(dtype=np.complex64), ValueError, "`dtype`"),
    ],
)
def test_mel_filters_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        msk.mel_filters(**{"sr": 16000, "n_fft": 1024, "n_mels": 40, **kwargs})


# ------------------------------------------------------------- dtypes and layouts


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtypes_kept(excerpt, dtype):
    S = msk.log_melspectrogram(excerpt.astype(dtype))
    assert S.dtype == dtype
    assert S.flags.c_contiguous


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64, np.uint8, np.float16, bool])
def test_other_dtypes_become_float64(excerpt, dtype):
    if dtype == np.float16:
        y = excerpt.astype(np.float16)
    elif dtype is bool:
        y = excerpt > 0
    else:
        info = np.iinfo(dtype)
        y = np.clip(excerpt * 100, info.min, info.max).astype(dtype)
    S = msk.log_melspectrogram(y)
    assert S.dtype == np.float64
    np.testing.assert_array_equal(S, msk.log_melspectrogram(y.astype(np.float64)))


def test_list_input(excerpt):
    y = excerpt[:3000].astype(np.float64)
    np.testing.assert_array_equal(msk.log_melspectrogram(y.tolist()), msk.log_melspectrogram(y))


def test_float32_and_float64_agree(clip):
    S32 = melspec(clip)
    S64 = melspec(clip.astype(np.float64))
    assert_close(S32, S64, rtol=1e-4, atol=F32_ATOL * S64.max())
    L32 = msk.log_melspectrogram(clip, log_offset=1.0, log_scale=100.0)
    L64 = msk.log_melspectrogram(clip.astype(np.float64), log_offset=1.0, log_scale=100.0)
    assert_close(L32, L64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_views_equal_contiguous_copies(excerpt, dtype):
    base = np.asarray(excerpt, dtype=dtype)
    two_d = np.stack([base, -base, 0.5 * base], axis=1)  # C-ordered, columns are strided
    fortran = np.asfortranarray(two_d)                   # F-ordered, columns are contiguous
    views = [base[::2], base[::-1], base[1::3], two_d[:, 1], fortran[:, 2], two_d.T[0]]
    for v in views:
        assert v.ndim == 1
        expected = msk.log_melspectrogram(np.ascontiguousarray(v))
        np.testing.assert_array_equal(msk.log_melspectrogram(v), expected)
    assert not base[::2].flags.c_contiguous


def test_input_is_not_modified(excerpt):
    y = np.array(excerpt[:5000], dtype=np.float32)
    before = y.copy()
    msk.log_melspectrogram(y)
    np.testing.assert_array_equal(y, before)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "y, error, match",
    [
        (np.array([0.0, np.nan] * 3000), ValueError, "`y` contains NaN or infinite"),
        (np.array([0.0, np.inf] * 3000, dtype=np.float32), ValueError, "`y` contains NaN or inf"),
        (np.array([0.0, -np.inf] * 3000), ValueError, "`y` contains NaN or infinite"),
        (np.zeros((2, 3000)), ValueError, r"`y` must be a 1-D array; got shape \(2, 3000\)"),
        (np.zeros((3000, 1)), ValueError, "`y` must be a 1-D array"),
        (np.float64(1.0), ValueError, "`y` must be a 1-D array"),
        (np.zeros(0), ValueError, "`y` must have at least 1 element"),
        (np.zeros(3000, dtype=np.complex128), TypeError, "`y` must be real"),
        (np.zeros(3000, dtype=np.complex64), TypeError, "`y` must be real"),
        ("not audio", TypeError, "`y` must be an array of numbers"),
        (None, TypeError, "`y` must be an array of numbers"),
        (np.array(["a", "b"] * 1000), TypeError, "`y` must be an array of numbers"),
        (np.array([object()] * 2000), TypeError, "`y` must be an array of numbers"),
    ],
)
def test_bad_input_rejected(y, error, match):
    with pytest.raises(error, match=match):
        msk.log_melspectrogram(y)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_fft=1000), ValueError, "`n_fft` must be a power of two"),
        (dict(n_fft=3 * 1024), ValueError, "`n_fft` must be a power of two"),
        (dict(n_fft=8), ValueError, "`n_fft`"),
        (dict(n_fft=131072), ValueError, "`n_fft`"),
        (dict(n_fft=1024.0), TypeError, "`n_fft` must be an integer"),
        (dict(hop_length=0), ValueError, "`hop_length` must be .*; got 0"),
        (dict(hop_length=-512), ValueError, "`hop_length`"),
        (dict(hop_length=2**31), ValueError, "`hop_length`"),
        (dict(hop_length="512"), TypeError, "`hop_length`"),
        (dict(n_mels=0), ValueError, "`n_mels` must be a positive integer; got 0"),
        (dict(sr=0), ValueError, "`sr`"),
        (dict(sr=16000.5), TypeError, "`sr`"),
        (dict(fmin=8000.0), ValueError, "`fmin` must be below `fmax`"),
        (dict(fmin=3000.0, fmax=2000.0), ValueError, "`fmin` must be below `fmax`"),
        (dict(fmax=8001.0), ValueError, "`fmax`"),
        (dict(fmin=-10.0), ValueError, "`fmin`"),
        (dict(norm="l1"), ValueError, "`norm` must be one of 'slaney' or None"),
        (dict(power=3), ValueError, "`power` must be 1.0 .* or 2.0"),
        (dict(power=1.5), ValueError, "`power`"),
        (dict(power=-2.0), ValueError, "`power`"),
        (dict(log_offset=0.0), ValueError, "`log_offset`"),
        (dict(log_offset=-1e-10), ValueError, "`log_offset`"),
        (dict(log_offset=1e-320), ValueError, "`log_offset` must be at least"),
        (dict(log_offset=float("inf")), ValueError, "`log_offset`"),
        (dict(log_scale=0.0), ValueError, "`log_scale`"),
        (dict(n_threads=0), ValueError, "`n_threads`"),
        (dict(n_threads=2**31), ValueError, "`n_threads`"),
        (dict(center=False, n_fft=8192), ValueError, "`y` must hold at least n_fft=8192"),
    ],
)
def test_bad_parameters_rejected(excerpt, kwargs, error, match):
    with pytest.raises(error, match=match):
        msk.log_melspectrogram(excerpt[:5000], **kwargs)


def test_float32_log_offset_floor():
    # 1e-40 is a float32 denormal: its log would not be accurate, so float32 input rejects it
    # while float64 input accepts it.
    y = np.ones(3000)
    assert np.isfinite(msk.log_melspectrogram(y, log_offset=1e-40)).all()
    with pytest.raises(ValueError, match="`log_offset` must be at least"):
        msk.log_melspectrogram(y.astype(np.float32), log_offset=1e-40)
    # Without the log, log_offset is irrelevant and any positive value is fine.
    msk.log_melspectrogram(y.astype(np.float32), log=False, log_offset=1e-40)


def test_short_input_warns_only_with_centering(excerpt):
    y = excerpt[:1000]
    with pytest.warns(UserWarning, match="n_fft=2048 is longer than the signal"):
        S = msk.log_melspectrogram(y, n_fft=2048)
    assert S.shape == (1 + 1000 // 512, 200)
    with pytest.raises(ValueError, match="center=False"):
        msk.log_melspectrogram(y, n_fft=2048, center=False)


# ------------------------------------------------------------------ concurrency


def test_thread_pool_gives_serial_results(clip):
    jobs = []
    for i in range(12):
        dtype = np.float32 if i % 2 else np.float64
        start = 16000 * i
        jobs.append((clip[start: start + 16000 * 4].astype(dtype),
                     dict(n_fft=[1024, 2048, 4096][i % 3], hop_length=[160, 512][i % 2],
                          log=bool(i % 4))))
    serial = [msk.log_melspectrogram(y, **kw) for y, kw in jobs]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(2):
            futures = [pool.submit(msk.log_melspectrogram, y, **kw) for y, kw in jobs]
            for fut, expected in zip(futures, serial):
                np.testing.assert_array_equal(fut.result(), expected)


def test_thread_pool_multiresolution(excerpt):
    ys = [np.roll(excerpt, 1000 * i) for i in range(6)]
    serial = [msk.multiresolution(y, levels=3) for y in ys]
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        for got, expected in zip(pool.map(lambda y: msk.multiresolution(y, levels=3), ys), serial):
            for g, e in zip(got, expected):
                np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_samples", [100, 8192, 16 * 512 * 3 + 700, 16000 * 3])
@pytest.mark.parametrize("n_threads", [2, 3, 64])
def test_n_threads_bit_identical(excerpt, dtype, n_samples, n_threads):
    y = excerpt[:n_samples].astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # n_samples=100 < n_fft
        one = msk.log_melspectrogram(y, n_threads=1)
        many = msk.log_melspectrogram(y, n_threads=n_threads)
    np.testing.assert_array_equal(many, one)


# ------------------------------------------------------------- property tests


def stft_power(y, n_fft, hop_length, center, power):
    """Independent STFT oracle: hand framing, periodic Hann window, scipy.fft.rfft."""
    y = np.asarray(y, dtype=np.float64)
    if center:
        y = np.pad(y, n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop_length]
    window = scipy.signal.get_window("hann", n_fft, fftbins=True)
    return np.abs(scipy.fft.rfft(frames * window, axis=1)) ** power


# Samples on a grid of 1e-4 in [-1, 1]: bounded, finite, and free of the subnormal values
# hypothesis likes to draw (whose squares underflow and make relative comparisons
# meaningless). Drawn as int16 and scaled, which hypothesis generates much faster.
signals = arrays(np.int16, st.integers(1, 1500), elements=st.integers(-10000, 10000)).map(
    lambda a: a / 10000.0)


@PROPERTY
@given(n_samples=st.integers(1, 20000), n_fft_log2=st.integers(4, 12),
       hop_length=st.integers(1, 5000), center=st.booleans())
def test_frame_count_formula(n_samples, n_fft_log2, hop_length, center):
    n_fft = 2**n_fft_log2
    if not center and n_samples < n_fft:
        n_samples = n_fft
    y = np.ones(n_samples, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        S = msk.log_melspectrogram(y, n_fft=n_fft, hop_length=hop_length, n_mels=4, center=center)
    expected = 1 + n_samples // hop_length if center else 1 + (n_samples - n_fft) // hop_length
    assert S.shape == (expected, 4)
    # librosa.util.frame's count after the same padding.
    padded = n_samples + (2 * (n_fft // 2) if center else 0)
    assert S.shape[0] == 1 + (padded - n_fft) // hop_length


@PROPERTY
@given(y=signals, a=st.floats(1e-3, 1e3), power=st.sampled_from([1.0, 2.0]),
       n_fft=st.sampled_from([16, 64, 256]))
def test_scaling_is_homogeneous(y, a, power, n_fft):
    kw = dict(n_fft=n_fft, hop_length=n_fft // 4, n_mels=4, power=power)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        S = melspec(y, **kw)
        Sa = melspec(a * y, **kw)
    scale = a**power
    assert_close(Sa, scale * S, rtol=1e-9, atol=1e-12 * max(scale * S.max(), 1e-300))


@PROPERTY
@given(y=signals, n_fft=st.sampled_from([16, 32, 128, 512]), hop_length=st.integers(1, 700),
       center=st.booleans(), power=st.sampled_from([1.0, 2.0]))
def test_mel_is_filter_bank_times_stft(y, n_fft, hop_length, center, power):
    """The mel projection is linear: S == stft_power @ mel_filters.T, for any signal."""
    if not center and y.shape[0] < n_fft:
        y = np.resize(y, n_fft)
    n_mels = n_fft // 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        S = melspec(y, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, center=center,
                    power=power)
    M = msk.mel_filters(sr=SR, n_fft=n_fft, n_mels=n_mels, dtype=np.float64)
    P = stft_power(y, n_fft, hop_length, center, power)
    expected = P @ M.T
    assert_close(S, expected, rtol=1e-9, atol=1e-12 * max(expected.max(), 1e-300))


@PROPERTY
@given(y1=signals, y2=signals, power=st.sampled_from([1.0, 2.0]))
def test_mel_projection_is_additive(y1, y2, power):
    """mel(P1) + mel(P2) == mel_filters @ (P1 + P2) for the spectra of two signals."""
    n = max(y1.shape[0], y2.shape[0], 64)
    y1, y2 = np.resize(y1, n), np.resize(y2, n)
    kw = dict(n_fft=64, hop_length=48, n_mels=16, power=power)
    S1, S2 = melspec(y1, **kw), melspec(y2, **kw)
    M = msk.mel_filters(sr=SR, n_fft=64, n_mels=16, dtype=np.float64)
    P = stft_power(y1, 64, 48, True, power) + stft_power(y2, 64, 48, True, power)
    expected = P @ M.T
    assert_close(S1 + S2, expected, rtol=1e-9, atol=1e-12 * max(expected.max(), 1e-300))


@PROPERTY
@given(y1=signals, y2=signals)
def test_frames_partition_a_concatenation(y1, y2):
    """With hop == n_fft and no centring, frames of [y1, y2] are the frames of y1, then y2."""
    y1 = np.resize(y1, max(y1.shape[0] // 64, 1) * 64)
    y2 = np.resize(y2, max(y2.shape[0] // 64, 1) * 64)
    kw = dict(n_fft=64, hop_length=64, n_mels=16, center=False)
    S = melspec(np.concatenate([y1, y2]), **kw)
    np.testing.assert_array_equal(S, np.concatenate([melspec(y1, **kw), melspec(y2, **kw)]))


# ------------------------------------------------------------------ multiresolution


def test_multiresolution_levels_are_melspectrograms(clip):
    levels = msk.multiresolution(clip)  # the paper's setting on the whole real clip
    assert len(levels) == 6
    n_frames = 1 + clip.shape[0] // 512
    for lev, S in enumerate(levels):
        assert S.shape == (n_frames, 200)
        assert S.dtype == np.float32
        np.testing.assert_array_equal(S, msk.log_melspectrogram(clip, n_fft=1024 << lev))
    # Longer windows smooth in time: the top level varies less from frame to frame.
    assert np.abs(np.diff(levels[5], axis=0)).mean() < np.abs(np.diff(levels[0], axis=0)).mean()


def test_multiresolution_level5_matches_librosa(excerpt):
    top = msk.multiresolution(excerpt, levels=6, log=False)[5]
    R = librosa_mel(excerpt, sr=SR, n_fft=32768, hop_length=512, n_mels=200)
    assert_matches_oracle(top, R, np.float32)


def test_multiresolution_forwards_parameters(excerpt):
    y = excerpt.astype(np.float64)
    kw = dict(sr=16000, hop_length=300, n_mels=64, fmin=40.0, fmax=7000.0, log_offset=1e-3,
              log_scale=10.0)
    levels = msk.multiresolution(y, levels=3, n_fft=256, **kw)
    for lev, S in enumerate(levels):
        np.testing.assert_array_equal(S, msk.log_melspectrogram(y, n_fft=256 << lev, **kw))
    P = msk.multiresolution(y, levels=2, n_fft=512, log=False, n_mels=64)
    assert_matches_oracle(P[1], librosa_mel(y, sr=SR, n_fft=1024, hop_length=512, n_mels=64),
                          np.float64)


@PROPERTY
@given(n_samples=st.integers(1, 6000), levels=st.integers(1, 4),
       n_fft_log2=st.integers(4, 8), hop_length=st.integers(16, 600))
def test_multiresolution_frame_counts(n_samples, levels, n_fft_log2, hop_length):
    y = np.sin(np.arange(n_samples) * 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = msk.multiresolution(y, levels=levels, n_fft=2**n_fft_log2, hop_length=hop_length,
                                  n_mels=4)
    assert isinstance(out, list) and len(out) == levels
    for S in out:
        assert S.shape == (1 + n_samples // hop_length, 4)
        assert S.dtype == np.float64


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(levels=0), ValueError, "`levels` must be an integer between 1 and 8"),
        (dict(levels=9), ValueError, "`levels`"),
        (dict(levels=2.0), TypeError, "`levels`"),
        (dict(levels=8), ValueError, "`levels` too large for n_fft=1024"),
        (dict(levels=3, n_fft=32768), ValueError, "`levels` too large"),
        (dict(n_fft=1000), ValueError, "`n_fft` must be a power of two"),
        (dict(n_fft=8), ValueError, "`n_fft`"),
        (dict(hop_length=0), ValueError, "`hop_length`"),
        (dict(fmax=9000.0), ValueError, "`fmax`"),
    ],
)
def test_multiresolution_bad_parameters(excerpt, kwargs, error, match):
    with pytest.raises(error, match=match):
        msk.multiresolution(excerpt[:20000], **kwargs)


def test_multiresolution_bad_input():
    with pytest.raises(ValueError, match="`y` must be a 1-D array"):
        msk.multiresolution(np.zeros((2, 4000)))
    with pytest.raises(ValueError, match="`y` contains NaN"):
        msk.multiresolution(np.full(4000, np.nan))


def test_multiresolution_seven_levels_reach_65536(clip):
    y = clip[:70000]
    out = msk.multiresolution(y, levels=7, n_mels=64, hop_length=4096)
    assert len(out) == 7
    assert all(S.shape == (1 + 70000 // 4096, 64) for S in out)
