"""Plain NumPy pipeline for the fused encoder (test and benchmark oracle).

windows copy (sliding_window_view) -> standardise each window (optional) -> - mean -> @ W.T
-> @ D.T -> threshold / split / triangle -> pool. It materialises every intermediate of the
whole clip, which is what the kernel avoids; the triangle distances come from scipy's cdist on
the normalised whitened windows, not from dot products.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.spatial.distance import cdist


def windows(frames, width):
    """Copy of every window of ``width`` frames, shape (n_frames - width + 1, width * n_mels)."""
    n_mels = frames.shape[1]
    return sliding_window_view(frames, (width, n_mels)).reshape(-1, width * n_mels)


def standardize(x, eps):
    """Each row minus its mean, divided by sqrt(its variance + eps)."""
    return (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + eps)


def encode(frames, mean, whitening, dictionary=None, *, width=1, encoding="linear", threshold=0.25,
           normalization="none", normalization_eps=1.0):
    """Codes of every window position, shape (n_positions, K) (2K for "split")."""
    x = windows(frames, width)
    if normalization == "standardize":
        x = standardize(x, normalization_eps)
    h = (x - mean) @ whitening.T
    if encoding == "triangle":
        norm = np.linalg.norm(h, axis=1, keepdims=True)
        unit = np.divide(h, norm, out=np.zeros_like(h), where=norm > 0)
        z = cdist(unit, dictionary)
        return np.maximum(z.mean(axis=1, keepdims=True) - z, 0)
    codes = h if dictionary is None else h @ dictionary.T
    if encoding == "threshold":
        codes = np.maximum(codes - threshold, 0)
    elif encoding == "split":
        codes = np.hstack([np.maximum(codes - threshold, 0), np.maximum(-codes - threshold, 0)])
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
                encoding="linear", threshold=0.25, normalization="none", normalization_eps=1.0):
    """The whole pipeline on one clip, shape (n_pools, K * n_stats) (2K for "split")."""
    if isinstance(pooling, str):
        pooling = (pooling,)
    codes = encode(frames, mean, whitening, dictionary, width=width, encoding=encoding, threshold=threshold,
                   normalization=normalization, normalization_eps=normalization_eps)
    return pool_codes(codes, pool, pooling)
