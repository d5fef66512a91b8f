"""msk.extract and msk.extract_many: formats, odd inputs, long audio, batches, crashes, Dask."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from importlib import resources

import numpy as np
import pytest
import soundfile as sf
import soxr
from threadpoolctl import threadpool_limits

import msk
from conftest import assert_close
from msk.store import FeatureStore

extract_module = sys.modules["msk.batch"]
multiscale_module = sys.modules["msk.multiscale"]
SR = 16000


@pytest.fixture(scope="module")
def y():
    return msk.load_audio(msk.example_audio())


def _fit(y, representation="laplacian", levels=3, frames=1):
    pieces = [y[i : i + 7 * SR] for i in range(0, len(y) - 7 * SR + 1, 7 * SR)]
    # One BLAS thread: threaded LAPACK eigh is 100x slower on a loaded 2-core machine.
    with threadpool_limits(1):
        return msk.MultiscaleFeatures(representation, levels=levels, width=frames, n_clusters=16,
                                      n_samples=2000, max_iter=5, random_state=0).fit(pieces)


@pytest.fixture(scope="module")
def model(y):
    return _fit(y)


@pytest.fixture(scope="module")
def model_path(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "small.npz"
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def reference(model, y):
    return model.transform(y, last_window="keep")  # msk.extract's default


def _long_signal(y, seconds):
    """A signal of ``seconds`` built from the example clip with varied gain and offsets."""
    parts, n, k = [], 0, 0
    while n < seconds * SR:
        part = np.roll(y, 7919 * k) * (1.0 - 0.1 * (k % 5))
        parts.append(part.astype(np.float32))
        n += part.shape[0]
        k += 1
    return np.concatenate(parts)[: seconds * SR]


# -- formats and odd inputs ------------------------------------------------------------------


def test_formats(tmp_path, model, y, reference):
    float_wav = tmp_path / "float.wav"
    sf.write(float_wav, y, SR, subtype="FLOAT")
    np.testing.assert_array_equal(msk.extract(float_wav, model=model), reference)
    np.testing.assert_array_equal(msk.extract(str(float_wav), model=model), reference)
    # Lossless 16-bit: WAV and FLAC hold the same samples, hence the same features.
    pcm = np.round(np.clip(y, -1, 1) * 32767).astype(np.int16)
    sf.write(tmp_path / "pcm.wav", pcm, SR, subtype="PCM_16")
    sf.write(tmp_path / "pcm.flac", pcm, SR, subtype="PCM_16")
    F_wav = msk.extract(tmp_path / "pcm.wav", model=model)
    np.testing.assert_array_equal(msk.extract(tmp_path / "pcm.flac", model=model), F_wav)
    quantised, _ = sf.read(tmp_path / "pcm.wav", dtype="float32")
    np.testing.assert_array_equal(F_wav, msk.extract(quantised, sr=SR, model=model))
    # Lossy: same layout, strongly correlated features.
    sf.write(tmp_path / "x.ogg", y, SR, format="OGG", subtype="VORBIS")
    sf.write(tmp_path / "x.mp3", y, SR, format="MP3", subtype="MPEG_LAYER_III")
    for name in ("x.ogg", "x.mp3"):
        F = msk.extract(tmp_path / name, model=model)
        assert F.shape == reference.shape and F.dtype == np.float32
        assert np.corrcoef(F.ravel(), reference.ravel())[0, 1] > 0.9, name


def test_stereo_is_averaged(tmp_path, model, y):
    stereo = np.stack([y, np.zeros_like(y)], axis=1)
    sf.write(tmp_path / "stereo.wav", stereo, SR, subtype="FLOAT")
    np.testing.assert_array_equal(
        msk.extract(tmp_path / "stereo.wav", model=model), msk.extract(y / 2, sr=SR, model=model)
    )


def test_44k_file_and_array_are_resampled(tmp_path, model, y, reference):
    y44 = soxr.resample(y, SR, 44100).astype(np.float32)
    sf.write(tmp_path / "x44.wav", y44, 44100, subtype="FLOAT")
    F_file = msk.extract(tmp_path / "x44.wav", model=model)
    F_array = msk.extract(y44, sr=44100, model=model)
    np.testing.assert_array_equal(F_file, F_array)
    assert F_file.shape == reference.shape
    assert np.corrcoef(F_file.ravel(), reference.ravel())[0, 1] > 0.99
    # a path ignores sr
    np.testing.assert_array_equal(msk.extract(tmp_path / "x44.wav", model=model, sr=8000), F_file)


def test_short_clip_gives_one_pooling_window(tmp_path, model, y):
    half = y[: SR // 2]
    F = msk.extract(half, sr=SR, model=model)
    assert F.shape == (1, model.n_features_out_)
    np.testing.assert_array_equal(F, model.transform(half))  # "keep" and "drop" agree
    np.testing.assert_array_equal(F, msk.extract(half, sr=SR, model=model, last_window="drop"))
    sf.write(tmp_path / "half.flac", half, SR, subtype="PCM_24")
    assert msk.extract(tmp_path / "half.flac", model=model).shape == (1, model.n_features_out_)


def test_return_values_times_and_track(model, y):
    """features; (features, start, end); (..., track): the shipped models' full windows are unchanged."""
    F = msk.extract(y, sr=SR, model=model)
    F2, start, end = msk.extract(y, sr=SR, model=model, return_times=True)
    F3, track = msk.extract(y, sr=SR, model=model, summary="mean")
    F4, s4, e4, track2 = msk.extract(y, sr=SR, model=model, return_times=True, summary="mean+max")
    for other in (F2, F3, F4):
        np.testing.assert_array_equal(other, F)
    np.testing.assert_array_equal(s4, start)
    np.testing.assert_array_equal(e4, end)
    np.testing.assert_array_equal(track, F.astype(np.float64).mean(axis=0).astype(np.float32))
    np.testing.assert_array_equal(track2, np.concatenate([track, F.max(axis=0)]))
    np.testing.assert_array_equal(track, msk.store.track_vector(F))
    duration = len(y) / SR
    assert F.shape[0] == 8 and end[-1] == duration and start[-1] == 7 * 4.096
    np.testing.assert_allclose(end[:-1] - start[:-1], 4.096)
    # "drop" is the paper's setting, one argument away: the first rows of "keep", bit for bit
    D, d_start, d_end = msk.extract(y, sr=SR, model=model, last_window="drop", return_times=True)
    np.testing.assert_array_equal(D, F[:7])
    np.testing.assert_array_equal(D, model.transform(y))
    np.testing.assert_array_equal(d_end, end[:7])
    with pytest.raises(ValueError, match="`last_window` must be one of"):
        msk.extract(y, sr=SR, model=model, last_window="partial")
    with pytest.raises(ValueError, match="`summary` must be one of"):
        msk.extract(y, sr=SR, model=model, summary="median")


