"""Rerun the paper's experiment on a MagnaTagATune-layout dataset, in one reproducible command.

    python scripts/run_experiment.py --data ~/.cache/msk/devcorpus --out results/dev \\
        --architectures subset --runs 2 --trials 4 --search small

Writes, in --out: results.json, results.csv, tags.txt, the figures (fig2 ... fig6, if
matplotlib is installed), one folder per architecture (fitted model, feature store, cached
head results) and run.json (for every invocation: the command line, the git commit, the
machine, the thread limits and the wall time). A rerun with the same arguments reuses
everything already computed (fitted models, features, searched hyperparameters, head
results); an interrupted run resumes. Progress bars go to stderr, the summary table to stdout.

    python scripts/run_experiment.py --data ~/.cache/msk/devcorpus --out results/cv --protocol cv \\
        --architectures laplacian-w1-k500 multiresolution-w1-k500 --runs 5 --trials 10

With --protocol cv (msk.experiment.run_cv) every clip is a test clip once over 8 rotations of
12:2:2 folders, learned features are fitted per rotation on its training folders, and every
feature set is compared with the --baselines by paired differences with 95 % bootstrap intervals
over tracks: cv_results.json, cv_summary.csv and cv_table.md (the Markdown tables, printed too).

--architectures takes names (see msk.experiment.parse_architecture) or the groups
  paper      the paper's 28 architectures
  baselines  single-w1-k500, mfcc, logmel-stats
  all        paper + baselines
  subset     laplacian-w1-k200, laplacian-w1-k500, gaussian-w2-k500, multiresolution-w1-k500,
             laplacian-w1-pca, single-w1-k500, mfcc, logmel-stats
"""

import argparse
import json
import os
import platform
import sys
import time

from msk.cli import name_equals_path, parse_external  # shared with `msk experiment`
from msk.experiment import expand_architectures, search_configurations


def _git_commit():
    import subprocess

    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, check=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("MSK_DATA"),
                   help="dataset folder in MagnaTagATune's layout (default: $MSK_DATA)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--architectures", nargs="+", default=["subset"], help="names or groups (see above)")
    p.add_argument("--runs", type=int, default=2, help="seeds per head (paper: 10)")
    p.add_argument("--trials", type=int, default=4, help="trials of the MLP random search (paper: not stated)")
    p.add_argument("--search", choices=("none", "small", "default"), default="none",
                   help="knob search beyond the paper on the best architecture (validation only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-samples", type=int, default=200_000, help="training windows per level (feature learning)")
    p.add_argument("--hidden", type=int, default=1000, help="MLP hidden units (paper: 1000)")
    p.add_argument("--epochs", type=int, default=200,
                   help="MLP maximum epochs, early-stopped on validation (default: msk.heads.MLPTagger's)")
    p.add_argument("--patience", type=int, default=10, help="epochs without improvement before stopping")
    p.add_argument("--jobs", type=int, default=1, help="threads extracting features")
    p.add_argument("--workers", type=int, default=1,
                   help="architectures evaluated side by side, one process each with one BLAS thread "
                        "(results do not depend on it; 2 on a 2-core machine halves the wall time)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1: the heads' matrices are small, and on a shared 2-core "
                        "machine one thread trained the MLP ~7x faster than two; 0 = BLAS's own)")
    p.add_argument("--external", nargs="+", default=[], type=name_equals_path, metavar="NAME=STORE",
                   help="features computed elsewhere (an msk feature store keyed by clip id, e.g. musicnn's "
                        "from scripts/musicnn_peer.py), evaluated by the same heads in the same table")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--protocol", choices=("split", "cv"), default="split",
                   help="split: the paper's one split; cv: the cross-validated, paired protocol")
    p.add_argument("--baselines", nargs="+", default=["single-w1-k500", "mfcc", "logmel-stats"],
                   help="with --protocol cv: what every feature set is compared with")
    p.add_argument("--rotations", nargs="+", type=int, default=None,
                   help="with --protocol cv: only these rotations (0-7; default all)")
    p.add_argument("--resamples", type=int, default=1000, help="with --protocol cv: bootstrap resamples")
    args = p.parse_args(argv)
    if not args.data:
        p.error("--data is required when MSK_DATA is not set")
    if args.protocol == "cv" and args.search != "none":
        p.error("--search runs with --protocol split only")
    external = {name: os.path.expanduser(path) for name, path in parse_external(args.external).items()}

    from threadpoolctl import threadpool_info, threadpool_limits

    import msk
    from msk.experiment import DEFAULT_SEARCH, cv_table, run_cv, run_experiment

    search = search_configurations(args.search)
    archs = expand_architectures(args.architectures)
    commit = _git_commit()
    t0 = time.perf_counter()
    limits = threadpool_limits(args.threads) if args.threads else None
    try:
        if args.protocol == "cv":
            res = run_cv(
                os.path.expanduser(args.data), architectures=archs, baselines=args.baselines, out=args.out,
                rotations=args.rotations, n_runs=args.runs, n_trials=args.trials, random_state=args.seed,
                features={"n_samples": args.n_samples},
                mlp={"n_hidden": args.hidden, "max_iter": args.epochs, "patience": args.patience},
                n_jobs=args.jobs, progress=not args.no_progress, external=external, n_workers=args.workers,
                n_resamples=args.resamples,
            )
        else:
            res = run_experiment(
                os.path.expanduser(args.data), architectures=archs, out=args.out, n_runs=args.runs,
                n_trials=args.trials, random_state=args.seed, features={"n_samples": args.n_samples},
                mlp={"n_hidden": args.hidden, "max_iter": args.epochs, "patience": args.patience},
                search=search, n_jobs=args.jobs, progress=not args.no_progress, external=external,
                n_workers=args.workers,
            )
    finally:
        if limits is not None:
            limits.unregister()
    wall = time.perf_counter() - t0
    run = {
        "protocol": args.protocol,
        "command": " ".join(["python", "scripts/run_experiment.py"] + (argv if argv is not None else sys.argv[1:])),
        "architectures": archs, "search": search if search is not True else [dict(c) for c in DEFAULT_SEARCH],
        "wall_seconds": wall, "git_commit": commit, "msk_version": msk.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "cpu_count": os.cpu_count(), "threads": args.threads,
        "blas": [{k: i.get(k) for k in ("internal_api", "num_threads", "version")} for i in threadpool_info()],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    # run.json keeps every invocation (a rerun that reuses the cache is fast: keep the first's time)
    path = os.path.join(args.out, "run.json")
    try:
        with open(path, encoding="utf-8") as f:
            runs = json.load(f)
        runs = runs.get("runs", [runs]) if isinstance(runs, dict) else []
    except (OSError, ValueError):
        runs = []
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"runs": runs + [run]}, f, indent=1)
        f.write("\n")

    if args.protocol == "cv":
        print(cv_table(res))
        print(f"wall time: {wall:.0f} s")
        return 0
    cols = ("architecture", "tag_auc_mean", "tag_auc_std", "nca_probability", "nn_accuracy_other_tracks",
            "fit_seconds", "extract_seconds", "tagging_seconds", "similarity_seconds")
    print("\t".join(cols))
    for r in res["architectures"]:
        print("\t".join(f"{r.get(c):.4f}" if isinstance(r.get(c), float) else str(r.get(c)) for c in cols))
    if res.get("search"):
        print(f"search on {res['search']['base']}: selected {res['search']['selected']}")
    print(f"wall time: {wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
