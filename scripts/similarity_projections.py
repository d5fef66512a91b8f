"""How the shipped similarity projection was chosen: learned maps of track vectors compared.

    python scripts/similarity_projections.py --corpus ~/.cache/msk/devcorpus --pool ~/.cache/msk/pool \\
        default=store.zarr [logmel-stats=other.zarr] [--folders 01234567] [--out result.json]

Every map is learned on the unsupervised pool only (``scripts/build_pool.py``; no clip of the
corpus), from the track vectors (mean of the windows) that the extractor of each store gives the
pool's clips: ``default`` stores use msk's default model, ``logmel-stats`` and ``mfcc`` stores the
baselines. Each map is then scored as ``scripts/similarity_check.py`` scores stores (first
neighbour among the other tracks of ``--folders`` by the same composer, cosine similarity after the
map), paired with plain cosine similarity of the same store (95 % interval, bootstrap over tracks).

The maps: the pool's z-scores; linear discriminant directions (``msk.projection.TrackProjection``:
Ledoit-Wolf shrinkage, all directions) with the pool's recordings, its compositions (one MIDI piece
in four SoundFonts is one group) or its source packages as the groups; the same with 16 to 128
directions or a fixed shrinkage; NCA (scikit-learn) on 128 whitened principal components, 32 or
64 dimensions. The shipped projection is the first discriminant map (recordings, all directions,
shrinkage estimated).
"""

import argparse
import json
import os
import sys

import numpy as np

import msk
from msk.experiment import match_keys
from msk.metrics import paired_bootstrap
from msk.projection import TrackProjection

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_models import pool_clips, pool_recordings  # noqa: E402


def pool_groups(pool):
    """Recordings, compositions and packages of the pool's clips (in pool_clips order)."""
    recording = np.array(pool_recordings(pool))  # "package:track|soundfont"
    composition = np.array([r.rsplit("|", 1)[0] for r in recording])
    return {"recording": recording, "composition": composition,
            "package": np.array([c.split(":", 1)[0] for c in composition])}


def extractor_for(name):
    if name.startswith(("mfcc", "logmel-stats")):
        return msk.baselines.BaselineFeatures("mfcc" if name.startswith("mfcc") else "logmel-stats").fit(None)
    return msk.batch.default_model()


def maps(X, groups):
    """name -> function of track vectors, each learned on the pool's vectors X."""
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.neighbors import NeighborhoodComponentsAnalysis

    mu, sd = X.mean(0), X.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    out = {"plain": lambda T: T, "pool z-scores": lambda T: (T - mu) / sd}
    for g in ("recording", "composition", "package"):
        p = TrackProjection().fit(X, groups[g])
        out[f"discriminant, {g}s"] = p.transform
    full = TrackProjection().fit(X, groups["recording"])
    for n in (16, 32, 64, 128):
        out[f"discriminant, recordings, {n} directions"] = lambda T, n=n: full.transform(T)[:, :n]
    Z = (X - mu) / sd
    for shrinkage in (0.1, 0.5):
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage).fit(Z, groups["recording"])
        out[f"discriminant, recordings, shrinkage {shrinkage}"] = lambda T, lda=lda: lda.transform((T - mu) / sd)
    pca = PCA(128, whiten=True, random_state=0).fit(Z)
    for n in (32, 64):
        nca = NeighborhoodComponentsAnalysis(n_components=n, random_state=0, max_iter=100)
        nca.fit(pca.transform(Z), groups["recording"])
        out[f"NCA, recordings, {n} dimensions"] = lambda T, nca=nca: nca.transform(pca.transform((T - mu) / sd))
    return out


def hits_of(T, data, rows):
    T = T / np.linalg.norm(T, axis=1, keepdims=True)
    S = T @ T.T
    tracks, artists = data.tracks[rows], data.artists[rows]
    S[tracks[:, None] == tracks[None, :]] = -np.inf  # the query's own recording is left out
    return (artists[S.argmax(1)] == artists).astype(float)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stores", nargs="+", metavar="NAME=STORE")
    p.add_argument("--corpus", required=True)
    p.add_argument("--pool", required=True)
    p.add_argument("--folders", default="01234567")
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--out")
    args = p.parse_args(argv)

    data = msk.datasets.load_magnatagatune(args.corpus, folders={c: c for c in "0123456789abcdef"})
    data = data.subset(np.isin(data.splits, list(args.folders)))
    paths, _ = pool_clips(args.pool)
    groups = pool_groups(args.pool)
    results = {}
    for item in args.stores:
        name, path = item.split("=", 1)
        st = msk.store.FeatureStore(path, mode="r")
        rows, keys, _ = match_keys(st, data)
        rows = np.asarray(rows)
        T = st.tracks(keys)[1].astype(np.float64)
        extractor = extractor_for(name)
        X = np.stack([msk.multiscale.track_vector(extractor.transform(q)) for q in paths]).astype(np.float64)
        plain = None
        for map_name, f in maps(X, groups).items():
            hits = hits_of(np.asarray(f(T), dtype=np.float64), data, rows)
            res = {"same_composer_first": float(hits.mean())}
            if plain is None:
                plain = hits
            else:
                pb = paired_bootstrap(hits[None, :], plain[None, :], groups=data.tracks[rows],
                                      n_resamples=args.resamples, random_state=0)
                res["vs plain"] = {"difference": pb.difference, "low": pb.low, "high": pb.high}
            results[f"{name}: {map_name}"] = res
            print(f"{name}: {map_name}", json.dumps(res), file=sys.stderr)
    out = {"corpus": args.corpus, "pool": args.pool, "folders": args.folders, "results": results}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
