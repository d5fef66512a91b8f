"""msk.hear: conformance with the HEAR 2021 API (shapes, dtypes, timestamps, batches, errors)."""

import numpy as np
import pytest

import msk
from msk import hear

from conftest import assert_close


@pytest.fixture(scope="module")
def model():
    return hear.load_model()


@pytest.fixture(scope="module")
def clip():
    return msk.load_audio(msk.example_audio(), sr=16000)


def test_model_attributes(model):
    assert isinstance(model, hear.HearModel)
    assert model.sample_rate == 16000 and isinstance(model.sample_rate, int)
    assert model.timestamp_embedding_size == 3000 == model.features.n_features_out_
    assert model.scene_embedding_size == 6000
    assert model.hop_ms == 32.0


def test_shapes_dtypes_and_timestamps(model, rng):
    librosa = pytest.importorskip("librosa")
    n = int(2.5 * model.sample_rate)
    audio = (0.1 * rng.standard_normal((3, n))).astype(np.float32)
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    n_frames = msk.log_melspectrogram(audio[0], sr=16000).shape[0]
    assert emb.shape == (3, n_frames, model.timestamp_embedding_size) and emb.dtype == np.float32
    assert ts.shape == (3, n_frames) and ts.dtype == np.float32
    assert np.isfinite(emb).all()
    # centred on the frames (librosa's frame times), uniform and at most 50 ms apart
    expected = 1000 * librosa.frames_to_time(np.arange(n_frames), sr=16000, hop_length=512)
    for row in ts:
        assert_close(row, expected, atol=1e-3)
    steps = np.diff(ts, axis=1)
    assert np.all(steps == steps[0, 0]) and 0 < steps[0, 0] <= 50
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (3, model.scene_embedding_size) and scene.dtype == np.float32


def test_a_batch_equals_its_items(model, rng):
    audio = (0.1 * rng.standard_normal((3, 20000))).astype(np.float32)
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    scene = hear.get_scene_embeddings(audio, model)
    for i in range(3):
        e1, t1 = hear.get_timestamp_embeddings(audio[i : i + 1], model)
        assert np.array_equal(e1[0], emb[i]) and np.array_equal(t1[0], ts[i])
        assert np.array_equal(hear.get_scene_embeddings(audio[i : i + 1], model)[0], scene[i])


@pytest.mark.parametrize("representation", ["laplacian", "gaussian", "multiresolution"])
def test_pooling_the_embeddings_gives_the_models_features(clip, representation):
    """Unpooled, the embeddings are the per-window codes: max over each pooling window = transform."""
    from msk.batch import default_model

    features = default_model(representation, preset="paper")
    model = hear.load_model(pool_frames=1)
    model.features = features  # same sizes: K = 500, 6 levels
    y = clip[: 16000 * 12]
    emb, _ = hear.get_timestamp_embeddings(y[None], model)
    F = features.transform(y)
    pool = features.pool_size
    pooled = np.stack([emb[0, p * pool : (p + 1) * pool].max(axis=0) for p in range(F.shape[0])])
    # codes of one window are the same dot products as in the fused kernel, in another order
    assert_close(pooled, F, atol=1e-4 * np.abs(F).max())


def test_short_centred_max_pool_and_scene_statistics(model, clip):
    y = clip[:40000][None]
    raw = hear.load_model(pool_frames=1)
    E1, _ = hear.get_timestamp_embeddings(y, raw)
    E5, _ = hear.get_timestamp_embeddings(y, model)
    n = E1.shape[1]
    expected = np.stack([E1[0, max(0, i - 2) : i + 3].max(axis=0) for i in range(n)])
    assert np.array_equal(E5[0], expected)
    scene = hear.get_scene_embeddings(y, model)[0]
    d = model.timestamp_embedding_size
    assert_close(scene[:d], E5[0].astype(np.float64).mean(axis=0), atol=1e-5)
    assert np.array_equal(scene[d:], E5[0].max(axis=0))


@pytest.mark.parametrize("n_samples, n_frames", [(16000, 32), (100, 1), (1, 1)])
def test_silence_and_short_sounds(model, n_samples, n_frames):
    audio = np.zeros((2, n_samples), dtype=np.float32)
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    assert emb.shape == (2, n_frames, 3000) and np.isfinite(emb).all()
    assert ts[0, 0] == 0.0
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (2, 6000) and np.isfinite(scene).all()


def test_float64_and_views_are_accepted(model, rng):
    audio = (0.1 * rng.standard_normal((2, 8000)))
    a32 = hear.get_scene_embeddings(audio.astype(np.float32), model)
    assert np.array_equal(hear.get_scene_embeddings(audio, model), a32)
    fortran = np.asfortranarray(audio.astype(np.float32))
    assert np.array_equal(hear.get_scene_embeddings(fortran, model), a32)


@pytest.mark.parametrize("audio, error, match", [
    (np.zeros(16000, np.float32), ValueError, r"shape \(n_sounds, n_samples\); got shape \(16000,\)"),
    (np.zeros((1, 2, 100), np.float32), ValueError, r"got shape \(1, 2, 100\)"),
    (np.zeros((2, 100), np.int16), TypeError, "floating-point samples.*int16"),
    (np.zeros((2, 0), np.float32), ValueError, "at least one sample"),
    (np.array([[0.0, np.nan], [0.0, 0.0]], np.float32), ValueError, "sound 0 holds NaN"),
    ("song.wav", TypeError, "got str"),
])
def test_bad_audio(model, audio, error, match):
    with pytest.raises(error, match=match):
        hear.get_timestamp_embeddings(audio, model)
    with pytest.raises(error, match=match):
        hear.get_scene_embeddings(audio, model)


