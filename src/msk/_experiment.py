"""The experiment behind :func:`msk.evaluation.run_experiment` (private).

Layout of the output folder ``out``::

    results.json  results.csv  tags.txt  fig*.png
    <architecture>/
        extractor.json     kind and parameters of the feature extractor
        model.npz          fitted MultiscaleFeatures (learned architectures)
        features.zarr/     the feature cache, an msk.store.FeatureStore (see _cache_for)
        tagging_search.json, result.json, per_level.json, validation.json
                           cached head results, each with the settings that produced it
"""

import csv
import json
import math
import os
import sys
import time
import warnings
import zlib

import numpy as np
from sklearn.preprocessing import StandardScaler

from ._baselines import BaselineFeatures
from ._validation import check_int
from .datasets import load_magnatagatune
from .evaluation import DEFAULT_SEARCH, Architecture, parse_architecture, per_tag_auc
from .heads import MLPTagger, _jsonable, clip_means, evaluate_similarity
from .multiscale import MultiscaleFeatures

_MAX_SEED = 2**31 - 1
_MSF_KEYS = ("levels", "pool_size", "n_samples", "variance", "eps", "encoding", "threshold", "pooling", "max_iter",
             "sr", "log_offset")
_BASELINE_KEYS = ("pool_size", "sr", "log_offset")
_MLP_DEFAULTS = {"n_hidden": 1000, "batch_size": 200, "max_iter": 100, "patience": 10}
_NCA_DEFAULTS = {"n_components": 50}


# --------------------------------------------------------------------------- progress and json
def _bar(iterable=None, *, progress, **kw):
    from tqdm.auto import tqdm

    # redirected to a log file: an update every 30 s instead of ten a second
    interactive = getattr(sys.stderr, "isatty", lambda: False)()
    return tqdm(iterable, file=sys.stderr, disable=not progress, dynamic_ncols=True,
                mininterval=0.1 if interactive else 30.0, **kw)


def _canonical(obj):
    """JSON round trip: tuples become lists, so saved and fresh settings compare equal."""
    return json.loads(json.dumps(_jsonable(obj), sort_keys=True))


