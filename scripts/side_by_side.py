"""Put two feature sets side by side, row by row: how the search evaluated combinations.

    python scripts/side_by_side.py A.zarr B.zarr OUT.zarr
    python scripts/side_by_side.py A.zarr logmel-stats OUT.zarr --corpus ~/.cache/msk/devcorpus
    python scripts/side_by_side.py A.zarr level OUT.zarr --corpus ~/.cache/msk/devcorpus
    python scripts/side_by_side.py A.zarr loudness OUT.zarr --corpus ~/.cache/msk/devcorpus

Every clip of store A gets, in OUT, its rows of A followed by the same clip's rows of B: store B
must hold the same keys with the same windows (the same start and end of every row), as two
models with the same pooling geometry give. With ``logmel-stats`` instead of B, the second part
of a row is the mean and standard deviation of every log-mel band (``msk.log_melspectrogram`` of
the clip's audio under ``--corpus``) over the frames the row covers, the statistics of
``msk.baselines.logmel_stats`` over the same seconds. With ``level``, it is one column: the mean
of the log-mel spectrogram over those frames and all bands (the row's level, as MFCC's first
coefficient measures it). With ``loudness``, one column: the log of the mean mel power over those
frames and all bands (the row's loudness; the mean *log*-mel is dominated by bands near silence).
OUT is then evaluated like any store (``search_features.py --external NAME=OUT.zarr``). No
combination evaluated in the search (level 0, log-mel statistics, the level or the loudness
column, multiresolution levels beside the Laplacian features) beat the learned features alone;
the mean power of every band, the one that did best, is ``MultiscaleFeatures(envelope=True)``.
"""

import argparse
import os

import numpy as np

import msk
from msk.store import FeatureStore


def _rows(path, start, end, statistic, *, sr=16000, hop_length=512):
    """``statistic`` of the log-mel frames (``msk.log_melspectrogram``) of each row's [start, end) seconds."""
    S = msk.log_melspectrogram(msk.load_audio(path, sr=sr), sr=sr, hop_length=hop_length)
    hop = hop_length / sr
    rows = []
    for a, b in zip(start, end):
        f0 = int(round(a / hop))
        f1 = max(f0 + 1, min(S.shape[0], int(round(b / hop))))
        rows.append(statistic(S[f0:f1]))
    return np.asarray(rows, dtype=np.float32)


def logmel_rows(path, start, end, *, sr=16000, hop_length=512):
    """Mean and std of every log-mel band over the frames of each row's [start, end) seconds."""
    return _rows(path, start, end, lambda S: np.concatenate([S.mean(axis=0), S.std(axis=0)]),
                 sr=sr, hop_length=hop_length)


def level_rows(path, start, end, *, sr=16000, hop_length=512):
    """Mean of the log-mel spectrogram over the frames of each row's [start, end) seconds and all bands."""
    return _rows(path, start, end, lambda S: [S.mean()], sr=sr, hop_length=hop_length)


def loudness_rows(path, start, end, *, sr=16000, hop_length=512):
    """log of the mean mel power over the frames of each row's [start, end) seconds and all bands."""
    from scipy.special import logsumexp

    return _rows(path, start, end, lambda S: [logsumexp(S.astype(np.float64)) - np.log(S.size)],
                 sr=sr, hop_length=hop_length)


COMPUTED = {"logmel-stats": (logmel_rows, 2 * 200), "level": (level_rows, 1),  # 200 mel bands
            "loudness": (loudness_rows, 1)}


def side_by_side(a, b, out, corpus=None):
    """Write ``out``: every clip of store ``a`` with its rows of ``b`` (a store path, or a name in COMPUTED)."""
    A = FeatureStore(a, mode="r")
    B = None if b in COMPUTED else FeatureStore(b, mode="r")
    if B is None and corpus is None:
        raise SystemExit(f"{b} needs --corpus (the folder the keys are relative to)")
    width = A.n_features + (COMPUTED[b][1] if B is None else B.n_features)
    with FeatureStore(out, mode="w", model_info={"name": f"{a} | {b}", "n_features": width}, durable=False) as dst:
        for key in A.keys():
            X = A.get(key)
            start, end = A.times(key)
            if B is None:
                Y = COMPUTED[b][0](os.path.join(corpus, key), start, end)
            else:
                Y = B.get(key)
                s2, e2 = B.times(key)
                if Y.shape[0] != X.shape[0] or not (np.allclose(start, s2) and np.allclose(end, e2)):
                    raise SystemExit(f"{key}: the two stores' rows cover different seconds")
            if Y.shape[1] != width - A.n_features:
                raise SystemExit(f"{key}: {Y.shape[1]} features in the second part, not {width - A.n_features}")
            dst.put(key, np.concatenate([X, Y], axis=1), start=start, end=end)
        return len(dst.keys())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a")
    p.add_argument("b", help="a second store, logmel-stats, level or loudness")
    p.add_argument("out")
    p.add_argument("--corpus", help="the audio files' root (for logmel-stats, level and loudness)")
    args = p.parse_args(argv)
    print(side_by_side(args.a, args.b, args.out, args.corpus))


if __name__ == "__main__":
    main()