@pytest.mark.parametrize("representation", ["laplacian", "gaussian", "multiresolution"])
def test_shipped_models_full_windows_are_unchanged(representation):
    """The default ("keep") adds a row; the full windows of a 29.2 s clip stay "drop"'s, bit for bit."""
    if not resources.files("msk").joinpath("models", f"{representation}.npz").is_file():
        pytest.skip("shipped model not installed")
    model = extract_module.default_model(representation, preset="paper")
    drop = msk.extract(msk.example_audio(), preset="paper", representation=representation, last_window="drop")
    keep = msk.extract(msk.example_audio(), preset="paper", representation=representation)
    assert drop.shape == (7, 3000) and keep.shape == (8, 3000)
    np.testing.assert_array_equal(keep[:7], drop)
    np.testing.assert_array_equal(drop, model.transform(msk.example_audio()))


def test_extract_many_records_and_keeps_the_store_setting(tmp_path, clip_dir, model):
    paths = _audio_files(clip_dir)[:2]
    out = tmp_path / "d.zarr"
    msk.extract_many(paths, model=model, store=out, last_window="drop", progress=False)
    st = FeatureStore(out, mode="r")
    assert st.settings["last_window"] == "drop"
    key = st.keys()[0]
    path = st.record(key)["path"]
    F, start, end = msk.extract(path, model=model, last_window="drop", return_times=True)
    np.testing.assert_array_equal(st.get(key), F)
    np.testing.assert_array_equal(st.times(key)[0], start)
    np.testing.assert_array_equal(st.times(key)[1], end)
    with pytest.raises(ValueError, match="last_window='drop'; got last_window='keep'"):
        msk.extract_many(paths, model=model, store=out, last_window="keep", progress=False)
    # left out: the store's setting
    again = msk.extract_many(_audio_files(clip_dir)[:3], model=model, store=out, progress=False)
    assert again.new == 1
    st = FeatureStore(out, mode="r")
    assert st.settings["last_window"] == "drop" and all(len(st.get(k)) == 2 for k in st.keys())
    with pytest.raises(ValueError, match="`last_window` must be one of"):
        msk.extract_many(paths, model=model, store=tmp_path / "x.zarr", last_window="all")


