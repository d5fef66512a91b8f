"""msk.search: exact search against a NumPy oracle, the HNSW graph's recall, files, updates, the CLI."""

import json
import os
import shutil

import numpy as np
import pytest

import msk
from msk.cli import main
from msk.search import MAX_EXACT, TrackIndex, build_index, index_path, index_store
from msk.store import FeatureStore

from conftest import assert_close, example_pieces

try:
    import usearch  # noqa: F401

    HAVE_USEARCH = True
except ImportError:
    HAVE_USEARCH = False
needs_usearch = pytest.mark.skipif(not HAVE_USEARCH, reason="usearch (the `search` extra) is not installed")


def clustered(rng, n, d, n_clusters=20):
    """Vectors around a few centres (neighbours are meaningful, as for real tracks)."""
    centres = rng.standard_normal((n_clusters, d))
    return (centres[rng.integers(0, n_clusters, n)] + 0.7 * rng.standard_normal((n, d))).astype(np.float32)


def oracle(X, q, k, exclude=()):
    """Cosine similarities by hand, best first, ties by position."""
    Xn = X.astype(np.float64) / np.linalg.norm(X.astype(np.float64), axis=1, keepdims=True)
    s = Xn @ (q / np.linalg.norm(q))
    rows = [i for i in np.lexsort((np.arange(len(s)), -s)) if i not in set(exclude)][:k]
    return rows, s[rows]


def keys_of(n, prefix="t"):
    return [f"{prefix}{i:05d}" for i in range(n)]


# -- exact search --------------------------------------------------------------------------


def test_exact_search_matches_the_oracle(rng):
    X = clustered(rng, 500, 24)
    keys = keys_of(500)
    index = build_index(keys, X)
    assert index.method == "exact"
    for q in rng.standard_normal((10, 24)):
        got, scores = index.query(q, k=7)
        rows, expected = oracle(X, q, 7)
        assert got == [keys[r] for r in rows]
        assert scores.dtype == np.float32
        assert_close(scores, expected, atol=1e-6)
    # by key: the track itself is left out, the rest as the oracle ranks them
    got, scores = index.query("t00042", k=5)
    rows, expected = oracle(X, X[42].astype(np.float64), 5, exclude=[42])
    assert got == [keys[r] for r in rows]
    assert_close(scores, expected, atol=1e-6)


def test_scale_does_not_matter_and_k_larger_than_the_index(rng):
    X = clustered(rng, 30, 8)
    index = build_index(keys_of(30), X)
    a = index.query(X[3], k=4)
    b = index.query(X[3] * 1000.0, k=4)
    assert a[0] == b[0]
    assert a[0][0] == "t00003" and a[1][0] == pytest.approx(1.0, abs=1e-6)
    keys, scores = index.query("t00003", k=100)
    assert len(keys) == 29 and "t00003" not in keys
    assert np.all(np.diff(scores) <= 0)


def test_ties_are_ranked_by_position():
    X = np.array([[1, 0], [0, 1], [1, 0], [1, 0]], dtype=np.float32)
    keys, scores = build_index(["a", "b", "c", "d"], X).query([2.0, 0.0], k=3)
    assert keys == ["a", "c", "d"]
    assert scores.tolist() == [1.0, 1.0, 1.0]


def test_groups_are_excluded(rng):
    X = clustered(rng, 200, 16, n_clusters=5)
    keys = keys_of(200)
    groups = {k: f"artist{i % 7}" for i, k in enumerate(keys) if i % 11}  # some without a label
    index = build_index(keys, X)
    got, _ = index.query("t00001", k=20, groups=groups)
    assert all(groups.get(k) != groups["t00001"] for k in got)
    rows, _ = oracle(X, X[1].astype(np.float64), 20,
                     exclude=[i for i, k in enumerate(keys) if groups.get(k) == groups["t00001"]])
    assert got == [keys[r] for r in rows]
    # a vector query with a group of its own; an unlabelled key query excludes only itself
    got, _ = index.query(X[5], k=10, groups=groups, group="artist5")
    assert all(groups.get(k) != "artist5" for k in got)
    assert index.query("t00000", k=10, groups=groups)[0] == index.query("t00000", k=10)[0]


