"""The ``msk`` command: composes msk's public functions, no numerics of its own.

Results go to explicit output paths; logs and progress go to stderr; stdout
carries one machine-readable JSON summary per command. Exit codes: 0 success,
1 runtime failure (the failures are listed), 2 usage error.
"""

import argparse
import contextlib
import glob
import json
import os
import sys
import warnings

EPILOG = {
    "msk": """examples:
  msk extract song.mp3 -o song.npy                 # one file's features (shipped model)
  msk extract ~/music -o features.zarr             # a library -> a resumable feature store
  msk index features.zarr                          # then: the most similar tracks
  msk similar ~/music/song.mp3 --store features.zarr
  msk train-tagger features.zarr --labels labels.csv -o tagger.npz
  msk tag new.mp3 --tagger tagger.npz
  msk fit ~/music -o mymodel.npz                   # learn your own model (no GPU)
  msk info features.zarr
Run `msk COMMAND --help` for a command's options and examples. Results go to the files named
with -o; logs and progress go to stderr; stdout carries one JSON summary. Exit codes: 0 done,
1 a runtime failure (listed on stderr), 2 a usage error, 130 interrupted.""",
    "extract": """examples:
  msk extract song.mp3 -o song.npy                       # the shipped default model
  msk extract song.mp3 -o song.npy --preset paper        # the paper's Laplacian model
  msk extract song.mp3 -o song.npz --times                # features, start, end (seconds)
  msk extract song.mp3 -o song.npy --representation multiresolution
  msk extract ~/music -o features.zarr --n-jobs 2        # a directory -> a feature store
  msk extract 'clips/**/*.mp3' -o features.zarr --model mymodel.npz --root clips
  msk extract ~/music -o features.zarr --prune           # rerun: new/changed files, drop gone ones
  msk extract ~/music -o features.zarr --scheduler tcp://10.0.0.5:8786   # on a Dask cluster
The output kind follows its extension: .npy or .npz for one file, .zarr for a feature store.
Keys are paths relative to --root (default: the directory given, else the common folder of
the files), so the same file has the same key from any working directory. A rerun skips
unchanged files, extracts new and changed ones, and resumes a killed run. Files that cannot
be read are recorded in the store and listed on stderr; files that are not audio are listed
as skipped.""",
    "fit": """examples:
  msk fit ~/music/*.mp3 -o mymodel.npz
  msk fit --dataset ~/.cache/msk/devcorpus --representation gaussian --width 2 -o gaussian.npz
  msk fit clips/ -o pca.npz --n-clusters 0       # PCA-only features (PMSCs)""",
    "evaluate": """examples:
  msk evaluate features.zarr --dataset ~/.cache/msk/devcorpus -o results.json
  msk evaluate features.zarr --dataset /data/mtat --runs 10 --trials 10
  msk evaluate features.zarr --labels labels.csv --group-column artist   # your own labels CSV
  msk evaluate musicnn.zarr --dataset ~/.cache/msk/devcorpus --protocol cv -o results/cv-musicnn
The store's keys must be the dataset's clip ids or audio paths (what `msk extract` on the
dataset's folder gives).""",
    "experiment": """examples:
  msk experiment ~/.cache/msk/devcorpus -o results/dev --architectures subset --search small
  msk experiment /data/mtat -o results/mtat --architectures paper baselines --runs 10 --trials 10
  msk experiment ~/.cache/msk/devcorpus -o results/cv --protocol cv --architectures laplacian-w1-k500
Architecture groups: paper (the 28), baselines, subset, all; or names like laplacian-w1-k500,
gaussian-w2-pca, multiresolution-w1-k1000, single-w1-k500, mfcc, logmel-stats.
A rerun reuses every fitted model, feature store and head result in the output folder.""",
    "plot": """examples:
  msk plot results/dev          # writes fig2 ... fig6 (PNG) into the folder
  msk plot map features.zarr -o map.png --labels labels.csv --color-by genre
  msk plot map features.zarr -o map.png --method tsne --seed 1
  msk plot timeline song.mp3 -o song.png [--model mymodel.npz]""",
    "train-tagger": """examples:
  msk train-tagger features.zarr --labels labels.csv -o tagger.npz
  msk train-tagger features.zarr --labels labels.csv --group-column artist -o tagger.npz
labels.csv: a header line, a key column (the store's keys or the audio paths), then one 0/1
column per tag, or one column of class names (single-label; found, or --label-column NAME).""",
    "tag": """examples:
  msk tag song.mp3 other.flac --tagger tagger.npz
  msk tag ~/new-music --tagger tagger.npz --top 3 --json""",
    "store": """examples:
  msk store check features.zarr              # read every chunk, verify checksums and the table
  msk store check --repair features.zarr     # drop damaged table lines, re-queue damaged clips
  msk store migrate old.zarr new.zarr        # convert a store written by msk 0.1
  msk store migrate old.zarr new.zarr --root ~/music   # keys and file records as `msk extract ~/music` gives""",
    "export": """examples:
  msk export features.zarr -o features.parquet   # needs pyarrow (pip install 'msk[export]')
  msk export features.zarr -o features.csv
  msk export features.zarr -o features.npz       # keys, clip_index, start, end, features, tracks""",
    "info": """examples:
  msk info mymodel.npz
  msk info features.zarr
  msk info song.npz                       # windows, features, times of `msk extract ... -o song.npz`
  msk info tagger.npz""",
    "index": """examples:
  msk index features.zarr                 # writes features.zarr.index.npz beside the store
  msk index features.zarr -o tracks.index.npz --method exact
  msk index features.zarr --projection none    # plain cosine similarity of the track vectors
Run it again after `msk extract` has added or changed clips: the index is updated, not rebuilt.
For stores of msk's default model, the index maps the track vectors through the projection
shipped with it (learned from unlabelled music, grouped by recording), which ranks tracks by
the same composer higher than plain cosine similarity does.""",
    "similar": """examples:
  msk similar clips/song.mp3 --store features.zarr            # a file in the store, or a new file
  msk similar some-key --store features.zarr -k 5 --json
  msk similar song.mp3 --store features.zarr --exclude-same artists.csv
GROUPS_CSV has a header row, a key column first and a group column second (an artist, an
album): tracks of the query's group are left out. Scores are cosine similarities (1 = same
direction).""",
}


