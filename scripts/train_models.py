"""Train the default models that ship inside msk (``src/msk/models/``).

    python scripts/train_models.py [--root ~/.cache/msk/devcorpus] [--out src/msk/models]

One model per representation, with the paper's settings:
Laplacian pyramid with windows of 1 frame, Gaussian pyramid with 2 frames,
multiresolution spectrograms with 1 frame; K = 500 means, 6 levels, pooling
over 128 frames, max-pooling, linear encoding, log(mel + 1e-10), PCA keeping
99 % of the variance. They are fitted on the training split (folders 0-b) of
the real-music development corpus built by ``scripts/build_dev_corpus.py``
(openly licensed music from Debian's packages; its ``SOURCES.tsv`` and
``LICENSES/`` list every track and licence).

Reproducible: a fixed seed per model, the clips in sorted id order, and a
record of the inputs (the SHA-256 of the corpus's annotation tables and of
every model file) written to ``MODELS.json`` next to the models. The tests
check the shipped files against those checksums.
"""

import argparse
import hashlib
import json
import os
import sys
import time

import msk

MODELS = {
    "laplacian": dict(width=1),
    "gaussian": dict(width=2),
    "multiresolution": dict(width=1),
}
COMMON = dict(levels=6, n_clusters=500, pool_size=128, n_samples=200_000, variance=0.99, eps=1e-5,
              encoding="linear", pooling="max", max_iter=20, log_offset=1e-10)
SEED = 20130604  # ISMIR 2013's first day


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.path.expanduser("~/.cache/msk/devcorpus"),
                        help="MagnaTagATune-layout corpus to train on [%(default)s]")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "src",
                                                      "msk", "models"),
                        help="where to write the models [src/msk/models]")
    parser.add_argument("--representations", nargs="+", default=list(MODELS),
                        choices=list(MODELS), help="which models to train [all]")
    args = parser.parse_args(argv)

    train = msk.datasets.load_magnatagatune(args.root, split="train")
    order = sorted(range(len(train)), key=lambda i: int(train.clip_ids[i]))
    paths = [train.paths[i] for i in order]
    os.makedirs(args.out, exist_ok=True)
    record_path = os.path.join(args.out, "MODELS.json")
    record = {}
    if os.path.exists(record_path):
        with open(record_path) as f:
            record = json.load(f)
    corpus = {
        "root": "devcorpus (scripts/build_dev_corpus.py)",
        "split": "train (folders 0-b)",
        "n_clips": len(paths),
        "annotations_final.csv": sha256(os.path.join(args.root, "annotations_final.csv")),
        "clip_info_final.csv": sha256(os.path.join(args.root, "clip_info_final.csv")),
    }
    for rep in args.representations:
        params = dict(COMMON, **MODELS[rep])
        t0 = time.perf_counter()
        model = msk.MultiscaleFeatures(rep, random_state=SEED, **params).fit(paths)
        seconds = time.perf_counter() - t0
        if model.skipped_:
            print(f"{rep}: skipped {len(model.skipped_)} unreadable clips", file=sys.stderr)
        path = os.path.join(args.out, f"{rep}.npz")
        model.save(path)
        record[rep] = {
            "file": f"{rep}.npz",
            "sha256": sha256(path),
            "bytes": os.path.getsize(path),
            "representation": rep,
            "params": dict(params, random_state=SEED),
            "n_components": [int(p.n_components_) for p in model.pca_],
            "trained_on": corpus,
            "fit_seconds": round(seconds, 1),
            "msk_version": msk.__version__,
        }
        print(f"{rep}: {model.n_clips_} clips, {seconds:.0f} s, "
              f"components per level {record[rep]['n_components']}, "
              f"{os.path.getsize(path) / 1e6:.1f} MB -> {path}")
    with open(record_path, "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
