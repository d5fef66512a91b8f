"""msk.projection: the learned map against a SciPy reference, its files, the shipped one, its use by indexes."""

import hashlib
import json
from importlib import resources

import numpy as np
import pytest
import scipy.linalg
from sklearn.covariance import ledoit_wolf

import msk
from msk._persist import read_npz, write_npz
from msk.cli import main
from msk.projection import TrackProjection, shipped_projection
from msk.search import TrackIndex, build_index, index_path, index_store
from msk.store import FeatureStore, model_fingerprint

from conftest import assert_close, example_pieces


def grouped(rng, n_groups, per_group, d, signal=3, noise_dims=0):
    """Track vectors of recordings: a centre per group in the first ``signal`` dimensions, clip noise
    everywhere, and ``noise_dims`` dimensions of large within-group spread that tell nothing."""
    groups = np.repeat(np.arange(n_groups), per_group)
    centres = np.zeros((n_groups, d))
    centres[:, :signal] = 2.0 * rng.standard_normal((n_groups, signal))
    X = centres[groups] + 0.5 * rng.standard_normal((len(groups), d))
    if noise_dims:
        X[:, signal:signal + noise_dims] += 4.0 * rng.standard_normal((len(groups), noise_dims))
    return X, groups


def shrunk_cov(X):
    """Ledoit-Wolf covariance of standardised columns, scaled back (the estimate the eigen solver uses)."""
    mu, sd = X.mean(0), X.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return sd[:, None] * ledoit_wolf((X - mu) / sd)[0] * sd[None, :]


def reference_projection(X, groups):
    """Discriminant directions by hand: generalised eigenvectors of (between, within) covariances."""
    mu, sd = X.mean(0), X.std(0)
    Z = (X - mu) / sd
    labels, counts = np.unique(groups, return_counts=True)
    within = sum(c / len(Z) * shrunk_cov(Z[groups == g]) for g, c in zip(labels, counts))
    between = shrunk_cov(Z) - within
    values, vectors = scipy.linalg.eigh(between, within)
    order = np.argsort(values)[::-1][: len(labels) - 1]
    return mu, sd, vectors[:, order]


def test_fit_matches_the_reference(rng):
    X, groups = grouped(rng, n_groups=12, per_group=15, d=6)
    proj = TrackProjection().fit(X, groups)
    mu, sd, W = reference_projection(X, groups)
    assert proj.n_features_in_ == 6 and proj.n_components_ == 6
    assert_close(proj.mean_, mu, atol=1e-6)
    assert_close(proj.scale_, sd, atol=1e-6)
    # eigenvectors are defined up to sign: compare the inner products they give
    P, R = proj.transform(X).astype(np.float64), ((X - mu) / sd) @ W
    assert_close(P @ P.T, R @ R.T, rtol=1e-3, atol=1e-3 * np.abs(R @ R.T).max())
    # the map is what the docstring says
    assert_close(proj.transform(X), ((X - proj.mean_) / proj.scale_) @ proj.components_, atol=1e-5)
    # fewer components: the leading ones
    few = TrackProjection(n_components=2).fit(X, groups)
    assert_close(few.transform(X), proj.transform(X)[:, :2], atol=1e-6)


def test_it_finds_recordings_that_cosine_misses(rng):
    """Nuisance dimensions swamp raw cosine similarity; the learned map ignores them on new recordings."""
    X, groups = grouped(rng, 60, 6, d=20, signal=4, noise_dims=8)
    proj = TrackProjection().fit(X, groups)
    Y, new_groups = grouped(rng, 40, 6, d=20, signal=4, noise_dims=8)

    def same_group_first(V):
        V = V / np.linalg.norm(V, axis=1, keepdims=True)
        S = V @ V.T
        np.fill_diagonal(S, -np.inf)
        return np.mean(new_groups[S.argmax(1)] == new_groups)

    raw, projected = same_group_first(Y - X.mean(0)), same_group_first(proj.transform(Y))
    assert projected > raw + 0.2, (raw, projected)