@pytest.mark.parametrize("vectors, keys, match, error", [
    (np.array([[1.0, np.nan]]), ["a"], "'a' holds NaN", ValueError),
    (np.zeros((2, 3)), ["a", "b"], "'a' is all zeros", ValueError),
    (np.ones((2, 3)), ["a", "a"], "unique; repeated: 'a'", ValueError),
    (np.ones((2, 3)), ["a"], "2 rows for 1 keys", ValueError),
    (np.ones(3), ["a"], "must be 2-D", ValueError),
    (np.ones((1, 3), dtype=complex), ["a"], "must be real", TypeError),
    (np.ones((1, 3)), "a", "single str", TypeError),
    (np.ones((1, 3)), [""], "non-empty str", TypeError),
])
def test_bad_vectors_and_keys(vectors, keys, match, error):
    with pytest.raises(error, match=match):
        build_index(keys, vectors)


def test_bad_queries(rng):
    index = build_index(keys_of(10), rng.standard_normal((10, 4)))
    with pytest.raises(KeyError, match="'nope' is not a key"):
        index.query("nope")
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        index.query(np.ones(5))
    with pytest.raises(ValueError, match="holds NaN"):
        index.query(np.array([1.0, np.nan, 0, 0]))
    with pytest.raises(ValueError, match="all zeros"):
        index.query(np.zeros(4))
    with pytest.raises(ValueError, match="`k` must be a positive integer; got 0"):
        index.query("t00001", k=0)
    with pytest.raises(TypeError, match="`groups` must be a mapping"):
        index.query("t00001", groups=["a"])
    with pytest.raises(ValueError, match="`method` must be one of"):
        build_index(["a"], np.ones((1, 2)), method="hnsw")


def test_auto_uses_exact_below_the_threshold(rng):
    X = rng.standard_normal((50, 4))
    assert build_index(keys_of(50), X).method == "exact"
    assert 50 * 4 <= MAX_EXACT
    if HAVE_USEARCH:
        assert build_index(keys_of(50), X, max_exact=100).method == "ann"
    else:
        with pytest.warns(UserWarning, match="pip install 'msk\\[search\\]'"):
            assert build_index(keys_of(50), X, max_exact=100).method == "exact"


# -- approximate search ----------------------------------------------------------------------


@needs_usearch
def test_ann_recall_at_10(rng):
    both = clustered(rng, 5200, 64, n_clusters=50)
    X, queries = both[:5000], both[5000:]  # held-out queries from the same clusters
    keys = keys_of(5000)
    exact = build_index(keys, X, method="exact")
    ann = build_index(keys, X, method="ann")
    assert ann.method == "ann"
    recall = np.mean([len(set(exact.query(q, 10)[0]) & set(ann.query(q, 10)[0])) / 10 for q in queries])
    assert recall >= 0.95
    # scores are exact cosines whatever found the candidates
    got, scores = ann.query(queries[0], 10)
    rows = [keys.index(k) for k in got]
    assert_close(scores, oracle(X, queries[0].astype(np.float64), 5000)[1][
        [oracle(X, queries[0].astype(np.float64), 5000)[0].index(r) for r in rows]], atol=1e-6)


@needs_usearch
def test_ann_groups_and_key_queries(rng):
    X = clustered(rng, 2000, 32)
    keys = keys_of(2000)
    groups = {k: f"g{i % 40}" for i, k in enumerate(keys)}
    ann = build_index(keys, X, method="ann")
    got, scores = ann.query("t00007", k=15, groups=groups)
    assert len(got) == 15 and "t00007" not in got
    assert all(groups[k] != groups["t00007"] for k in got)
    assert np.all(np.diff(scores) <= 0)


@needs_usearch
def test_ann_build_is_deterministic(tmp_path, rng):
    X = clustered(rng, 1000, 16)
    build_index(keys_of(1000), X, method="ann").save(tmp_path / "a.npz")
    build_index(keys_of(1000), X, method="ann").save(tmp_path / "b.npz")
    a = np.load(tmp_path / "a.npz")["ann"]
    b = np.load(tmp_path / "b.npz")["ann"]
    assert np.array_equal(a, b)


# -- files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["exact", pytest.param("ann", marks=needs_usearch)])
def test_save_load_round_trip(tmp_path, rng, method):
    X = clustered(rng, 300, 12)
    index = build_index(keys_of(300), X, method=method, source={"summary": "mean"})
    path = tmp_path / "tracks.index.npz"
    index.save(path)
    loaded = TrackIndex.load(path)
    assert loaded.method == method and loaded.keys == index.keys and loaded.source == {"summary": "mean"}
    assert np.array_equal(loaded.vectors, index.vectors)
    for q in ("t00001", X[7]):
        a, b = index.query(q, 10), loaded.query(q, 10)
        assert a[0] == b[0] and np.array_equal(a[1], b[1])
    with np.load(path, allow_pickle=False) as data:  # no pickled object inside
        assert all(data[name].dtype != object for name in data.files)