def test_silence(model):
    F = msk.extract(np.zeros(10 * SR, np.float32), sr=SR, model=model)
    assert F.shape == (3, model.n_features_out_)  # two full windows and the last 1.8 s
    assert np.isfinite(F).all()
    np.testing.assert_array_equal(F[0], F[1])  # nothing changes in silence
    np.testing.assert_array_equal(F[0], F[2])


def test_dtypes_and_layouts(model, y):
    ref = msk.extract(y[::2], sr=8000, model=model)
    np.testing.assert_array_equal(msk.extract(np.ascontiguousarray(y[::2]), sr=8000, model=model), ref)
    np.testing.assert_array_equal(msk.extract(y[::2].astype(np.float64), sr=8000, model=model), ref)
    np.testing.assert_array_equal(msk.extract(list(y[::2][:8000]), sr=8000, model=model),
                                  msk.extract(y[::2][:8000], sr=8000, model=model))


def test_corrupt_and_missing_files(tmp_path, model):
    good = tmp_path / "good.mp3"
    shutil.copy(msk.example_audio(), good)
    data = good.read_bytes()
    sf.write(tmp_path / "whole.wav", np.zeros(SR, np.float32), SR)
    wav = (tmp_path / "whole.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(wav[: len(wav) // 3])
    (tmp_path / "junk.mp3").write_bytes(b"ID3" + bytes(range(256)) * 40)
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "empty.wav").write_bytes(b"")
    for name in ("cut.wav", "junk.mp3", "notes.txt", "empty.wav"):
        with pytest.raises(ValueError, match=name):
            msk.extract(tmp_path / name, model=model)
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        msk.extract(tmp_path / "nope.wav", model=model)
    with pytest.raises(ValueError, match="directory"):
        msk.extract(tmp_path, model=model)


# -- models and arguments --------------------------------------------------------------------


def test_model_from_path_is_cached(model, model_path, reference):
    np.testing.assert_array_equal(msk.extract(msk.example_audio(), model=model_path), reference)
    assert extract_module._load_model_file(model_path) is extract_module._load_model_file(model_path)


def test_shipped_model_or_a_clear_error(y):
    shipped = resources.files("msk").joinpath("models", "default.npz")
    if shipped.is_file():
        default = extract_module.default_model()
        F = msk.extract(y, sr=SR)
        assert F.shape == (8, default.n_features_out_)  # 7 full windows and the last 0.5 s
        assert msk.extract(y, sr=SR, last_window="drop").shape == (7, default.n_features_out_)
        assert extract_module.default_model(preset="default") is default
    else:
        with pytest.raises(FileNotFoundError, match=r"msk/models/default\.npz.*train_models\.py"):
            msk.extract(y, sr=SR)
    if not resources.files("msk").joinpath("models", "gaussian.npz").is_file():
        with pytest.raises(FileNotFoundError, match=r"msk/models/gaussian\.npz"):
            msk.extract(y, sr=SR, representation="gaussian")