@pytest.mark.parametrize("groups, X, match", [
    (np.zeros(10), None, "at least two recordings"),
    (np.arange(10), None, "one of them with two or more clips"),
    (np.repeat([0, 1], 4), None, "one label per row"),
    (np.repeat([0, 1], 5), np.full((10, 3), np.nan), "row 0 holds NaN"),
    (np.repeat([0, 1], 5), np.ones(10), "must be 2-D"),
])
def test_fit_errors(rng, groups, X, match):
    X = rng.standard_normal((10, 3)) if X is None else X
    with pytest.raises(ValueError, match=match):
        TrackProjection().fit(X, groups)


def test_transform_errors(rng):
    X, groups = grouped(rng, 5, 4, d=3)
    with pytest.raises(ValueError, match="not fitted"):
        TrackProjection().transform(X)
    proj = TrackProjection().fit(X, groups)
    with pytest.raises(ValueError, match="learned on 3-dimensional"):
        proj.transform(np.ones((2, 4)))
    with pytest.raises(ValueError, match="row 1 holds NaN"):
        proj.transform(np.array([[1.0, 2, 3], [np.inf, 0, 0]]))
    with pytest.raises(TypeError, match="JSON-serialisable"):
        TrackProjection().fit(X, groups, info={"model": object()})


def test_save_load_round_trip_and_damage(tmp_path, rng):
    X, groups = grouped(rng, 8, 5, d=5)
    proj = TrackProjection().fit(X, groups, info={"model": {"fingerprint": "a" * 64}, "summary": "mean",
                                                   "trained_on": {"n_clips": 40}})
    path = tmp_path / "p.npz"
    proj.save(path)
    again = TrackProjection.load(path)
    for name in ("mean_", "scale_", "components_"):
        assert np.array_equal(getattr(again, name), getattr(proj, name))
    assert again.info == proj.info and again.applies_to("a" * 64, "mean")
    assert not again.applies_to("a" * 64, "mean+max") and not again.applies_to("b" * 64, "mean")
    proj.save(tmp_path / "q.npz")
    assert (tmp_path / "q.npz").read_bytes() == path.read_bytes()  # the same projection, the same bytes
    # a flipped value in the components
    header, arrays = read_npz(path, "track projection")
    arrays["components"] = arrays["components"].copy()
    arrays["components"][0, 0] += 1
    bad = tmp_path / "bad.npz"
    with open(bad, "wb") as f:
        write_npz(f, {"header": np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays})
    with pytest.raises(ValueError, match="bad.npz' is not a readable msk track projection: its arrays do not match"):
        TrackProjection.load(bad)
    # a header that claims a huge size is refused before any array is used
    header2 = dict(header, n_features=1 << 40)
    with open(bad, "wb") as f:
        write_npz(f, {"header": np.frombuffer(json.dumps(header2).encode(), np.uint8), **arrays})
    with pytest.raises(ValueError, match="n_features"):
        TrackProjection.load(bad)
    # another msk file, a non-archive, nothing
    other = tmp_path / "index.npz"
    build_index(["a", "b"], np.eye(2)).save(other)
    with pytest.raises(ValueError, match="not an msk track projection"):
        TrackProjection.load(other)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        TrackProjection.load(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="none.npz"):
        TrackProjection.load(tmp_path / "none.npz")


# -- the shipped projection ---------------------------------------------------------------------