def expand_inputs(inputs, not_audio=None):
    """Files, directories and glob patterns -> sorted paths.

    Directories are read with :func:`msk.audio.audio_files` (audio files,
    recursively); their other files are appended to ``not_audio`` if given.
    """
    from .audio import audio_files

    paths = []
    for item in inputs:
        matches = sorted(glob.glob(item, recursive=True)) if glob.has_magic(item) else [item]
        if not matches:
            raise FileNotFoundError(f"{item!r} matches no file")
        for m in matches:
            if os.path.isdir(m):
                audio, other = audio_files(m)
                paths.extend(audio)
                if not_audio is not None:
                    not_audio.extend(other)
            elif os.path.exists(m):
                paths.append(m)
            else:
                raise FileNotFoundError(f"{m!r}: no such file or directory")
    return sorted(dict.fromkeys(paths))


def name_equals_path(text):
    """argparse type of ``--external NAME=STORE``: the text, checked for its form."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"must look like NAME=FEATURE_STORE; got {text!r}")
    return text


def _int_at_least(low, what):
    def check(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}; got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {what}; got {value}")
        return value

    check.__name__ = what  # argparse names the type in its "invalid ... value" message
    return check


positive_int = _int_at_least(1, "a positive integer")
non_negative_int = _int_at_least(0, "a non-negative integer")


def clusters_per_level(text):
    """argparse type of ``msk fit --n-clusters``: K for every level, or one K per level (commas)."""
    parts = text.split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a non-negative integer or one positive integer per level joined by commas; got {text!r}"
        ) from None
    if len(values) == 1:
        if values[0] < 0:
            raise argparse.ArgumentTypeError(f"must be a non-negative integer; got {values[0]}")
        return values[0]
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be positive integers, one per level; got {text!r}")
    return tuple(values)


def n_jobs_int(text):
    """argparse type of ``--n-jobs``: a positive number of workers, or negative (-1: all cores)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer (-1: all cores); got {text!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError("must be a positive number of workers or negative (-1: all cores); got 0")
    return value


def _float_in(low, high, what, *, low_open=False, high_open=False):
    def check(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}; got {text!r}") from None
        if not (value > low if low_open else value >= low) or not (value < high if high_open else value <= high):
            raise argparse.ArgumentTypeError(f"must be {what}; got {text}")
        return value

    return check


positive_float = _float_in(0, float("inf"), "a positive number", low_open=True)
finite_positive_float = _float_in(0, float("inf"), "a finite positive number", low_open=True, high_open=True)
non_negative_float = _float_in(0, float("inf"), "a non-negative number")
finite_float = _float_in(-float("inf"), float("inf"), "a finite number", low_open=True, high_open=True)
variance_fraction = _float_in(0, 1, "a fraction in (0, 1]", low_open=True)
open_fraction = _float_in(0, 1, "a fraction strictly between 0 and 1", low_open=True, high_open=True)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples kept as written; every option's default shown as ``[default]``."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS or action.nargs == 0:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        if f"[{shown}]" in text:
            return text
        return f"{text} [{shown.replace('%', '%%')}]"


def parse_external(items):
    """``NAME=STORE`` arguments (checked by :func:`name_equals_path`) as a dict."""
    return dict(item.split("=", 1) for item in items or ())


def _print_json(obj):
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def _log(msg):
    print(msg, file=sys.stderr)


class _FitProgress:
    """``progress`` of :meth:`MultiscaleFeatures.fit` for the command line: a bar, then lines, on stderr."""

    def __init__(self, n_clips):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=n_clips, unit="clip", desc="msk fit: sampling", file=sys.stderr,
                        dynamic_ncols=True)

    def __call__(self, stage, level, done, total, value):
        if stage == "sample":
            self.bar.update(done - self.bar.n)
            return
        self.close()
        if stage == "pca":
            _log(f"msk fit: level {level}: PCA keeps {value} components")
        else:
            _log(f"msk fit: level {level}: K-means iteration {done}/{total}, objective {value:.6g}")

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _fit(msk, args, paths, progress=None):
    return msk.MultiscaleFeatures(
        args.representation, levels=args.levels, width=args.width,
        n_clusters=None if args.n_clusters == 0 else args.n_clusters, pool_size=args.pool_size,
        n_samples=args.n_samples, variance=args.variance, encoding=args.encoding, threshold=args.threshold,
        window_normalization=args.window_normalization, window_normalization_eps=args.window_normalization_eps,
        pooling=tuple(args.pooling.split("+")), max_iter=args.max_iter,
        log_offset=args.log_offset, eps=args.eps, whitening=args.whitening,
        pooled_normalization=args.pooled_normalization, envelope=args.envelope, random_state=args.seed,
    ).fit(paths, progress=progress)


def cmd_fit(args):
    import msk

    if args.dataset:
        data = msk.datasets.load_magnatagatune(args.dataset, split="train")
        paths = list(data.paths)
    else:
        if not args.inputs:
            raise _UsageError("give audio files, directories or globs, or --dataset ROOT")
        paths = expand_inputs(args.inputs)
    if not paths:
        raise RuntimeError("no audio files to fit on")
    _log(f"msk fit: fitting a {args.representation} model on {len(paths)} clips")
    progress = None if args.quiet else _FitProgress(len(paths))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # skipped files are listed below instead
            model = _fit(msk, args, paths, progress)
    finally:
        if progress is not None:
            progress.close()
    for p, r in model.skipped_:
        _log(f"msk fit: skipped {p}: {r}")
    model.save(args.output)
    _print_json({
        "model": os.path.abspath(args.output), "representation": args.representation,
        "clips": model.n_clips_, "skipped": [{"path": p, "reason": r} for p, r in model.skipped_],
        "n_features": model.n_features_out_,
        "n_components": [int(p.n_components_) for p in model.pca_],
    })
    return 0


def _output_kind(output):
    ext = os.path.splitext(output.rstrip("/" + os.sep))[1].lower()
    if ext in (".npy", ".npz"):
        return ext
    if ext == ".zarr" or os.path.isfile(os.path.join(output, "zarr.json")):
        return "store"
    raise _UsageError(
        f"-o {output!r}: the output kind follows its extension: .npy or .npz (one audio file) or "
        ".zarr (a feature store directory)"
    )