def test_presets_name_the_shipped_models(y):
    models = resources.files("msk").joinpath("models")
    if not all(models.joinpath(f"{n}.npz").is_file() for n in ("default", "laplacian", "gaussian")):
        pytest.skip("shipped models not installed")
    default = extract_module.default_model()
    paper = extract_module.default_model(preset="paper")
    assert paper is extract_module.default_model("laplacian", preset="paper")
    assert paper.get_params()["n_clusters"] == 500 and paper.pooling == "max" and paper.encoding == "linear"
    assert default is not paper
    np.testing.assert_array_equal(msk.extract(y, sr=SR, preset="paper"), msk.extract(y, sr=SR, model=paper))
    np.testing.assert_array_equal(msk.extract(y, sr=SR), msk.extract(y, sr=SR, model=default))
    # a representation alone names the paper's model of it, unless it is the default's
    other = next(r for r in ("gaussian", "multiresolution", "laplacian") if r != default.representation)
    assert extract_module.default_model(other) is extract_module.default_model(other, preset="paper")
    assert extract_module.default_model(default.representation) is default
    with pytest.raises(ValueError, match=f"the default preset's model is a {default.representation} model, "
                                         f"not {other}; use preset='paper'"):
        msk.extract(y, sr=SR, preset="default", representation=other)
    with pytest.raises(ValueError, match="`preset` must be one of"):
        msk.extract(y, sr=SR, preset="fast")
    with pytest.raises(ValueError, match="give `model` or `preset`, not both"):
        msk.extract(y, sr=SR, preset="paper", model=paper)
    # every shipped model is found again by its fingerprint (taggers and indexes rely on it)
    from msk.store import model_fingerprint

    for m in (default, paper, extract_module.default_model("gaussian", preset="paper")):
        assert extract_module.shipped_model_with(model_fingerprint(m)["fingerprint"]) is m
    assert extract_module.shipped_model_with("0" * 64) is None


def test_bad_arguments(model, y):
    with pytest.raises(ValueError, match="`representation` must be one of 'multiresolution', 'gaussian' or 'laplacian'; got 'lapacian'"):
        msk.extract(y, sr=SR, representation="lapacian", model=model)
    with pytest.raises(TypeError, match="pyramid"):  # the alias of representation is gone
        msk.extract(y, sr=SR, pyramid="laplacian", model=model)
    with pytest.raises(ValueError, match="does not match the model's representation 'laplacian'"):
        msk.extract(y, sr=SR, representation="gaussian", model=model)
    np.testing.assert_array_equal(msk.extract(y, sr=SR, representation="laplacian", model=model),
                                  msk.extract(y, sr=SR, model=model))
    with pytest.raises(ValueError, match="`sr` must be given"):
        msk.extract(y, model=model)
    with pytest.raises(ValueError, match="`sr` must be a sample rate between 1 and 1000000 Hz"):
        msk.extract(y, sr=0, model=model)
    with pytest.raises(ValueError, match="mono waveform of shape"):
        msk.extract(np.stack([y, y], axis=1), sr=SR, model=model)
    with pytest.raises(ValueError, match="at least one sample"):
        msk.extract(np.zeros(0, np.float32), sr=SR, model=model)
    with pytest.raises(ValueError, match="NaN"):
        msk.extract(np.full(SR, np.nan, np.float32), sr=SR, model=model)
    with pytest.raises(TypeError, match="`path_or_array`"):
        msk.extract(b"abc", sr=SR, model=model)
    with pytest.raises(TypeError, match="`model` must be a fitted MultiscaleFeatures"):
        msk.extract(y, sr=SR, model=42)
    with pytest.raises(ValueError, match="not fitted"):
        msk.extract(y, sr=SR, model=msk.MultiscaleFeatures())
    with pytest.raises(FileNotFoundError, match="no such model file"):
        msk.extract(y, sr=SR, model="/nonexistent/model.npz")


