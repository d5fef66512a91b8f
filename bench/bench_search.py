"""Similar-track search: query latency, recall@10 and build time of msk.search.

    python -m pytest bench/bench_search.py --benchmark-only \
        --benchmark-columns=median,min,iqr,rounds -s

Groups (each times one call; medians are what to compare):

- ``query``: one query (a held-out vector, k = 10) against 100 000 track vectors of 3000
  dimensions (the paper models' feature width; the default's 1400 is cheaper), exact search (a matrix-vector product
  and ``argpartition``) and the HNSW graph (USearch); recall@10 of the graph against
  exact search over 200 held-out queries is recorded in extra_info and checked (>= 0.95).
- ``query-projected``: the same with the index ``msk index`` makes for msk's default model:
  100 000 track vectors of the default's width mapped through the shipped projection
  (``msk.projection``) to its fewer dimensions; a query is a raw track vector, projected and
  then searched. Synthetic vectors as above, scaled to the projection's training statistics
  (its ``mean_`` and ``scale_``), so that they look like the track vectors it was learned on.
- ``build``: building the graph over the same vectors (one thread), against the
  extraction time of the same library, estimated from timing ``msk.extract`` on the
  shipped 29 s example clip (one thread) times the number of tracks; the ratio is in
  extra_info.

The vectors are synthetic, with the structure of pooled features: a shared positive
offset, clusters in a 48-dimensional subspace and isotropic noise, L2-normalised
(``scripts/compare_ann.py`` builds them the same way). ``MSK_BENCH_TRACKS`` changes the
number of tracks (default 100 000; the graph build then takes minutes). Single-threaded
(bench/conftest.py pins BLAS to one thread). The machine may be shared: numbers are noisy;
add ``--benchmark-timer=time.process_time`` for CPU time.
"""

import os
import sys
import time

import numpy as np
import pytest

import msk
from msk.search import build_index

usearch = pytest.importorskip("usearch", reason="the graph needs usearch (the `search` extra)")

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from compare_ann import synthetic  # noqa: E402

N_TRACKS = int(os.environ.get("MSK_BENCH_TRACKS", "100000"))
N_DIMS = 3000
N_QUERIES = 200


@pytest.fixture(scope="module")
def data():
    X, Q = synthetic(N_TRACKS, N_DIMS, n_queries=N_QUERIES, seed=0)
    keys = [f"track{i:06d}" for i in range(N_TRACKS)]
    return keys, X, Q


@pytest.fixture(scope="module")
def indexes(data):
    keys, X, _ = data
    t = time.process_time()
    ann = build_index(keys, X, method="ann")
    build_cpu = time.process_time() - t
    exact = build_index(keys, X, method="exact")
    return exact, ann, build_cpu


@pytest.fixture(scope="module")
def recall(data, indexes):
    _, _, Q = data
    exact, ann, _ = indexes
    hits = [len(set(exact.query(q, 10)[0]) & set(ann.query(q, 10)[0])) / 10 for q in Q]
    return float(np.mean(hits))


@pytest.mark.benchmark(group="query")
@pytest.mark.parametrize("method", ["exact", "ann"])
def test_query(record_threads, data, indexes, recall, method):
    _, _, Q = data
    exact, ann, _ = indexes
    index = exact if method == "exact" else ann
    queries = iter(np.tile(Q, (1000, 1)))
    keys, scores = record_threads(lambda: index.query(next(queries), 10))
    record_threads.extra_info.update(n_tracks=N_TRACKS, n_dims=N_DIMS, recall_at_10=recall)
    assert len(keys) == 10 and np.all(np.diff(scores) <= 0)
    assert recall >= 0.95


@pytest.fixture(scope="module")
def projected():
    from msk.projection import shipped_projection
    from msk.store import model_fingerprint

    proj = shipped_projection(model_fingerprint(msk.batch.default_model())["fingerprint"])
    d = proj.n_features_in_
    X, Q = synthetic(N_TRACKS, d, n_queries=N_QUERIES, seed=1)
    X = proj.mean_ + proj.scale_ * (X * np.sqrt(d, dtype=np.float32))  # unit-norm rows -> unit-variance values
    Q = proj.mean_ + proj.scale_ * (Q * np.sqrt(d, dtype=np.float32))
    keys = [f"track{i:06d}" for i in range(N_TRACKS)]
    exact = build_index(keys, X, method="exact", projection=proj)
    ann = build_index(keys, X, method="ann", projection=proj)
    hits = [len(set(exact.query(q, 10)[0]) & set(ann.query(q, 10)[0])) / 10 for q in Q]
    return exact, ann, Q, float(np.mean(hits))


@pytest.mark.benchmark(group="query-projected")
@pytest.mark.parametrize("method", ["exact", "ann"])
def test_query_projected(record_threads, projected, method):
    exact, ann, Q, recall = projected
    index = exact if method == "exact" else ann
    queries = iter(np.tile(Q, (1000, 1)))
    keys, scores = record_threads(lambda: index.query(next(queries), 10))
    record_threads.extra_info.update(n_tracks=N_TRACKS, n_features=index.n_features, n_dims=index.n_dims,
                                     recall_at_10=recall)
    assert len(keys) == 10 and np.all(np.diff(scores) <= 0)
    assert recall >= 0.95


@pytest.mark.benchmark(group="build")
def test_build_vs_extraction(record_threads, data, indexes):
    keys, X, _ = data
    _, _, build_cpu = indexes
    clip = msk.example_audio()
    msk.extract(clip)  # loads the model
    t = time.process_time()
    for _ in range(5):
        msk.extract(clip)
    per_clip = (time.process_time() - t) / 5
    extraction = per_clip * N_TRACKS
    record_threads.extra_info.update(
        n_tracks=N_TRACKS, build_cpu_s=build_cpu, extract_cpu_s_per_clip=per_clip,
        extraction_cpu_s=extraction, build_over_extraction=build_cpu / extraction,
    )
    index = record_threads.pedantic(build_index, args=(keys[:10_000], X[:10_000]),
                                    kwargs={"method": "ann"}, rounds=1, iterations=1)
    assert len(index) == 10_000