def test_damaged_files_are_refused(tmp_path, rng):
    X = rng.standard_normal((20, 4))
    path = tmp_path / "i.npz"
    build_index(keys_of(20), X).save(path)
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["vectors"] = arrays["vectors"].copy()
    arrays["vectors"][3, 1] += 1e-3
    np.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(ValueError, match="tampered.npz.*do not match their checksum"):
        TrackIndex.load(tmp_path / "tampered.npz")
    header = json.loads(bytes(arrays["header"]).decode())
    header["format_version"] = 99
    np.savez(tmp_path / "future.npz", **{**arrays, "header": np.frombuffer(json.dumps(header).encode(), np.uint8)})
    with pytest.raises(ValueError, match="future.npz.*format version 99"):
        TrackIndex.load(tmp_path / "future.npz")
    raw = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="cut.npz"):
        TrackIndex.load(tmp_path / "cut.npz")
    np.savez(tmp_path / "other.npz", x=np.ones(3))
    with pytest.raises(ValueError, match="other.npz.*no msk header"):
        TrackIndex.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        TrackIndex.load(tmp_path / "missing.npz")


@needs_usearch
def test_damaged_graph_is_refused(tmp_path, rng):
    path = tmp_path / "i.npz"
    build_index(keys_of(50), rng.standard_normal((50, 4)), method="ann").save(path)
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["ann"] = arrays["ann"].copy()
    arrays["ann"][-1] ^= 1
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="bad.npz.*graph does not match its checksum"):
        TrackIndex.load(tmp_path / "bad.npz")


# -- incremental updates -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["exact", pytest.param("ann", marks=needs_usearch)])
def test_update_equals_a_fresh_build(tmp_path, rng, method):
    both = clustered(rng, 1800, 16)
    X, pool = both[:1500], both[1500:]
    keys = keys_of(1500)
    index = build_index(keys, X, method=method)
    index.save(tmp_path / "i.npz")
    index = TrackIndex.load(tmp_path / "i.npz")
    # 100 removed, 50 changed, 200 new
    X2 = X.copy()
    X2[100:150] = pool[:50]
    new = pool[50:250]
    keys2 = keys[100:] + keys_of(200, prefix="new")
    vectors2 = np.vstack([X2[100:], new])
    summary = index.update(keys2, vectors2)
    assert summary == {"added": 200, "removed": 100, "changed": 50, "unchanged": 1350}
    assert index.method == method and len(index) == 1600
    index.save(tmp_path / "i.npz")
    index = TrackIndex.load(tmp_path / "i.npz")
    fresh = build_index(keys2, vectors2, method="exact")
    queries = pool[250:300]
    agree = np.mean([len(set(index.query(q, 10)[0]) & set(fresh.query(q, 10)[0])) / 10 for q in queries])
    if method == "exact":
        assert agree == 1.0
    else:
        assert agree >= 0.95
    assert not any(k in index for k in keys[:100])
    got, scores = index.query(X2[120], 1)
    assert got == ["t00120"] and scores[0] == pytest.approx(1.0, abs=1e-6)
    assert index.update(keys2, vectors2) == {"added": 0, "removed": 0, "changed": 0, "unchanged": 1600}


def test_update_refuses_other_dimensions(rng):
    index = build_index(keys_of(5), rng.standard_normal((5, 4)))
    with pytest.raises(ValueError, match="5 dimensions; this index takes 4"):
        index.update(keys_of(5), rng.standard_normal((5, 5)))


# -- feature stores --------------------------------------------------------------------------------


def fake_store(path, rng, keys, n_dims=12):
    store = FeatureStore(path, mode="a", model_info={"fingerprint": "f" * 64, "params": {}})
    out = {}
    for k in keys:
        F = rng.standard_normal((int(rng.integers(1, 5)), n_dims)).astype(np.float32)
        store.put(k, F)
        out[k] = F
    store.close()
    return out


def test_index_store_means_and_incremental_update(tmp_path, rng):
    path = tmp_path / "features.zarr"
    features = fake_store(path, rng, keys_of(40))
    index, summary = index_store(path)
    assert summary["path"] == index_path(path) == str(path) + ".index.npz"
    assert summary["built"] and summary["added"] == 40 and os.path.isfile(summary["path"])
    assert index.source["summary"] == "mean" and index.source["model"]["fingerprint"] == "f" * 64
    k = "t00003"
    mean = features[k].astype(np.float64).mean(axis=0)
    assert_close(index.vectors[index.keys.index(k)], mean / np.linalg.norm(mean), atol=1e-6)
    # the store grows: only the new keys are added
    fake_store(path, rng, keys_of(5, prefix="new"))
    index, summary = index_store(path)
    assert not summary["built"]
    assert (summary["added"], summary["removed"], summary["changed"], summary["unchanged"]) == (5, 0, 0, 40)
    assert len(TrackIndex.load(index_path(path))) == 45