def _write_json(path, obj):
    tmp = f"{path}.{os.getpid()}.tmp"  # unique: several processes may share one output folder
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(_jsonable(obj), f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # a corrupt cache entry is recomputed


def _cached(path, settings):
    """The cached value at ``path`` if it was computed with ``settings``."""
    entry = _read_json(path)
    if entry is not None and entry.get("settings") == _canonical(settings):
        return entry.get("value")
    return None


def _store(path, settings, value):
    _write_json(path, {"settings": _canonical(settings), "value": value})


# --------------------------------------------------------------------------- feature cache
def _cache_for(directory, extractor=None):
    """The feature cache of one architecture: an :class:`msk.store.FeatureStore`, keyed by clip id.

    ``extractor`` (fitted) is recorded in a new store and checked against an
    existing one, so features of two models never mix; None opens read-only
    without the check. Entries are written atomically (a killed run leaves no
    partial entry) but not fsync-ed (``durable=False``): the cache survives a
    killed process, not a power failure, and costs no waiting per clip.
    """
    from .store import FeatureStore

    path = os.path.join(directory, "features.zarr")
    if extractor is None:
        return FeatureStore(path, mode="r")
    if isinstance(extractor, MultiscaleFeatures):
        info = extractor  # the store takes its fingerprint
    else:
        info = {"class": f"msk.evaluation.{type(extractor).__name__}", "params": extractor.get_params(),
                "n_features": int(extractor.n_features_out_)}
    return FeatureStore(path, mode="a", model_info=info, durable=False)


# --------------------------------------------------------------------------- extractors
def _extractor(arch, features, random_state):
    if arch.kind == "multiscale":
        params = {k: v for k, v in features.items() if k in _MSF_KEYS}
        if arch.levels == 1:
            params["levels"] = 1
        params.setdefault("levels", arch.levels)
        return MultiscaleFeatures(arch.representation, width=arch.frames, n_clusters=arch.n_means,
                                  random_state=random_state, **params)
    return BaselineFeatures(arch.kind, **{k: v for k, v in features.items() if k in _BASELINE_KEYS})


def _level_columns(extractor):
    """Feature columns of every level (learned architectures), else None."""
    if not isinstance(extractor, MultiscaleFeatures):
        return None
    sizes = [enc.n_features_out_ for enc in extractor._encoders]
    edges = np.cumsum([0] + sizes)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _prepare(arch_dir, arch, extractor, data, *, progress, n_jobs):
    """Fit (or load) the extractor and fill its cache; return (extractor, cache, info)."""
    os.makedirs(arch_dir, exist_ok=True)
    train = data.subset("train")
    info = {"kind": arch.kind, "params": extractor.get_params(), "root": data.root,
            "train_clips": len(train)}
    info_path = os.path.join(arch_dir, "extractor.json")
    saved = _read_json(info_path)
    if saved is not None and saved != _canonical(info):
        raise ValueError(
            f"{arch_dir!r} holds features of {arch.name!r} computed with other settings "
            f"({saved.get('params')}); use another `out` or delete that folder."
        )
    timings = {"fit": 0.0, "extract": 0.0}
    model_path = os.path.join(arch_dir, "model.npz")
    fitted_now = False
    if isinstance(extractor, MultiscaleFeatures):
        if saved is not None and os.path.exists(model_path):
            extractor = MultiscaleFeatures.load(model_path)
            skipped = []
        else:
            t0 = time.perf_counter()
            clips = _bar(train.paths.tolist(), progress=progress, desc=f"{arch.name}: fit", unit="clip",
                         leave=False)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"\d+ clip\(s\) could not be read")
                extractor.fit(clips)
            timings["fit"] = time.perf_counter() - t0
            extractor.save(model_path)
            skipped = extractor.skipped_
            fitted_now = True
    else:
        extractor.fit()
        skipped = []
    _write_json(info_path, info)

    cache = _cache_for(arch_dir, extractor)
    skip = set(cache.keys()) | set(cache.failures())
    todo = [(str(c), p) for c, p in zip(data.clip_ids.tolist(), data.paths.tolist()) if str(c) not in skip]
    t0 = time.perf_counter()
    n_extracted = 0
    with _bar(total=len(todo), progress=progress, desc=f"{arch.name}: extract", unit="clip",
              leave=False) as bar:
        for cid, result in _extract(extractor, todo, n_jobs):
            if isinstance(result, Exception):
                cache.fail(cid, f"{type(result).__name__}: {result}")
            else:
                cache.put(cid, result)
                n_extracted += 1
            bar.update()
    timings["extract"] = time.perf_counter() - t0
    # accumulated over calls: the fit and every extraction that did work
    saved_t = _read_json(os.path.join(arch_dir, "timings.json")) or {}
    if fitted_now:
        saved_t["fit_seconds"] = timings["fit"]
    if n_extracted:
        saved_t["extract_seconds"] = saved_t.get("extract_seconds", 0.0) + timings["extract"]
        saved_t["n_extracted_total"] = saved_t.get("n_extracted_total", 0) + n_extracted
    _write_json(os.path.join(arch_dir, "timings.json"), saved_t)
    return extractor, cache, {"fitted": fitted_now, "fit_skipped": skipped, "n_extracted": n_extracted,
                              "n_failed": len(cache.failures()), "timings": timings}


def _extract(extractor, todo, n_jobs):
    """Yield ``(clip_id, features or the exception)`` in order."""

    def one(item):
        cid, path = item
        try:
            return cid, extractor.transform(path)
        except (OSError, ValueError) as exc:
            return cid, exc

    if n_jobs == 1:
        for item in todo:
            yield one(item)
        return
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), ThreadPoolExecutor(n_jobs) as ex:
        chunk = 8 * n_jobs
        for start in range(0, len(todo), chunk):
            yield from ex.map(one, todo[start:start + chunk])


def match_keys(store, data):
    """The clips of a dataset that a feature store holds, and the key of each.

    A clip's key is its clip id (as a string), else its path relative to the
    dataset's root, else its absolute path: the keys ``msk extract``,
    ``run_experiment`` and external tools use.

    Returns
    -------
    rows : ndarray of int
        Rows of ``data`` with features, in dataset order.
    keys : list of str
        The store's key of each of ``rows``.
    missing : list of int
        Clip ids of the dataset that the store does not hold.
    """
    done = set(store.keys())
    rows, keys, missing = [], [], []
    for i, (cid, path) in enumerate(zip(data.clip_ids.tolist(), data.paths.tolist())):
        for key in (str(int(cid)), os.path.relpath(path, data.root), path):
            if key in done:
                rows.append(i)
                keys.append(key)
                break
        else:
            missing.append(int(cid))
    return np.array(rows, dtype=np.intp), keys, missing


def _usable_rows(cache, data):
    """Rows of ``data`` whose features are in the cache, and their keys."""
    rows, keys, _ = match_keys(cache, data)
    if not len(rows):
        raise ValueError(f"no clip of the dataset has features in {cache.path!r}: nothing to evaluate.")
    return rows, keys