def cmd_extract(args):
    import numpy as np

    import msk

    if args.preset and args.model:
        raise _UsageError("--preset names a shipped model: give --model or --preset, not both")
    kind = _output_kind(args.output)
    if kind != "store":
        if len(args.inputs) != 1 or not os.path.isfile(args.inputs[0]):
            raise _UsageError(f"{kind} output takes one audio file; use a .zarr store for several files")
        if args.times and kind == ".npy":
            raise _UsageError("--times needs an .npz output (features, start, end)")
        F, start, end, *track = msk.extract(
            args.inputs[0], model=args.model, representation=args.representation, preset=args.preset,
            last_window=args.last_window or "keep", return_times=True, summary=args.summary)
        out = {"input": os.path.abspath(args.inputs[0]), "output": os.path.abspath(args.output),
               "shape": list(F.shape), "dtype": str(F.dtype), "last_window": args.last_window or "keep"}
        if kind == ".npy":
            np.save(args.output, F)
        else:
            arrays = {"features": F, "start": start, "end": end}
            if track:
                arrays["track"] = track[0]
            np.savez(args.output, **arrays)
            out["arrays"] = sorted(arrays)
        _print_json(out)
        return 0
    if len(args.inputs) == 1 and os.path.isdir(args.inputs[0]) and not glob.has_magic(args.inputs[0]):
        paths = args.inputs[0]
    else:
        not_audio = []
        paths = expand_inputs(args.inputs, not_audio)
        if not_audio:
            _log(f"msk extract: {len(not_audio)} file(s) skipped (not audio)")
    if not paths:
        raise RuntimeError("no audio files found in the inputs")
    from .audio import decoder_output_captured

    # The decoders' own messages (printed by C on file descriptor 2) are kept out of the progress
    # bar; those that explain a failure are in the failed file's reason, the rest are dropped.
    with decoder_output_captured():
        summary = msk.extract_many(paths, store=args.output, model=args.model, root=args.root,
                                   representation=args.representation, preset=args.preset, n_jobs=args.n_jobs,
                                   scheduler=args.scheduler, prune=args.prune, summary=args.summary,
                                   last_window=args.last_window, wait=args.wait, progress=not args.quiet)
    _print_json(summary.as_dict())
    _log(f"msk extract: {summary}")
    if summary.not_audio:
        _log(f"msk extract: {len(summary.not_audio)} file(s) skipped (not audio):")
        for p in summary.not_audio[:20]:
            _log(f"  {p}")
        if len(summary.not_audio) > 20:
            _log(f"  ... and {len(summary.not_audio) - 20} more")
    if summary.failed:
        _log(f"msk extract: {len(summary.failed)} file(s) failed (recorded in the store):")
        for key, reason in sorted(summary.failed.items()):
            first, *more = reason.splitlines()
            _log(f"  {key}: {first}")
            for line in more:
                _log(f"    | {line}")
        return 1
    return 0


def _cv_summary(res, out):
    """The JSON summary of a cross-validated run: means and paired differences."""
    return {
        "out": os.path.abspath(out), "protocol": "cv", "rotations": res["protocol"]["rotations"],
        "feature_sets": [{"name": fs["name"], **fs["means"]} for fs in res["feature_sets"]],
        "comparisons": [{k: c[k] for k in ("feature_set", "baseline", "metric", "difference", "low", "high",
                                           "verdict")} for c in res["comparisons"]],
    }


def _check_protocol_options(args):
    """Options of the cross-validated protocol given without ``--protocol cv`` are usage errors."""
    if args.protocol != "cv" and args.selection:
        raise _UsageError("--selection runs with --protocol cv only")


def _run_cv(args, *, architectures, external):
    from .experiment import run_cv

    res = run_cv(
        args.root, architectures=architectures, baselines=args.baselines, out=args.output, rotations=args.rotations,
        n_runs=args.runs, n_trials=args.trials, random_state=args.seed, n_jobs=args.n_jobs, progress=not args.quiet,
        mlp={"n_hidden": args.hidden}, external=external, n_workers=args.workers, n_resamples=args.resamples,
        selection=args.selection,
    )
    _print_json(_cv_summary(res, args.output))
    return 0


def cmd_store(args):
    import msk

    if args.store_command == "check":
        st = msk.store.FeatureStore(args.store, mode="a" if args.repair else "r")
        try:
            report = st.check(repair=args.repair)
        finally:
            st.close()
        _print_json(report)
        for p in report["problems"]:
            _log(f"msk store check: {p}")
        unrepaired = report["problems"] and not args.repair
        return 1 if unrepaired else 0
    model = None
    if args.model is not None:
        shipped = args.model in ("laplacian", "gaussian", "multiresolution")
        model = msk.batch.default_model(args.model) if shipped else msk.MultiscaleFeatures.load(args.model)
    st = msk.store.migrate(args.old, args.new, root=args.root, model=model)
    report = st.settings["migration"]
    _print_json({"old": os.path.abspath(args.old), "new": st.path, "clips": len(st),
                 "failed": len(st.failures()), **report})
    if report["not_filled"]:
        _log(f"msk store migrate: {report['not_filled']} clip(s) without their file's size, mtime and hash "
             "(file missing, outside --root, or changed since extraction): `msk extract` extracts them again")
    return 0


def cmd_export(args):
    import msk

    ext = os.path.splitext(args.output)[1].lower()
    if ext not in (".parquet", ".npz", ".csv"):
        raise _UsageError(f"-o {args.output!r}: the export format follows the extension: .parquet, .npz or .csv")
    try:
        n = msk.store.export(args.store, args.output)
    except ImportError as exc:
        raise RuntimeError(str(exc)) from None
    _print_json({"store": os.path.abspath(args.store), "output": os.path.abspath(args.output), "rows": n})
    return 0


def cmd_experiment(args):
    from .experiment import expand_architectures, run_experiment, search_configurations

    _check_protocol_options(args)
    if args.protocol == "cv":
        if args.search != "none":
            raise _UsageError("--search runs with --protocol split only")
        return _run_cv(args, architectures=expand_architectures(args.architectures),
                       external=parse_external(args.external))
    res = run_experiment(
        args.root, architectures=expand_architectures(args.architectures), out=args.output,
        n_runs=args.runs, n_trials=args.trials, random_state=args.seed,
        search=search_configurations(args.search), n_jobs=args.n_jobs, progress=not args.quiet,
        mlp={"n_hidden": args.hidden}, external=parse_external(args.external), n_workers=args.workers,
    )
    _print_json({
        "out": os.path.abspath(args.output),
        "architectures": [{k: r.get(k) for k in ("architecture", "tag_auc_mean", "tag_auc_std",
                                                  "nca_probability", "nn_accuracy_other_tracks")}
                          for r in res["architectures"]],
    })
    return 0


def cmd_plot(args):
    import msk.plot

    if args.results[0] in ("map", "timeline"):
        return _plot_picture(args)
    if len(args.results) != 1:
        raise _UsageError("give one experiment output folder, or `map STORE` / `timeline FILE`")
    args.results = args.results[0]
    written = msk.plot.figures(args.results)
    _print_json({"results": os.path.abspath(args.results), "figures": written})
    return 0