def test_index_store_errors(tmp_path):
    FeatureStore(tmp_path / "empty.zarr", mode="w")
    with pytest.raises(ValueError, match="empty.zarr' holds no tracks yet"):
        index_store(tmp_path / "empty.zarr")
    with pytest.raises(FileNotFoundError, match="nothing.zarr"):
        index_store(tmp_path / "nothing.zarr")


# -- the command line ---------------------------------------------------------------------------------


def run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A store of three real 8 s pieces (shipped model) plus synthetic tracks of other 'artists'."""
    root = tmp_path_factory.mktemp("library")
    paths = example_pieces(root)
    store_path = root / "features.zarr"
    msk.extract_many(paths, store=store_path, n_jobs=1, progress=False)
    store = FeatureStore(store_path)
    rng = np.random.default_rng(5)
    for i in range(20):
        store.put(f"synthetic{i:02d}", np.abs(rng.standard_normal((2, store.n_features))).astype(np.float32))
    store.close()
    shutil.copy(paths[1], root / "copy-of-piece1.wav")
    groups = root / "artists.csv"
    keys = [os.path.basename(p) for p in paths]  # keys are relative to the library root
    groups.write_text("key,artist\n" + "".join(f"{k},A\n" for k in keys[:2]) + f"{keys[2]},B\n")
    return root, store_path, paths


def test_cli_index_and_similar(library, capsys):
    root, store, paths = library
    keys = [os.path.basename(p) for p in paths]  # keys are relative to the library root
    code, out, _ = run(capsys, ["index", str(store)])
    assert code == 0
    summary = json.loads(out)
    assert summary["n_items"] == 23 and summary["method"] == "exact" and summary["added"] == 23
    code, out, _ = run(capsys, ["similar", paths[0], "--store", str(store), "-k", "3", "--json"])
    assert code == 0
    result = json.loads(out)
    assert result["key"] == keys[0]
    neighbours = [n["key"] for n in result["neighbours"]]
    assert [n["rank"] for n in result["neighbours"]] == [1, 2, 3]
    assert keys[0] not in neighbours and set(keys[1:]) <= set(neighbours[:2])  # real music first
    # same artist left out
    code, out, _ = run(capsys, ["similar", paths[0], "--store", str(store), "-k", "3", "--json",
                                "--exclude-same", str(root / "artists.csv")])
    assert code == 0
    neighbours = [n["key"] for n in json.loads(out)["neighbours"]]
    assert keys[1] not in neighbours and neighbours[0] == keys[2]
    # a new file (a copy of piece 1) is extracted on the fly: piece 1 comes first, score 1
    code, out, _ = run(capsys, ["similar", str(root / "copy-of-piece1.wav"), "--store", str(store), "-k", "2"])
    assert code == 0
    first = out.splitlines()[0].split()
    assert first[0] == "1" and first[2] == keys[1] and float(first[1]) == pytest.approx(1.0, abs=1e-4)
    # rerun of index: nothing to do
    code, out, _ = run(capsys, ["index", str(store)])
    assert json.loads(out)["unchanged"] == 23 and not json.loads(out)["built"]


def test_cli_similar_errors(library, tmp_path, capsys):
    root, store, paths = library
    run(capsys, ["index", str(store)])
    code, _, err = run(capsys, ["similar", "no-such-key", "--store", str(store)])
    assert code == 1 and "'no-such-key' is neither a key of the index nor an audio file" in err
    code, _, err = run(capsys, ["similar", paths[0], "--store", str(tmp_path / "other.zarr")])
    assert code == 1 and "run `msk index" in err
    bad = tmp_path / "groups.csv"
    bad.write_text("key,artist\nx,1\nonly-a-key\n")
    code, _, err = run(capsys, ["similar", paths[0], "--store", str(store), "--exclude-same", str(bad)])
    assert code == 1 and "groups.csv: line 3 needs a key and a group" in err
    with pytest.raises(SystemExit) as exc:
        main(["similar", paths[0], "--store", str(store), "-k", "0"])
    assert exc.value.code == 2
    capsys.readouterr()
    # a model that is not the store's is refused for a new file
    other = msk.MultiscaleFeatures(levels=2, n_clusters=8, n_samples=500, random_state=0).fit([paths[0]])
    with pytest.raises(ValueError, match="another model"):
        TrackIndex.load(index_path(store)).query_audio(paths[0], model=other)