def test_the_shipped_projection_is_the_recorded_one_for_the_default_model():
    record = json.loads(resources.files("msk").joinpath("models", "MODELS.json").read_text())["default"]["similarity"]
    data = resources.files("msk").joinpath("models", record["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == record["sha256"] and len(data) == record["bytes"]
    model = msk.batch.default_model()
    fingerprint = model_fingerprint(model)["fingerprint"]
    proj = shipped_projection(fingerprint)
    assert proj is not None and proj.n_features_in_ == model.n_features_out_ == record["n_features"]
    assert proj.n_components_ == record["n_components"]
    assert proj.info["trained_on"]["root"].startswith("pool")  # never the labelled corpus
    assert shipped_projection(fingerprint, "mean+max") is None
    paper = model_fingerprint(msk.batch.default_model(preset="paper"))["fingerprint"]
    assert shipped_projection(paper) is None
    # real audio: finite projected track vectors of the model's clips
    F = msk.extract(msk.example_audio())
    v = proj.transform(msk.multiscale.track_vector(F)[None, :])
    assert v.shape == (1, record["n_components"]) and np.isfinite(v).all() and np.abs(v).max() > 0


# -- indexes ------------------------------------------------------------------------------------


def keys_of(n):
    return [f"t{i:04d}" for i in range(n)]


def test_index_with_a_projection(tmp_path, rng):
    X, groups = grouped(rng, 30, 4, d=10, signal=3, noise_dims=4)
    proj = TrackProjection(n_components=6).fit(X, groups)
    keys = keys_of(len(X))
    index = build_index(keys, X, projection=proj)
    assert index.n_features == 10 and index.n_dims == proj.n_components_ and "projected from 10" in repr(index)
    P = proj.transform(X).astype(np.float64)
    assert_close(index.vectors, P / np.linalg.norm(P, axis=1, keepdims=True), atol=1e-6)
    # a vector query is a raw track vector, projected like the stored ones
    by_key, s1 = index.query(keys[7], k=5)
    by_vector, s2 = index.query(X[7], k=6)
    assert by_vector[0] == keys[7] and by_vector[1:] == by_key
    assert_close(s2[1:], s1, atol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        index.query(P[7], k=3)  # a projected vector is not a track vector
    # update projects too, and equals a fresh build
    Y = X.copy()
    Y[3] += 1
    index.update(keys[1:] + ["new"], np.vstack([Y[1:], X[:1]]))
    fresh = build_index(keys[1:] + ["new"], np.vstack([Y[1:], X[:1]]), projection=proj)
    order = [index.keys.index(k) for k in fresh.keys]
    assert_close(index.vectors[order], fresh.vectors, atol=1e-7)
    # the file keeps the projection
    index.save(tmp_path / "i.npz")
    loaded = TrackIndex.load(tmp_path / "i.npz")
    assert np.array_equal(loaded.projection.components_, proj.components_)
    assert loaded.query(X[7], k=6)[0] == index.query(X[7], k=6)[0]
    with pytest.raises(TypeError, match="TrackProjection or None"):
        build_index(keys, X, projection="auto")


def test_version_1_index_files_still_load(tmp_path, rng):
    X = rng.standard_normal((6, 3))
    build_index(keys_of(6), X).save(tmp_path / "i.npz")
    header, arrays = read_npz(tmp_path / "i.npz", "track index")
    header = {k: v for k, v in header.items() if k != "projection"}
    header["format_version"] = 1
    with open(tmp_path / "v1.npz", "wb") as f:
        write_npz(f, {"header": np.frombuffer(json.dumps(header).encode(), np.uint8),
                      **{k: v for k, v in arrays.items() if k != "header"}})
    old = TrackIndex.load(tmp_path / "v1.npz")
    assert old.projection is None and old.query(X[2], k=1)[0] == ["t0002"]


def test_index_store_projection_choices(tmp_path, rng):
    X, groups = grouped(rng, 10, 3, d=8)
    path = tmp_path / "features.zarr"
    store = FeatureStore(path, mode="a", model_info={"fingerprint": "f" * 64, "params": {}})
    for k, x in zip(keys_of(len(X)), X):
        store.put(k, x[None, :].astype(np.float32))
    store.close()
    # "auto": nothing is shipped for this model
    index, summary = index_store(path)
    assert index.projection is None and summary["projection"] is None
    # a projection given as a file: the index is rebuilt with it
    proj = TrackProjection().fit(X, groups, info={"model": {"fingerprint": "f" * 64}, "summary": "mean"})
    proj.save(tmp_path / "p.npz")
    index, summary = index_store(path, projection=tmp_path / "p.npz")
    assert summary["built"] and summary["projection"] == proj.arrays()[0]["sha256"]
    assert index.n_dims == proj.n_components_
    # unchanged store, same projection: an update; another choice: a rebuild
    assert not index_store(path, projection=proj)[1]["built"]
    assert index_store(path, projection=None)[1]["built"]
    with pytest.raises(ValueError, match="takes 5-dimensional"):
        index_store(path, projection=TrackProjection().fit(X[:, :5], groups))
    with pytest.raises(TypeError, match="'auto', None"):
        index_store(path, projection=3)


def test_cli_index_uses_the_shipped_projection(tmp_path, capsys):
    paths = example_pieces(tmp_path)
    store = tmp_path / "features.zarr"
    msk.extract_many(paths, store=store, n_jobs=1, progress=False)
    assert main(["index", str(store)]) == 0
    summary = json.loads(capsys.readouterr().out)
    shipped = shipped_projection(model_fingerprint(msk.batch.default_model())["fingerprint"])
    assert summary["projection"] == shipped.arrays()[0]["sha256"] and summary["built"]
    # a new file is extracted, summarised and projected like the stored tracks: itself first, score 1
    assert main(["similar", paths[1], "--store", str(store), "-k", "1", "--json"]) == 0
    capsys.readouterr()
    index = TrackIndex.load(index_path(store))
    keys, scores = index.query_audio(paths[1], k=1)
    assert keys == ["piece1.wav"] and scores[0] == pytest.approx(1.0, abs=1e-4)
    assert main(["index", str(store), "--projection", "none"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["projection"] is None and summary["built"]
    assert main(["info", str(resources.files("msk").joinpath("models", "default-similarity.npz"))]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["header"]["format"] == "msk.TrackProjection" and info["projection"].endswith("default-similarity.npz")
    assert info["arrays"]["components"]["shape"] == [shipped.n_features_in_, shipped.n_components_]
    code = main(["index", str(store), "--projection", str(tmp_path / "missing.npz")])
    assert code == 1 and "missing.npz" in capsys.readouterr().err


CHILD = """
import sys
from msk.projection import TrackProjection
from msk.search import TrackIndex
cls = {"projection": TrackProjection, "index": TrackIndex}[sys.argv[1]]
try:
    cls.load(sys.argv[2])
except ValueError as exc:
    print(exc)
    sys.exit(3)
sys.exit(0)
"""


@pytest.mark.parametrize("what", ["projection", "index"])
@pytest.mark.parametrize("craft", ["compressed member", "lying shape", "huge claim"])
def test_crafted_files_are_refused_in_a_child_process(tmp_path, rng, what, craft):
    """Crafted arrays or headers give a ValueError naming the file, never a crash or a big allocation."""
    import subprocess
    import sys

    X, groups = grouped(rng, 6, 4, d=5)
    proj = TrackProjection(n_components=3).fit(X, groups)
    good = tmp_path / "good.npz"
    if what == "projection":
        proj.save(good)
    else:
        build_index(keys_of(len(X)), X, projection=proj).save(good)
    header, arrays = read_npz(good, what)
    prefix = "" if what == "projection" else "projection_"
    if craft == "lying shape":
        arrays[f"{prefix}components"] = np.zeros((5, 4), np.float32)
    elif craft == "huge claim":
        target = header if what == "projection" else header["projection"]
        target["n_components"] = 1 << 40
    bad = tmp_path / "bad.npz"
    with open(bad, "wb") as f:
        write_npz(f, {"header": np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays})
    if craft == "compressed member":  # rewrite the archive with a deflated member
        import zipfile

        with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    r = subprocess.run([sys.executable, "-c", CHILD, what, str(bad)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert "bad.npz" in r.stdout
