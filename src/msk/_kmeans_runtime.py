"""The spherical K-means kernel's runtime: GEMM tiles, huge-page buffers, row chunks, threads.

:class:`KernelRunner` runs the compiled ``msk._core._kmeans.assign_update``
kernel over fixed row chunks (their number depends only on the data's
shape, so results do not depend on the thread count) on as many threads as
BLAS may use, each thread calling single-threaded BLAS on its own tiles.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._blas_threads import _SingleThreadedBlas, _blas_threads
from ._core import _kmeans

__all__ = ["KernelRunner"]

_TILE_BYTES = 4 << 20  # projection tile (n_clusters x tile rows): 4 MiB, on huge pages
_N_CHUNKS = 8  # fixed row chunks with their own accumulators: results do not depend on threads
_ALIGN = 128  # the kernel's argmax handles 128 float32 / 64 float64 samples per register block


def _tile_rows(n_clusters, itemsize):
    """Rows per GEMM tile: the (n_clusters, tile) projection block takes ~4 MiB.

    Measured on X (100 000, 400) float32, K = 500: tiles of 1536-4096 rows run at the same
    speed and 512 rows ~3 % slower (more repacking of the centroids by BLAS), with the tile
    buffer on 2 MiB pages (see the kernel).
    """
    rows = _TILE_BYTES // (n_clusters * itemsize)
    return int(min(4096, max(_ALIGN, rows // _ALIGN * _ALIGN)))


def _row_chunks(n, tile):
    """Split ``range(n)`` into at most ``_N_CHUNKS`` contiguous chunks of about equal size.

    Depends only on ``n`` and ``tile``, so the floating-point summation order, hence the
    result, is the same for any number of threads; equal sizes balance 1, 2, 4 or 8 threads.
    """
    n_chunks = max(1, min(_N_CHUNKS, -(-n // tile)))
    bounds = [0] + [min(n, round(n * c / n_chunks / _ALIGN) * _ALIGN) for c in range(1, n_chunks)] + [n]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _chunk_tile(length, tile):
    """Rows per tile for a chunk: at most ``tile``, splitting the chunk into equal tiles."""
    n_tiles = -(-length // tile)
    return min(tile, -(-(-(-length // n_tiles)) // _ALIGN) * _ALIGN)


def _huge_page_buffer(n_items, dtype):
    """An empty 1-D array starting on a 2 MiB boundary.

    NumPy asks for transparent huge pages on large allocations; aligning the start lets
    them back the whole tile, so the argmax's row-by-row walk over it costs no TLB misses.
    """
    dtype = np.dtype(dtype)
    huge = 2 << 20
    raw = np.empty(n_items * dtype.itemsize + huge, dtype=np.uint8)
    offset = (-raw.ctypes.data) % huge
    return raw[offset : offset + n_items * dtype.itemsize].view(dtype)


def _assign(X, centers, *, accumulate, executor=None, workspace=None):
    """One pass of the kernel over ``X``.

    Returns ``labels`` (int32), ``values`` (signed projections), ``energy`` (sum of
    values**2, float64) and, if ``accumulate``, ``S^T X`` (the undamped update),
    summed over the row chunks in a fixed order. ``workspace(tile, K, dtype)`` returns
    the calling thread's kernel buffers.
    """
    n, p = X.shape
    K = centers.shape[0]
    tile = _tile_rows(K, X.itemsize)
    chunks = _row_chunks(n, tile)
    labels = np.empty(n, dtype=np.int32)
    values = np.empty(n, dtype=X.dtype)
    energy = np.zeros((len(chunks), 1), dtype=np.float64)
    accum = np.zeros((len(chunks), K, p), dtype=X.dtype) if accumulate else [None] * len(chunks)
    if workspace is None:
        workspace = _Workspace()

    def run(c):
        a, b = chunks[c]
        work, order = workspace(min(tile, b - a), K, X.dtype)
        return _kmeans.assign_update(
            X[a:b], centers, _chunk_tile(b - a, tile), labels[a:b], values[a:b], accum[c],
            energy[c], work, order,
        )

    if executor is None or len(chunks) == 1:
        status = [run(c) for c in range(len(chunks))]
    else:
        status = list(executor.map(run, range(len(chunks))))
    if any(s > 0 for s in status):
        raise ValueError("`X` contains NaN or infinite values (or values so large that projections overflow).")
    update = accum.sum(axis=0) if accumulate else None  # fixed order; rounded once per chunk
    return labels, values, float(energy.sum()), update


class _Workspace:
    """Per-thread kernel buffers, kept for the life of one fit (no page faults per pass)."""

    def __init__(self):
        self._local = threading.local()

    def __call__(self, tile, K, dtype):
        key = (tile, K, np.dtype(dtype))
        cached = getattr(self._local, "buffers", None)
        if cached is None or cached[0][0] < tile or cached[0][1:] != key[1:]:
            cached = (key, _huge_page_buffer(tile * K, dtype), np.empty(tile + K + 1, dtype=np.int32))
            self._local.buffers = cached
        return cached[1], cached[2]


class KernelRunner:
    """Runs ``_assign`` on msk's own threads, as many as BLAS is allowed to use.

    Each worker calls single-threaded BLAS on its own row chunks (scikit-learn's
    KMeans does the same with OpenMP), so the thread count follows the BLAS limit
    the caller set, e.g. with ``threadpoolctl.threadpool_limits``. BLAS stays limited
    to one thread during the run even when msk uses one thread: BLAS threads on
    tile-sized GEMMs are slower than none.
    """

    def __init__(self, n_rows, n_clusters, itemsize):
        self._n_chunks = len(_row_chunks(n_rows, _tile_rows(n_clusters, itemsize)))

    def __enter__(self):
        blas_threads = _blas_threads()
        self.n_threads = min(blas_threads, self._n_chunks)
        self._blas = _SingleThreadedBlas().__enter__()
        self._executor = None
        self._workspace = _Workspace()
        if self.n_threads > 1:
            self._executor = ThreadPoolExecutor(self.n_threads, thread_name_prefix="msk-kmeans")
        return self

    def __call__(self, X, centers, *, accumulate):
        return _assign(X, centers, accumulate=accumulate, executor=self._executor,
                       workspace=self._workspace)

    def __exit__(self, *exc):
        if self._executor is not None:
            self._executor.shutdown()
        self._blas.__exit__(*exc)
        return False