def cmd_evaluate(args):
    import msk
    from msk.experiment import evaluate_features, match_keys

    if (args.dataset is None) == (args.labels is None):
        raise _UsageError("give --dataset ROOT (MagnaTagATune layout) or --labels CSV, one of them")
    _check_protocol_options(args)
    if args.labels is not None:
        if args.protocol == "cv":
            raise _UsageError("--protocol cv needs --dataset (a MagnaTagATune-layout dataset)")
        return _evaluate_labels(args)
    if args.protocol == "cv":
        if not args.output:
            raise _UsageError("--protocol cv needs -o/--output: the folder of the run (baseline features, results)")
        name = args.name or os.path.basename(os.path.normpath(args.store)).rsplit(".", 1)[0] or "features"
        args.root, args.n_jobs, args.quiet = args.dataset, 1, False
        return _run_cv(args, architectures=[], external={name: args.store})

    data = msk.datasets.load_magnatagatune(args.dataset)
    st = msk.store.FeatureStore(args.store, mode="r")
    rows, keys, missing = match_keys(st, data)
    if not keys:
        raise RuntimeError(f"{args.store!r} holds no clip of the dataset at {args.dataset!r}")
    if missing:
        _log(f"msk evaluate: {len(missing)} clip(s) of the dataset are not in the store; left out")
    X, clip_index = st.concatenated(keys)
    tagging, similarity = evaluate_features(
        X, clip_index, data.subset(rows), n_runs=args.runs, n_trials=args.trials, random_state=args.seed,
        mlp={"n_hidden": args.hidden}, nca={"n_components": args.nca_components})
    result = {"store": os.path.abspath(args.store), "dataset": os.path.abspath(args.dataset),
              "clips": len(keys), "missing": missing, "tag_names": list(data.tag_names),
              "tagging": tagging.to_dict(), "similarity": similarity.to_dict()}
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=1, default=str)
    _print_json({
        "store": result["store"], "clips": len(keys), "missing": len(missing),
        "tag_auc_mean": tagging.mean_auc, "tag_auc_std": tagging.std_auc,
        "nca_probability": similarity.probability,
        "nn_accuracy_other_tracks": similarity.nn_accuracy_other_groups,
        "output": None if not args.output else os.path.abspath(args.output),
    })
    return 0


def _npy_shape(f):
    """``(shape, dtype)`` from the header of an open ``.npy`` stream, without reading its data."""
    import numpy as np

    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(f)
    return [int(n) for n in shape], str(dtype)


def _describe_arrays(path, arrays):
    """What msk's own array outputs hold: windows and features, times, track vectors, keys."""
    import numpy as np

    out = {"arrays": {name: {"shape": shape, "dtype": dtype} for name, (shape, dtype) in arrays.items()}}
    features = arrays.get("features") or (arrays.get("arr_0") if len(arrays) == 1 else None)
    if features is not None and len(features[0]) == 2:
        out["n_windows"], out["n_features"] = features[0]
    for name in ("track", "tracks"):
        if name in arrays:
            out["track_vector" if name == "track" else "track_vectors"] = arrays[name][0]
    if "start" in arrays and "end" in arrays and arrays["end"][0] and len(arrays["end"][0]) == 1:
        with np.load(path, allow_pickle=False) as data:
            start, end = data["start"], data["end"]
            if "keys" not in arrays:
                out["last_window_end_s"] = float(end.max())
            out["first_window_s"] = [float(start[0]), float(end[0])]
    if "keys" in arrays:
        out["clips"] = arrays["keys"][0][0] if arrays["keys"][0] else 0
    return out


def _info_array_file(path):
    """``msk info`` of an ``.npy`` or ``.npz`` file: a model, a tagger, an index or arrays msk wrote."""
    import zipfile

    import numpy as np

    from ._persist import FORMAT as MODEL_FORMAT

    not_ours = (f"{path!r} is not an array file msk reads; msk info describes a model, tagger, index or "
                "projection (.npz), the .npy/.npz output of `msk extract` or `msk export`, or a feature store "
                "(directory)")
    if path.lower().endswith(".npy"):
        try:
            with open(path, "rb") as f:
                shape, dtype = _npy_shape(f)
        except ValueError as exc:
            raise _UsageError(f"{not_ours}: {exc}") from None
        return {"file": os.path.abspath(path), **_describe_arrays(path, {"features": (shape, dtype)})}
    try:
        with zipfile.ZipFile(path) as zf:
            arrays = {}
            for member in zf.infolist():
                if not member.filename.endswith(".npy"):
                    raise ValueError(f"member {member.filename!r} is not an .npy array")
                with zf.open(member) as f:
                    arrays[member.filename[:-4]] = _npy_shape(f)
            header = None
            if "header" in arrays:
                with zf.open("header.npy") as f:
                    header = json.loads(np.lib.format.read_array(f, allow_pickle=False).tobytes().decode("utf-8"))
    except (zipfile.BadZipFile, ValueError, UnicodeDecodeError) as exc:
        raise _UsageError(f"{not_ours}: {exc}") from None
    fmt = header.get("format") if isinstance(header, dict) else None
    if fmt == MODEL_FORMAT:
        return None  # the model branch below
    if fmt == "msk.Tagger":
        import msk.tagger

        tagger = msk.tagger.Tagger.load(path)
        return {"tagger": os.path.abspath(path), "kind": tagger.kind, "tags": list(tagger.tag_names),
                "n_features": int(tagger.n_features), "model": tagger.model_info,
                "training": tagger.training}
    if fmt in ("msk.TrackIndex", "msk.TrackProjection"):
        return {"index" if fmt == "msk.TrackIndex" else "projection": os.path.abspath(path), "header": header,
                "arrays": {n: {"shape": s, "dtype": d} for n, (s, d) in arrays.items() if n != "header"}}
    if header is not None:
        raise _UsageError(f"{not_ours}: its header names format {fmt!r}")
    return {"file": os.path.abspath(path), **_describe_arrays(path, arrays)}


def _cv_arguments(p):
    """The options of the cross-validated protocol (msk.experiment.run_cv), shared by experiment and evaluate."""
    p.add_argument("--protocol", choices=("split", "cv"), default="split",
                   help="split: the paper's one 12:1:3 split; cv: every clip tested once over 8 rotations of "
                        "12:2:2 folders, paired differences to the baselines with 95 %% bootstrap intervals")
    p.add_argument("--baselines", nargs="+", default=["single-w1-k500", "mfcc", "logmel-stats"],
                   help="with --protocol cv: what every feature set is compared with")
    p.add_argument("--rotations", nargs="+", type=non_negative_int, default=None,
                   help="with --protocol cv: run only these rotations (0-7; default all)")
    p.add_argument("--resamples", type=positive_int, default=1000, help="with --protocol cv: bootstrap resamples")
    p.add_argument("--selection", action="store_true",
                   help="with --protocol cv: score each rotation's validation folders and leave its test folders "
                        "out, to choose between feature sets without seeing a test folder (default: off)")


