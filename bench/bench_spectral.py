"""Benchmarks of the log-mel front end: msk beside librosa and the best plain scipy pipeline.

Run:  python -m pytest bench/bench_spectral.py --benchmark-only --benchmark-min-rounds=15

Groups (one thread everywhere, see conftest.py; the configuration is in each record's
extra_info):
- ``mel-16k``: log-mel of the shipped 29.1 s example clip at 16 kHz (n_fft 1024, hop 512,
  200 bands, log(mel + 1e-10)), the paper's setting.
- ``mel-22k``: the same on a 30 s clip at 22.05 kHz (the example clip resampled by
  load_audio and extended to 30 s).
- ``mel-32768``: multiresolution level 5 (n_fft 32768) on the 16 kHz clip; the whole
  6-level multiresolution is timed beside it for scale.
- ``scipy-variants-*``: every plain scipy pipeline that was tried; the fastest of them on
  this machine, picked at setup time, is the ``scipy-best`` entry of the main groups.
- ``import``: ``python -c "import msk"`` in a fresh interpreter, beside ``python -c pass`` and
  ``python -c "import numpy"``. With an editable install the meson-python loader checks the
  build (runs ninja) on ``import msk``; that cost is not in an installed wheel.

Every timed result is checked against librosa's float64 pipeline afterwards.
"""

import functools
import subprocess
import sys
import timeit

import librosa
import numpy as np
import pytest
import scipy.fft
import scipy.signal
import scipy.sparse

import msk

HOP, N_MELS, LOG_OFFSET = 512, 200, 1e-10


# ------------------------------------------------------------------------ inputs


@functools.lru_cache(maxsize=None)
def clip(name):
    if name == "16k":
        return msk.load_audio(msk.example_audio(), sr=16000), 16000  # 29.2 s
    y = msk.load_audio(msk.example_audio(), sr=22050)
    return np.resize(y, 30 * 22050), 22050  # 30 s: the clip, then its first 0.8 s again


# ------------------------------------------------------------------ contenders


def msk_logmel(y, sr, n_fft):
    return msk.log_melspectrogram(y, sr=sr, n_fft=n_fft, hop_length=HOP, n_mels=N_MELS)


def librosa_logmel(y, sr, n_fft):
    # librosa's defaults match msk's: centred frames, constant padding, periodic Hann,
    # Slaney mel with slaney norm, float32 filters; the log is added for the same output.
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=HOP, n_mels=N_MELS)
    return np.log(S + LOG_OFFSET)


def scipy_pipeline(dtype, projection, sr, n_fft):
    """Plain numpy/scipy log-mel: strided frames, window, rfft, power, mel product, log."""
    window = scipy.signal.get_window("hann", n_fft, fftbins=True).astype(dtype)
    mel = msk.mel_filters(sr=sr, n_fft=n_fft, n_mels=N_MELS, dtype=dtype)
    mel_t = np.ascontiguousarray(mel.T)
    mel_sparse = scipy.sparse.csr_array(mel)
    offset = dtype(LOG_OFFSET)

    def run(y):
        padded = np.pad(y.astype(dtype, copy=False), n_fft // 2)
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::HOP] * window
        X = scipy.fft.rfft(frames, axis=1, workers=1, overwrite_x=True)
        if projection == "abs":
            P = np.abs(X)
            P *= P
        else:
            P = X.real * X.real
            P += X.imag * X.imag
        S = (mel_sparse @ P.T).T if projection == "sparse" else P @ mel_t
        S += offset
        return np.log(S, out=S)

    return run


SCIPY_VARIANTS = {
    "f32-dense": (np.float32, "dense"),    # re^2 + im^2, then P @ M.T (sgemm)
    "f32-abs": (np.float32, "abs"),        # |X|^2 through np.abs
    "f32-sparse": (np.float32, "sparse"),  # CSR mel matrix (6 % of the dense one is non-zero)
    "f64-dense": (np.float64, "dense"),
    "f64-sparse": (np.float64, "sparse"),
}


@functools.lru_cache(maxsize=None)
def scipy_best(sr, n_fft):
    """The fastest scipy variant on this machine for this input (best of several calls).

    The minimum over repeats is the least noisy estimate on a shared machine.
    """
    y = clip("16k" if sr == 16000 else "22k")[0]
    number, repeat = (3, 7) if n_fft <= 4096 else (1, 4)
    times = {}
    for name, (dtype, projection) in SCIPY_VARIANTS.items():
        run = scipy_pipeline(dtype, projection, sr, n_fft)
        run(y)
        times[name] = min(timeit.repeat(lambda: run(y), number=number, repeat=repeat)) / number
    best = min(times, key=times.get)
    return best, scipy_pipeline(*SCIPY_VARIANTS[best], sr, n_fft), times


