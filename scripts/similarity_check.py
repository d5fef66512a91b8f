"""Does ``msk similar`` put a track of the same composer first? Feature stores compared on a corpus.

    python scripts/similarity_check.py --corpus ~/.cache/msk/devcorpus \\
        msk=store.zarr logmel-stats=other.zarr [--folders 89abcdef] [--out result.json]

For every clip of the corpus (in ``--folders``), the store's track vector (what ``msk index``
indexes: :meth:`msk.store.FeatureStore.tracks`) is the query against the track vectors of every
other clip of those folders, with :func:`msk.search.build_index` (cosine similarity, exact
search); clips of the query's own recording (track) are excluded, so a hit is another recording
by the same composer (the corpus's ``artist`` column). Reported per store: the rate of queries
whose first neighbour is by the same composer, with a 95 % interval from a bootstrap over
tracks, and each store's paired difference to the first store named, with its interval
(:func:`msk.metrics.paired_bootstrap`, the same resamples for both).
"""

import argparse
import json
import sys

import numpy as np

import msk
from msk.experiment import match_keys
from msk.metrics import bootstrap_metric, paired_bootstrap
from msk.search import build_index


def first_neighbour_hits(store_path, data):
    """Per clip of ``data``: 1.0 if its first neighbour (other tracks only) has the same artist."""
    st = msk.store.FeatureStore(store_path, mode="r")
    rows, keys, missing = match_keys(st, data)
    if missing:
        raise SystemExit(f"{store_path}: {len(missing)} clips of the corpus have no features")
    rows = np.asarray(rows)
    _, T = st.tracks(keys)
    names = [str(i) for i in range(len(rows))]
    index = build_index(names, T, method="exact")
    tracks, artists = data.tracks[rows], data.artists[rows]
    groups = dict(zip(names, tracks.tolist()))
    hits = np.empty(len(rows))
    for i in range(len(rows)):
        got, _ = index.query(names[i], k=1, groups=groups)
        hits[i] = float(artists[int(got[0])] == artists[i])
    return rows, hits


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stores", nargs="+", metavar="NAME=STORE")
    p.add_argument("--corpus", required=True)
    p.add_argument("--folders", default="0123456789abcdef", help="folders whose clips are queried and searched")
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)

    data = msk.datasets.load_magnatagatune(args.corpus, folders={c: c for c in "0123456789abcdef"})
    data = data.subset(np.isin(data.splits, list(args.folders)))
    results, first = {}, None
    for item in args.stores:
        name, path = item.split("=", 1)
        rows, hits = first_neighbour_hits(path, data)
        groups = data.tracks[rows]
        _, dist = bootstrap_metric(hits[None, :], groups=groups, n_resamples=args.resamples, random_state=0)
        low, high = np.quantile(dist, [0.025, 0.975])
        res = {"same_composer_first": float(hits.mean()), "low": float(low), "high": float(high),
               "n_queries": int(len(hits))}
        if first is None:
            first = (name, rows, hits)
        else:
            assert np.array_equal(first[1], rows)
            pb = paired_bootstrap(hits[None, :], first[2][None, :], groups=groups, n_resamples=args.resamples,
                                  random_state=0)
            res["vs"] = {"baseline": first[0], "difference": pb.difference, "low": pb.low, "high": pb.high}
        results[name] = res
        print(name, json.dumps(res), file=sys.stderr)
    out = {"corpus": args.corpus, "folders": args.folders, "results": results}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