def cmd_info(args):
    import msk

    path = args.path
    if not os.path.exists(path):
        raise _UsageError(f"{path!r}: no such file or directory")
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "zarr.json")):
        raise _UsageError(f"{path!r} is a directory but not a feature store (it has no zarr.json)")
    if not os.path.isdir(path):
        ext = os.path.splitext(path)[1].lower()
        if ext not in (".npy", ".npz"):
            raise _UsageError(f"{path!r}: msk info describes a model, tagger, index or projection (.npz), "
                              "the .npy/.npz output of `msk extract` or `msk export`, or a feature store (directory)")
        described = _info_array_file(path)
        if described is not None:
            _print_json(described)
            return 0
    if os.path.isdir(path):
        st = msk.store.FeatureStore(path, mode="r")
        _print_json({
            "store": os.path.abspath(path), "clips": len(st), "failed": st.failures(),
            "model": st.model_info, "n_features": st.n_features, "summary": st.summary,
            "settings": st.settings, "damage": st.damage,
        })
        return 0
    model = msk.MultiscaleFeatures.load(path)
    _print_json({
        "model": os.path.abspath(path), "params": model.get_params(),
        "n_mels": model.n_mels_, "trained_on_clips": model.n_clips_,
        "n_features": model.n_features_out_,
        "levels": [
            {"n_features": int(p.n_features_in_), "n_components": int(p.n_components_),
             "n_clusters": None if model.kmeans_ is None else int(model.kmeans_[i].cluster_centers_.shape[0])}
            for i, p in enumerate(model.pca_)
        ],
    })
    return 0


class _UsageError(Exception):
    pass


def cmd_index(args):
    from msk.search import index_store

    try:
        projection = None if args.projection == "none" else args.projection
        _, summary = index_store(args.store, path=args.output, method=args.method, projection=projection)
    except ImportError as exc:
        raise RuntimeError(str(exc)) from None
    _print_json(summary)
    return 0


def _read_groups(path):
    """``{key: group}`` from a CSV with a header row: key column first, group column second."""
    import csv

    groups = {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header is None or len(header) < 2:
            raise ValueError(f"{path}: line 1 must be a header with a key column and a group column")
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) < 2 or not row[0]:
                raise ValueError(f"{path}: line {line} needs a key and a group; got {row!r}")
            if row[0] in groups:
                raise ValueError(f"{path}: line {line} repeats key {row[0]!r}")
            groups[row[0]] = row[1]
    return groups


def _query_key(index, query, store_path):
    """The index key a QUERY names: itself, or the key of a file the store was extracted from."""
    if query in index:
        return query
    if os.path.exists(query):
        from msk.store import FeatureStore

        with FeatureStore(store_path, mode="r") as store:
            key = store.key_of(query)
        if key is not None and key in index:
            return key
    return None


def cmd_similar(args):
    from msk.search import TrackIndex, index_path

    if args.k < 1:
        raise _UsageError(f"-k must be a positive integer; got {args.k}")
    path = args.index or index_path(args.store)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path!r}: no index for this store; run `msk index {args.store}` first")
    try:
        index = TrackIndex.load(path)
    except ImportError as exc:
        raise RuntimeError(str(exc)) from None
    groups = _read_groups(args.exclude_same) if args.exclude_same else None
    key = _query_key(index, args.query, args.store)
    if key is not None:
        keys, scores = index.query(key, args.k, groups=groups)
    elif os.path.isfile(args.query):
        group = None if groups is None else groups.get(args.query)
        keys, scores = index.query_audio(args.query, args.k, model=args.model, groups=groups, group=group)
    else:
        raise FileNotFoundError(f"{args.query!r} is neither a key of the index nor an audio file")
    if args.json:
        _print_json({"query": args.query, "key": key, "index": path,
                     "neighbours": [{"rank": r, "key": k, "score": round(float(s), 6)}
                                    for r, (k, s) in enumerate(zip(keys, scores), start=1)]})
    else:
        for r, (k, s) in enumerate(zip(keys, scores), start=1):
            print(f"{r:3d}  {s:.4f}  {k}")
    return 0