# -------------------------------------------------------------------- the check


@functools.lru_cache(maxsize=None)
def oracle(name, n_fft):
    y, sr = clip(name)
    return librosa.feature.melspectrogram(y=y.astype(np.float64), sr=sr, n_fft=n_fft,
                                          hop_length=HOP, n_mels=N_MELS, dtype=np.float64).T


def check(S, name, n_fft):
    """``S`` is log(mel + 1e-10) of the clip with frames as rows (or librosa's transpose)."""
    R = oracle(name, n_fft)
    if S.shape != R.shape:
        S = S.T
    assert S.shape == R.shape
    # Undo the log and compare the mel power with the float64 oracle: 1e-4 relative, plus
    # the float32 FFT's rounding floor relative to the spectrum's maximum (see tests).
    np.testing.assert_allclose(np.exp(S.astype(np.float64)) - LOG_OFFSET, R, rtol=1e-4,
                               atol=5e-6 * R.max())


# ------------------------------------------------------------------ benchmarks


IMPLEMENTATIONS = ["msk", "librosa", "scipy-best"]


def run_mel(benchmark, impl, name, n_fft):
    y, sr = clip(name)
    benchmark.extra_info.update(clip=name, sr=sr, n_samples=int(y.shape[0]),
                                seconds=round(y.shape[0] / sr, 2), n_fft=n_fft, hop_length=HOP,
                                n_mels=N_MELS, dtype=str(y.dtype))
    if impl == "msk":
        fn = functools.partial(msk_logmel, y, sr, n_fft)
        benchmark.extra_info["n_threads"] = 1
    elif impl == "librosa":
        fn = functools.partial(librosa_logmel, y, sr, n_fft)
        benchmark.extra_info["librosa"] = librosa.__version__
    else:
        variant, run, times = scipy_best(sr, n_fft)
        benchmark.extra_info["variant"] = variant
        benchmark.extra_info["variant_setup_seconds"] = {k: round(v, 6) for k, v in times.items()}
        fn = functools.partial(run, y)
    fn()  # warm-up: plans, caches, first-touch of the output
    S = benchmark(fn)
    check(S, name, n_fft)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.benchmark(group="mel-16k")
def test_mel_16k(record_threads, impl):
    run_mel(record_threads, impl, "16k", 1024)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.benchmark(group="mel-22k")
def test_mel_22k(record_threads, impl):
    run_mel(record_threads, impl, "22k", 1024)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.benchmark(group="mel-32768")
def test_mel_32768(record_threads, impl):
    """Multiresolution level 5: msk.log_melspectrogram with n_fft 32768 is that level, bit for bit."""
    run_mel(record_threads, impl, "16k", 32768)


@pytest.mark.benchmark(group="mel-32768")
def test_multiresolution_all_levels(record_threads):
    y, sr = clip("16k")
    record_threads.extra_info.update(clip="16k", levels=6, n_fft="1024..32768", n_threads=1)
    levels = record_threads(msk.multiresolution, y, sr=sr, levels=6)
    assert len(levels) == 6 and all(S.shape == levels[0].shape for S in levels)
    check(levels[5], "16k", 32768)


@pytest.mark.parametrize("variant", list(SCIPY_VARIANTS))
@pytest.mark.parametrize("name", ["16k", "22k"])
def test_scipy_variants(record_threads, name, variant):
    y, sr = clip(name)
    record_threads.group = f"scipy-variants-{name}"
    run = scipy_pipeline(*SCIPY_VARIANTS[variant], sr, 1024)
    run(y)
    S = record_threads(run, y)
    check(S, name, 1024)


@pytest.mark.parametrize("code", ["pass", "import numpy", "import msk"])
@pytest.mark.benchmark(group="import")
def test_import(record_threads, code):
    """`import msk` in a fresh interpreter must stay cheap (STYLE.md rule 40)."""
    cmd = [sys.executable, "-c", code]
    record_threads.extra_info["command"] = " ".join(cmd)
    result = record_threads.pedantic(subprocess.run, args=(cmd,),
                                     kwargs=dict(capture_output=True, check=True),
                                     rounds=10, iterations=1, warmup_rounds=1)
    assert result.returncode == 0 and result.stderr == b""