def test_bad_model_arguments(tmp_path):
    with pytest.raises(TypeError, match="`model` must come from msk.hear.load_model"):
        hear.get_scene_embeddings(np.zeros((1, 100), np.float32), object())
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        hear.load_model(str(tmp_path / "missing.npz"))
    with pytest.raises(ValueError, match="`pool_frames` must be a positive odd integer; got 4"):
        hear.load_model(pool_frames=4)
    with pytest.raises(TypeError, match="`model_file_path` must be a path"):
        hear.load_model(None)


def test_load_a_saved_model(tmp_path, clip):
    fitted = msk.MultiscaleFeatures("gaussian", levels=3, width=2, n_clusters=16, n_samples=2000,
                                    random_state=0).fit([clip])
    fitted.save(tmp_path / "small.npz")
    model = hear.load_model(str(tmp_path / "small.npz"), pool_frames=1)
    assert model.timestamp_embedding_size == 48 and model.scene_embedding_size == 96
    y = clip[: 16000 * 10]
    emb, ts = hear.get_timestamp_embeddings(y[None], model)
    assert emb.shape == (1, ts.shape[1], 48)
    F = fitted.transform(y)
    pooled = np.stack([emb[0, p * 128 : (p + 1) * 128].max(axis=0) for p in range(F.shape[0])])
    assert_close(pooled, F, atol=1e-4 * np.abs(F).max())


def test_envelope_models(tmp_path, clip):
    """The envelope's columns: each band's power averaged over the frames, as transform averages it."""
    from scipy.special import logsumexp

    fitted = msk.MultiscaleFeatures("laplacian", levels=3, n_clusters=16, n_samples=2000, envelope=True,
                                    random_state=0).fit([clip])
    fitted.save(tmp_path / "env.npz")
    raw = hear.load_model(str(tmp_path / "env.npz"), pool_frames=1)
    assert raw.timestamp_embedding_size == 48 + 200 and raw.scene_embedding_size == 2 * 248
    y = clip[: 16000 * 10]
    emb, _ = hear.get_timestamp_embeddings(y[None], raw)
    S = msk.log_melspectrogram(y)
    assert_close(emb[0, :, 48:], S, atol=1e-5)  # one frame: its own log-mel
    F = fitted.transform(y)
    codes = np.stack([emb[0, p * 128 : (p + 1) * 128, :48].max(axis=0) for p in range(F.shape[0])])
    assert_close(codes, F[:, :48], atol=1e-4 * np.abs(F[:, :48]).max())
    env = np.stack([logsumexp(emb[0, p * 128 : (p + 1) * 128, 48:].astype(np.float64), axis=0) - np.log(128)
                    for p in range(F.shape[0])])
    assert_close(env, F[:, 48:], atol=1e-4)
    five, _ = hear.get_timestamp_embeddings(y[None], hear.load_model(str(tmp_path / "env.npz")))
    padded = np.concatenate([S[:1]] * 2 + [S] + [S[-1:]] * 2).astype(np.float64)
    want = np.stack([logsumexp(padded[i : i + 5], axis=0) - np.log(5) for i in range(len(S))])
    assert_close(five[0, :, 48:], want, atol=1e-4)
    assert np.isfinite(hear.get_scene_embeddings(np.zeros((1, 4000), np.float32), raw)).all()


def test_torch_tensors_in_and_out(model, rng):
    torch = pytest.importorskip("torch")
    audio = (0.1 * rng.standard_normal((2, 8000))).astype(np.float32)
    assert isinstance(model, torch.nn.Module)
    emb, ts = hear.get_timestamp_embeddings(torch.from_numpy(audio), model)
    assert isinstance(emb, torch.Tensor) and isinstance(ts, torch.Tensor)
    assert emb.dtype == torch.float32
    assert np.array_equal(emb.numpy(), hear.get_timestamp_embeddings(audio, model)[0])
    scene = hear.get_scene_embeddings(torch.from_numpy(audio), model)
    assert isinstance(scene, torch.Tensor) and tuple(scene.shape) == (2, 6000)


@pytest.mark.parametrize("params", [{"encoding": "split"}, {"window_normalization": "standardize"}])
def test_models_with_encoder_options_hear_does_not_compute_are_refused(tmp_path, clip, params):
    fitted = msk.MultiscaleFeatures("gaussian", levels=2, n_clusters=8, n_samples=2000, max_iter=3,
                                    random_state=0, **params).fit([clip[: 16000 * 5]])
    fitted.save(tmp_path / "options.npz")
    with pytest.raises(ValueError, match=r"msk.hear computes the codes of models with encoding 'linear' or "
                                         r"'threshold' and no window normalisation; this model has"):
        hear.load_model(str(tmp_path / "options.npz"))


@pytest.mark.parametrize("params", [dict(whitening="zca", n_clusters=None), dict(n_clusters=(10, 6, 3))])
def test_embeddings_follow_the_model_s_options(clip, tmp_path, params):
    """ZCA (codes in the window space) and one K per level: the embeddings have the model's sizes."""
    features = msk.MultiscaleFeatures(levels=3, n_samples=2000, max_iter=3, random_state=0, **params)
    features.fit([clip[: 16000 * 12], clip[16000 * 12:]])
    features.save(tmp_path / "m.npz")
    model = hear.load_model(tmp_path / "m.npz", pool_frames=1)
    assert model.timestamp_embedding_size == features.n_features_out_ == sum(features.n_features_per_level_)
    y = clip[: 16000 * 12]
    emb, _ = hear.get_timestamp_embeddings(y[None], model)
    F = features.transform(y)
    pooled = np.stack([emb[0, p * 128 : (p + 1) * 128].max(axis=0) for p in range(F.shape[0])])
    assert_close(pooled, F, atol=1e-4 * np.abs(F).max())