# -- long audio ------------------------------------------------------------------------------


@pytest.mark.parametrize("last_window", ["drop", "keep", "pad"])
@pytest.mark.parametrize(
    "representation, levels, frames",
    [("laplacian", 6, 1), ("laplacian", 3, 2), ("gaussian", 4, 2), ("multiresolution", 4, 1)],
)
def test_segmented_equals_whole(monkeypatch, y, representation, levels, frames, last_window):
    """Long audio goes through segments; features equal the whole-signal computation."""
    m = _fit(y, representation, levels, frames)
    long_y = _long_signal(y, 150)  # 36 full pooling windows and 2.6 s
    whole, start, end = m.transform(long_y, last_window=last_window, return_times=True)
    assert whole.shape[0] == (36 if last_window == "drop" else 37)
    # Small segments and pieces: many boundaries at every level.
    monkeypatch.setattr(multiscale_module, "_WHOLE_FRAMES", 1024)
    monkeypatch.setattr(multiscale_module, "_SEGMENT_FRAMES", 640)
    monkeypatch.setattr(multiscale_module, "_SEGMENT_FRAMES_MULTIRES", 300)
    monkeypatch.setattr(multiscale_module, "_PIECE_FRAMES", 97)
    segmented, s_start, s_end = msk.extract(long_y, sr=SR, model=m, last_window=last_window,
                                            return_times=True)
    assert segmented.shape == whole.shape
    np.testing.assert_array_equal(s_start, start)
    np.testing.assert_array_equal(s_end, end)
    # Equal up to float32 rounding of the encoder's GEMMs, whose tiles differ (the rounding
    # is relative to the size of the codes, hence atol scaled by the largest one).
    assert_close(segmented, whole, rtol=1e-5, atol=1e-6 * float(np.abs(whole).max()))
    # As 8 kHz audio, resampled block by block, and as a file decoded block by block.
    y8 = soxr.resample(long_y, SR, 8000).astype(np.float32)
    whole8 = _unsegmented(monkeypatch, m, y8, 8000, last_window)
    assert_close(msk.extract(y8, sr=8000, model=m, last_window=last_window), whole8, rtol=1e-5,
                 atol=1e-6 * float(np.abs(whole8).max()))


def _unsegmented(monkeypatch, m, y, sr, last_window="keep"):
    with monkeypatch.context() as mp:
        mp.setattr(multiscale_module, "_WHOLE_FRAMES", 10**9)
        return msk.extract(y, sr=sr, model=m, last_window=last_window)


def test_segmented_file_equals_whole(monkeypatch, tmp_path, model, y):
    long_y = _long_signal(y, 120)
    sf.write(tmp_path / "long.flac", long_y, 22050, subtype="PCM_24")  # header rate != model rate
    whole = model.transform(msk.load_audio(tmp_path / "long.flac"), last_window="keep")
    monkeypatch.setattr(multiscale_module, "_WHOLE_FRAMES", 1024)
    monkeypatch.setattr(multiscale_module, "_SEGMENT_FRAMES", 512)
    monkeypatch.setattr(multiscale_module, "_READ_BLOCK", 5000)
    assert_close(msk.extract(tmp_path / "long.flac", model=model), whole, rtol=1e-5, atol=1e-5)


