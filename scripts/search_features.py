"""Search feature settings beyond the paper: learn on the pool, choose on validation folders only.

    python scripts/search_features.py --out results/search [--candidates NAME ...] [--final]

Every candidate is a set of :class:`msk.MultiscaleFeatures` parameters (CANDIDATES below). It is
fitted on the unsupervised training pool built by ``scripts/build_pool.py`` (no labelled clip,
no test clip: the pool and the development corpus share no track), then extracts every clip of
the development corpus (``scripts/build_dev_corpus.py``) into a feature store, and the store is
evaluated as pretrained features by :func:`msk.experiment.run_cv`:

* by default with ``selection=True``: every rotation's *validation* folders are scored and its
  test folders are left out, so the figures that choose between candidates never see a test
  folder; candidates are compared (paired, with bootstrap intervals over tracks) with the
  baselines ``mfcc``, ``logmel-stats`` and the paper's settings learned on the same pool;
* with ``--final``: the ordinary test folders, for the candidates already chosen.

Models and stores are kept under ``--out`` and reused by a rerun.
"""

import argparse
import json
import os
import sys
import time

import msk
from msk.experiment import run_cv

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
from train_models import COMMON as PAPER, SEED, pool_clips  # noqa: E402  (the shipped models' recipe)

#: name -> MultiscaleFeatures parameters (on top of PAPER). One factor at a time from the paper's
#: Laplacian model, then combinations of what won.
CANDIDATES = {
    # the paper's Laplacian settings: the search's reference (and the paper preset's laplacian.npz
    # settings, learned here on the pool instead of the corpus)
    "paper-laplacian": dict(representation="laplacian"),
    "paper-multiresolution": dict(representation="multiresolution"),
    "paper-gaussian": dict(representation="gaussian", width=2),
    "single-pool": dict(representation="laplacian", levels=1),  # single-w1-k500, learned on the pool
    # Gaussian levels keep each scale's spectral envelope and level, which band-pass
    # (Laplacian) levels above the coarsest remove
    "gauss-w1": dict(representation="gaussian"),
    "gauss-maxmean": dict(representation="gaussian", pooling=("max", "mean")),
    "lap-threshold": dict(representation="laplacian", encoding="threshold", threshold=0.25),
    "lap-maxmean": dict(representation="laplacian", pooling=("max", "mean")),
    "lap-meanstd": dict(representation="laplacian", pooling=("mean", "std")),
    "lap-maxmeanstd": dict(representation="laplacian", pooling=("max", "mean", "std")),
    "lap-eps1e-2": dict(representation="laplacian", eps=1e-2),
    "lap-var90": dict(representation="laplacian", variance=0.90),
    "lap-offset1e-5": dict(representation="laplacian", log_offset=1e-5),
    "lap-offset1e-3": dict(representation="laplacian", log_offset=1e-3),
    "lap-k100": dict(representation="laplacian", n_clusters=100),
    # the default preset's settings (scripts/train_models.py DEFAULT): its model is the shipped default.npz
    "lap-k200": dict(representation="laplacian", n_clusters=200),
    "lap-k1000": dict(representation="laplacian", n_clusters=1000),
    "lap-w2": dict(representation="laplacian", width=2),
    "mr-maxmean": dict(representation="multiresolution", pooling=("max", "mean")),
    "mr-k200": dict(representation="multiresolution", n_clusters=200),
    "lap-k200-eps1e-2": dict(representation="laplacian", n_clusters=200, eps=1e-2),
    "lap-k200-maxmean": dict(representation="laplacian", n_clusters=200, pooling=("max", "mean")),
    "lap-k200-maxmeanstd": dict(representation="laplacian", n_clusters=200, pooling=("max", "mean", "std")),
    "lap-power": dict(representation="laplacian", pooled_normalization="power"),
    "lap-split": dict(representation="laplacian", encoding="split", threshold=0.25),
    "lap-triangle": dict(representation="laplacian", encoding="triangle"),
    "lap-winnorm": dict(representation="laplacian", window_normalization="standardize"),
    "lap-maxmean-power": dict(representation="laplacian", pooling=("max", "mean"), pooled_normalization="power"),
    # ZCA whitening: the PCA whitening rotated back to the frame space
    "lap-zca": dict(representation="laplacian", whitening="zca"),
    # the default's 1200 features spent more on the fine levels, which have the most windows
    "lap-klevels": dict(representation="laplacian", n_clusters=(300, 300, 200, 200, 100, 100)),
    # no dictionary: the whitened principal components themselves, max-pooled (the paper's "PCA
    # only" column, the best tagging cell of the single-split grid)
    "lap-pca": dict(representation="laplacian", n_clusters=None),
    "lap-k200-w2": dict(representation="laplacian", n_clusters=200, width=2),
    "lap-k200-w4": dict(representation="laplacian", n_clusters=200, width=4),
    "lap-k200-mels128": dict(representation="laplacian", n_clusters=200, n_mels=128),
    "lap-k200-levels7": dict(representation="laplacian", n_clusters=200, levels=7),
    "lap-k200-envelope": dict(representation="laplacian", n_clusters=200, envelope=True),
}