def _load_features(cache, data, matched=None):
    """Window matrix (float32), clip index, and the rows of ``data`` that have features.

    ``matched`` is ``_usable_rows(cache, data)`` if the caller has it already.
    """
    rows, keys = _usable_rows(cache, data) if matched is None else matched
    X, idx = cache.concatenated(keys, dtype=np.float32)
    return X, idx.astype(np.intp), rows


# --------------------------------------------------------------------------- heads
class _Splits:
    """Window features of the three splits, standardised with the training windows."""

    def __init__(self, X, idx, Y, splits):
        self.Y = {}
        self.X = {}
        self.idx = {}
        masks = {s: splits == s for s in ("train", "valid", "test")}
        for s, mask in masks.items():
            if not mask.any():
                raise ValueError(f"the dataset has no usable clip in the {s!r} split.")
            keep = mask[idx]
            renumber = np.cumsum(mask) - 1
            self.X[s] = X[keep]
            self.idx[s] = renumber[idx[keep]]
            self.Y[s] = Y[mask]
        scaler = StandardScaler(copy=False).fit(self.X["train"])
        for s in self.X:
            self.X[s] = scaler.transform(self.X[s])

    def columns(self, a, b):
        view = object.__new__(_Splits)
        view.Y, view.idx = self.Y, self.idx
        view.X = {s: np.ascontiguousarray(X[:, a:b]) for s, X in self.X.items()}
        return view


def _loguniform(rng, lo_hi):
    lo, hi = lo_hi
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _train_tagger(sp, params, mlp, seed):
    tagger = MLPTagger(**mlp, **params, standardize=False, random_state=seed)
    tagger.fit(sp.X["train"], sp.Y["train"], sp.idx["train"], X_valid=sp.X["valid"], Y_valid=sp.Y["valid"],
               clip_index_valid=sp.idx["valid"])
    return tagger


def _tag_search(sp, mlp, n_trials, lr_range, alpha_range, rng, *, progress, desc):
    trials = []
    for _ in _bar(range(n_trials), progress=progress, desc=f"{desc}: MLP search", unit="trial", leave=False):
        params = {"learning_rate_init": _loguniform(rng, lr_range), "alpha": _loguniform(rng, alpha_range)}
        tagger = _train_tagger(sp, params, mlp, int(rng.randint(_MAX_SEED)))
        trials.append({**params, "score": tagger.best_score_, "n_iter": tagger.n_iter_})
    best = max(trials, key=lambda t: t["score"])
    return {"best_params": {k: best[k] for k in ("learning_rate_init", "alpha")},
            "best_score": best["score"], "trials": trials}


def _tag_runs(sp, params, mlp, n_runs, rng, *, progress, desc):
    aucs, valid, n_iter = [], [], []
    for _ in _bar(range(n_runs), progress=progress, desc=f"{desc}: MLP runs", unit="run", leave=False):
        tagger = _train_tagger(sp, params, mlp, int(rng.randint(_MAX_SEED)))
        P = clip_means(tagger.predict_proba(sp.X["test"]), sp.idx["test"], n_clips=len(sp.Y["test"]))
        aucs.append(per_tag_auc(sp.Y["test"], P))
        valid.append(tagger.best_score_)
        n_iter.append(tagger.n_iter_)
    aucs = np.array(aucs)
    run_aucs = np.nanmean(aucs, axis=1)
    return {"tag_auc_mean": float(run_aucs.mean()), "tag_auc_std": float(run_aucs.std()),
            "tag_auc_runs": run_aucs, "per_tag_auc": aucs.mean(axis=0), "per_tag_auc_std": aucs.std(axis=0),
            "valid_auc_runs": valid, "epochs": n_iter}


def _nca_params(nca, n_features, n_train):
    params = dict(nca)
    m = params.get("n_components", 50)
    if m is not None:
        params["n_components"] = int(min(m, n_features, n_train))
    return params


def _similarity(C, artists, tracks, splits, nca, n_runs, rng, *, progress, desc):
    masks = {s: splits == s for s in ("train", "valid", "test")}
    params = _nca_params(nca, C.shape[1], int(masks["train"].sum()))
    runs = []
    for _ in _bar(range(n_runs), progress=progress, desc=f"{desc}: NCA runs", unit="run", leave=False):
        res = evaluate_similarity(C, artists, train=masks["train"], valid=masks["valid"], test=masks["test"],
                                  groups=tracks, n_runs=1, random_state=int(rng.randint(_MAX_SEED)), **params)
        runs.append(res.runs[0])

    def stat(key, fn):
        return float(fn([r[key] for r in runs]))

    return {"nca_probability": stat("probability", np.mean), "nca_probability_std": stat("probability", np.std),
            "nca_probability_other_tracks": stat("probability_other_groups", np.mean),
            "nn_accuracy": stat("nn_accuracy", np.mean), "nn_accuracy_std": stat("nn_accuracy", np.std),
            "nn_accuracy_other_tracks": stat("nn_accuracy_other_groups", np.mean),
            "nn_accuracy_other_tracks_std": stat("nn_accuracy_other_groups", np.std),
            "nca_valid_probability": stat("validation_score", np.mean),
            "nca_components": params.get("n_components"), "nca_runs": runs}