def test_an_hour_with_bounded_memory(tmp_path, model):
    """An hour of audio, written to a file on the fly, extracted in far less memory than its spectrogram."""
    sr, minutes = 8000, 60
    path = tmp_path / "hour.wav"

    def minute(k):
        t = np.arange(60 * sr) / sr + 60 * k
        noise = np.random.default_rng(k).standard_normal(t.shape[0])
        return (0.3 * np.sin(2 * np.pi * (220 + 5 * k) * t) * (1 + np.sin(t / 3)) / 2
                + 0.05 * noise).astype(np.float32)

    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for k in range(minutes):
            f.write(minute(k))
    tracemalloc.start()
    try:
        F = msk.extract(path, model=model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    n_frames = 1 + minutes * 60 * SR // 512
    spectrogram_bytes = n_frames * 200 * 4  # the hour's log-mel spectrogram alone: 90 MB
    assert F.shape == (-(-n_frames // 128), model.n_features_out_) == (879, 48)  # the last: 1.2 s
    assert np.isfinite(F).all()
    assert peak < spectrogram_bytes / 4, f"peak {peak / 1e6:.1f} MB"
    # Its first pools equal those of its first six minutes analysed whole.
    with sf.SoundFile(path) as f:
        head = f.read(6 * 60 * sr, dtype="float32")
    head_features = model.transform(soxr.resample(head, sr, SR, quality="HQ").astype(np.float32),
                                    last_window="keep")
    n = head_features.shape[0] - 2  # the last pools of the excerpt see its end
    assert_close(F[:n], head_features[:n], rtol=1e-5, atol=1e-5)


# -- batches ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory, y):
    """Eight distinct 10 s clips in several formats, plus a text file and a corrupt MP3."""
    root = tmp_path_factory.mktemp("clips")
    (root / "sub").mkdir()
    for i in range(8):
        clip = np.roll(y, 4000 * i)[: 10 * SR] * (0.5 + 0.05 * i)
        ext, subtype = [("wav", "FLOAT"), ("flac", "PCM_24")][i % 2]
        folder = root / "sub" if i >= 6 else root
        sf.write(folder / f"clip{i}.{ext}", clip.astype(np.float32), SR, subtype=subtype)
    (root / "README.txt").write_text("these are test clips")
    (root / "broken.mp3").write_bytes(b"ID3" + bytes(range(256)) * 20)
    return root


def _audio_files(root):
    return sorted(str(p) for p in root.rglob("clip*"))


def _key(path, root):
    return os.path.relpath(path, root).replace(os.sep, "/")


def _store_contents(path):
    store = FeatureStore(path, mode="r")
    return {k: store.get(k) for k in store.keys()}, store.failures()


def test_extract_many_directory_and_resume(tmp_path, clip_dir, model, capsys):
    out = tmp_path / "features.zarr"
    summary = msk.extract_many(clip_dir, model=model, store=out, n_jobs=2)
    assert (summary.new, summary.unchanged, summary.total) == (8, 0, 9)
    assert list(summary.failed) == ["broken.mp3"]
    assert summary.not_audio == [str(clip_dir / "README.txt")]
    assert "msk extract" in capsys.readouterr().err  # the progress bar
    features, failures = _store_contents(out)
    assert failures == summary.failed
    store = FeatureStore(out, mode="r")
    for path in _audio_files(clip_dir):
        key = _key(path, clip_dir)
        np.testing.assert_array_equal(features[key], msk.extract(path, model=model))
        rec = store.record(key)
        assert rec["path"] == path and rec["size"] == os.path.getsize(path)
        start, end = store.times(key)
        np.testing.assert_allclose(start, np.arange(len(start)) * 128 * 512 / SR)
        np.testing.assert_allclose(end[:-1], start[:-1] + 128 * 512 / SR)
        assert end[-1] == 10.0  # the kept last window ends with the audio
    again = msk.extract_many(clip_dir, model=model, store=out, n_jobs=2, progress=False)
    assert (again.new, again.changed, again.unchanged, sorted(again.failed)) == (0, 0, 8, ["broken.mp3"])
    assert "8 unchanged" in str(again) and "1 skipped (not audio)" in str(again)


@pytest.mark.parametrize("n_jobs", [1, 3])
def test_extract_many_identical_whatever_n_jobs(tmp_path, clip_dir, model, n_jobs):
    paths = _audio_files(clip_dir)
    keys = [f"id{i}" for i in range(len(paths))]
    reference = {k: msk.extract(p, model=model) for k, p in zip(keys, paths)}
    out = tmp_path / f"n{n_jobs}.zarr"
    summary = msk.extract_many(paths, model=model, store=out, keys=keys, n_jobs=n_jobs, progress=False)
    assert summary.done == len(paths) and not summary.failed
    features, _ = _store_contents(out)
    assert features.keys() == reference.keys()
    for k in keys:
        np.testing.assert_array_equal(features[k], reference[k])
    X, clip_index = FeatureStore(out, mode="r").concatenated(keys)
    np.testing.assert_array_equal(X, np.vstack([reference[k] for k in keys]))
    assert clip_index.max() == len(keys) - 1


def test_extract_many_arguments(tmp_path, clip_dir, model, model_path):
    paths = _audio_files(clip_dir)
    out = tmp_path / "s.zarr"
    with pytest.raises(ValueError, match="one key per path"):
        msk.extract_many(paths, model=model, store=out, keys=["a"])
    with pytest.raises(ValueError, match="unique.*'a'"):
        msk.extract_many(paths[:2], model=model, store=out, keys=["a", "a"])
    with pytest.raises(ValueError, match="`n_jobs`"):
        msk.extract_many(paths, model=model, store=out, n_jobs=0)
    with pytest.raises(TypeError, match="`paths` must hold str"):
        msk.extract_many([1, 2], model=model, store=out)
    with pytest.raises(TypeError, match="`store`"):
        msk.extract_many(paths, model=model, store=3)
    with pytest.raises(TypeError, match="`scheduler`"):
        msk.extract_many(paths[:1], model=model, store=out, scheduler=3.5, progress=False)
    with pytest.raises(ValueError, match="not inside the library root"):
        msk.extract_many(paths, model=model, store=out, root=clip_dir / "sub", progress=False)
    # a store object; the model given as a path is the same model
    with FeatureStore(out) as store:
        summary = msk.extract_many(paths[:2], model=model_path, store=store, progress=False)
        assert summary.done == 2 and len(store) == 2
    with pytest.raises(ValueError, match="read-only"):
        msk.extract_many(paths, model=model, store=FeatureStore(out, mode="r"))
    with threadpool_limits(1):
        other = msk.MultiscaleFeatures(levels=2, n_clusters=4, n_samples=500, max_iter=2,
                                       random_state=3).fit([msk.example_audio()])
    with pytest.raises(ValueError, match="refusing to mix"):
        msk.extract_many(paths, model=other, store=out)


_BATCH = textwrap.dedent("""
    import sys, msk
    store = msk.store.FeatureStore(sys.argv[2], batch_size=2)
    msk.extract_many(sys.argv[3], model=sys.argv[1], store=store, n_jobs=2, progress=False)
    store.close()
""")


def _n_committed(out):
    table = out / "clip" / "msk-table.jsonl"
    return table.read_bytes().count(b"\n") if table.exists() else 0


def test_killed_batch_resumes_to_the_same_store(tmp_path, y, model, model_path):
    """SIGKILL a real extract_many run mid-way, re-run it, compare with single-process results."""
    clips = tmp_path / "clips"
    clips.mkdir()
    paths = []
    for i in range(30):
        path = clips / f"c{i:02d}.wav"
        sf.write(path, (np.roll(y, 3001 * i)[: 20 * SR] * (0.4 + 0.02 * i)).astype(np.float32), SR,
                 subtype="PCM_16")
        paths.append(str(path))
    out = tmp_path / "features.zarr"
    proc = subprocess.Popen([sys.executable, "-c", _BATCH, model_path, str(out), str(clips)])
    deadline = time.monotonic() + 120
    while _n_committed(out) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = len(FeatureStore(out, mode="r"))
    assert 4 <= killed_at < 30, killed_at  # killed mid-way
    summary = msk.extract_many(clips, model=model_path, store=out, n_jobs=1, progress=False)
    assert summary.unchanged == killed_at and summary.new == 30 - killed_at and not summary.failed
    features, failures = _store_contents(out)
    assert not failures and sorted(features) == [os.path.basename(p) for p in paths]
    for path in paths:
        np.testing.assert_array_equal(features[os.path.basename(path)], msk.extract(path, model=model),
                                      err_msg=path)


# -- Dask ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield cluster, client


def test_dask_same_store_as_threads(tmp_path, clip_dir, model, dask_cluster):
    cluster, client = dask_cluster
    threads = tmp_path / "threads.zarr"
    msk.extract_many(clip_dir, model=model, store=threads, n_jobs=2, progress=False)
    on_dask = tmp_path / "dask.zarr"
    summary = msk.extract_many(clip_dir, model=model, store=on_dask, scheduler=client, progress=False)
    assert summary.done == 8 and len(summary.failed) == 1
    (f_threads, fail_threads), (f_dask, fail_dask) = _store_contents(threads), _store_contents(on_dask)
    assert f_dask.keys() == f_threads.keys() and fail_dask == fail_threads
    for k in f_threads:
        np.testing.assert_array_equal(f_dask[k], f_threads[k])
    # each worker loaded the model once and kept it
    loaded = client.run(lambda: len(sys.modules["msk.batch"]._WORKER_MODELS))
    assert sorted(loaded.values()) == [1, 1]
    # by address; a re-run skips what is done
    again = msk.extract_many(clip_dir, model=model, store=on_dask, scheduler=cluster.scheduler_address,
                             progress=False)
    assert again.done == 0 and again.unchanged == 8


def test_a_failed_file_carries_what_the_decoders_printed_on_it(tmp_path):
    """Decoder diagnostics (C, file descriptor 2) are attributed to the file that failed, threads or not."""
    from test_cli_help import _mp3_with_garbage

    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile has no MP3 support")
    lib = tmp_path / "lib"
    lib.mkdir()
    _mp3_with_garbage(lib / "broken.mp3", 3000, 1)  # fails after printing
    for i in range(4):
        _mp3_with_garbage(lib / f"noisy{i}.mp3", 200, 2 + i)  # decode after printing
    alone = msk.audio.decoder_messages(lib / "broken.mp3")
    assert any("Illegal Audio-MPEG-Header" in line for line in alone)
    assert len(alone) == len(set(alone)) <= 20
    model = msk.MultiscaleFeatures("laplacian", levels=2, n_clusters=4, n_samples=500,
                                   random_state=0).fit([msk.example_audio()])
    for n_jobs in (1, 2):
        summary = msk.extract_many(lib, store=tmp_path / f"s{n_jobs}.zarr", model=model, n_jobs=n_jobs,
                                   progress=False)
        assert summary.new == 4 and list(summary.failed) == ["broken.mp3"]
        first, *printed = summary.failed["broken.mp3"].splitlines()
        assert first.startswith("ValueError: ") and "broken.mp3" in first
        assert printed == [f"decoder: {line}" for line in alone]  # its own lines, none of the others'
        assert FeatureStore(summary.store, mode="r").record("broken.mp3")["reason"] == summary.failed["broken.mp3"]


def test_decoding_gate_lets_one_thread_decode_alone():
    import threading

    gate = extract_module._DecodingGate()
    events = []
    inside = threading.Event()
    release = threading.Event()

    def decoder(name):
        with gate.shared():
            events.append(f"{name} in")
            inside.set()
            release.wait(5)
            events.append(f"{name} out")

    def alone():
        with gate.alone():
            events.append("alone")

    a = threading.Thread(target=decoder, args=("a",))
    a.start()
    inside.wait(5)
    b = threading.Thread(target=alone)
    b.start()
    time.sleep(0.05)
    assert events == ["a in"]  # waits for the decoder in flight
    release.set()
    a.join(5)
    b.join(5)
    assert events == ["a in", "a out", "alone"]
    with gate.shared(), gate.shared():  # any number at once
        pass
