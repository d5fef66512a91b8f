#!/usr/bin/env python3
"""musicnn as an external peer of msk: per-patch embeddings, msk's heads, speed.

musicnn (Pons & Serra 2019) is the deep tagger a user would pick instead of msk:
a CNN trained on MagnaTagATune (``MTT_musicnn``) or the Million Song Dataset
(``MSD_musicnn``) whose PyPI package ships its weights. It needs TensorFlow and
numpy < 2, msk needs numpy >= 2, so this script has two halves:

* the **launcher** (run with msk's Python): builds musicnn's own virtual
  environment if it is missing, lists the clips of a MagnaTagATune-layout
  dataset (``msk.datasets.load_magnatagatune``), runs the worker half with the
  venv's Python, then evaluates the embeddings with msk's heads
  (``msk.heads.evaluate_tagging`` and ``evaluate_similarity``) and times msk
  beside musicnn;
* the **worker** (run inside the venv; never imports msk): builds musicnn's
  TensorFlow graph once per model, exactly as ``musicnn.extractor.extractor``
  does, feeds all 3 s patches of a clip in one batch and fetches the per-patch
  taggram, penultimate, mean_pool and max_pool tensors. ``extractor()`` itself
  cannot be used for features: from the second batch on it concatenates the
  *first* patch's penultimate/cnn/pool vectors again (``cnn1_``,
  ``penultimate_`` instead of the current batch's), so every row after the
  first is a copy of row 0. The worker checks, on the first clip of each model,
  that its taggram equals ``extractor()``'s, that its first penultimate row
  equals ``extractor()``'s, and that ``sigmoid(penultimate @ W + b)`` (the
  output layer read from the checkpoint) reproduces the taggram per patch.

Usage (from the repository root, with msk installed)::

    python scripts/musicnn_peer.py setup                      # build the venv only
    python scripts/musicnn_peer.py extract ROOT --out DIR     # embeddings + timing
    python scripts/musicnn_peer.py evaluate ROOT --out DIR    # msk's heads -> results.json
    python scripts/musicnn_peer.py speed ROOT --out DIR       # musicnn vs msk, one thread
    python scripts/musicnn_peer.py all ROOT --out DIR         # the three in a row

Files written in ``--out``:

* ``clips.tsv`` - clip id and audio path of every clip handed to the worker;
* ``musicnn_<model>_<layer>.npz`` - ``X`` (float32, one row per patch),
  ``clip_ids`` (int64, the clips that were extracted), ``clip_index`` (int64,
  row of ``clip_ids`` for every row of ``X``), ``patch_start`` (seconds),
  ``model``, ``layer``;
* ``musicnn_<model>_<layer>.zarr`` - the same embeddings as an msk feature store
  keyed by clip id (written by ``extract``), for ``scripts/run_experiment.py
  --external NAME=PATH``: musicnn in the experiment's own table, with the very heads
  and settings of msk's architectures;
* ``musicnn_<model>_timing.json`` - seconds per clip (decode + log-mel,
  network, total), times real time, threads, failures, the checks above;
* ``results.json`` / ``results.csv`` - msk's heads on every model/layer (the
  ``evaluate`` step, standalone: its own search and run counts);
* ``speed.json`` - musicnn and msk (Laplacian, K = 500) on the same clips,
  one thread each, measured one after the other in the same run.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time

import numpy as np

VENV = os.path.join(os.path.expanduser("~"), ".cache", "msk", "musicnn-venv")
REQUIREMENTS = ("tensorflow-cpu==2.15.1", "numpy<2", "librosa==0.10.2.post1")
MUSICNN = "musicnn==0.1.0"  # installed with --no-deps: its metadata pins numpy<1.17
MODELS = ("MTT_musicnn", "MSD_musicnn")
#: Per-patch layers the worker writes, with their widths for the musicnn models.
LAYERS = {"taggram": 50, "penultimate": 200, "mean_pool": 753, "max_pool": 753}
EVAL_LAYERS = ("penultimate", "taggram")
SR = 16000  # musicnn.configuration.SR
CLIPS_FILE = "clips.tsv"
_MARKER = "msk-musicnn-ready.txt"


def embeddings_path(out, model, layer):
    """Path of the embeddings file of one model and layer."""
    return os.path.join(out, f"musicnn_{model}_{layer}.npz")


def timing_path(out, model):
    """Path of the timing JSON of one model."""
    return os.path.join(out, f"musicnn_{model}_timing.json")


def _atomic_write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def _atomic_savez(path, **arrays):
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def write_clip_list(path, clip_ids, paths):
    """Write the worker's input: one ``clip_id<TAB>path`` line per clip."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        for cid, p in zip(clip_ids, paths):
            w.writerow([int(cid), str(p)])