def _seed(random_state, name):
    return zlib.crc32(f"{random_state}:{name}".encode("utf-8")) & 0x7FFFFFFF


# --------------------------------------------------------------------------- one architecture
_CSV_COLUMNS = (
    "architecture", "kind", "representation", "frames", "n_means", "levels", "n_features",
    "tag_auc_mean", "tag_auc_std", "valid_tag_auc", "nca_probability", "nca_probability_std",
    "nca_probability_other_tracks", "nn_accuracy", "nn_accuracy_std", "nn_accuracy_other_tracks",
    "learning_rate_init", "alpha", "nca_components", "n_clips", "n_windows", "n_failed",
    "fit_seconds", "extract_seconds", "extract_ms_per_clip", "tagging_seconds", "similarity_seconds",
)


class _Context:
    """Everything an architecture's evaluation needs besides its name."""

    def __init__(self, data, out, cfg):
        self.data = data
        self.out = out
        self.cfg = cfg


def _arch_dir(ctx, name):
    return os.path.join(ctx.out, name)


def _features_for(ctx, arch, overrides=None):
    cfg = ctx.cfg
    features = dict(cfg["features"], **(overrides or {}))
    extractor = _extractor(arch, features, cfg["random_state"])
    return _prepare(_arch_dir(ctx, arch.name), arch, extractor, ctx.data, progress=cfg["progress"],
                    n_jobs=cfg["n_jobs"])


def _external_for(ctx, arch):
    """An external feature store, read-only: (None, store, info) as _features_for returns."""
    from .store import FeatureStore

    d = _arch_dir(ctx, arch.name)
    os.makedirs(d, exist_ok=True)
    path = os.path.abspath(ctx.cfg["external"][arch.name])
    try:
        store = FeatureStore(path, mode="r")
    except (OSError, ValueError) as exc:
        raise ValueError(f"external features {arch.name!r}: cannot open the feature store {path!r}: {exc}") from None
    keys = store.keys()
    failed = len(store.failures())
    # the store's identity: its model description and the digest of its table, which records every
    # write with its time (a rewritten store invalidates the cached results)
    manifest = store.digest()
    _write_json(os.path.join(d, "extractor.json"),
                {"kind": "external", "store": path, "model": store.model_info, "clips": len(keys),
                 "failed": failed, "manifest_sha256": manifest})
    timings = {}
    ms = (store.model_info or {}).get("extract_ms_per_clip")
    if isinstance(ms, (int, float)):
        timings = {"extract_seconds": ms * len(keys) / 1000, "n_extracted_total": len(keys)}
    _write_json(os.path.join(d, "timings.json"), timings)
    return None, store, {"fitted": False, "fit_skipped": [], "n_extracted": 0,
                         "n_failed": failed, "timings": {"fit": 0.0, "extract": 0.0}}


