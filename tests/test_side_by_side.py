"""scripts/side_by_side.py: the combinations of the feature search (two feature sets, row by row)."""

import os
import sys

import numpy as np
import pytest
import soundfile as sf

import msk
from msk.baselines import logmel_stats
from msk.store import FeatureStore

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import side_by_side  # noqa: E402


def _store(path, rows, width, seed, starts=None):
    rng = np.random.default_rng(seed)
    st = FeatureStore(path, mode="w", model_info={"name": str(seed), "n_features": width}, durable=False)
    with st:
        for key, n in rows.items():
            start = np.arange(n) * 4.096 if starts is None else starts[key]
            st.put(key, rng.standard_normal((n, width)).astype(np.float32), start=start, end=start + 4.096)
    return FeatureStore(path, mode="r")


def test_two_stores_side_by_side(tmp_path):
    a = _store(tmp_path / "a.zarr", {"x.mp3": 3, "y/z.mp3": 1}, 5, 0)
    b = _store(tmp_path / "b.zarr", {"x.mp3": 3, "y/z.mp3": 1}, 2, 1)
    assert side_by_side.side_by_side(a.path, b.path, tmp_path / "ab.zarr") == 2
    out = FeatureStore(tmp_path / "ab.zarr", mode="r")
    for key in ("x.mp3", "y/z.mp3"):
        np.testing.assert_array_equal(out.get(key), np.hstack([a.get(key), b.get(key)]))
        np.testing.assert_array_equal(out.times(key)[0], a.times(key)[0])
    c = _store(tmp_path / "c.zarr", {"x.mp3": 3, "y/z.mp3": 1}, 2, 2,
               starts={"x.mp3": np.array([0.0, 4.0, 8.0]), "y/z.mp3": np.array([0.0])})
    with pytest.raises(SystemExit, match="x.mp3: the two stores' rows cover different seconds"):
        side_by_side.side_by_side(a.path, c.path, tmp_path / "ac.zarr")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A folder with 10 s of the example clip (clip.wav), a small model and its store of the clip (a.zarr)."""
    folder = tmp_path_factory.mktemp("clip")
    y = msk.load_audio(msk.example_audio())[: 16000 * 10]
    sf.write(folder / "clip.wav", y, 16000)
    model = msk.MultiscaleFeatures("laplacian", levels=2, n_clusters=4, n_samples=500, random_state=0).fit([y])
    msk.extract_many([folder / "clip.wav"], store=folder / "a.zarr", model=model, progress=False)
    return folder, model


def test_logmel_statistics_of_the_same_seconds(clip, tmp_path):
    folder, model = clip
    side_by_side.side_by_side(folder / "a.zarr", "logmel-stats", tmp_path / "out.zarr", corpus=folder)
    got = FeatureStore(tmp_path / "out.zarr", mode="r").get("clip.wav")
    F = msk.extract(folder / "clip.wav", model=model)
    assert got.shape == (F.shape[0], F.shape[1] + 400)
    np.testing.assert_array_equal(got[:, : F.shape[1]], F)
    # full windows: exactly the log-mel statistics baseline of those frames
    ref = logmel_stats(msk.log_melspectrogram(msk.load_audio(folder / "clip.wav")))
    np.testing.assert_allclose(got[: ref.shape[0], F.shape[1]:], ref, rtol=1e-5, atol=1e-5)


def _one_column(clip, tmp_path, mode):
    """The store of ``mode`` beside the clip's features (checked), and librosa's mel power of each row's frames.

    The reference is librosa's power mel spectrogram (the same filters) plus the log offset.
    """
    import librosa

    folder, model = clip
    side_by_side.side_by_side(folder / "a.zarr", mode, tmp_path / "out.zarr", corpus=folder)
    out = FeatureStore(tmp_path / "out.zarr", mode="r")
    got = out.get("clip.wav")
    F = msk.extract(folder / "clip.wav", model=model)
    assert got.shape == (F.shape[0], F.shape[1] + 1)
    np.testing.assert_array_equal(got[:, : F.shape[1]], F)
    P = librosa.feature.melspectrogram(y=msk.load_audio(folder / "clip.wav"), sr=16000, n_fft=1024,
                                       hop_length=512, n_mels=200).T + 1e-10
    start, end = out.times("clip.wav")
    frames = [P[int(round(a * 16000 / 512)): min(P.shape[0], int(round(b * 16000 / 512)))] for a, b in zip(start, end)]
    return got[:, -1], frames, (start, end)


def test_level_is_the_mean_log_mel_of_the_same_seconds(clip, tmp_path):
    got, frames, _ = _one_column(clip, tmp_path, "level")
    for row, P in enumerate(frames):
        np.testing.assert_allclose(got[row], np.log(P).mean(), rtol=1e-4, atol=1e-4)


def test_loudness_is_the_log_of_the_mean_power_of_the_same_seconds(clip, tmp_path):
    got, frames, (start, end) = _one_column(clip, tmp_path, "loudness")
    for row, P in enumerate(frames):
        np.testing.assert_allclose(got[row], np.log(P.mean()), rtol=1e-4)
    # 20 dB quieter audio: the column drops by log(100)
    folder, _ = clip
    sf.write(tmp_path / "quiet.wav", 0.1 * msk.load_audio(folder / "clip.wav"), 16000)
    q = side_by_side.loudness_rows(tmp_path / "quiet.wav", start, end)
    np.testing.assert_allclose(q[:, 0], got - np.log(100), atol=0.02)