def build_parser():
    from ._persist import msk_version

    parser = argparse.ArgumentParser(
        prog="msk",
        description="Multiscale music audio features (Dieleman & Schrauwen, ISMIR 2013).",
        epilog=EPILOG["msk"], formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"msk {msk_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fmt = HelpFormatter
    p = sub.add_parser("extract", help="extract features from audio files", epilog=EPILOG["extract"],
                       formatter_class=fmt,
                       description="Extract multiscale features: one file to .npy, or many into a "
                                   "resumable feature store (Zarr v3 format).")
    p.add_argument("inputs", nargs="+", help="audio files, directories or glob patterns")
    p.add_argument("-o", "--output", required=True,
                   help="a .npy or .npz file (one input) or a feature store directory (.zarr)")
    p.add_argument("--preset", choices=("default", "paper"),
                   help="which shipped model: msk's default features, or the paper's settings "
                        "[default; paper if --representation names another representation]")
    p.add_argument("--representation", choices=("laplacian", "gaussian", "multiresolution"),
                   help="the shipped model's representation [the preset's; paper: laplacian]; "
                        "with --model, a check")
    p.add_argument("--model", help="a model file from `msk fit` instead of a shipped one")
    p.add_argument("--n-jobs", type=n_jobs_int, default=-1, help="parallel workers (-1: all cores, -2: all but one)")
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://host:port)")
    p.add_argument("--root", help="library root the store's keys are relative to "
                                  "[the directory given, else the files' common folder]")
    p.add_argument("--prune", action="store_true", help="drop store entries whose files are gone")
    p.add_argument("--summary", choices=("mean", "mean+max", "mean+std"),
                   help="track vector of each clip: the windows' mean, then optionally their maximum or "
                        "standard deviation [mean; a store keeps its setting]")
    p.add_argument("--times", action="store_true",
                   help="with -o FILE.npz: also write each window's start and end (seconds)")
    p.add_argument("--last-window", choices=("keep", "drop", "pad"),
                   help="the partial pooling window at the end of a clip: keep (pooled over what there "
                        "is), drop (the paper's: full windows only) or pad (with silence) "
                        "[keep; a store keeps its setting]")
    p.add_argument("--wait", type=non_negative_float, default=0.0,
                   help="seconds to wait for another process writing the store [0: refuse at once]")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("store", help="check, repair or migrate a feature store", epilog=EPILOG["store"],
                       formatter_class=fmt, description="Maintenance of feature stores.")
    ssub = p.add_subparsers(dest="store_command", metavar="STORE_COMMAND", required=True)
    q = ssub.add_parser("check", help="verify checksums and the table; --repair fixes what it can")
    q.add_argument("store")
    q.add_argument("--repair", action="store_true",
                   help="rewrite the table without damaged lines; re-queue clips with damaged chunks")
    q = ssub.add_parser("migrate", help="convert a store written by msk 0.1")
    q.add_argument("old")
    q.add_argument("new")
    q.add_argument("--root", default=None,
                   help="library root: keys relative to it, and each file's size, mtime and hash recorded, "
                        "so that `msk extract ROOT` skips unchanged files [keys kept as they are]")
    q.add_argument("--model", default=None,
                   help="the model of the store's features (a .npz file, or a shipped representation: "
                        "laplacian, gaussian, multiresolution), checked on one clip; needed to add clips to the "
                        "new store [none: the store keeps msk 0.1's model record]")
    p.set_defaults(func=cmd_store)

    p = sub.add_parser("export", help="write a store's features to Parquet, npz or CSV",
                       epilog=EPILOG["export"], formatter_class=fmt,
                       description="One row per window with the clip's key and the window's start and end.")
    p.add_argument("store")
    p.add_argument("-o", "--output", required=True, help="features.parquet, .npz or .csv")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("fit", help="learn a feature model from audio", epilog=EPILOG["fit"],
                       formatter_class=fmt,
                       description="Learn PCA whitening and a spherical K-means dictionary per level.")
    p.add_argument("inputs", nargs="*", help="audio files, directories or glob patterns")
    p.add_argument("--dataset", metavar="ROOT",
                   help="a MagnaTagATune-layout dataset: fit on its training split")
    p.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    p.add_argument("--representation", default="laplacian",
                   choices=("laplacian", "gaussian", "multiresolution"), help="the time-frequency representation")
    p.add_argument("--levels", type=positive_int, default=6, help="pyramid levels (scales)")
    p.add_argument("--width", type=positive_int, default=1, help="frames per window (1, 2, 4)")
    p.add_argument("--n-clusters", type=clusters_per_level, default=500,
                   help="K per level, or one K per level joined by commas (e.g. 500,500,250,250,100,100); "
                        "0 for PCA only")
    p.add_argument("--pool-size", type=positive_int, default=128, help="pooling window at level 0, frames")
    p.add_argument("--n-samples", type=positive_int, default=200_000, help="training windows per level")
    p.add_argument("--variance", type=variance_fraction, default=0.99, help="PCA variance kept")
    p.add_argument("--encoding", default="linear", choices=("linear", "threshold", "split", "triangle"),
                   help="linear (the paper's projections f), threshold (max(0, f - t)), split "
                        "(max(0, f - t) and max(0, -f - t): twice the features) or triangle "
                        "(Coates et al.'s distances to the atoms)")
    p.add_argument("--threshold", type=finite_float, default=0.25, help="t of --encoding threshold and split")
    p.add_argument("--window-normalization", default="none", choices=("none", "standardize"),
                   help="standardize: each window minus its mean, over sqrt(its variance + eps), "
                        "before whitening (Coates & Ng's contrast normalisation)")
    p.add_argument("--window-normalization-eps", type=finite_positive_float, default=0.1,
                   help="variance floor of --window-normalization standardize, relative to the "
                        "level's mean window variance")
    p.add_argument("--pooling", default="max", help="max, mean, std joined by + (e.g. max+mean)")
    p.add_argument("--max-iter", type=positive_int, default=20, help="K-means iterations")
    p.add_argument("--log-offset", type=positive_float, default=1e-10,
                   help="added to the mel energies before the log; 1/C gives the features of log1p(C*mel)")
    p.add_argument("--eps", type=non_negative_float, default=1e-5,
                   help="whitening regulariser, relative to the mean eigenvalue")
    p.add_argument("--whitening", default="pca", choices=("pca", "zca"),
                   help="pca (the whitened components) or zca (rotated back into the window space)")
    p.add_argument("--pooled-normalization", default="none",
                   choices=("none", "power", "standardize", "power+standardize"),
                   help="of each pooled row: none (the paper's), power (signed square root, then unit L2 "
                        "norm per level), standardize (per-feature mean and std of the training clips), "
                        "or both")
    p.add_argument("--envelope", action="store_true",
                   help="append to every row the log of each mel band's mean power over the row's seconds")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("evaluate", help="tag prediction and artist similarity on stored features",
                       epilog=EPILOG["evaluate"], formatter_class=fmt,
                       description="The paper's two heads (MLP tagger, NCA) on a feature store's "
                                   "features of a MagnaTagATune-layout dataset.")
    p.add_argument("store", help="a feature store (from msk extract)")
    p.add_argument("--dataset", metavar="ROOT", help="the MagnaTagATune-layout dataset the clips come from")
    p.add_argument("--labels", metavar="CSV",
                   help="or a labels CSV (see msk train-tagger): tagging only, clips split at random")
    p.add_argument("--group-column", help="with --labels: a column whose groups no split divides")
    p.add_argument("--label-column", help="with --labels: the column of class names (single-label)")
    p.add_argument("-o", "--output", help="write the full results here (JSON)")
    p.add_argument("--runs", type=positive_int, default=10, help="seeds per head, tagger and NCA alike (paper: 10)")
    p.add_argument("--trials", type=positive_int, default=10, help="random-search trials for the MLP")
    p.add_argument("--hidden", type=positive_int, default=1000, help="MLP hidden units")
    p.add_argument("--nca-components", type=positive_int, default=50,
                   help="dimensions of the NCA map (capped at the number of features and of training clips)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed")
    _cv_arguments(p)
    p.add_argument("--name", help="with --protocol cv: the store's name in the results (default: its folder name)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="with --protocol cv: (feature set, rotation) jobs side by side, one process each")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("experiment", help="rerun the paper's evaluation on a dataset",
                       epilog=EPILOG["experiment"], formatter_class=fmt,
                       description="Fit, extract and evaluate any of the paper's 28 architectures "
                                   "and the baselines; writes results.json/.csv (and figures).")
    p.add_argument("root", help="a MagnaTagATune-layout dataset")
    p.add_argument("-o", "--output", required=True, help="output folder (cache and results)")
    p.add_argument("--architectures", nargs="+", default=["subset"], help="names or groups")
    p.add_argument("--runs", type=positive_int, default=2, help="seeds per head (paper: 10)")
    p.add_argument("--trials", type=positive_int, default=4, help="random-search trials for the MLP")
    p.add_argument("--search", choices=("none", "small", "default"), default="none",
                   help="knob search beyond the paper, on validation only")
    p.add_argument("--hidden", type=positive_int, default=1000, help="MLP hidden units (paper: 1000)")
    p.add_argument("--n-jobs", type=positive_int, default=1, help="threads extracting features")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="architectures evaluated side by side, one process each (results do not depend on it)")
    p.add_argument("--external", nargs="+", type=name_equals_path, metavar="NAME=STORE",
                   help="features computed elsewhere (a feature store keyed by clip id), "
                        "evaluated by the same heads, e.g. musicnn-mtt=runs/musicnn_MTT_musicnn_penultimate.zarr")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _cv_arguments(p)
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("plot", help="draw figures: the paper's, a map of a library, a file over time",
                       epilog=EPILOG["plot"], formatter_class=fmt,
                       description="Figures 2-6 of the paper from an experiment's output folder; "
                                   "`plot map STORE`: a 2-D map of a feature store's tracks; "
                                   "`plot timeline FILE`: one file's features over time.")
    p.add_argument("results", nargs="+", metavar="RESULTS | map STORE | timeline FILE",
                   help="the output folder of msk experiment, or map/timeline and its input")
    _add_picture_options(p)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("info", help="describe a model, a feature store or msk's .npy/.npz outputs",
                       epilog=EPILOG["info"],
                       formatter_class=fmt,
                       description="Print, as JSON, a model's parameters and shapes, a tagger's tags, an "
                                   "index's header, a store's contents, or the arrays of an .npy/.npz "
                                   "output (windows, features, times, track vectors).")
    p.add_argument("path", help="a model, tagger, index or projection (.npz), an output of msk extract or msk export "
                                "(.npy, .npz), or a feature store (directory)")
    p.set_defaults(func=cmd_info)
    _add_tagger_commands(sub, fmt)

    p = sub.add_parser("index", help="build or update the similar-track index of a feature store",
                       epilog=EPILOG["index"], formatter_class=fmt,
                       description="Index the store's track vectors (the mean of each clip's features) "
                                   "for `msk similar`.")
    p.add_argument("store", help="a feature store (from msk extract)")
    p.add_argument("-o", "--output", help="the index file [STORE.index.npz beside the store]")
    p.add_argument("--method", choices=("auto", "exact", "ann"), default="auto",
                   help="exact search, an HNSW graph (needs usearch), or auto by size [auto]")
    p.add_argument("--projection", default="auto", metavar="auto|none|FILE",
                   help="auto: the projection shipped for the store's model, if any; none: plain cosine "
                        "similarity; FILE: a saved msk.projection.TrackProjection [auto]")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("similar", help="the tracks most similar to a key or an audio file",
                       epilog=EPILOG["similar"], formatter_class=fmt,
                       description="Rank the store's tracks by cosine similarity to the query: a key, "
                                   "a file in the store, or a new audio file (extracted on the fly).")
    p.add_argument("query", help="a key of the store or an audio file")
    p.add_argument("--store", required=True, help="the feature store that was indexed")
    p.add_argument("--index", help="the index file [STORE.index.npz beside the store]")
    p.add_argument("-k", type=positive_int, default=10, help="neighbours to print [10]")
    p.add_argument("--exclude-same", metavar="GROUPS_CSV",
                   help="CSV of key,group (artist or album): leave out the query's group")
    p.add_argument("--model", help="the store's model file, for a new audio file [the shipped model]")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_similar)
    return parser