def _evaluate(ctx, arch, overrides=None, *, bar=None):
    """Features and both heads for one architecture; the result row."""
    cfg = ctx.cfg
    progress = cfg["progress"]
    d = _arch_dir(ctx, arch.name)
    if bar is not None:
        bar.set_postfix_str(f"{arch.name}: features")
    if arch.kind == "external":
        extractor, cache, prep = _external_for(ctx, arch)
    else:
        extractor, cache, prep = _features_for(ctx, arch, overrides)
    matched = _usable_rows(cache, ctx.data)
    rows = matched[0]
    data = ctx.data
    Y = data.tags[rows]
    splits = data.splits[rows]
    head_settings = {"extractor": _read_json(os.path.join(d, "extractor.json")), "clips": len(rows),
                     "mlp": cfg["mlp"], "n_trials": cfg["n_trials"], "ranges": cfg["ranges"],
                     "random_state": cfg["random_state"], "n_tags": list(data.tag_names)}
    settings = dict(head_settings, n_runs=cfg["n_runs"], nca=cfg["nca"])
    result = _cached(os.path.join(d, "result.json"), settings)
    rng = np.random.RandomState(_seed(cfg["random_state"], arch.name))
    if result is None:
        X, idx, _ = _load_features(cache, data, matched)
        n_windows, n_features = X.shape
        C = clip_means(X, idx, n_clips=len(rows))  # NCA's input; then only the splits' copies remain
        sp = _Splits(X, idx, Y, splits)
        del X, idx
        t0 = time.perf_counter()
        if bar is not None:
            bar.set_postfix_str(f"{arch.name}: tagging")
        search_path = os.path.join(d, "tagging_search.json")
        search = _cached(search_path, head_settings)
        search_rng = np.random.RandomState(_seed(cfg["random_state"], arch.name + ":search"))
        if search is None:
            search = _tag_search(sp, cfg["mlp"], cfg["n_trials"], *cfg["ranges"], search_rng,
                                 progress=progress, desc=arch.name)
            _store(search_path, head_settings, search)
        tag = _tag_runs(sp, search["best_params"], cfg["mlp"], cfg["n_runs"], rng, progress=progress,
                        desc=arch.name)
        t1 = time.perf_counter()
        if bar is not None:
            bar.set_postfix_str(f"{arch.name}: similarity")
        del sp
        sim = _similarity(C, data.artists[rows], data.tracks[rows], splits, cfg["nca"], cfg["n_runs"], rng,
                          progress=progress, desc=arch.name)
        t2 = time.perf_counter()
        result = {
            "architecture": arch.name, "kind": arch.kind, "representation": arch.representation,
            "frames": arch.frames, "n_means": arch.n_means,
            "levels": getattr(extractor, "levels", None) if arch.kind == "multiscale" else None,
            "n_features": int(n_features), "overrides": overrides or {},
            "valid_tag_auc": search["best_score"], **search["best_params"], **tag,
            "per_tag_auc": dict(zip(data.tag_names, tag["per_tag_auc"])),
            "per_tag_auc_std": dict(zip(data.tag_names, tag["per_tag_auc_std"])),
            "search_trials": search["trials"], **sim,
            "n_clips": len(rows), "n_windows": int(n_windows),
            "level_columns": _level_columns(extractor),
            "tagging_seconds": t1 - t0, "similarity_seconds": t2 - t1,
        }
        result = _canonical(result)
        _store(os.path.join(d, "result.json"), settings, result)
        result["reused"] = False
    else:
        result["reused"] = True
    result["n_failed"] = prep["n_failed"]
    result["failures"] = cache.failures()
    result["fit_skipped"] = prep["fit_skipped"]
    result["n_extracted"] = prep["n_extracted"]
    result["fitted"] = prep["fitted"]
    timings = _read_json(os.path.join(d, "timings.json")) or {}
    result["fit_seconds"] = timings.get("fit_seconds", 0.0)
    result["extract_seconds"] = timings.get("extract_seconds", 0.0)
    n_total = timings.get("n_extracted_total", 0)
    result["extract_ms_per_clip"] = 1000 * result["extract_seconds"] / n_total if n_total else None
    result["model"] = os.path.join(arch.name, "model.npz") if arch.kind == "multiscale" else None
    return result