def read_clip_list(path):
    """Read :func:`write_clip_list`'s file back: (list of int, list of str)."""
    ids, paths = [], []
    with open(path, encoding="utf-8", newline="") as f:
        for line, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if len(row) != 2 or not row[0].isdigit():
                raise ValueError(f"{path}, line {line}: expected 'clip_id<TAB>path'; got {row!r}.")
            ids.append(int(row[0]))
            paths.append(row[1])
    return ids, paths


# =====================================================================================
# Worker half: runs in musicnn's venv (TensorFlow, numpy < 2). No msk import here.
# =====================================================================================

def _build_model(model, threads):
    """musicnn's graph and weights, as in ``musicnn.extractor.extractor``; one session per model."""
    import librosa
    import tensorflow as tf
    from musicnn import configuration as config
    from musicnn import models

    tf.compat.v1.disable_eager_execution()
    labels = config.MTT_LABELS if model.startswith("MTT") else config.MSD_LABELS
    n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP) + 1
    graph = tf.Graph()
    with graph.as_default():
        with tf.name_scope("model"):
            x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
            is_training = tf.compat.v1.placeholder(tf.bool)
            (y, _timbral, _temporal, _cnn1, _cnn2, _cnn3, mean_pool, max_pool,
             penultimate) = models.define_model(x, is_training, model, len(labels))
            taggram = tf.nn.sigmoid(y)
        session_config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads)
        sess = tf.compat.v1.Session(graph=graph, config=session_config)
        sess.run(tf.compat.v1.global_variables_initializer())
        # musicnn's extractor swallows a failed restore (and then runs random weights): do not.
        import musicnn
        tf.compat.v1.train.Saver().restore(sess, os.path.join(os.path.dirname(musicnn.__file__), model) + "/")
        # the output layer (200 -> n_tags), read back for the consistency check
        out_vars = [v for v in tf.compat.v1.global_variables()
                    if tuple(v.shape) in ((LAYERS["penultimate"], len(labels)), (len(labels),))
                    and "dense" in v.name]
        W = [v for v in out_vars if v.shape.rank == 2]
        b = [v for v in out_vars if v.shape.rank == 1]
        if len(W) != 1 or len(b) != 1:
            raise RuntimeError(f"cannot identify {model}'s output layer among {[v.name for v in out_vars]}.")
        W, b = sess.run([W[0], b[0]])
    fetch = {"taggram": taggram, "penultimate": penultimate, "mean_pool": mean_pool, "max_pool": max_pool}
    return {"sess": sess, "x": x, "is_training": is_training, "fetch": fetch, "n_frames": n_frames,
            "labels": list(labels), "W": W, "b": b}


def _patches(path, n_frames):
    """musicnn's own input pipeline (librosa log-mel, float16, non-overlapping 3 s patches)."""
    from musicnn.extractor import batch_data

    try:
        batch, spectrogram = batch_data(path, n_frames, n_frames)
    except UnboundLocalError:  # batch_data's loop never ran: fewer frames than one patch
        raise ValueError(f"shorter than one {n_frames}-frame (3 s) patch") from None
    return batch, spectrogram.shape[0]


def _run(net, batch):
    names = list(net["fetch"])
    values = net["sess"].run([net["fetch"][k] for k in names],
                             feed_dict={net["x"]: batch, net["is_training"]: False})
    return {k: np.asarray(v, dtype=np.float32) for k, v in zip(names, values)}


def _check_against_extractor(model, path, net, ours):
    """Compare our per-patch reading with musicnn.extractor() on one clip (see module docstring)."""
    import contextlib
    import io

    from musicnn.extractor import extractor

    with contextlib.redirect_stdout(io.StringIO()):  # extractor prints progress
        taggram, _, features = extractor(path, model=model, input_length=3, input_overlap=False,
                                         extract_features=True)
    theirs_pen = np.asarray(features["penultimate"], dtype=np.float32)
    logits = ours["penultimate"].astype(np.float64) @ net["W"] + net["b"]
    return {
        "clip": path,
        "n_patches": int(len(ours["taggram"])),
        "taggram_max_abs_diff_vs_extractor": float(np.max(np.abs(ours["taggram"] - taggram))),
        "penultimate_row0_max_abs_diff_vs_extractor": float(np.max(np.abs(ours["penultimate"][0] - theirs_pen[0]))),
        "extractor_penultimate_rows_all_equal_row0": bool(np.all(theirs_pen == theirs_pen[0])),
        "our_penultimate_rows_distinct": int(len(np.unique(ours["penultimate"], axis=0))),
        "taggram_from_penultimate_max_abs_diff": float(np.max(np.abs(1 / (1 + np.exp(-logits)) - ours["taggram"]))),
    }


