"""Baseline features of the experiment (MFCC, log-mel statistics) against librosa/NumPy oracles."""

from concurrent.futures import ThreadPoolExecutor

import librosa
import numpy as np
import pytest

import msk
from conftest import assert_close
from msk.evaluation import BaselineFeatures, logmel_stats, mfcc_stats


def _pooled_stats(C, pool):
    """NumPy oracle: mean and std (ddof=0) over consecutive full windows of ``pool`` rows."""
    n = C.shape[0] // pool
    if n == 0:
        blocks = C[None]
    else:
        blocks = C[: n * pool].reshape(n, pool, -1)
    return np.concatenate([blocks.mean(axis=1), blocks.std(axis=1)], axis=1)


@pytest.fixture(scope="module")
def logmel():
    return msk.log_melspectrogram(msk.load_audio(msk.example_audio()))  # (913, 200) float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_mfcc, pool", [(20, 128), (13, 50), (1, 300)])
def test_mfcc_stats_match_librosa(logmel, dtype, n_mfcc, pool):
    S = logmel.astype(dtype)
    mfcc = librosa.feature.mfcc(S=S.T.astype(np.float64), n_mfcc=n_mfcc, dct_type=2, norm="ortho").T
    want = _pooled_stats(mfcc, pool)
    got = mfcc_stats(S, n_mfcc=n_mfcc, pool_size=pool)
    assert got.dtype == dtype and got.shape == (S.shape[0] // pool, 2 * n_mfcc)
    # float32: the DCT sums 200 terms of magnitude ~20; atol for std near 0
    assert_close(got, want, rtol=1e-4 if dtype == np.float32 else 1e-7, atol=2e-3 if dtype == np.float32 else 1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logmel_stats_match_numpy(logmel, dtype):
    S = logmel.astype(dtype)
    got = logmel_stats(S)
    assert got.shape == (7, 400) and got.dtype == dtype
    assert_close(got, _pooled_stats(S.astype(np.float64), 128), atol=2e-4 if dtype == np.float32 else 1e-9)


def test_layouts_and_dtypes_agree(logmel):
    S = np.asarray(logmel, dtype=np.float64)
    ref = mfcc_stats(S)
    assert_close(mfcc_stats(np.asfortranarray(S)), ref)
    big = np.zeros((S.shape[0], 2 * S.shape[1]))
    big[:, ::2] = S
    assert_close(mfcc_stats(big[:, ::2]), ref)
    assert_close(mfcc_stats(S.astype(np.float32)), ref, atol=2e-3)
    assert mfcc_stats(S.astype(np.float16)).dtype == np.float64  # other dtypes compute in float64


def test_short_clip_gives_one_window(logmel):
    S = logmel[:40]
    got = logmel_stats(S)
    assert got.shape == (1, 400)
    assert_close(got, _pooled_stats(S.astype(np.float64), 128), atol=2e-4)


def test_bad_input_is_rejected(logmel):
    with pytest.raises(ValueError, match="`S` must be a 2-D"):
        mfcc_stats(logmel[0])
    with pytest.raises(ValueError, match="`n_mfcc` must be an integer between 1 and 200; got 201"):
        mfcc_stats(logmel, n_mfcc=201)
    with pytest.raises(ValueError, match="`pool_size` must be a positive integer; got 0"):
        logmel_stats(logmel, pool_size=0)
    bad = logmel.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="`S`.*NaN"):
        logmel_stats(bad)
    with pytest.raises(TypeError, match="`S`"):
        logmel_stats(logmel.astype(np.complex64))
    with pytest.raises(ValueError, match="`kind` must be one of"):
        BaselineFeatures("mfccs").fit()
    with pytest.raises(ValueError, match="`n_mfcc` must be at most n_mels"):
        BaselineFeatures("mfcc", n_mfcc=300).fit()
    with pytest.raises(TypeError, match="a clip must be"):
        BaselineFeatures().fit().transform(3)


@pytest.mark.parametrize("kind, fn", [("mfcc", mfcc_stats), ("logmel-stats", logmel_stats)])
def test_extractor_equals_the_functions_on_files_waveforms_and_spectrograms(logmel, kind, fn):
    base = BaselineFeatures(kind).fit()
    want = fn(logmel)
    y = msk.load_audio(msk.example_audio())
    for clip in (msk.example_audio(), y, logmel):
        got = base.transform(clip)
        assert got.dtype == np.float32 and got.shape == want.shape == (7, base.n_features_out_)
        assert_close(got, want, atol=1e-5)
    with ThreadPoolExecutor(2) as ex:  # the kernel releases the GIL; results equal the serial ones
        for got in ex.map(base.transform, [y] * 4):
            np.testing.assert_array_equal(got, base.transform(y))


def test_log_offset_is_used():
    y = msk.load_audio(msk.example_audio())
    a = BaselineFeatures("logmel-stats").fit().transform(y)
    b = BaselineFeatures("logmel-stats", log_offset=1e-4).fit().transform(y)
    S = msk.log_melspectrogram(y, log_offset=1e-4)
    assert_close(b, logmel_stats(S), atol=1e-5)
    assert not np.allclose(a, b)
