"""The feature store: reading everything back, and what writing adds to extraction.

    python -m pytest bench/bench_store.py --benchmark-only --benchmark-columns=median,min,rounds -s

Groups (each times one call; medians are what to compare):

- ``store-read-all``: every window feature of a store into one float32 matrix
  (``FeatureStore.concatenated()``), the current store (one sharded Zarr array,
  crc32c-checked chunks) beside the msk 0.1 store (one array per clip, read by msk
  0.1's own code, kept in ``tests/_store_v01.py``) holding the same data: 4 000
  clips of 7 windows of 3 000 features (336 MB). ``extra_info["GB_per_s"]`` is the rate.
- ``store-write``: extraction of 256 MP3 clips (the shipped example, 29.1 s) with the
  shipped Laplacian model on one thread, into a store (``msk.extract_many``: stat,
  SHA-256 of the file, duration, features, times, batched durable writes) beside the
  same extractions kept in memory (``msk.extract`` per file). ``extra_info`` holds ms
  per clip; the store's cost is the difference.
- ``store-overhead``: the same ``extract_many`` call with the model's transform replaced
  by a lookup of its precomputed results, so that only what the store path adds (stat,
  SHA-256, track vectors, batched crc32c-checked writes, fsync, commit) is timed;
  divide by ``test_extract_without_store`` (same run) for the fraction of extraction.
"""

import os
import shutil
import uuid

import numpy as np
import pytest

import msk
from msk.batch import default_model
from msk._blas_threads import SingleThreadedBlas

N_CLIPS = 4000
N_WINDOWS = 7
N_FEATURES = 3000
N_WRITE = 256


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    keys = [f"music/{i // 100:03d}/track{i:05d}.mp3" for i in range(N_CLIPS)]
    return keys, rng.standard_normal((N_CLIPS * N_WINDOWS, N_FEATURES), dtype=np.float32)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, data):
    import _store_v01

    keys, X = data
    root = tmp_path_factory.mktemp("stores")
    info = {"name": "bench", "n_features": N_FEATURES}
    new = msk.store.FeatureStore(root / "new.zarr", mode="w", model_info=info, durable=False)
    old = _store_v01.FeatureStore(root / "old.zarr", mode="w", model_info=info, durable=False)
    with new:
        for i, k in enumerate(keys):
            rows = X[i * N_WINDOWS : (i + 1) * N_WINDOWS]
            new.put(k, rows)
            old.put(k, rows)
    n_files = {name: sum(len(f) for _, _, f in os.walk(root / name)) for name in ("new.zarr", "old.zarr")}
    return root / "new.zarr", root / "old.zarr", n_files


def _gbps(benchmark, nbytes):
    benchmark.extra_info["GB"] = round(nbytes / 1e9, 3)
    benchmark.extra_info["GB_per_s"] = round(nbytes / 1e9 / benchmark.stats.stats.median, 3)


@pytest.mark.benchmark(group="store-read-all")
def test_read_all_store(record_threads, stores, data):
    path, _, n_files = stores
    keys, X = data

    def read():
        return msk.store.FeatureStore(path, mode="r").concatenated()

    got, clip_index = record_threads.pedantic(read, rounds=5, warmup_rounds=1)
    _gbps(record_threads, got.nbytes)
    record_threads.extra_info["files"] = n_files["new.zarr"]
    order = np.argsort(keys)  # the store returns its keys sorted
    np.testing.assert_array_equal(got[: 2 * N_WINDOWS], X[np.concatenate(
        [np.arange(j * N_WINDOWS, (j + 1) * N_WINDOWS) for j in order[:2]])])
    assert got.shape == X.shape and clip_index[-1] == N_CLIPS - 1


@pytest.mark.benchmark(group="store-read-all")
def test_read_all_store_v01(record_threads, stores, data):
    import _store_v01

    _, path, n_files = stores
    keys, X = data

    def read():
        return _store_v01.FeatureStore(path, mode="r").concatenated()

    got, clip_index = record_threads.pedantic(read, rounds=5, warmup_rounds=1)
    _gbps(record_threads, got.nbytes)
    record_threads.extra_info["files"] = n_files["old.zarr"]
    assert got.shape == X.shape and clip_index[-1] == N_CLIPS - 1


@pytest.fixture(scope="module")
def mp3s(tmp_path_factory):
    root = tmp_path_factory.mktemp("mp3")
    paths = []
    for i in range(N_WRITE):
        path = root / f"clip{i:02d}.mp3"
        shutil.copy(msk.example_audio(), path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def laplacian():
    return default_model("laplacian")


@pytest.mark.benchmark(group="store-write")
def test_extract_into_store(record_threads, mp3s, laplacian, tmp_path):
    def new_store():
        return (str(tmp_path / f"{uuid.uuid4().hex}.zarr"),), {}

    def run(out):
        return msk.extract_many(mp3s, model=laplacian, store=out, n_jobs=1, progress=False)

    with SingleThreadedBlas():
        summary = record_threads.pedantic(run, setup=new_store, rounds=5, warmup_rounds=1)
    record_threads.extra_info["ms_per_clip"] = round(1e3 * record_threads.stats.stats.median / N_WRITE, 2)
    assert summary.new == N_WRITE and not summary.failed
    st = msk.store.FeatureStore(summary.store, mode="r")
    np.testing.assert_array_equal(st.get("clip03.mp3"), msk.extract(mp3s[3], model=laplacian))


@pytest.mark.benchmark(group="store-write")
def test_extract_without_store(record_threads, mp3s, laplacian):
    def run():
        return [msk.extract(p, model=laplacian) for p in mp3s]

    with SingleThreadedBlas():
        out = record_threads.pedantic(run, rounds=5, warmup_rounds=1)
    record_threads.extra_info["ms_per_clip"] = round(1e3 * record_threads.stats.stats.median / N_WRITE, 2)
    assert len(out) == N_WRITE and out[0].shape[1] == laplacian.n_features_out_


@pytest.fixture(scope="module")
def cached_model(mp3s, laplacian):
    """The shipped model with its transform replaced by a lookup of precomputed results.

    Extracting into a store with it times exactly what the store path adds to extraction
    (stat, hashing, batching, durable writes): the analysis itself costs nothing, so the
    difference between two noisy end-to-end figures is not needed.
    """
    import copy

    results = {}
    with SingleThreadedBlas():
        for p in mp3s:
            results[os.path.abspath(p)] = laplacian.transform(p, last_window="keep", return_times=True)
    model = copy.copy(laplacian)
    model.transform = lambda path, **kw: results[os.path.abspath(path)]
    return model


@pytest.mark.benchmark(group="store-overhead")
def test_store_path_alone(record_threads, mp3s, cached_model, laplacian, tmp_path):
    """Everything a store adds, per clip: compare with ``test_extract_without_store``."""
    def new_store():
        return (str(tmp_path / f"{uuid.uuid4().hex}.zarr"),), {}

    def run(out):
        return msk.extract_many(mp3s, model=cached_model, store=out, n_jobs=1, progress=False)

    summary = record_threads.pedantic(run, setup=new_store, rounds=7, warmup_rounds=1)
    record_threads.extra_info["ms_per_clip"] = round(1e3 * record_threads.stats.stats.median / N_WRITE, 2)
    assert summary.new == N_WRITE and not summary.failed
    st = msk.store.FeatureStore(summary.store, mode="r")
    np.testing.assert_array_equal(st.get("clip03.mp3"), msk.extract(mp3s[3], model=laplacian))