def _progress(model, i, n, t0):
    elapsed = time.perf_counter() - t0
    eta = elapsed / i * (n - i)
    print(f"[{model}] {i}/{n} clips, {elapsed:.0f} s elapsed, ~{eta:.0f} s left", file=sys.stderr, flush=True)


def worker_main(argv):
    """Extract per-patch embeddings of the clips in ``--clips`` for each model (in the venv)."""
    p = argparse.ArgumentParser(prog="musicnn_peer.py _worker")
    p.add_argument("--clips", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--force", action="store_true")
    p.add_argument("--no-check", dest="check", action="store_false")
    args = p.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore", message=r"`tf\.layers\.\w+` is deprecated", category=UserWarning)
    import librosa
    import tensorflow as tf

    import musicnn

    clip_ids, paths = read_clip_list(args.clips)
    os.makedirs(args.out, exist_ok=True)
    for model in args.models:
        if not args.force and all(os.path.exists(embeddings_path(args.out, model, layer)) for layer in LAYERS) \
                and os.path.exists(timing_path(args.out, model)):
            print(f"[{model}] embeddings exist in {args.out}; skipped (--force redoes them)", file=sys.stderr)
            continue
        # our graph is not the default graph, so extractor() (which resets that one) cannot disturb it
        t_build = time.perf_counter()
        net = _build_model(model, args.threads)
        t_build = time.perf_counter() - t_build
        # warm-up, untimed: librosa's first calls (numba, FFT plans) and TF's first run cost seconds
        for path in paths[:3]:
            try:
                _run(net, _patches(path, net["n_frames"])[0])
                break
            except Exception:  # noqa: BLE001 - a broken clip is reported by the loop below
                continue
        rows = {layer: [] for layer in LAYERS}
        clip_index, patch_start, done, failures = [], [], [], []
        t_audio = t_net = t_total = cpu_total = 0.0
        audio_seconds = 0.0
        per_clip = []
        check = None
        t0 = time.perf_counter()
        for i, (cid, path) in enumerate(zip(clip_ids, paths)):
            try:
                duration = librosa.get_duration(path=path)  # header only; outside the timed part
                ca, ta = time.process_time(), time.perf_counter()
                batch, _ = _patches(path, net["n_frames"])
                tb = time.perf_counter()
                outs = _run(net, batch)
                tc, cc = time.perf_counter(), time.process_time()
            except Exception as exc:  # noqa: BLE001 - any broken clip is recorded, never fatal
                failures.append({"clip_id": cid, "path": path, "reason": f"{type(exc).__name__}: {exc}"})
                continue
            if check is None and args.check:
                check = _check_against_extractor(model, path, net, outs)
            t_audio += tb - ta
            t_net += tc - tb
            t_total += tc - ta
            cpu_total += cc - ca
            audio_seconds += duration
            per_clip.append(tc - ta)
            k = len(done)
            done.append(cid)
            n = len(batch)
            clip_index.extend([k] * n)
            patch_start.extend((np.arange(n) * net["n_frames"] * 256 / SR).tolist())
            for layer in LAYERS:
                rows[layer].append(outs[layer].reshape(n, -1))
            if (i + 1) % 25 == 0 or i + 1 == len(paths):
                _progress(model, i + 1, len(paths), t0)
        if not done:
            raise SystemExit(f"[{model}] no clip could be processed; first failure: {failures[:1]}")
        for layer in LAYERS:
            _atomic_savez(embeddings_path(args.out, model, layer),
                          X=np.concatenate(rows[layer]).astype(np.float32),
                          clip_ids=np.asarray(done, dtype=np.int64),
                          clip_index=np.asarray(clip_index, dtype=np.int64),
                          patch_start=np.asarray(patch_start, dtype=np.float32),
                          model=np.array(model), layer=np.array(layer))
        n = len(done)
        timing = {
            "model": model,
            "n_clips": n,
            "n_patches": len(clip_index),
            "n_failed": len(failures),
            "failures": failures,
            "threads": args.threads,
            "audio_seconds": audio_seconds,
            "graph_build_and_restore_seconds": t_build,
            "seconds_decode_logmel": t_audio,
            "seconds_network": t_net,
            "seconds_total": t_total,
            "cpu_seconds_total": cpu_total,
            "seconds_per_clip": t_total / n,
            "seconds_per_clip_median": float(np.median(per_clip)),
            "seconds_per_clip_network": t_net / n,
            "x_real_time": audio_seconds / t_total,
            "x_real_time_network_only": audio_seconds / t_net,
            "check": check,
            "versions": {"musicnn": getattr(musicnn, "__version__", "0.1.0"), "tensorflow": tf.__version__,
                         "numpy": np.__version__, "librosa": librosa.__version__, "python": sys.version.split()[0]},
            "note": "timed part = musicnn's librosa decode + log-mel + patching and the network on all "
                    "patches of the clip in one batch; graph build excluded; OMP/BLAS and TF "
                    "intra/inter-op threads set to `threads`.",
        }
        _atomic_write_json(timing_path(args.out, model), timing)
        net["sess"].close()
        print(f"[{model}] {n} clips, {len(failures)} failed, {t_total / n:.3f} s/clip, "
              f"{audio_seconds / t_total:.1f}x real time on {args.threads} thread(s)", file=sys.stderr)


# =====================================================================================
# Launcher half: msk's Python (numpy >= 2). Builds the venv, runs the worker, evaluates.
# =====================================================================================

def venv_python(venv):
    """The venv's interpreter."""
    return os.path.join(venv, "bin", "python")


def ensure_venv(venv, *, python=None, log=sys.stderr):
    """Create musicnn's venv with its pinned packages unless it is already complete.

    A marker file written after a successful ``import musicnn.extractor``
    records the package pins; a venv without it (or with other pins) is
    (re)installed into.
    """
    marker = os.path.join(venv, _MARKER)
    pins = "\n".join(REQUIREMENTS + (MUSICNN,)) + "\n"
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            if f.read() == pins:
                return venv_python(venv)
    py = venv_python(venv)
    if not os.path.exists(py):
        print(f"creating musicnn's venv in {venv}", file=log, flush=True)
        subprocess.run([python or sys.executable, "-m", "venv", venv], check=True)
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
    print(f"installing {' '.join(REQUIREMENTS)}", file=log, flush=True)
    subprocess.run(pip + list(REQUIREMENTS), check=True)
    print(f"installing {MUSICNN} --no-deps", file=log, flush=True)
    subprocess.run(pip + ["--no-deps", MUSICNN], check=True)
    subprocess.run([py, "-c", "import musicnn.extractor, musicnn.models"], check=True,
                   env=_worker_env(1))
    with open(marker, "w", encoding="utf-8") as f:
        f.write(pins)
    return py


def _worker_env(threads):
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                "TF_NUM_INTEROP_THREADS"):
        env[key] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("PYTHONPATH", None)  # keep msk's site (numpy >= 2) out of the venv
    env["PYTHONNOUSERSITE"] = "1"
    return env