def main(argv=None):
    """Run the ``msk`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # The one place that turns failures into exit codes: 0 ok, 1 runtime failure (one line on
    # stderr, never a traceback), 2 usage (argparse), 130 interrupted.
    try:
        return args.func(args)
    except _UsageError as exc:
        parser.error(str(exc))
    except KeyboardInterrupt:
        _log(f"msk {args.command}: stopped: interrupted{_resume_hint(args)}")
        return 130
    except MemoryError as exc:
        detail = f" ({exc})" if str(exc) else ""
        _log(f"msk {args.command}: error: out of memory{detail}; use fewer or shorter inputs or "
             "smaller parameters (e.g. --n-samples).")
        return 1
    except RecursionError:
        _log(f"msk {args.command}: error: an input is nested too deeply to read (a corrupt or "
             "crafted file).")
        return 1
    except ImportError as exc:
        missing = f" (missing module {exc.name!r})" if exc.name else ""
        _log(f"msk {args.command}: error: {exc}{missing}")
        return 1
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        _log(f"msk {args.command}: error: {exc}")
        return 1


def _resume_hint(args):
    """What an interrupted command kept, and how to finish it."""
    output = getattr(args, "output", None)
    if args.command == "extract" and output and not str(output).endswith(".npy"):
        return (f"; the clips finished so far are stored in {output}: rerun the same command "
                "to resume.")
    return "."


# --------------------------------------------------------------------------- your own tags


def _add_tagger_commands(sub, fmt):
    p = sub.add_parser("train-tagger", help="train a tagger on your own labels",
                       epilog=EPILOG["train-tagger"], formatter_class=fmt,
                       description="Train the paper's MLP head on the store's features of the clips in a "
                                   "labels CSV, early-stopped on held-out clips; prints the validation "
                                   "AUC of every tag and saves the tagger (.npz, no pickle).")
    p.add_argument("store", help="a feature store (from msk extract)")
    p.add_argument("--labels", required=True, metavar="CSV", help="the labels file")
    p.add_argument("-o", "--output", required=True, help="the tagger file to write (.npz)")
    p.add_argument("--valid-fraction", type=open_fraction, default=0.2,
                   help="fraction of the clips (groups) held out for early stopping and the AUC")
    p.add_argument("--group-column", help="a column (artist, album) whose groups are never split")
    p.add_argument("--label-column", help="the column of class names of a single-label file")
    p.add_argument("--key-column", help="the key column [the first column]")
    p.add_argument("--model", help="the model file the store was extracted with, recorded for `msk tag` "
                                   "(not needed for the shipped models)")
    p.add_argument("--hidden", type=positive_int, default=1000, help="hidden ReLU units")
    p.add_argument("--max-iter", type=positive_int, default=200, help="maximum epochs")
    p.add_argument("--patience", type=positive_int, default=10, help="epochs without improvement before stopping")
    p.add_argument("--learning-rate", type=positive_float, default=1e-3, help="the optimiser's step size")
    p.add_argument("--alpha", type=non_negative_float, default=1e-4, help="L2 weight decay")
    p.add_argument("--trials", type=non_negative_int, default=0,
                   help="random-search trials of learning rate and weight decay instead (0: no search)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (split and network)")
    p.set_defaults(func=cmd_train_tagger)

    p = sub.add_parser("tag", help="tag audio files with a trained tagger", epilog=EPILOG["tag"],
                       formatter_class=fmt,
                       description="Extract each file with the tagger's feature model and print its most "
                                   "probable tags.")
    p.add_argument("inputs", nargs="+", help="audio files, directories or glob patterns")
    p.add_argument("--tagger", required=True, help="a tagger from msk train-tagger")
    p.add_argument("--top", type=positive_int, default=5, help="tags shown per file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--model", help="the feature model file, if the tagger's is not found")
    p.set_defaults(func=cmd_tag)


def _add_picture_options(p):
    p.add_argument("-o", "--output", help="map/timeline: the image to write (.png, .pdf, .svg)")
    p.add_argument("--labels", metavar="CSV", help="map: a labels CSV to colour the tracks by")
    p.add_argument("--color-by", metavar="COLUMN",
                   help="map: the column to colour by [the class column of a single-label file]")
    p.add_argument("--method", choices=("pca", "tsne"), default="pca", help="map: the 2-D projection [pca]")
    p.add_argument("--seed", type=non_negative_int, default=0, help="map: random seed of the projection [0]")
    p.add_argument("--model", help="timeline: a model file [the shipped default model]")


def _check_fraction(name, value):
    if not 0 < value < 1:
        raise _UsageError(f"{name} must be between 0 and 1 (exclusive); got {value}")


def cmd_train_tagger(args):
    import msk.tagger

    _check_fraction("--valid-fraction", args.valid_fraction)
    for name, value, low in (("--hidden", args.hidden, 1), ("--max-iter", args.max_iter, 1),
                             ("--patience", args.patience, 1), ("--trials", args.trials, 0)):
        if value < low:
            raise _UsageError(f"{name} must be at least {low}; got {value}")
    if not args.learning_rate > 0 or not args.alpha >= 0:
        raise _UsageError(f"--learning-rate must be positive and --alpha non-negative; got "
                          f"{args.learning_rate} and {args.alpha}")
    tagger = msk.tagger.train_tagger(
        args.store, args.labels, valid_fraction=args.valid_fraction, random_state=args.seed,
        n_hidden=args.hidden, n_trials=args.trials, model_path=args.model, key_column=args.key_column,
        label_column=args.label_column, group_column=args.group_column, max_iter=args.max_iter,
        patience=args.patience,
        **({} if args.trials else {"learning_rate_init": args.learning_rate, "alpha": args.alpha}))
    tagger.save(args.output)
    t = tagger.training
    width = max(len("tag"), *(len(n) for n in tagger.tag_names))
    _log(f"msk train-tagger: {t['n_train_clips']} training and {t['n_valid_clips']} validation clips, "
         f"{t['n_iter']} epochs (best: {t['best_iteration']})")
    if t["labels_without_features"]:
        _log(f"msk train-tagger: {t['labels_without_features']} labelled clip(s) are not in the store; left out")
    _log(f"  {'tag':<{width}}  train+  valid+  valid AUC")
    for name, ptr, pva, auc in zip(tagger.tag_names, t["positives_train"], t["positives_valid"],
                                   t["validation_auc"]):
        _log(f"  {name:<{width}}  {ptr:>6}  {pva:>6}  {'n/a' if auc is None else f'{auc:.3f}':>9}")
    mean = t["mean_validation_auc"]
    _log(f"  {'mean':<{width}}  {'':>6}  {'':>6}  {'n/a' if mean is None else f'{mean:.3f}':>9}")
    _print_json({
        "tagger": os.path.abspath(args.output), "kind": tagger.kind, "tags": list(tagger.tag_names),
        "train_clips": t["n_train_clips"], "valid_clips": t["n_valid_clips"],
        "labels_without_features": t["labels_without_features"],
        "validation_auc": dict(zip(tagger.tag_names, t["validation_auc"])), "mean_validation_auc": mean,
        "epochs": t["n_iter"], "best_epoch": t["best_iteration"],
    })
    return 0


def cmd_tag(args):
    import msk.tagger

    if args.top < 1:
        raise _UsageError(f"--top must be at least 1; got {args.top}")
    tagger = msk.tagger.Tagger.load(args.tagger)
    model = tagger.feature_model(args.model)
    paths = expand_inputs(args.inputs)
    if not paths:
        raise RuntimeError("no audio files found in the inputs")
    results, failed = [], {}
    for path in paths:
        try:
            results.append((path, tagger.tag(path, model=model)[: args.top]))
        except (OSError, ValueError) as exc:
            failed[path] = str(exc)
            _log(f"msk tag: {path}: {exc}")
    if args.json:
        _print_json({"tagger": os.path.abspath(args.tagger),
                     "files": [{"path": p, "tags": [{"tag": t, "probability": round(q, 4)} for t, q in tags]}
                               for p, tags in results],
                     "failed": failed})
    else:
        for path, tags in results:
            print(path)
            width = max(len(t) for t, _ in tags)
            for t, q in tags:
                print(f"  {t:<{width}}  {q:.3f}")
    return 1 if failed else 0


def _evaluate_labels(args):
    import msk.tagger

    result, split = msk.tagger.evaluate_labels(
        args.store, args.labels, random_state=args.seed, n_runs=args.runs, n_trials=args.trials,
        n_hidden=args.hidden, label_column=args.label_column, group_column=args.group_column)
    tag_names = list(msk.datasets.load_labels(args.labels, label_column=args.label_column,
                                              group_column=args.group_column).tag_names)
    full = {"store": os.path.abspath(args.store), "labels": os.path.abspath(args.labels),
            "tag_names": tag_names, "split": split, "tagging": result.to_dict()}
    if args.output:
        with open(args.output, "w") as f:
            json.dump(full, f, indent=1, default=str)
    _print_json({
        "store": full["store"], "labels": full["labels"],
        "clips": {k: len(v) for k, v in split.items()},
        "tag_auc_mean": result.mean_auc, "tag_auc_std": result.std_auc,
        "per_tag_auc": dict(zip(tag_names, full["tagging"]["per_tag_auc"])),
        "output": None if not args.output else os.path.abspath(args.output),
    })
    return 0


def _plot_picture(args):
    import msk.plot

    what = args.results[0]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RuntimeError("pictures need matplotlib: pip install 'msk[plot]'") from None
    if len(args.results) != 2:
        raise _UsageError(f"`msk plot {what}` takes one {'feature store' if what == 'map' else 'audio file'}")
    if not args.output:
        raise _UsageError(f"`msk plot {what}` needs -o/--output (the image to write)")
    if what == "map":
        path = msk.plot.map_figure(args.results[1], args.output, labels=args.labels, color_by=args.color_by,
                                   method=args.method, random_state=args.seed)
    else:
        if args.labels or args.color_by:
            raise _UsageError("--labels and --color-by are options of `msk plot map`")
        path = msk.plot.timeline_figure(args.results[1], args.output, model=args.model)
    _print_json({"figure": os.path.abspath(path), "input": os.path.abspath(args.results[1])})
    return 0
