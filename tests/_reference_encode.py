"""Plain NumPy pipeline for the fused encoder (test and benchmark oracle).

windows copy (sliding_window_view) -> - mean -> @ W.T -> @ D.T -> threshold -> pool.
It materialises every intermediate of the whole clip, which is what the kernel avoids.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def windows(frames, width):
    """Copy of every window of ``width`` frames, shape (n_frames - width + 1, width * n_mels)."""
    n_mels = frames.shape[1]
    return sliding_window_view(frames, (width, n_mels)).reshape(-1, width * n_mels)


def encode(frames, mean, whitening, dictionary=None, *, width=1, encoding="linear", threshold=0.25):
    """Codes of every window position, shape (n_positions, K)."""
    codes = (windows(frames, width) - mean) @ whitening.T
    if dictionary is not None:
        codes = codes @ dictionary.T
    if encoding == "threshold":
        codes = np.maximum(codes - threshold, 0)
    return codes


def pool_codes(codes, pool, pooling=("max",)):
    """Pool codes over non-overlapping windows of ``pool`` rows (one short pool if fewer rows)."""
    n = codes.shape[0]
    n_pools = max(1, n // pool)
    size = pool if n >= pool else n
    blocks = codes[: n_pools * size].reshape(n_pools, size, -1)
    fns = {"max": np.max, "mean": np.mean, "std": np.std}
    return np.concatenate([fns[s](blocks, axis=1) for s in ("max", "mean", "std") if s in pooling], axis=1)


def encode_pool(frames, mean, whitening, dictionary=None, *, width=1, pool=128, pooling=("max",),
                encoding="linear", threshold=0.25):
    """The whole pipeline on one clip, shape (n_pools, K * n_stats)."""
    if isinstance(pooling, str):
        pooling = (pooling,)
    codes = encode(frames, mean, whitening, dictionary, width=width, encoding=encoding, threshold=threshold)
    return pool_codes(codes, pool, pooling)