def run_worker(venv, clips_file, out, *, models=MODELS, threads=1, force=False, check=True):
    """Run the worker half with the venv's Python; raise CalledProcessError if it fails."""
    cmd = [venv_python(venv), os.path.abspath(__file__), "_worker", "--clips", clips_file, "--out", out,
           "--models", *models, "--threads", str(threads)]
    if force:
        cmd.append("--force")
    if not check:
        cmd.append("--no-check")
    subprocess.run(cmd, check=True, env=_worker_env(threads))


def read_embeddings(path):
    """Read one embeddings file: ``(X, clip_index, clip_ids)``, checked.

    Returns
    -------
    X : ndarray of shape (n_patches, n_features), float32
    clip_index : ndarray of shape (n_patches,), int64
        Row of ``clip_ids`` for every row of ``X``.
    clip_ids : ndarray of shape (n_clips,), int64
    """
    with np.load(path, allow_pickle=False) as z:
        missing = {"X", "clip_index", "clip_ids"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: missing array(s) {sorted(missing)}; not a musicnn embeddings file.")
        X, clip_index, clip_ids = z["X"], z["clip_index"], z["clip_ids"]
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{path}: `X` must be a non-empty 2-D array; got shape {X.shape}.")
    if clip_index.shape != (X.shape[0],) or not np.issubdtype(clip_index.dtype, np.integer):
        raise ValueError(f"{path}: `clip_index` must be integers of shape ({X.shape[0]},); "
                         f"got {clip_index.dtype} of shape {clip_index.shape}.")
    if clip_ids.ndim != 1 or not np.issubdtype(clip_ids.dtype, np.integer):
        raise ValueError(f"{path}: `clip_ids` must be a 1-D integer array; got {clip_ids.dtype} {clip_ids.shape}.")
    if len(np.unique(clip_ids)) != len(clip_ids):
        raise ValueError(f"{path}: `clip_ids` has duplicates.")
    if clip_index.min() < 0 or clip_index.max() >= len(clip_ids):
        raise ValueError(f"{path}: `clip_index` must lie in [0, {len(clip_ids)}); "
                         f"got values in [{clip_index.min()}, {clip_index.max()}].")
    if len(np.unique(clip_index)) != len(clip_ids):
        raise ValueError(f"{path}: every clip in `clip_ids` must own at least one row of `X`.")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{path}: `X` contains NaN or infinite values.")
    return np.asarray(X, dtype=np.float32), clip_index.astype(np.int64), clip_ids.astype(np.int64)


def align_to_dataset(dataset_clip_ids, clip_index, clip_ids):
    """Map embedding rows onto the dataset's clips.

    Parameters
    ----------
    dataset_clip_ids : array-like of int of shape (n_dataset_clips,)
    clip_index : ndarray of shape (n_patches,)
        Row of ``clip_ids`` for every embedding row.
    clip_ids : ndarray of shape (n_clips,)
        The clips in the embeddings file.

    Returns
    -------
    present : ndarray of int
        Dataset rows that have embeddings (in dataset order).
    index : ndarray of shape (n_patches,)
        For every embedding row, its clip's position in ``present``.
    missing : ndarray of int
        Dataset clip ids without embeddings (failed or not extracted).

    Raises
    ------
    ValueError
        If the file holds clips the dataset does not have (another dataset).
    """
    ds = np.asarray(dataset_clip_ids, dtype=np.int64)
    pos = {int(c): i for i, c in enumerate(ds)}
    unknown = [int(c) for c in clip_ids if int(c) not in pos]
    if unknown:
        shown = ", ".join(map(str, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
        raise ValueError(f"the embeddings hold {len(unknown)} clip id(s) that the dataset does not have "
                         f"({shown}): they were extracted from another dataset.")
    has = np.zeros(len(ds), dtype=bool)
    rows = np.array([pos[int(c)] for c in clip_ids], dtype=np.int64)
    has[rows] = True
    present = np.flatnonzero(has)
    rank = np.full(len(ds), -1, dtype=np.int64)
    rank[present] = np.arange(len(present))
    return present, rank[rows[clip_index]], ds[~has]


def store_path(out, model, layer):
    """Path of the msk feature store of one model and layer (see :func:`write_store`)."""
    return os.path.join(out, f"musicnn_{model}_{layer}.zarr")


def write_store(out, model, layer):
    """Copy one embeddings file into an msk feature store keyed by clip id; return its path.

    ``msk.experiment.run_experiment(external={name: path})`` (``--external NAME=PATH`` of
    ``scripts/run_experiment.py``) then evaluates musicnn with exactly the heads, settings and
    splits of msk's own architectures, in the same table. The store's model information names
    the model and layer and carries musicnn's measured ``extract_ms_per_clip``.
    """
    from msk.store import FeatureStore

    X, clip_index, clip_ids = read_embeddings(embeddings_path(out, model, layer))
    info = {"name": "musicnn", "model": model, "layer": layer, "musicnn": MUSICNN,
            "window_seconds": 187 * 256 / SR, "n_features": int(X.shape[1])}
    if os.path.exists(timing_path(out, model)):
        with open(timing_path(out, model), encoding="utf-8") as f:
            info["extract_ms_per_clip"] = 1000 * json.load(f)["seconds_per_clip"]
    path = store_path(out, model, layer)
    store = FeatureStore(path, mode="w", model_info=info, durable=False)
    order = np.argsort(clip_index, kind="stable")
    bounds = np.searchsorted(clip_index[order], np.arange(len(clip_ids) + 1))
    with store:
        for j, cid in enumerate(clip_ids.tolist()):
            store.put(str(cid), X[order[bounds[j]:bounds[j + 1]]])
    return path


def evaluate(root, out, *, models=MODELS, layers=EVAL_LAYERS, n_runs=10, n_trials=10,
             random_state=0, n_tags=50, mlp_params=None, nca_params=None, log=sys.stderr):
    """Evaluate the embeddings in ``out`` with msk's heads; write results.json and results.csv.

    Every model/layer gets msk's one evaluation, ``msk.experiment.evaluate_features`` (the
    settings of ``msk evaluate`` and ``msk experiment``): the tagging protocol (random search on
    the validation split, ``n_runs`` seeds, test mean per-tag AUC) and the similarity protocol
    (``n_runs`` NCA maps on clip means: NCA probability and nearest-neighbour artist accuracy on
    the test split, also with neighbours of the same track, as the dataset loader defines it,
    excluded). Entries of an
    earlier results.json with the same dataset and settings are kept, so layers can be added
    run by run.
    """
    import msk

    dataset = msk.datasets.load_magnatagatune(root, n_tags=n_tags)
    settings = {"n_runs": n_runs, "n_trials": n_trials, "random_state": random_state,
                "n_tags": n_tags, "mlp_params": dict(mlp_params or {}), "nca_params": dict(nca_params or {})}
    results = {"dataset": {"root": dataset.root, "n_clips": len(dataset), "tag_names": list(dataset.tag_names),
                           "splits": {s: int(np.sum(dataset.splits == s)) for s in dataset.split_names}},
               "settings": settings, "architectures": {}}
    previous = _previous_results(os.path.join(out, "results.json"), results)
    results["architectures"].update(previous)  # other models/layers of an earlier run with the same settings
    for model in models:
        timing = None
        if os.path.exists(timing_path(out, model)):
            with open(timing_path(out, model), encoding="utf-8") as f:
                timing = json.load(f)
        for layer in layers:
            path = embeddings_path(out, model, layer)
            X, clip_index, clip_ids = read_embeddings(path)
            present, index, missing = align_to_dataset(dataset.clip_ids, clip_index, clip_ids)
            sub = dataset.subset(present)
            name = f"musicnn:{model}:{layer}"
            print(f"{name}: {X.shape[0]} patches x {X.shape[1]} of {len(present)} clips "
                  f"({len(missing)} missing); evaluating ...", file=log, flush=True)
            seconds = {}
            t = time.perf_counter()

            def step(head, stage, done, total, seconds=seconds):
                seconds[head] = time.perf_counter()  # when the head's latest model finished

            tagging, similarity = msk.experiment.evaluate_features(
                X, index, sub, n_runs=n_runs, n_trials=n_trials, random_state=random_state, mlp=mlp_params,
                nca=nca_params, progress=step)
            t_tag = seconds["tagging"] - t
            t_nca = seconds["similarity"] - seconds["tagging"]
            print(f"{name}: tag AUC {tagging.mean_auc:.4f} ± {tagging.std_auc:.4f} ({t_tag:.0f} s)",
                  file=log, flush=True)
            print(f"{name}: NCA probability {similarity.probability:.4f} ± {similarity.probability_std:.4f}, "
                  f"NN accuracy {similarity.nn_accuracy:.4f} (other tracks {similarity.nn_accuracy_other_groups:.4f})"
                  f" ({t_nca:.0f} s)", file=log, flush=True)
            results["architectures"][name] = {
                "kind": "peer", "peer": "musicnn", "model": model, "layer": layer,
                "trained_on": "MagnaTagATune" if model.startswith("MTT") else "Million Song Dataset",
                "n_features": int(X.shape[1]), "n_windows": int(X.shape[0]), "n_clips": int(len(present)),
                "window_seconds": 187 * 256 / SR, "missing_clip_ids": missing.tolist(),
                "summary": {
                    "tag_auc_mean": tagging.mean_auc, "tag_auc_std": tagging.std_auc,
                    "nca_probability": similarity.probability, "nca_probability_std": similarity.probability_std,
                    "nca_probability_other_tracks": similarity.probability_other_groups,
                    "nn_accuracy": similarity.nn_accuracy, "nn_accuracy_std": similarity.nn_accuracy_std,
                    "nn_accuracy_other_tracks": similarity.nn_accuracy_other_groups,
                    "seconds_per_clip": None if timing is None else timing["seconds_per_clip"],
                    "x_real_time": None if timing is None else timing["x_real_time"],
                    "threads": None if timing is None else timing["threads"],
                    "head_seconds": {"tagging": t_tag, "similarity": t_nca},
                },
                "tagging": tagging.to_dict(), "similarity": similarity.to_dict(),
            }
            _atomic_write_json(os.path.join(out, "results.json"), _finite(results))
    _write_csv(os.path.join(out, "results.csv"), results)
    return results


def _previous_results(path, results):
    """Architectures of an earlier results.json on the same dataset with the same settings, else {}."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        old = json.load(f)
    same = (old.get("dataset") == _finite(results["dataset"])
            and old.get("settings") == json.loads(json.dumps(results["settings"])))
    return old.get("architectures", {}) if same else {}


def _finite(obj):
    """NaN/inf -> None, recursively (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


_CSV_COLUMNS = ("tag_auc_mean", "tag_auc_std", "nca_probability", "nca_probability_std",
                "nca_probability_other_tracks", "nn_accuracy", "nn_accuracy_other_tracks",
                "seconds_per_clip", "x_real_time", "threads")


def _write_csv(path, results):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(("architecture", "n_features") + _CSV_COLUMNS)
        for name, r in results["architectures"].items():
            s = r["summary"]
            w.writerow([name, r["n_features"]] + ["" if s[c] is None else s[c] for c in _CSV_COLUMNS])


def time_msk(paths, *, fit_paths, representation="laplacian", n_means=500, random_state=0):
    """msk end to end (MP3 -> pooled features) per clip on one thread; fit time excluded."""
    import msk
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        model = msk.MultiscaleFeatures(representation, n_clusters=n_means, n_samples=50_000,
                                       random_state=random_state).fit(list(fit_paths))
        model.transform(paths[0])  # warm-up: first-call costs (encoder operands, FFT plans)
        seconds, audio, cpu = [], 0.0, 0.0
        for p in paths:
            audio += len(msk.load_audio(p)) / model.sr
            c, t = time.process_time(), time.perf_counter()
            model.transform(p)
            seconds.append(time.perf_counter() - t)
            cpu += time.process_time() - c
    total = float(np.sum(seconds))
    return {"architecture": f"msk {representation} K={n_means} w=1 levels=6", "n_clips": len(paths),
            "threads": 1, "audio_seconds": audio, "seconds_total": total, "cpu_seconds_total": cpu,
            "seconds_per_clip": total / len(paths), "seconds_per_clip_median": float(np.median(seconds)),
            "x_real_time": audio / total, "x_real_time_per_cpu_second": audio / cpu,
            "n_features": int(model.n_features_out_)}


def speed(root, out, venv, *, n_clips=30, models=MODELS, log=sys.stderr):
    """musicnn and msk on the same clips, one thread each, back to back: writes speed.json."""
    import msk

    dataset = msk.datasets.load_magnatagatune(root)
    n = min(n_clips, len(dataset))
    sub = dataset.subset(np.arange(n))
    speed_dir = os.path.join(out, "speed")
    os.makedirs(speed_dir, exist_ok=True)
    clips_file = os.path.join(speed_dir, CLIPS_FILE)
    write_clip_list(clips_file, sub.clip_ids, sub.paths)
    print(f"speed: musicnn on {n} clips, one thread", file=log, flush=True)
    run_worker(venv, clips_file, speed_dir, models=models, threads=1, force=True, check=False)
    peers = {}
    for model in models:
        with open(timing_path(speed_dir, model), encoding="utf-8") as f:
            t = json.load(f)
        peers[model] = {k: t[k] for k in ("n_clips", "threads", "audio_seconds", "seconds_total",
                                          "cpu_seconds_total", "seconds_per_clip",
                                          "seconds_per_clip_median", "seconds_per_clip_network",
                                          "seconds_decode_logmel", "seconds_network", "x_real_time",
                                          "x_real_time_network_only")}
        peers[model]["x_real_time_per_cpu_second"] = t["audio_seconds"] / t["cpu_seconds_total"]
    print(f"speed: msk on the same {n} clips, one thread", file=log, flush=True)
    # the model only has to exist for timing; 40 clips give every level more windows than K = 500
    fit = dataset.paths[:40]
    mine = time_msk(list(sub.paths), fit_paths=fit)
    report = {"n_clips": n, "msk": mine, "musicnn": peers,
              "msk_speedup_over": {m: mine["x_real_time"] / p["x_real_time"] for m, p in peers.items()},
              "msk_speedup_over_by_cpu_time": {
                  m: mine["x_real_time_per_cpu_second"] / p["x_real_time_per_cpu_second"] for m, p in peers.items()},
              "note": "one thread each (TF intra/inter-op = 1, BLAS = 1), measured back to back in one run "
                      "on a 2-core machine shared with other jobs: noisy. Both include MP3 decoding."}
    _atomic_write_json(os.path.join(out, "speed.json"), report)
    for m, p in peers.items():
        print(f"speed: {m} {p['seconds_per_clip']:.3f} s/clip ({p['x_real_time']:.1f}x real time); "
              f"msk {mine['seconds_per_clip']:.4f} s/clip ({mine['x_real_time']:.0f}x real time); "
              f"msk is {report['msk_speedup_over'][m]:.1f}x faster", file=log, flush=True)
    return report


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    return value


def parse_args(argv=None):
    """The launcher's command line (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="musicnn_peer.py",
        description="musicnn (MTT_musicnn, MSD_musicnn) as an external peer of msk: per-patch embeddings "
                    "in its own venv, evaluated with msk's heads, timed beside msk.")
    p.add_argument("--venv", default=VENV, help=f"musicnn's virtual environment (default: {VENV})")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("setup", help="build musicnn's venv (tensorflow-cpu 2.15.1, numpy<2, librosa 0.10.2.post1, "
                                 "musicnn 0.1.0 --no-deps) if missing")
    for name, text in (("extract", "per-patch embeddings and timing of every clip"),
                       ("evaluate", "msk's tagging and NCA heads on the embeddings"),
                       ("speed", "musicnn and msk on the same clips, one thread each"),
                       ("all", "extract, evaluate and speed")):
        c = sub.add_parser(name, help=text)
        c.add_argument("root", help="MagnaTagATune-layout dataset folder")
        c.add_argument("--out", required=True, help="folder for embeddings, timing and results")
        c.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
        if name in ("extract", "all"):
            c.add_argument("--threads", type=_positive_int, default=1,
                           help="TF intra/inter-op and BLAS threads of the worker (default 1: timing per core)")
            c.add_argument("--limit", type=_positive_int, default=None, help="only the first N clips")
            c.add_argument("--force", action="store_true", help="redo existing embeddings")
        if name in ("evaluate", "all"):
            c.add_argument("--layers", nargs="+", choices=list(LAYERS), default=list(EVAL_LAYERS))
            c.add_argument("--n-runs", type=_positive_int, default=10,
                           help="seeds per head, tagger and NCA alike (paper: 10)")
            c.add_argument("--n-trials", type=_positive_int, default=10, help="random-search trials")
            c.add_argument("--n-hidden", type=_positive_int, default=1000, help="MLP hidden units (paper: 1000)")
            c.add_argument("--nca-components", type=_positive_int, default=50,
                           help="NCA embedding dimension (paper: 50)")
            c.add_argument("--n-tags", type=_positive_int, default=50)
            c.add_argument("--random-state", type=int, default=0)
        if name in ("speed", "all"):
            c.add_argument("--speed-clips", type=_positive_int, default=30,
                           help="clips timed for the msk/musicnn comparison")
    args = p.parse_args(argv)
    if getattr(args, "root", None) is not None and not os.path.isdir(args.root):
        p.error(f"root {args.root!r} is not a folder")
    if getattr(args, "models", None):
        args.models = list(dict.fromkeys(args.models))
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["_worker"]:
        return worker_main(argv[1:])
    args = parse_args(argv)
    venv = os.path.abspath(os.path.expanduser(args.venv))
    if args.command == "setup":
        print(ensure_venv(venv))
        return
    out = os.path.abspath(os.path.expanduser(args.out))
    os.makedirs(out, exist_ok=True)
    if args.command in ("extract", "all", "speed"):
        ensure_venv(venv)
    if args.command in ("extract", "all"):
        import msk

        dataset = msk.datasets.load_magnatagatune(args.root)
        n = len(dataset) if args.limit is None else min(args.limit, len(dataset))
        clips_file = os.path.join(out, CLIPS_FILE)
        write_clip_list(clips_file, dataset.clip_ids[:n], dataset.paths[:n])
        run_worker(venv, clips_file, out, models=args.models, threads=args.threads, force=args.force)
        for model in args.models:
            for layer in LAYERS:
                print(write_store(out, model, layer), file=sys.stderr, flush=True)
    if args.command in ("evaluate", "all"):
        evaluate(args.root, out, models=args.models, layers=args.layers, n_runs=args.n_runs,
                 n_trials=args.n_trials, random_state=args.random_state,
                 n_tags=args.n_tags, mlp_params={"n_hidden": args.n_hidden},
                 nca_params={"n_components": args.nca_components})
    if args.command in ("speed", "all"):
        speed(args.root, out, venv, n_clips=args.speed_clips, models=args.models)


if __name__ == "__main__":
    main()