def _watch_parent(parent):
    """In a worker: exit as soon as the parent process is gone (killed runs leave no orphans)."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _evaluate_in_worker(ctx, arch):
    """One architecture in a worker process: BLAS on one thread, no progress bars."""
    from threadpoolctl import threadpool_limits

    ctx = _Context(ctx.data, ctx.out, dict(ctx.cfg, progress=False))
    with threadpool_limits(1):
        return _evaluate(ctx, arch)


def _evaluate_all(ctx, archs, n_workers, bar, t_start):
    """Rows of all ``archs`` in order; ``n_workers`` processes evaluate architectures side by side.

    Every architecture's seeds derive from its name, so a row does not depend on the process
    that computed it or on the order. Partial results are written as rows arrive.
    """
    rows = [None] * len(archs)

    def done(i, row):
        rows[i] = row
        bar.update()
        _write_outputs(ctx.out, ctx.data, [r for r in rows if r is not None], {}, ctx.cfg, t_start,
                       partial=True)

    if n_workers == 1 or len(archs) == 1:
        from threadpoolctl import threadpool_limits

        # One BLAS thread, as in the workers: OpenBLAS rounds differently when a GEMM is
        # split across threads, and a row must not depend on how it was computed.
        with threadpool_limits(1):
            for i, arch in enumerate(archs):
                done(i, _evaluate(ctx, arch, bar=bar))
        return rows
    import concurrent.futures
    import multiprocessing

    # spawn, not fork: a forked child would inherit the parent's BLAS and OpenMP thread pools
    with concurrent.futures.ProcessPoolExecutor(min(n_workers, len(archs)),
                                                mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_watch_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_evaluate_in_worker, ctx, arch): i for i, arch in enumerate(archs)}
        bar.set_postfix_str(f"{min(n_workers, len(archs))} worker processes")
        for fut in concurrent.futures.as_completed(futures):
            done(futures[fut], fut.result())
    return rows


def _validation_scores(ctx, arch, overrides, params):
    """Validation-only scores of a search configuration (one tagger seed, one NCA seed)."""
    cfg = ctx.cfg
    d = _arch_dir(ctx, arch.name)
    _, cache, prep = _features_for(ctx, arch, overrides)
    settings = {"extractor": _read_json(os.path.join(d, "extractor.json")), "params": params,
                "mlp": cfg["mlp"], "nca": cfg["nca"], "random_state": cfg["random_state"]}
    value = _cached(os.path.join(d, "validation.json"), settings)
    if value is not None:
        return value
    X, idx, rows = _load_features(cache, ctx.data)
    data = ctx.data
    splits = data.splits[rows]
    t0 = time.perf_counter()
    sp = _Splits(X, idx, data.tags[rows], splits)
    rng = np.random.RandomState(_seed(cfg["random_state"], arch.name + ":validation"))
    tagger = _train_tagger(sp, params, cfg["mlp"], int(rng.randint(_MAX_SEED)))
    del sp
    C = clip_means(X, idx, n_clips=len(rows))
    masks = {s: splits == s for s in ("train", "valid", "test")}
    from .heads import NCA

    nca = NCA(**_nca_params(cfg["nca"], C.shape[1], int(masks["train"].sum())),
              random_state=int(rng.randint(_MAX_SEED)))
    nca.fit(C[masks["train"]], data.artists[rows][masks["train"]], X_valid=C[masks["valid"]],
            y_valid=data.artists[rows][masks["valid"]])
    value = {"valid_tag_auc": tagger.best_score_, "valid_nca_probability": nca.best_score_,
             "seconds": time.perf_counter() - t0, "fit_seconds": prep["timings"]["fit"],
             "extract_seconds": prep["timings"]["extract"]}
    _store(os.path.join(d, "validation.json"), settings, value)
    return value


def _config_name(base, overrides):
    parts = []
    for k in sorted(overrides):
        v = overrides[k]
        if isinstance(v, (list, tuple)):
            v = "+".join(v)
        parts.append(f"{k}={v}")
    return base + "+" + ",".join(parts)


def _knob_search(ctx, base_row, configs, *, bar):
    """One factor at a time on validation, then the improving knobs combined; see run_experiment."""
    base = parse_architecture(base_row["architecture"])
    params = {"learning_rate_init": base_row["learning_rate_init"], "alpha": base_row["alpha"]}
    t0 = time.perf_counter()
    bar.set_postfix_str(f"search: {base.name}")
    base_score = _validation_scores(ctx, base, None, params)
    entries = [{"name": base.name, "overrides": {}, **base_score}]
    for overrides in configs:
        arch = Architecture(**{**base.__dict__, "name": _config_name(base.name, overrides)})
        bar.set_postfix_str(f"search: {arch.name}")
        entries.append({"name": arch.name, "overrides": dict(overrides),
                        **_validation_scores(ctx, arch, overrides, params)})
    better = [e for e in entries[1:] if e["valid_tag_auc"] > base_score["valid_tag_auc"]]
    combined = {}
    for e in sorted(better, key=lambda e: e["valid_tag_auc"]):  # the best value of each knob wins
        combined.update(e["overrides"])
    if len(better) > 1 and all(combined != e["overrides"] for e in entries):
        arch = Architecture(**{**base.__dict__, "name": _config_name(base.name, combined)})
        bar.set_postfix_str(f"search: {arch.name}")
        entries.append({"name": arch.name, "overrides": combined, "combined": True,
                        **_validation_scores(ctx, arch, combined, params)})
    best = max(entries, key=lambda e: e["valid_tag_auc"])
    return {"base": base.name, "mlp_params": params, "configurations": entries, "selected": best["name"],
            "selected_overrides": best["overrides"], "seconds": time.perf_counter() - t0,
            "protocol": ("one knob at a time from the base's settings, fitted and extracted like an "
                         "architecture; scored on the validation split only (best-epoch validation mean AUC "
                         "of one tagger with the base's searched learning rate and weight decay; NCA "
                         "validation probability); knob values beating the base combined into one more "
                         "configuration; the best validation AUC is evaluated on test like an architecture")}


def _per_level(ctx, row, *, bar):
    cfg = ctx.cfg
    cols = row["level_columns"]
    d = _arch_dir(ctx, row["architecture"])
    params = {"learning_rate_init": row["learning_rate_init"], "alpha": row["alpha"]}
    settings = {"extractor": _read_json(os.path.join(d, "extractor.json")), "params": params,
                "mlp": cfg["mlp"], "random_state": cfg["random_state"], "n_tags": list(ctx.data.tag_names)}
    cached = _cached(os.path.join(d, "per_level.json"), settings)
    if cached is not None:
        return cached
    data = ctx.data
    X, idx, rows = _load_features(_cache_for(d), data)
    sp = _Splits(X, idx, data.tags[rows], data.splits[rows])
    del X
    t0 = time.perf_counter()
    levels = []
    rng = np.random.RandomState(_seed(cfg["random_state"], row["architecture"] + ":levels"))
    for lev, (a, b) in enumerate(cols):
        bar.set_postfix_str(f"{row['architecture']}: level {lev} alone")
        tag = _tag_runs(sp.columns(a, b), params, cfg["mlp"], 1, rng, progress=cfg["progress"],
                        desc=f"level {lev}")
        levels.append({"level": lev, "tag_auc": tag["tag_auc_mean"],
                       "per_tag_auc": dict(zip(data.tag_names, tag["per_tag_auc"]))})
    value = _canonical({"architecture": row["architecture"], "params": params, "levels": levels,
                        "all": {"tag_auc": row["tag_auc_mean"], "per_tag_auc": row["per_tag_auc"]},
                        "seconds": time.perf_counter() - t0})
    _store(os.path.join(d, "per_level.json"), settings, value)
    return value


# --------------------------------------------------------------------------- the whole run
def _check_dict(name, value, allowed=None):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"`{name}` must be a dict or None; got {type(value).__name__}.")
    if allowed is not None:
        bad = sorted(set(value) - set(allowed))
        if bad:
            raise ValueError(f"`{name}` has unknown keys {bad}; allowed: {sorted(allowed)}.")
    return dict(value)


def _check_search(search):
    if search is False or search is None:
        return []
    if search is True:
        return [dict(c) for c in DEFAULT_SEARCH]
    if isinstance(search, (list, tuple)) and all(isinstance(c, dict) and c for c in search):
        for c in search:
            _check_dict("search", c, _MSF_KEYS)
        return [dict(c) for c in search]
    raise TypeError(f"`search` must be a bool or a list of non-empty dicts of MultiscaleFeatures parameters; "
                    f"got {search!r}.")


def _check_external(external, archs):
    """``{name: feature store path}`` checked; the external entries as Architecture objects."""
    import re

    external = _check_dict("external", external)
    out = []
    for name, path in external.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ValueError(f"`external` names become folder names: letters, digits, '.', '_' and '-' "
                             f"(not first); got {name!r}.")
        try:
            parse_architecture(name)
        except ValueError:
            pass
        else:
            raise ValueError(f"`external` name {name!r} is an architecture's name; choose another.")
        if not isinstance(path, (str, os.PathLike)) or not os.path.isdir(path):
            raise ValueError(f"`external[{name!r}]` must be the folder of a feature store; got {path!r}.")
        out.append(Architecture(name=name, kind="external"))
    if {a.name for a in out} & {a.name for a in archs}:
        raise ValueError("an `external` name repeats one of `architectures`.")
    return {k: os.fspath(v) for k, v in external.items()}, out


def run(root, *, architectures, out, n_runs, n_trials, random_state, features, mlp, nca,
        learning_rate_range, alpha_range, search, per_level, n_tags, folders, n_jobs, figures, progress,
        external=None, n_workers=1):
    t_start = time.perf_counter()
    if isinstance(architectures, str):
        architectures = [architectures]
    archs = [parse_architecture(a) for a in architectures]
    external, external_archs = _check_external(external, archs)
    if not archs and not external_archs:
        raise ValueError("`architectures` must name at least one architecture (or give `external` features).")
    if len({a.name for a in archs}) != len(archs):
        raise ValueError(f"`architectures` lists a name twice: {[a.name for a in archs]}.")
    if out is None or not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"`out` must be a folder path; got {type(out).__name__}.")
    n_runs = check_int("n_runs", n_runs, low=1)
    n_trials = check_int("n_trials", n_trials, low=1)
    random_state = check_int("random_state", random_state, low=0)
    n_jobs = check_int("n_jobs", n_jobs, low=1)
    n_workers = check_int("n_workers", n_workers, low=1)
    features = _check_dict("features", features, _MSF_KEYS)
    mlp = dict(_MLP_DEFAULTS, **_check_dict("mlp", mlp))
    for key in ("learning_rate_init", "alpha", "random_state", "standardize"):
        if key in mlp:
            raise ValueError(f"`mlp` cannot set {key!r}: the experiment chooses it.")
    MLPTagger(**mlp)._check_params()
    nca = dict(_NCA_DEFAULTS, **_check_dict("nca", nca))
    if "random_state" in nca:
        raise ValueError("`nca` cannot set 'random_state': the experiment chooses it.")
    configs = _check_search(search)
    if figures not in ("auto", True, False):
        raise ValueError(f"`figures` must be 'auto', True or False; got {figures!r}.")
    if not (isinstance(per_level, bool) or isinstance(per_level, str)):
        raise TypeError(f"`per_level` must be a bool or an architecture name; got {per_level!r}.")
    if isinstance(per_level, str) and per_level not in {a.name for a in archs}:
        raise ValueError(f"`per_level` must name one of `architectures`; got {per_level!r}.")
    for name, rng_ in (("learning_rate_range", learning_rate_range), ("alpha_range", alpha_range)):
        if (not isinstance(rng_, (tuple, list)) or len(rng_) != 2
                or not all(isinstance(v, (int, float)) and v > 0 for v in rng_) or rng_[0] > rng_[1]):
            raise ValueError(f"`{name}` must be a (low, high) pair of positive numbers; got {rng_!r}.")
    # probe the parameters before any slow step
    for a in archs:
        ex = _extractor(a, features, random_state)
        ex._check_params()

    data = load_magnatagatune(root, n_tags=n_tags, folders=folders)
    for s in ("train", "valid", "test"):
        if s not in data.split_names:
            raise ValueError(f"the dataset has no {s!r} clips; the experiment needs train, valid and test splits.")
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    cfg = {"features": features, "mlp": mlp, "nca": nca, "n_runs": n_runs, "n_trials": n_trials,
           "ranges": [list(learning_rate_range), list(alpha_range)], "random_state": random_state,
           "progress": progress, "n_jobs": n_jobs, "external": external}
    ctx = _Context(data, out, cfg)
    archs = archs + external_archs

    with _bar(total=len(archs), progress=progress, desc="architectures", unit="arch") as bar:
        rows = _evaluate_all(ctx, archs, n_workers, bar, t_start)

        learned = [r for r in rows if r["kind"] == "multiscale"]
        multiscale = [r for r in learned if (r["levels"] or 1) > 1]
        best = max(multiscale or learned, key=lambda r: r["valid_tag_auc"]) if learned else None
        extra = {}
        if per_level and best is not None:
            target = best if per_level is True else next(r for r in rows if r["architecture"] == per_level)
            if target["level_columns"] and len(target["level_columns"]) > 1:
                extra["per_level"] = _per_level(ctx, target, bar=bar)
        if configs and best is not None:
            extra["search"] = _knob_search(ctx, best, configs, bar=bar)
            sel = extra["search"]["selected"]
            if sel != best["architecture"]:
                base = parse_architecture(best["architecture"])
                arch = Architecture(**{**base.__dict__, "name": sel})
                bar.set_postfix_str(f"tuned: {sel}")
                row = _evaluate(ctx, arch, extra["search"]["selected_overrides"], bar=bar)
                row["tuned_from"] = best["architecture"]
                rows.append(row)
    results = _write_outputs(out, data, rows, extra, cfg, t_start, partial=False)
    if figures:
        try:
            from . import plot

            results["figures"] = plot.figures(out)
        except ImportError:
            if figures is True:
                raise
            results["figures"] = []
        _write_json(os.path.join(out, "results.json"), results)
    return results


def _write_outputs(out, data, rows, extra, cfg, t_start, *, partial):
    counts = data.tags.sum(axis=0)
    results = {
        "architectures": rows,
        "per_level": extra.get("per_level"),
        "search": extra.get("search"),
        "dataset": {
            "root": data.root, "n_clips": len(data),
            "splits": {s: int(np.sum(data.splits == s)) for s in data.split_names},
            "n_artists": len(set(data.artists.tolist())), "n_tracks": len(set(data.tracks.tolist())),
            "tags": [{"name": t, "count": int(c)} for t, c in zip(data.tag_names, counts)],
            "example_clip": data.paths[data.splits == "test"][0] if np.any(data.splits == "test") else None,
        },
        "settings": {k: v for k, v in cfg.items() if k not in ("progress", "n_jobs")},
        "timings": {"total_seconds": time.perf_counter() - t_start},
        "complete": not partial,
    }
    results = _canonical(results)
    _write_json(os.path.join(out, "results.json"), results)
    with open(os.path.join(out, "tags.txt"), "w", encoding="utf-8") as f:
        f.write("".join(f"{t}\n" for t in data.tag_names))
    tmp = os.path.join(out, f"results.csv.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(_CSV_COLUMNS)
        for r in rows:
            w.writerow(["" if r.get(c) is None else _fmt(r.get(c)) for c in _CSV_COLUMNS])
    os.replace(tmp, os.path.join(out, "results.csv"))
    return results


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return v