def model_for(name, params, pool, models):
    """The candidate's model file under ``models``, fitted on the pool's clips unless it is there."""
    path = os.path.join(models, f"{name}.npz")
    if os.path.exists(path):
        return path
    clips, _ = pool_clips(pool)
    est = msk.MultiscaleFeatures(**dict(PAPER, random_state=SEED, **params))
    t0 = time.perf_counter()
    est.fit(clips)
    seconds = time.perf_counter() - t0
    est.save(path)
    with open(os.path.join(models, f"{name}.json"), "w") as f:
        json.dump({"params": {k: v for k, v in est.get_params().items()}, "fit_seconds": seconds,
                   "n_clips": len(clips)}, f, indent=1, default=str)
    print(f"{name}: fitted on {len(clips)} pool clips in {seconds:.0f} s", file=sys.stderr)
    return path


def store_for(name, model, corpus, stores):
    path = os.path.join(stores, f"{name}.zarr")
    msk.extract_many(corpus, store=path, model=model, root=corpus, n_jobs=1, progress=False)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="results folder (models/, stores/, cv/)")
    p.add_argument("--corpus", default=os.path.expanduser("~/.cache/msk/devcorpus"))
    p.add_argument("--pool", default=os.path.expanduser("~/.cache/msk/pool"))
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), help="candidate names [all]")
    p.add_argument("--baselines", nargs="+", default=["mfcc", "logmel-stats", "paper-laplacian"])
    p.add_argument("--final", action="store_true", help="score the test folders (default: validation folders)")
    p.add_argument("--runs", type=int, default=1, help="seeds per head")
    p.add_argument("--trials", type=int, default=3, help="tagger search trials")
    p.add_argument("--rotations", type=int, nargs="+", default=None, help="rotations to run [all]")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--external", nargs="+", default=[], metavar="NAME=STORE",
                   help="feature stores computed elsewhere (e.g. musicnn's), evaluated as they are")
    args = p.parse_args(argv)

    models, stores = os.path.join(args.out, "models"), os.path.join(args.out, "stores")
    os.makedirs(models, exist_ok=True)
    os.makedirs(stores, exist_ok=True)
    external = {}
    wanted = list(dict.fromkeys(args.candidates + [b for b in args.baselines if b in CANDIDATES]))
    for name in wanted:
        if name not in CANDIDATES:
            raise SystemExit(f"unknown candidate {name!r}; known: {', '.join(CANDIDATES)}")
        external[name] = store_for(name, model_for(name, CANDIDATES[name], args.pool, models), args.corpus, stores)
    for item in args.external:
        name, path = item.split("=", 1)
        external[name] = path
    cv_out = os.path.join(args.out, "final" if args.final else "selection")
    res = run_cv(args.corpus, architectures=[a for a in args.baselines if a in ("mfcc", "logmel-stats")],
                 baselines=args.baselines, out=cv_out, external=external, n_runs=args.runs, n_trials=args.trials,
                 random_state=0, n_workers=args.workers, selection=not args.final, rotations=args.rotations,
                 progress=False)
    print(open(os.path.join(cv_out, "cv_table.md")).read())
    return res


if __name__ == "__main__":
    main()
