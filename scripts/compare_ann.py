"""Compare ANN libraries for msk.search: build time, query latency, recall@10, size on disk.

Synthetic float32 track vectors of the real dimension with the structure of
pooled features (a shared positive offset, clusters in a low-dimensional
subspace, isotropic noise), L2-normalised; held-out queries from the same
distribution. Recall@10 is measured against exact inner-product search.

    python scripts/compare_ann.py --n 100000 --dim 3000 --threads 2

Libraries that are not installed are skipped. Prints one JSON line per library
and a table.
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np


def synthetic(n, dim, *, n_queries, seed):
    """Clustered low-rank vectors plus noise, L2-normalised (float32)."""
    rng = np.random.default_rng(seed)
    latent, n_clusters = 48, max(10, n // 100)
    basis = rng.standard_normal((latent, dim)).astype(np.float32) / np.sqrt(latent)
    centres = rng.standard_normal((n_clusters, latent)).astype(np.float32)
    offset = np.abs(rng.standard_normal(dim)).astype(np.float32)
    out = np.empty((n + n_queries, dim), dtype=np.float32)
    for a in range(0, n + n_queries, 10_000):
        b = min(a + 10_000, n + n_queries)
        c = rng.integers(0, n_clusters, size=b - a)
        z = centres[c] + 0.6 * rng.standard_normal((b - a, latent)).astype(np.float32)
        out[a:b] = offset + z @ basis + 0.5 * rng.standard_normal((b - a, dim)).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out[:n], out[n:]


def exact_topk(X, Q, k):
    S = Q @ X.T
    idx = np.argpartition(-S, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(S, idx, 1), axis=1, kind="stable")
    return np.take_along_axis(idx, order, 1)


def recall(found, truth):
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def per_query_latency(search_one, Q, repeat=1):
    times = []
    for q in Q:
        t = time.perf_counter()
        search_one(q)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3), float(np.percentile(times, 99) * 1e3)


def bench_exact(X, Q, k, truth, tmp):
    def one(q):
        s = X @ q
        i = np.argpartition(-s, k)[:k]
        return i[np.argsort(-s[i])]
    found = np.array([one(q) for q in Q])
    med, p99 = per_query_latency(one, Q[:200])
    path = os.path.join(tmp, "exact.npy")
    np.save(path, X)
    return dict(build_s=0.0, query_ms=med, p99_ms=p99, recall=recall(found, truth),
                disk_mb=os.path.getsize(path) / 2**20)


def bench_usearch(X, Q, k, truth, tmp, threads, dtype="f32"):
    from usearch.index import Index
    index = Index(ndim=X.shape[1], metric="ip", dtype=dtype, connectivity=16, expansion_add=128,
                  expansion_search=64)
    t = time.perf_counter()
    index.add(np.arange(len(X), dtype=np.uint64), X, threads=threads)
    build = time.perf_counter() - t
    path = os.path.join(tmp, f"usearch-{dtype}.usearch")
    index.save(path)
    index = Index.restore(path)
    index.expansion_search = 64
    found = index.search(Q, k, threads=threads).keys
    med, p99 = per_query_latency(lambda q: index.search(q, k, threads=1), Q[:200])
    return dict(build_s=build, query_ms=med, p99_ms=p99, recall=recall(found, truth),
                disk_mb=os.path.getsize(path) / 2**20)


def bench_msk(X, Q, k, truth, tmp, threads):
    """msk.search's own configuration (8-bit graph, 4x candidates re-scored exactly), one thread."""
    from msk.search import TrackIndex, build_index
    keys = [str(i) for i in range(len(X))]
    t = time.process_time()
    index = build_index(keys, X, method="ann")
    build = time.process_time() - t
    path = os.path.join(tmp, "msk.index.npz")
    index.save(path)
    index = TrackIndex.load(path)
    found = np.array([[int(key) for key in index.query(q, k)[0]] for q in Q])
    med, p99 = per_query_latency(lambda q: index.query(q, k), Q[:200])
    return dict(build_s=build, query_ms=med, p99_ms=p99, recall=recall(found, truth),
                disk_mb=os.path.getsize(path) / 2**20, note="build: CPU s, 1 thread; disk incl. f32 vectors")


def bench_hnswlib(X, Q, k, truth, tmp, threads):
    import hnswlib
    index = hnswlib.Index(space="ip", dim=X.shape[1])
    index.init_index(max_elements=len(X), M=16, ef_construction=128, random_seed=0)
    index.set_num_threads(threads)
    t = time.perf_counter()
    index.add_items(X, np.arange(len(X)))
    build = time.perf_counter() - t
    path = os.path.join(tmp, "hnswlib.bin")
    index.save_index(path)
    index = hnswlib.Index(space="ip", dim=X.shape[1])
    index.load_index(path)
    index.set_ef(64)
    index.set_num_threads(threads)
    found = index.knn_query(Q, k)[0]
    index.set_num_threads(1)
    med, p99 = per_query_latency(lambda q: index.knn_query(q, k), Q[:200])
    return dict(build_s=build, query_ms=med, p99_ms=p99, recall=recall(found, truth),
                disk_mb=os.path.getsize(path) / 2**20)


def bench_faiss(X, Q, k, truth, tmp, threads):
    import faiss
    faiss.omp_set_num_threads(threads)
    index = faiss.IndexHNSWFlat(X.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 128
    t = time.perf_counter()
    index.add(X)
    build = time.perf_counter() - t
    path = os.path.join(tmp, "faiss.index")
    faiss.write_index(index, path)
    index = faiss.read_index(path)
    index.hnsw.efSearch = 64
    found = index.search(Q, k)[1]
    faiss.omp_set_num_threads(1)
    med, p99 = per_query_latency(lambda q: index.search(q[None], k), Q[:200])
    return dict(build_s=build, query_ms=med, p99_ms=p99, recall=recall(found, truth),
                disk_mb=os.path.getsize(path) / 2**20)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=3000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    X, Q = synthetic(args.n, args.dim, n_queries=args.queries, seed=0)
    truth = exact_topk(X, Q, 10)
    runs = {
        "exact (numpy)": lambda tmp: bench_exact(X, Q, 10, truth, tmp),
        "usearch f32": lambda tmp: bench_usearch(X, Q, 10, truth, tmp, args.threads, "f32"),
        "usearch f16": lambda tmp: bench_usearch(X, Q, 10, truth, tmp, args.threads, "f16"),
        "msk.search (usearch i8)": lambda tmp: bench_msk(X, Q, 10, truth, tmp, args.threads),
        "hnswlib": lambda tmp: bench_hnswlib(X, Q, 10, truth, tmp, args.threads),
        "faiss HNSWFlat": lambda tmp: bench_faiss(X, Q, 10, truth, tmp, args.threads),
    }
    rows = []
    for name, run in runs.items():
        if args.only and not any(o in name for o in args.only):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            try:
                r = run(tmp)
            except ImportError as exc:
                print(f"{name}: skipped ({exc})", flush=True)
                continue
        r = {"library": name, "n": args.n, "dim": args.dim, "threads": args.threads, **r}
        print(json.dumps(r), flush=True)
        rows.append(r)
    print(f"{'library':24} {'build s':>8} {'query ms':>9} {'p99 ms':>7} {'recall@10':>9} {'disk MB':>8}")
    for r in rows:
        print(f"{r['library']:24} {r['build_s']:8.1f} {r['query_ms']:9.2f} {r['p99_ms']:7.2f} "
              f"{r['recall']:9.3f} {r['disk_mb']:8.0f}")


if __name__ == "__main__":
    main()
