"""Does ``msk similar`` put a track of the same composer first? Feature stores compared on a corpus.

    python scripts/similarity_check.py --corpus ~/.cache/msk/devcorpus \\
        msk=store.zarr logmel-stats=other.zarr [--plain msk] [--folders 89abcdef] [--out result.json]
        [--learn logmel-stats=logmel-stats --pool ~/.cache/msk/pool]

For every clip of the corpus (in ``--folders``), the store's track vector (what ``msk index``
indexes: :meth:`msk.store.FeatureStore.tracks`) is the query against the track vectors of every
other clip of those folders, with :func:`msk.search.build_index` (cosine similarity, exact
search) and the projection that ``msk index`` applies to the store (the one shipped for its
model, :func:`msk.projection.shipped_projection`, if any; none for the stores named by
``--plain``; for the stores named by ``--learn NAME=EXTRACTOR``, one learned here as the shipped
one was, by ``scripts/train_models.py``'s ``pool_projection``, from EXTRACTOR's track vectors of
the pool: EXTRACTOR is ``mfcc``, ``logmel-stats`` or a model file); clips of the query's own
recording (track) are excluded, so a hit is another recording
by the same composer (the corpus's ``artist`` column). Reported per store: the rate of queries
whose first neighbour is by the same composer, with a 95 % interval from a bootstrap over
tracks, and each store's paired difference to every store named before it, with its interval
(:func:`msk.metrics.paired_bootstrap`, the same resamples for both).
"""

import argparse
import json
import os
import sys

import numpy as np

import msk
from msk.experiment import match_keys
from msk.metrics import bootstrap_metric, paired_bootstrap
from msk.projection import shipped_projection
from msk.search import build_index

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_models import pool_projection  # noqa: E402  (how the shipped projection is learned)


def first_neighbour_hits(store_path, data, summary=None, plain=False, projection=None):
    """Per clip of ``data``: 1.0 if its first neighbour (other tracks only) has the same artist.

    ``summary`` (e.g. "mean+max") computes the track vectors from the windows with
    :func:`msk.multiscale.track_vector` instead of reading the store's. ``plain``: no projection;
    ``projection``: this one instead of the shipped one. Also returns the projection's checksum
    (None without one).
    """
    st = msk.store.FeatureStore(store_path, mode="r")
    rows, keys, missing = match_keys(st, data)
    if missing:
        raise SystemExit(f"{store_path}: {len(missing)} clips of the corpus have no features")
    rows = np.asarray(rows)
    if summary is None:
        _, T = st.tracks(keys)
    else:
        T = np.stack([msk.multiscale.track_vector(st.get(k), summary) for k in keys])
    names = [str(i) for i in range(len(rows))]
    fingerprint = (st.model_info or {}).get("fingerprint")
    if projection is None and not plain:
        projection = shipped_projection(fingerprint, summary or st.summary)
    index = build_index(names, T, method="exact", projection=projection)
    tracks, artists = data.tracks[rows], data.artists[rows]
    groups = dict(zip(names, tracks.tolist()))
    hits = np.empty(len(rows))
    for i in range(len(rows)):
        got, _ = index.query(names[i], k=1, groups=groups)
        hits[i] = float(artists[int(got[0])] == artists[i])
    return rows, hits, None if projection is None else projection.arrays()[0]["sha256"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stores", nargs="+", metavar="NAME=STORE[:SUMMARY]",
                   help="a feature store; with :SUMMARY, track vectors computed from its windows")
    p.add_argument("--corpus", required=True)
    p.add_argument("--plain", nargs="+", default=[], metavar="NAME",
                   help="stores compared by plain cosine similarity, without their shipped projection")
    p.add_argument("--folders", default="0123456789abcdef", help="folders whose clips are queried and searched")
    p.add_argument("--learn", nargs="+", default=[], metavar="NAME=EXTRACTOR",
                   help="learn the store's projection on the pool with EXTRACTOR (mfcc, logmel-stats or a model file)")
    p.add_argument("--pool", default=os.path.expanduser("~/.cache/msk/pool"), help="the pool --learn learns on")
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)

    data = msk.datasets.load_magnatagatune(args.corpus, folders={c: c for c in "0123456789abcdef"})
    data = data.subset(np.isin(data.splits, list(args.folders)))
    learned = {}
    for item in args.learn:
        name, extractor = item.split("=", 1)
        if extractor in ("mfcc", "logmel-stats"):
            extractor = msk.baselines.BaselineFeatures(extractor).fit(None)
        else:
            extractor = msk.MultiscaleFeatures.load(extractor)
        learned[name] = pool_projection(extractor, args.pool)
    results, earlier = {}, []
    for item in args.stores:
        name, path = item.split("=", 1)
        summary = None
        if ":" in path and not os.path.exists(path):
            path, summary = path.rsplit(":", 1)
        rows, hits, projection = first_neighbour_hits(path, data, summary, plain=name in args.plain,
                                                      projection=learned.get(name))
        groups = data.tracks[rows]
        _, dist = bootstrap_metric(hits[None, :], groups=groups, n_resamples=args.resamples, random_state=0)
        low, high = np.quantile(dist, [0.025, 0.975])
        res = {"same_composer_first": float(hits.mean()), "low": float(low), "high": float(high),
               "n_queries": int(len(hits)), "projection": projection}
        res["vs"] = {}
        for other, other_rows, other_hits in earlier:
            assert np.array_equal(other_rows, rows)
            pb = paired_bootstrap(hits[None, :], other_hits[None, :], groups=groups, n_resamples=args.resamples,
                                  random_state=0)
            res["vs"][other] = {"difference": pb.difference, "low": pb.low, "high": pb.high}
        earlier.append((name, rows, hits))
        results[name] = res
        print(name, json.dumps(res), file=sys.stderr)
    out = {"corpus": args.corpus, "folders": args.folders, "results": results}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
