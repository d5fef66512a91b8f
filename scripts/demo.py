"""Extract multiscale features from real music with the models shipped in msk, then show the
pipeline's stages one by one.

    python scripts/demo.py [audio file]

No arguments: the real music clip shipped with the package. Prints the features and the shape
and time of every stage.
"""

import sys
import time

import numpy as np

import msk


def timed(label, fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    dt = (time.perf_counter() - t0) * 1e3
    shapes = [a.shape for a in out] if isinstance(out, list) else out.shape
    print(f"{label:<34s} {dt:8.2f} ms   {shapes}")
    return out


def main(argv):
    path = argv[1] if len(argv) > 1 else msk.example_audio()
    print(f"msk {msk.__version__}: {path}")
    msk.extract(path)  # loads the shipped default model once
    timed("msk.extract (default preset)", msk.extract, path)
    for rep in ("laplacian", "gaussian", "multiresolution"):
        msk.extract(path, preset="paper", representation=rep)  # loads the shipped model once
        timed(f"msk.extract (paper, {rep})", msk.extract, path, preset="paper", representation=rep)
    F = msk.extract(path)
    default = msk.batch.default_model()
    widths = default.n_features_per_level_
    print(f"Default features ({default.representation}): {F.shape[0]} pooling windows of 4.1 s x {F.shape[1]} "
          f"({len(widths)} levels x {widths[0]} means); first 6 features of each level, per window:")
    starts = np.cumsum([0] + widths[:-1])
    print(np.round(np.hstack([F[:, a:a + 6] for a in starts]), 2))
    print()
    print("The stages:")
    y = timed("load_audio (16 kHz mono)", msk.load_audio, path)
    msk.log_melspectrogram(y)  # first call builds the cached mel filters
    S = timed("log_melspectrogram (n_frames, 200)", msk.log_melspectrogram, y)
    timed("multiresolution (6 levels)", msk.multiresolution, y)
    timed("gaussian_pyramid (6 levels)", msk.gaussian_pyramid, S)
    L = timed("laplacian_pyramid (6 levels)", msk.laplacian_pyramid, S)
    R = msk.reconstruct_laplacian(L)
    print(f"Laplacian reconstruction error: {abs(R - S).max():.2e}")

    # Feature learning on the clip itself (a real model is fitted on many clips): 6-level
    # Laplacian pyramid, windows of 1 frame, 16 means per level, max-pooling over 4.1 s.
    model = msk.MultiscaleFeatures("laplacian", levels=6, width=1, n_clusters=16,
                                   n_samples=20_000, random_state=0)
    pieces = [y[i: i + 5 * 16000] for i in range(0, len(y) - 5 * 16000 + 1, 5 * 16000)]
    timed_fit = time.perf_counter()
    model.fit(pieces)
    print(f"{'MultiscaleFeatures.fit (6 levels)':<34s} {(time.perf_counter() - timed_fit) * 1e3:8.2f} ms"
          f"   components per level {[p.n_components_ for p in model.pca_]}")
    F = timed("MultiscaleFeatures.transform", model.transform, y)
    print(f"features: {F.shape[0]} pooling windows x {F.shape[1]} = 6 levels x 16 means")
    print(np.round(F[:, ::16], 2))
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3, suppress=True)
    sys.exit(main(sys.argv))
