"""The paper's experiment: architectures, the grid, both heads on every architecture's features.

The top of the evaluation layers: :mod:`msk.metrics` scores, :mod:`msk.heads`
trains and evaluates the heads, and this module runs them over the
architectures of the paper (Dieleman & Schrauwen 2013, §4-5) on a
MagnaTagATune-layout dataset: :func:`run_experiment` (the whole grid, with
on-disk caches), :func:`evaluate_features` (both heads on the window features
of a dataset's clips, with the one set of head settings that ``msk evaluate``,
``msk experiment`` and ``scripts/musicnn_peer.py`` share), :func:`match_keys`
(which clips a feature store holds) and the architecture registry
(:func:`parse_architecture`, :data:`PAPER_ARCHITECTURES`, ...).

Layout of :func:`run_experiment`'s output folder ``out``::

    results.json  results.csv  tags.txt  fig*.png
    <architecture>/
        extractor.json     kind and parameters of the feature extractor
        model.npz          fitted MultiscaleFeatures (learned architectures)
        features.zarr/     the feature cache, an msk.store.FeatureStore (see _cache_for)
        tagging_search.json, result.json, per_level.json, validation.json
                           cached head results, each with the settings that produced it
"""

import csv
import dataclasses
import json
import os
import re
import sys
import time
import warnings
import zlib

import numpy as np

from ._json import jsonable
from ._validation import check_float, check_int, check_log_range
from .baselines import BaselineFeatures
from .datasets import load_magnatagatune
from .heads import NCA, MLPTagger, SearchResult, evaluate_similarity, evaluate_tagging
from .multiscale import MultiscaleFeatures

__all__ = [
    "ARCHITECTURE_GROUPS",
    "Architecture",
    "BASELINE_ARCHITECTURES",
    "CV_METRICS",
    "DEFAULT_SEARCH",
    "PAPER_ARCHITECTURES",
    "SMALL_SEARCH",
    "SUBSET_ARCHITECTURES",
    "combine_cv",
    "cv_folds",
    "cv_table",
    "evaluate_features",
    "expand_architectures",
    "load_cv_predictions",
    "match_keys",
    "parse_architecture",
    "run_cv",
    "run_experiment",
    "search_configurations",
]

_PAPER_GRID = (("gaussian", 1), ("gaussian", 2), ("gaussian", 4), ("laplacian", 1), ("laplacian", 2),
               ("laplacian", 4), ("multiresolution", 1))

#: The paper's 28 architectures (Dieleman & Schrauwen 2013, Figures 4 and 5):
#: PCA only and spherical K-means with K = 200, 500, 1000, on Gaussian and
#: Laplacian pyramids with windows of 1, 2 and 4 frames and on multiresolution
#: spectrograms with 1 frame; 6 levels each.
PAPER_ARCHITECTURES = tuple(
    f"{rep}-w{w}-{k}" for rep, w in _PAPER_GRID for k in ("pca", "k200", "k500", "k1000")
)

#: The baselines run through the same heads: the single-scale architecture
#: (the plain log-mel spectrogram, level 0 only, K = 500), MFCC statistics and
#: log-mel statistics (see :func:`mfcc_stats`, :func:`logmel_stats`).
BASELINE_ARCHITECTURES = ("single-w1-k500", "mfcc", "logmel-stats")

#: A first, affordable look at the grid (about 30 min on 2 cores for the dev corpus).
SUBSET_ARCHITECTURES = ("laplacian-w1-k200", "laplacian-w1-k500", "gaussian-w2-k500",
                        "multiresolution-w1-k500", "laplacian-w1-pca", "single-w1-k500", "mfcc",
                        "logmel-stats")
#: A handful of knob settings for ``run_experiment(search=...)``: one factor at
#: a time from the paper's defaults.
SMALL_SEARCH = (
    {"variance": 0.90},
    {"eps": 1e-2},
    {"encoding": "threshold", "threshold": 0.25},
    {"pooling": ("max", "mean")},
    {"log_offset": 1e-5},
)

_ARCH_PATTERN = None


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One feature extractor of the experiment, parsed from its name.

    Attributes
    ----------
    name : str
        The canonical name, e.g. ``"laplacian-w1-k500"``, ``"gaussian-w2-pca"``,
        ``"single-w1-k500"``, ``"mfcc"``.
    kind : {"multiscale", "mfcc", "logmel-stats", "external"}
        Learned multiscale features, one of the hand-crafted baselines, or
        features computed elsewhere (``run_experiment(external=...)``).
    representation : {"gaussian", "laplacian", "multiresolution"} or None
        The multiscale representation (``"laplacian"`` for the single-scale
        baseline, whose only level is the plain log-mel spectrogram).
    frames : int or None
        Frames per window ``w``.
    n_means : int or None
        Dictionary size ``K``; None for PCA only (and for the baselines).
    levels : int or None
        6 for the multiscale architectures (the paper's), 1 for ``single``;
        None for the baselines.
    """

    name: str
    kind: str
    representation: "str | None" = None
    frames: "int | None" = None
    n_means: "int | None" = None
    levels: "int | None" = None


def parse_architecture(name):
    """Parse an architecture name of the experiment.

    Names are ``"{representation}-w{frames}-{features}"`` with representation
    one of ``gaussian``, ``laplacian``, ``multiresolution`` (6 levels) or
    ``single`` (one level: the plain log-mel spectrogram), ``frames`` a
    positive integer and features ``pca`` (PCA whitening only) or ``k{K}``
    (spherical K-means with K means); or a baseline, ``"mfcc"`` or
    ``"logmel-stats"``.

    Parameters
    ----------
    name : str

    Returns
    -------
    architecture : Architecture

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If it does not follow the pattern (the message shows it).

    Examples
    --------
    >>> from msk.experiment import parse_architecture, PAPER_ARCHITECTURES
    >>> a = parse_architecture("laplacian-w1-k500")
    >>> a.representation, a.frames, a.n_means, a.levels
    ('laplacian', 1, 500, 6)
    >>> parse_architecture("gaussian-w2-pca").n_means is None
    True
    >>> parse_architecture("mfcc").kind
    'mfcc'
    >>> len(PAPER_ARCHITECTURES), PAPER_ARCHITECTURES[0]
    (28, 'gaussian-w1-pca')
    """
    global _ARCH_PATTERN
    if not isinstance(name, str):
        raise TypeError(f"`name` must be an architecture name (str); got {type(name).__name__}.")
    if name in ("mfcc", "logmel-stats"):
        return Architecture(name=name, kind=name)
    if _ARCH_PATTERN is None:
        _ARCH_PATTERN = re.compile(r"^(gaussian|laplacian|multiresolution|single)-w([1-9][0-9]*)-(pca|k([1-9][0-9]*))$")
    m = _ARCH_PATTERN.match(name)
    if m is None:
        raise ValueError(
            "`name` must look like '<representation>-w<frames>-<pca|k<K>>' with representation one of "
            "'gaussian', 'laplacian', 'multiresolution', 'single' (e.g. 'laplacian-w1-k500'), or be "
            f"'mfcc' or 'logmel-stats'; got {name!r}."
        )
    rep, w, _, k = m.groups()
    single = rep == "single"
    return Architecture(name=name, kind="multiscale", representation="laplacian" if single else rep,
                        frames=int(w), n_means=None if k is None else int(k), levels=1 if single else 6)


#: The knobs searched by ``run_experiment(search=True)``, one factor at a time
#: from the paper's defaults (variance 0.99, eps 1e-5 relative, linear
#: encoding, max pooling, log offset 1e-10): whitening strength, encoding,
#: pooling and the mel log offset.
DEFAULT_SEARCH = (
    {"variance": 0.90},
    {"variance": 0.95},
    {"eps": 1e-2},
    {"encoding": "threshold", "threshold": 0.25},
    {"pooling": ("max", "mean")},
    {"pooling": "mean"},
    {"log_offset": 1e-6},
    {"log_offset": 1e-4},
)


#: Named groups of architectures (``msk experiment --architectures paper baselines``).
ARCHITECTURE_GROUPS = {"paper": PAPER_ARCHITECTURES, "baselines": BASELINE_ARCHITECTURES,
                       "all": PAPER_ARCHITECTURES + BASELINE_ARCHITECTURES, "subset": SUBSET_ARCHITECTURES}


def expand_architectures(names):
    """Architecture names with the groups of :data:`ARCHITECTURE_GROUPS` expanded, duplicates dropped.

    Parameters
    ----------
    names : iterable of str
        Group names and architecture names, in any mix.

    Returns
    -------
    architectures : list of str
        In order of first appearance. Names are not checked here;
        :func:`run_experiment` checks them with :func:`parse_architecture`.

    Examples
    --------
    >>> from msk.experiment import expand_architectures
    >>> expand_architectures(["baselines", "mfcc", "laplacian-w1-k200"])
    ['single-w1-k500', 'mfcc', 'logmel-stats', 'laplacian-w1-k200']
    """
    return list(dict.fromkeys(a for name in names for a in ARCHITECTURE_GROUPS.get(name, (name,))))


def search_configurations(name):
    """The ``search`` argument of :func:`run_experiment` named ``"none"``, ``"small"`` or ``"default"``.

    ``"small"`` is :data:`SMALL_SEARCH`, ``"default"`` :data:`DEFAULT_SEARCH`.

    Examples
    --------
    >>> from msk.experiment import search_configurations
    >>> search_configurations("none"), len(search_configurations("small"))
    (False, 5)
    """
    options = {"none": False, "small": [dict(c) for c in SMALL_SEARCH], "default": True}
    if name not in options:
        raise ValueError(f"`name` must be one of 'none', 'small' or 'default'; got {name!r}.")
    return options[name]


def run_experiment(root=None, *, architectures=PAPER_ARCHITECTURES + BASELINE_ARCHITECTURES, out,
                   n_runs=10, n_trials=10, random_state=0, features=None, mlp=None, nca=None,
                   learning_rate_range=(1e-4, 1e-2), alpha_range=(1e-6, 1e-1), search=False,
                   per_level=True, n_tags=50, folders=None, n_jobs=1, figures="auto", progress=True,
                   external=None, n_workers=1):
    """Rerun the paper's experiment on a MagnaTagATune-layout dataset.

    For every architecture: fit the feature extractor on the training
    split's clips, extract the features of every clip into an on-disk cache
    (clips already cached are skipped; clips that cannot be read are
    recorded and left out, never fatal), then evaluate them with the paper's
    two heads:

    * **tagging** (:class:`msk.heads.MLPTagger`): inputs standardised with
      the training windows' statistics; a random search of ``n_trials``
      (learning rate, weight decay) pairs drawn log-uniformly, each trained
      with early stopping on the validation split's clip-level mean AUC;
      then ``n_runs`` taggers with the chosen pair and different seeds,
      scored on the test split (mean per-tag ROC AUC, mean ± std over runs);
    * **similarity** (:class:`msk.heads.NCA`): a linear map of the clip-mean
      features to 50 dimensions learned on the training clips' artists,
      early-stopped on validation; ``n_runs`` seeds scored on the test split
      by NCA's probability of correct classification and by the
      nearest-neighbour artist accuracy, both also with neighbours from the
      clip's own track excluded (``ClipDataset.tracks``).

    Both heads run through :func:`evaluate_features`, the evaluation of
    ``msk evaluate``, with a seed derived from ``random_state`` and the
    architecture's name.

    Then, if ``per_level``, the tagger is retrained on each level's features
    alone for the best architecture (Figure 6 of the paper), and if
    ``search``, the knobs beyond the paper are searched for the best
    architecture on the validation split (see Notes). The best architecture
    is always chosen by its validation tag AUC, never by test figures.

    Parameters
    ----------
    root : str or os.PathLike, default=None
        The dataset (see :func:`msk.datasets.load_magnatagatune`; None reads
        ``MSK_DATA``).
    architectures : sequence of str, default=PAPER_ARCHITECTURES + BASELINE_ARCHITECTURES
        Names understood by :func:`parse_architecture`.
    out : str or os.PathLike
        Output folder: ``results.json``, ``results.csv``, ``tags.txt``, the
        figures, and one sub-folder per architecture holding its fitted model
        (``model.npz``), its feature cache and its cached results.
    n_runs : int, default=10
        Seeds per head (the paper: 10).
    n_trials : int, default=10
        Trials of the tagging random search. The chosen hyperparameters are
        cached per architecture and reused by later calls with the same
        settings.
    random_state : int, default=0
        Seeds everything: feature learning (the same seed for every
        architecture) and the heads (a seed derived from it and the
        architecture's name, so results do not depend on which other
        architectures run).
    features : dict, default=None
        :class:`msk.MultiscaleFeatures` parameters applied to every learned
        architecture (e.g. ``{"n_samples": 50_000, "levels": 3, "pool_size": 64}``);
        ``pool_size``, ``sr`` and ``log_offset`` also apply to the baselines.
    mlp : dict, default=None
        :class:`msk.heads.MLPTagger` parameters; its defaults otherwise
        (``n_hidden=1000, batch_size=200, max_iter=200, patience=10``), the
        settings of :func:`evaluate_features` and ``msk evaluate``.
    nca : dict, default=None
        :class:`msk.heads.NCA` parameters; its defaults otherwise
        (``n_components=50``, capped at the number of features and of
        training clips by :func:`msk.heads.evaluate_similarity`).
    learning_rate_range, alpha_range : (float, float)
        Ranges of the tagging search (log-uniform).
    search : bool or list of dict, default=False
        Beyond the paper: True searches :data:`DEFAULT_SEARCH`; a list of
        dicts of :class:`msk.MultiscaleFeatures` parameters searches those.
    per_level : bool or str, default=True
        Tagging with each level's features alone, for the best multiscale
        architecture (True) or for the named one.
    n_tags : int, default=50
        Most frequent tags kept.
    folders : dict, default=None
        Split rule (see :func:`msk.datasets.load_magnatagatune`).
    n_jobs : int, default=1
        Threads extracting features (the kernels release the GIL; BLAS is
        limited to one thread per worker when ``n_jobs > 1``).
    n_workers : int, default=1
        Architectures evaluated side by side, each in its own process with
        BLAS on one thread (fit, extraction and both heads; the per-level
        study and the knob search then run in this process). Results do not
        depend on it: every seed derives from ``random_state`` and the
        architecture's name. On a 2-core machine, 2 halves the grid's wall
        time; memory grows by one architecture's features per worker.
    figures : {"auto", True, False}, default="auto"
        Write the figures with :func:`msk.plot.figures` (``"auto"``: if
        matplotlib is installed).
    progress : bool, default=True
        Progress bars (tqdm) on stderr.
    external : dict, default=None
        Features computed elsewhere, evaluated by the same heads with the same
        settings and listed in the same table: ``{name: path}`` with ``path``
        an :class:`msk.store.FeatureStore` holding one ``(n_windows,
        n_features)`` array per clip, keyed by clip id (or by the clip's path,
        relative to the dataset or absolute). ``name`` (letters, digits,
        ``.``, ``_``, ``-``) names the row and its folder in ``out``. Clips
        the store lacks are left out of that row. If the store's model
        information has ``"extract_ms_per_clip"``, the row reports it.
        ``scripts/musicnn_peer.py`` writes such stores for musicnn.

    Returns
    -------
    results : dict
        The content of ``results.json``: ``"architectures"`` (one dict per
        architecture, the rows of ``results.csv``; ``"heads_seed"`` is the
        ``random_state`` its :func:`evaluate_features` call received), ``"per_level"``,
        ``"search"``, ``"dataset"`` (sizes, tags and counts), ``"settings"``
        and ``"timings"``.

    Notes
    -----
    **Caching.** Each architecture's folder holds ``extractor.json`` (its
    parameters). A later call with the same settings loads the fitted
    model, extracts only clips not yet cached, reuses the searched
    hyperparameters and, if the head settings match too, the results; a
    call whose feature settings differ from the cached ones raises a
    ValueError (use another ``out``).

    **Search beyond the paper** (``search``). Base: the multiscale
    architecture with the best validation tag AUC. Each configuration
    changes one knob of the base (one factor at a time) and is fitted and
    extracted like an architecture. It is scored on the validation split
    only: the validation mean AUC of the best epoch of a tagger trained
    with the base's searched learning rate and weight decay (one seed), and
    NCA's validation probability. The knob values that beat the base's
    validation AUC (measured the same way) are then combined into one more
    configuration. The configuration with the best validation AUC, if it is
    not the base, is evaluated like any architecture (search, ``n_runs``
    seeds, test split) and added as a row named ``"<base>+<knobs>"``.

    Examples
    --------
    See ``scripts/run_experiment.py`` and ``tests/test_experiment.py``; a
    run needs a dataset on disk.
    """
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
    # the heads' own defaults, written out: the cache keys and results.json record every setting
    mlp = _head_params("mlp", MLPTagger, mlp, ("learning_rate_init", "alpha", "random_state", "standardize"))
    MLPTagger(**mlp)._check_params()
    nca = _head_params("nca", NCA, nca, ("random_state",))
    configs = _check_search(search)
    if figures not in ("auto", True, False):
        raise ValueError(f"`figures` must be 'auto', True or False; got {figures!r}.")
    if not (isinstance(per_level, bool) or isinstance(per_level, str)):
        raise TypeError(f"`per_level` must be a bool or an architecture name; got {per_level!r}.")
    if isinstance(per_level, str) and per_level not in {a.name for a in archs}:
        raise ValueError(f"`per_level` must name one of `architectures`; got {per_level!r}.")
    learning_rate_range = check_log_range("learning_rate_range", learning_rate_range)
    alpha_range = check_log_range("alpha_range", alpha_range)
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

_MSF_KEYS = ("levels", "pool_size", "n_samples", "variance", "eps", "encoding", "threshold", "pooling", "max_iter",
             "sr", "log_offset")
_BASELINE_KEYS = ("pool_size", "sr", "log_offset")


# --------------------------------------------------------------------------- progress and json
def _bar(iterable=None, *, progress, **kw):
    from tqdm.auto import tqdm

    # redirected to a log file: an update every 30 s instead of ten a second
    interactive = getattr(sys.stderr, "isatty", lambda: False)()
    return tqdm(iterable, file=sys.stderr, disable=not progress, dynamic_ncols=True,
                mininterval=0.1 if interactive else 30.0, **kw)


def _canonical(obj):
    """JSON round trip: tuples become lists, so saved and fresh settings compare equal."""
    return json.loads(json.dumps(jsonable(obj), sort_keys=True))


def _write_json(path, obj):
    tmp = f"{path}.{os.getpid()}.tmp"  # unique: several processes may share one output folder
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(jsonable(obj), f, indent=1, sort_keys=False)
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
        info = {"class": f"msk.baselines.{type(extractor).__name__}", "params": extractor.get_params(),
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
    edges = np.cumsum([0] + extractor.n_features_per_level_)
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
def evaluate_features(X, clip_index, data, *, n_runs=10, n_trials=10, params=None, random_state=None, mlp=None,
                      nca=None, learning_rate_range=(1e-4, 1e-2), alpha_range=(1e-6, 1e-1), search_cache=None,
                      progress=None, per_clip=False):
    """Both of the paper's heads on the window features of a dataset's clips.

    Tagging by :func:`msk.heads.evaluate_tagging` (random search of the
    learning rate and weight decay on the validation split, then ``n_runs``
    seeds scored on test) and similarity by
    :func:`msk.heads.evaluate_similarity` (``n_runs`` NCA maps on clip means,
    artists as classes, scored on test, also with neighbours from the
    clip's own track excluded). This is the one evaluation behind ``msk
    evaluate``, every row of :func:`run_experiment` and
    ``scripts/musicnn_peer.py``: the same ``n_runs`` for both heads, and the
    heads' own defaults (:class:`msk.heads.MLPTagger`: 1000 hidden units,
    minibatches of 200, at most 200 epochs, patience 10;
    :class:`msk.heads.NCA`: 50 components capped at the number of features
    and of training clips, at most 200 epochs, patience 10) unless ``mlp`` or
    ``nca`` overrides them.

    Parameters
    ----------
    X : array-like of shape (n_windows, n_features)
        Window features.
    clip_index : array-like of int of shape (n_windows,)
        Row of ``data`` for every window; every clip owns a window.
    data : msk.datasets.ClipDataset
        The clips: tags, artists, tracks and the ``"train"``, ``"valid"``
        and ``"test"`` splits.
    n_runs : int, default=10
        Seeds per head (the paper: 10).
    n_trials : int, default=10
        Trials of the tagging search.
    params : dict, default=None
        The tagger's ``learning_rate_init`` and ``alpha``, instead of the
        search.
    random_state : int, RandomState instance or None, default=None
        Seeds both heads: the tagging seeds are drawn first, then the
        similarity seeds.
    mlp, nca : dict, default=None
        :class:`msk.heads.MLPTagger` and :class:`msk.heads.NCA` parameters.
    learning_rate_range, alpha_range : (float, float)
        Ranges of the tagging search (log-uniform).
    search_cache : object, default=None
        Searched hyperparameters kept between calls (see
        :func:`msk.heads.evaluate_tagging`).
    progress : callable, default=None
        Called as ``progress(head, stage, done, total)`` after every trained
        model, ``head`` being ``"tagging"`` or ``"similarity"``.
    per_clip : bool, default=False
        Keep the per-clip test outputs of every run in both results'
        ``per_clip`` (what :func:`run_cv` compares by bootstrap).

    Returns
    -------
    tagging : msk.heads.TaggingResult
    similarity : msk.heads.SimilarityResult

    Examples
    --------
    >>> import numpy as np
    >>> from msk.datasets import ClipDataset
    >>> from msk.experiment import evaluate_features
    >>> rng = np.random.default_rng(0)
    >>> artists = np.tile(["a", "b", "c"], 40)
    >>> code = (artists[:, None] == np.array(["a", "b", "c"])).astype(np.float32)
    >>> data = ClipDataset(root=".", clip_ids=np.arange(120), paths=np.array([f"{i}.mp3" for i in range(120)]),
    ...                    tags=code[:, :2].astype(np.int8), tag_names=["a", "b"],
    ...                    splits=np.array(["train", "valid", "test"])[np.arange(120) // 40],
    ...                    artists=artists)
    >>> clip_index = np.repeat(np.arange(120), 2)
    >>> X = 3 * code[clip_index] + rng.standard_normal((240, 3)).astype(np.float32)
    >>> tagging, similarity = evaluate_features(
    ...     X, clip_index, data, n_runs=1, n_trials=1, random_state=0, learning_rate_range=(1e-2, 3e-2),
    ...     mlp={"n_hidden": 8, "batch_size": 16, "max_iter": 50}, nca={"n_components": 2, "learning_rate": 0.05})
    >>> bool(tagging.mean_auc > 0.9), bool(similarity.nn_accuracy > 0.9)
    (True, True)
    """
    from sklearn.utils import check_random_state

    if progress is not None and not callable(progress):
        raise TypeError(f"`progress` must be a callable or None; got {type(progress).__name__}.")
    mlp, nca = _check_dict("mlp", mlp), _check_dict("nca", nca)
    rng = check_random_state(random_state)  # shared: tagging draws 1 + n_runs seeds, then similarity
    masks = {s: data.splits == s for s in ("train", "valid", "test")}
    for s, m in masks.items():
        if not m.any():
            raise ValueError(f"the dataset has no usable clip in the {s!r} split.")
    tagging = evaluate_tagging(
        X, data.tags, clip_index, **masks, n_runs=n_runs, n_trials=n_trials, params=params,
        learning_rate_range=learning_rate_range, alpha_range=alpha_range, random_state=rng,
        search_cache=search_cache, progress=None if progress is None else (lambda *a: progress("tagging", *a)),
        per_clip=per_clip, **mlp)
    similarity = evaluate_similarity(
        X, data.artists, clip_index, **masks, groups=data.tracks, n_runs=n_runs, random_state=rng,
        progress=None if progress is None else (lambda *a: progress("similarity", *a)), per_clip=per_clip, **nca)
    return tagging, similarity


class _JsonSearchCache:
    """``search_cache`` for :func:`msk.heads.evaluate_tagging`: a JSON file keyed by settings."""

    def __init__(self, path, settings):
        self.path = path
        self.settings = settings

    def load(self):
        value = _cached(self.path, self.settings)
        try:
            return None if value is None else SearchResult(**value)
        except TypeError:  # an entry of another layout is recomputed, like a corrupt one
            return None

    def save(self, result):
        _store(self.path, self.settings, result.to_dict())


def _arch_seed(random_state, name):
    """The seed of one architecture's heads: a hash of the experiment's seed and the name."""
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
    head_settings = {"extractor": _read_json(os.path.join(d, "extractor.json")), "clips": len(rows),
                     "mlp": cfg["mlp"], "n_trials": cfg["n_trials"], "ranges": cfg["ranges"],
                     "random_state": cfg["random_state"], "n_tags": list(data.tag_names)}
    settings = dict(head_settings, n_runs=cfg["n_runs"], nca=cfg["nca"])
    result = _cached(os.path.join(d, "result.json"), settings)
    if result is None:
        X, idx, _ = _load_features(cache, data, matched)
        n_windows, n_features = X.shape
        heads_seed = _arch_seed(cfg["random_state"], arch.name)
        t0 = time.perf_counter()
        times = {}
        with _bar(total=cfg["n_trials"] + 2 * cfg["n_runs"], progress=progress, desc=arch.name, unit="model",
                  leave=False) as heads_bar:
            def step(head, stage, done, total):
                if head not in times:  # the first model of a head has finished
                    times[head] = time.perf_counter()
                heads_bar.set_postfix_str(f"{head} {stage}")
                heads_bar.update()

            if bar is not None:
                bar.set_postfix_str(f"{arch.name}: heads")
            tagging, similarity = evaluate_features(
                X, idx, data.subset(rows), n_runs=cfg["n_runs"], n_trials=cfg["n_trials"],
                random_state=heads_seed, mlp=cfg["mlp"], nca=cfg["nca"],
                learning_rate_range=cfg["ranges"][0], alpha_range=cfg["ranges"][1],
                search_cache=_JsonSearchCache(os.path.join(d, "tagging_search.json"), head_settings),
                progress=step)
        del X, idx
        t2 = time.perf_counter()
        t1 = times.get("similarity", t2)  # the similarity head's first model started after tagging
        search = tagging.search
        sim = similarity.to_dict()
        result = {
            "architecture": arch.name, "kind": arch.kind, "representation": arch.representation,
            "frames": arch.frames, "n_means": arch.n_means,
            "levels": getattr(extractor, "levels", None) if arch.kind == "multiscale" else None,
            "n_features": int(n_features), "overrides": overrides or {}, "heads_seed": heads_seed,
            "valid_tag_auc": search.best_score, **search.best_params,
            "tag_auc_mean": tagging.mean_auc, "tag_auc_std": tagging.std_auc, "tag_auc_runs": tagging.run_aucs,
            "valid_auc_runs": tagging.valid_aucs, "epochs": tagging.n_iter,
            "per_tag_auc": dict(zip(data.tag_names, tagging.per_tag_auc)),
            "per_tag_auc_std": dict(zip(data.tag_names, tagging.per_tag_auc_std)),
            "search_trials": search.trials,
            "nca_probability": sim["probability"], "nca_probability_std": sim["probability_std"],
            "nca_probability_other_tracks": sim["probability_other_groups"],
            "nn_accuracy": sim["nn_accuracy"], "nn_accuracy_std": sim["nn_accuracy_std"],
            "nn_accuracy_other_tracks": sim["nn_accuracy_other_groups"],
            "nn_accuracy_other_tracks_std": sim["nn_accuracy_other_groups_std"],
            "nca_valid_probability": sim["validation_probability"], "nca_components": sim["n_components"],
            "nca_runs": sim["runs"],
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

    if n_workers > 1 and len(archs) > 1:
        bar.set_postfix_str(f"{min(n_workers, len(archs))} worker processes")
    _map_jobs(_evaluate, ctx, [(arch,) for arch in archs], n_workers, done, serial_kw={"bar": bar})
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
    t0 = time.perf_counter()
    # the test figures these compute are discarded: the knob search looks at validation only
    tagging, similarity = evaluate_features(
        X, idx, ctx.data.subset(rows), n_runs=1, params=params,
        random_state=_arch_seed(cfg["random_state"], arch.name + ":validation"), mlp=cfg["mlp"], nca=cfg["nca"])
    value = {"valid_tag_auc": float(tagging.valid_aucs[0]), "valid_nca_probability": similarity.validation_probability,
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
    sub = data.subset(rows)
    masks = {s: sub.splits == s for s in ("train", "valid", "test")}
    t0 = time.perf_counter()
    levels = []
    seed = _arch_seed(cfg["random_state"], row["architecture"] + ":levels")
    for lev, (a, b) in enumerate(cols):
        bar.set_postfix_str(f"{row['architecture']}: level {lev} alone")
        tag = evaluate_tagging(X[:, a:b], sub.tags, idx, **masks, n_runs=1, params=params, random_state=seed,
                               **cfg["mlp"])
        levels.append({"level": lev, "tag_auc": tag.mean_auc,
                       "per_tag_auc": dict(zip(data.tag_names, tag.per_tag_auc))})
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


def _head_params(name, cls, given, chosen):
    """``cls``'s default parameters updated with ``given``, minus the ones the experiment ``chosen``."""
    given = _check_dict(name, given)
    for key in chosen:
        if key in given:
            raise ValueError(f"`{name}` cannot set {key!r}: the experiment chooses it.")
    defaults = {k: v for k, v in cls().get_params().items() if k not in chosen}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"`{name}` has unknown keys {unknown}; allowed: {sorted(defaults)}.")
    return dict(defaults, **given)


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



# --------------------------------------------------------------------------- cross-validation
_FOLDER_NAMES = "0123456789abcdef"

#: The metrics :func:`run_cv` compares, all "higher is better": mean per-tag
#: ROC AUC of the tagger; artist 1-NN accuracy and NCA probability in the
#: NCA embedding with neighbours from other tracks only (clips of one
#: recording are near-duplicates); and both with any neighbour (the paper's).
CV_METRICS = ("tag_auc", "nn_accuracy_other_tracks", "nca_probability_other_tracks", "nn_accuracy",
              "nca_probability")
# per-clip arrays of msk.heads.SimilarityResult.per_clip behind each similarity metric
_CV_SIMILARITY = {"nn_accuracy_other_tracks": "nn_accuracy_other_groups",
                  "nca_probability_other_tracks": "probability_other_groups",
                  "nn_accuracy": "nn_accuracy", "nca_probability": "probability"}
_CV_TABLE_METRICS = ("tag_auc", "nn_accuracy_other_tracks", "nca_probability_other_tracks")
_CV_METRIC_TITLES = {"tag_auc": "Mean tag AUC", "nn_accuracy_other_tracks": "Artist 1-NN accuracy (other tracks)",
                     "nca_probability_other_tracks": "NCA probability (other tracks)",
                     "nn_accuracy": "Artist 1-NN accuracy", "nca_probability": "NCA probability"}
_PREDICTIONS_FORMAT = "msk.cv-predictions"


def cv_folds(*, test_folders=2, valid_folders=2, selection=False):
    """The rotations of the cross-validated protocol over the 16 MagnaTagATune folders.

    Rotation ``r`` tests on folders ``r·t … r·t + t - 1``, validates on the
    next ``valid_folders`` (modulo 16) and trains on the others, with ``t =
    test_folders``; there are ``16 / t`` rotations, so every folder (and
    every clip) is a test folder exactly once.

    The default, 8 rotations of 12 training, 2 validation and 2 test
    folders, was chosen as follows: the test folders must tile the 16
    folders (``t`` divides 16: a scheme with 3 test folders, as the paper's
    single split, tests clips three times or leaves some out); 12 training
    folders is the paper's training size, so features and heads learn from
    as much as in the paper; two test folders per rotation give each
    rotation's per-tag AUCs twice the positives of one folder (fewer tags
    with a single class), and two validation folders make the selection
    (hyperparameter search, early stopping) less noisy than one, at the
    price of one training folder compared with 13:1:2. Eight rotations also
    halve the fits of learned features compared with 16.

    **Selection folds.** With ``selection=True`` the same rotations serve
    to *choose* between feature sets without ever seeing a test folder: a
    rotation's test folders are held out (``"held_out"``: not used at all),
    its validation folders are scored (they become ``"test"``), and the
    first ``valid_folders`` of its training folders, in rotation order,
    become the validation folders of the heads (early stopping, the
    tagger's search); the heads train on the rest. With as many validation
    as test folders (the default) every clip is scored once over the
    rotations, always by models that never saw its rotation's test folders, so a choice made on these figures is made on validation
    data only and can then be reported on the ordinary folds.

    Parameters
    ----------
    test_folders : {1, 2, 4, 8}, default=2
        Folders tested per rotation.
    valid_folders : int, default=2
        Validation folders per rotation (at most ``15 - test_folders``;
        with ``selection=True`` at most ``15 - test_folders -
        valid_folders``).
    selection : bool, default=False
        The selection folds described above instead of the test folds.

    Returns
    -------
    folds : list of dict
        One per rotation: ``{"rotation": r, "train": folders, "valid":
        folders, "test": folders}``, folders as strings of folder names,
        plus ``"held_out"`` with ``selection=True``.

    Examples
    --------
    >>> from msk.experiment import cv_folds
    >>> folds = cv_folds()
    >>> len(folds), folds[0]
    (8, {'rotation': 0, 'train': '456789abcdef', 'valid': '23', 'test': '01'})
    >>> folds[7]["test"], folds[7]["valid"]
    ('ef', '01')
    >>> "".join(f["test"] for f in folds)
    '0123456789abcdef'
    >>> cv_folds(selection=True)[0]
    {'rotation': 0, 'train': '6789abcdef', 'valid': '45', 'test': '23', 'held_out': '01'}
    """
    t = check_int("test_folders", test_folders, low=1)
    v = check_int("valid_folders", valid_folders, low=1)
    n = len(_FOLDER_NAMES)
    if n % t:
        raise ValueError(f"`test_folders` must divide {n} (1, 2, 4 or 8), so that every folder is tested once; "
                         f"got {t}.")
    if t + v * (2 if selection else 1) > n - 1:
        what = "`test_folders` + 2 x `valid_folders`" if selection else "`test_folders` + `valid_folders`"
        raise ValueError(f"{what} must leave a training folder (at most {n - 1}); got {t} and {v}.")
    folds = []
    for r in range(n // t):
        test = [(r * t + i) % n for i in range(t)]
        valid = [(r * t + t + i) % n for i in range(v)]
        held_out = []
        if selection:
            held_out, test, valid = test, valid, [(r * t + t + v + i) % n for i in range(v)]
        train = [i for i in range(n) if i not in test and i not in valid and i not in held_out]
        fold = {"rotation": r, "train": "".join(_FOLDER_NAMES[i] for i in train),
                "valid": "".join(_FOLDER_NAMES[i] for i in valid),
                "test": "".join(_FOLDER_NAMES[i] for i in test)}
        if selection:
            fold["held_out"] = "".join(_FOLDER_NAMES[i] for i in held_out)
        folds.append(fold)
    return folds


def _check_tracks_in_folders(data):
    """Every track in one folder (``data.splits`` are folder names): else the folds would share tracks."""
    seen = {}
    for track, folder in zip(data.tracks.tolist(), data.splits.tolist()):
        first = seen.setdefault(track, folder)
        if first != folder:
            raise ValueError(f"track {track!r} has clips in folders {first!r} and {folder!r} of {data.root!r}; "
                             "the cross-validation needs every track inside one folder.")


def _rotation_data(data, fold):
    """``data`` (splits = folder names) with the splits of one rotation; held-out folders' clips removed."""
    split_of = {c: s for s in ("train", "valid", "test", "held_out") for c in fold.get(s, "")}
    splits = np.array([split_of[f] for f in data.splits.tolist()])
    for s in ("train", "valid", "test"):
        if not np.any(splits == s):
            raise ValueError(f"rotation {fold['rotation']}: the {s} folders {fold[s]!r} hold no clip.")
    data = dataclasses.replace(data, splits=splits)
    kept = splits != "held_out"
    return data if kept.all() else data.subset(np.flatnonzero(kept))


def _learned(arch):
    return arch.kind == "multiscale"


def _open_store(path):
    """A feature store opened read-only."""
    from .store import FeatureStore

    return FeatureStore(path, mode="r")


def _sha256(path):
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_predictions(path, header, arrays):
    from ._persist import atomic_write, write_npz

    blob = np.frombuffer(json.dumps(jsonable(header), sort_keys=True).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as f:
        write_npz(f, {"header": blob, **arrays})


_PREDICTION_ARRAYS = ("clip_ids", "tracks", "y_true", "tag_scores") + tuple(_CV_SIMILARITY)


def load_cv_predictions(path):
    """Read one ``predictions.npz`` written by :func:`run_cv` (no pickle).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    predictions : dict
        ``"header"`` (dict: format, version, feature set, rotation, folds,
        tag names, heads seed), ``"clip_ids"`` (n_test,) int64,
        ``"tracks"`` (n_test,) str, ``"y_true"`` (n_test, n_tags) uint8,
        ``"tag_scores"`` (n_runs, n_test, n_tags) float32, and per-clip
        arrays (n_runs, n_test) float64 (NaN: no candidate neighbour) named
        by :data:`CV_METRICS`: ``"nn_accuracy_other_tracks"``,
        ``"nca_probability_other_tracks"``, ``"nn_accuracy"``,
        ``"nca_probability"``.

    Raises
    ------
    ValueError
        If the file is not a predictions file of this format or its arrays
        disagree in shape.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path!r} is not a readable predictions file: {exc}") from None
    try:
        header = json.loads(out.pop("header").tobytes().decode("utf-8"))
    except (KeyError, ValueError, UnicodeDecodeError):
        raise ValueError(f"{path!r} has no valid header; not a {_PREDICTIONS_FORMAT} file.") from None
    if not isinstance(header, dict) or header.get("format") != _PREDICTIONS_FORMAT or header.get("format_version") != 1:
        raise ValueError(f"{path!r} is not a {_PREDICTIONS_FORMAT} file of version 1.")
    missing = [k for k in _PREDICTION_ARRAYS if k not in out]
    if missing:
        raise ValueError(f"{path!r} lacks the arrays {missing}.")
    n = len(out["clip_ids"])
    runs, n_tags = out["tag_scores"].shape[0], out["y_true"].shape[1]
    shapes = {"tracks": (n,), "y_true": (n, n_tags), "tag_scores": (runs, n, n_tags),
              **{k: (runs, n) for k in _CV_SIMILARITY}}
    for k, shape in shapes.items():
        if out[k].shape != shape:
            raise ValueError(f"{path!r}: array {k!r} has shape {out[k].shape}; expected {shape}.")
    out["header"] = header
    return out


def _cv_features(ctx, arch):
    """Phase one: the one feature cache of an architecture that learns nothing (or an external store's record)."""
    if arch.kind == "external":
        _external_for(ctx, arch)
        return
    data = dataclasses.replace(ctx.data, splits=np.full(len(ctx.data), "train"))  # nothing is fitted on it
    extractor = _extractor(arch, ctx.cfg["features"], ctx.cfg["random_state"])
    _prepare(_arch_dir(ctx, arch.name), arch, extractor, data, progress=ctx.cfg["progress"],
             n_jobs=ctx.cfg["n_jobs"])


def _cv_job(ctx, arch, fold):
    """Phase two: one feature set on one rotation (learned features fitted on its training folders), both heads."""
    cfg = ctx.cfg
    r = fold["rotation"]
    data = _rotation_data(ctx.data, fold)
    base = _arch_dir(ctx, arch.name)
    rot_dir = os.path.join(base, f"rot{r}")
    os.makedirs(rot_dir, exist_ok=True)
    prep = {"fitted": False, "n_extracted": 0, "timings": {"fit": 0.0, "extract": 0.0}}
    if arch.kind == "external":
        cache, info_dir = _open_store(cfg["external"][arch.name]), base
    elif _learned(arch):
        extractor = _extractor(arch, cfg["features"], cfg["random_state"])
        _, cache, prep = _prepare(rot_dir, arch, extractor, data, progress=cfg["progress"], n_jobs=cfg["n_jobs"])
        info_dir = rot_dir
    else:
        cache, info_dir = _cache_for(base), base
    matched = _usable_rows(cache, data)
    rows = matched[0]
    sub = data.subset(rows)
    heads_seed = _arch_seed(cfg["random_state"], f"cv-rotation-{r}")  # the same for every feature set: paired
    search_settings = {"extractor": _read_json(os.path.join(info_dir, "extractor.json")), "fold": fold,
                       "clips": zlib.crc32(np.ascontiguousarray(sub.clip_ids, dtype=np.int64).tobytes()),
                       "mlp": cfg["mlp"], "n_trials": cfg["n_trials"], "ranges": cfg["ranges"],
                       "random_state": cfg["random_state"], "n_tags": list(data.tag_names)}
    settings = dict(search_settings, n_runs=cfg["n_runs"], nca=cfg["nca"])
    pred_path = os.path.join(rot_dir, "predictions.npz")
    result = _cached(os.path.join(rot_dir, "cv_result.json"), settings)
    if result is not None and os.path.exists(pred_path) and _sha256(pred_path) == result.get("predictions_sha256"):
        return dict(result, reused=True, fitted=prep["fitted"], n_extracted=prep["n_extracted"])
    X, idx, _ = _load_features(cache, data, matched)
    t0 = time.perf_counter()
    try:
        tagging, similarity = evaluate_features(
            X, idx, sub, n_runs=cfg["n_runs"], n_trials=cfg["n_trials"], random_state=heads_seed, mlp=cfg["mlp"],
            nca=cfg["nca"], learning_rate_range=cfg["ranges"][0], alpha_range=cfg["ranges"][1],
            search_cache=_JsonSearchCache(os.path.join(rot_dir, "tagging_search.json"), search_settings),
            per_clip=True)
    except ValueError as exc:
        raise ValueError(f"{arch.name}, rotation {r} (test folders {fold['test']!r}): {exc}") from exc
    seconds = time.perf_counter() - t0
    test = sub.splits == "test"
    arrays = {"clip_ids": sub.clip_ids[test].astype(np.int64), "tracks": sub.tracks[test].astype(str),
              "y_true": sub.tags[test].astype(np.uint8), "tag_scores": tagging.per_clip.astype(np.float32)}
    for metric, key in _CV_SIMILARITY.items():
        arrays[metric] = similarity.per_clip[key].astype(np.float64)
    header = {"format": _PREDICTIONS_FORMAT, "format_version": 1, "feature_set": arch.name, "rotation": r,
              "fold": fold, "tag_names": list(data.tag_names), "heads_seed": heads_seed}
    _write_predictions(pred_path, header, arrays)
    sim_runs = [{"nca_probability": run["probability"], "nca_probability_other_tracks": run["probability_other_groups"],
                 "nn_accuracy": run["nn_accuracy"], "nn_accuracy_other_tracks": run["nn_accuracy_other_groups"],
                 "epochs": run["n_iter"], "valid_probability": run["validation_score"]} for run in similarity.runs]
    search = tagging.search
    result = _canonical({
        "rotation": r, "fold": fold, "heads_seed": heads_seed, "n_features": int(X.shape[1]),
        "n_windows": int(X.shape[0]), "n_clips": {s: int(np.sum(sub.splits == s)) for s in ("train", "valid", "test")},
        "tagging": {"learning_rate_init": tagging.params["learning_rate_init"], "alpha": tagging.params["alpha"],
                    "valid_tag_auc": None if search is None else search.best_score,
                    "search_trials": None if search is None else search.trials,
                    "runs": [{"tag_auc": float(a), "valid_tag_auc": float(v), "epochs": int(e)}
                             for a, v, e in zip(tagging.run_aucs, tagging.valid_aucs, tagging.n_iter)],
                    "per_tag_auc": dict(zip(data.tag_names, tagging.per_tag_auc))},
        "similarity": {"n_components": similarity.n_components, "runs": sim_runs},
        "metrics": {"tag_auc": tagging.mean_auc, **{m: float(np.mean([run[m] for run in sim_runs]))
                                                     for m in _CV_SIMILARITY}},
        "predictions": os.path.relpath(pred_path, ctx.out), "predictions_sha256": _sha256(pred_path),
        "heads_seconds": seconds, "fit_seconds": prep["timings"]["fit"], "extract_seconds": prep["timings"]["extract"],
    })
    _store(os.path.join(rot_dir, "cv_result.json"), settings, result)
    return dict(result, reused=False, fitted=prep["fitted"], n_extracted=prep["n_extracted"])


def _in_worker(fn, ctx, *args):
    """``fn(ctx, *args)`` in a worker process: BLAS on one thread, no progress bars."""
    from threadpoolctl import threadpool_limits

    ctx = _Context(ctx.data, ctx.out, dict(ctx.cfg, progress=False))
    with threadpool_limits(1):
        return fn(ctx, *args)


def _map_jobs(fn, ctx, jobs, n_workers, done, *, serial_kw=None):
    """``fn(ctx, *job)`` for every job; results in order. ``n_workers`` spawned processes run jobs side by side.

    Every job seeds itself from its arguments, so a result does not depend on the
    process that computed it; BLAS runs on one thread everywhere (OpenBLAS rounds
    differently when a GEMM is split across threads). ``done(i, result)`` is called
    in this process as results arrive; ``serial_kw`` are extra keyword arguments of
    ``fn`` when the jobs run in this process (e.g. a progress bar).
    """
    out = [None] * len(jobs)
    if n_workers == 1 or len(jobs) <= 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            for i, job in enumerate(jobs):
                out[i] = fn(ctx, *job, **(serial_kw or {}))
                done(i, out[i])
        return out
    import concurrent.futures
    import multiprocessing

    # spawn, not fork: a forked child would inherit the parent's BLAS and OpenMP thread pools
    with concurrent.futures.ProcessPoolExecutor(min(n_workers, len(jobs)),
                                                mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_watch_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_in_worker, fn, ctx, *job): i for i, job in enumerate(jobs)}
        for fut in concurrent.futures.as_completed(futures):
            i = futures[fut]
            out[i] = fut.result()
            done(i, out[i])
    return out


def run_cv(root=None, *, architectures=SUBSET_ARCHITECTURES, baselines=BASELINE_ARCHITECTURES, out, rotations=None,
           test_folders=2, valid_folders=2, n_runs=5, n_trials=10, random_state=0, features=None, mlp=None, nca=None,
           learning_rate_range=(1e-4, 1e-2), alpha_range=(1e-6, 1e-1), n_tags=50, external=None, n_jobs=1,
           n_workers=1, n_resamples=1000, confidence_level=0.95, selection=False, progress=True):
    """The cross-validated, paired protocol: every clip a test clip once, differences with intervals.

    The 16 folders of a MagnaTagATune-layout dataset rotate through
    training, validation and test (:func:`cv_folds`; by default 8 rotations
    of 12:2:2 folders). For every rotation and every feature set (the
    ``architectures``, the ``baselines`` and the ``external`` stores):

    * **features**: an architecture that learns from audio (PCA, K-means:
      every multiscale one, ``single-*`` included) is fitted on the
      rotation's training folders only and extracts every clip
      (``<out>/<name>/rot<r>/``); the baselines that learn nothing
      (``mfcc``, ``logmel-stats``) are extracted once (``<out>/<name>/``);
      external stores (pretrained features) are evaluated as they are;
    * **heads**: :func:`evaluate_features`, the one evaluation of ``msk
      evaluate`` and :func:`run_experiment`, with the rotation's splits:
      the tagger's learning rate and weight decay searched on the
      validation folders, early stopping of both heads on the validation
      folders, ``n_runs`` seeds per head scored on the test folders. The
      heads' seed depends on ``random_state`` and the rotation only, so
      every feature set gets the same folds, the same search trials and the
      same seeds: the results are **paired**. Selection never sees a test
      folder.

    Every test clip's outputs are kept per seed (``predictions.npz``: tag
    probabilities, 1-NN correctness and NCA probability, with neighbours
    from the rotation's test folders), and every feature set is compared
    with every baseline on every metric of :data:`CV_METRICS`: the mean
    over rotations of the mean over seeds, and the paired difference with a
    ``confidence_level`` interval from :func:`msk.metrics.bootstrap_metric`
    (``n_resamples`` resamples of the **tracks** within every rotation's
    test folders: clips of one recording are correlated, and the track is
    the unit that is independent; the same draws for every feature set). A
    difference whose interval contains 0 is a tie.

    Parameters
    ----------
    root : str or os.PathLike, default=None
        The dataset (None reads ``MSK_DATA``). Every track must lie in one
        folder (a ValueError names the first that does not).
    architectures : sequence of str, default=SUBSET_ARCHITECTURES
        Names understood by :func:`parse_architecture` (groups expanded by
        :func:`expand_architectures` first if given through the CLI).
    baselines : sequence of str, default=BASELINE_ARCHITECTURES
        What every feature set is compared with: architecture names
        (evaluated too if not in ``architectures``) or ``external`` names.
    out : str or os.PathLike
        Output folder: ``cv_results.json``, ``cv_summary.csv``,
        ``cv_table.md`` and one folder per feature set (see Notes).
    rotations : sequence of int, default=None
        Rotations to run (None: all, so every clip is tested once). Fewer
        give a quicker, partial look; the results record which ran.
    test_folders, valid_folders : int, default=2
        The fold scheme, see :func:`cv_folds`.
    n_runs : int, default=5
        Seeds per head and rotation.
    n_trials : int, default=10
        Trials of the tagging search per rotation (validation folders only).
    random_state : int, default=0
        Seeds feature learning (the same for every architecture and
        rotation), the heads (per rotation) and the bootstrap.
    features, mlp, nca, learning_rate_range, alpha_range, n_tags, n_jobs
        As in :func:`run_experiment`.
    external : dict, default=None
        ``{name: feature store path}``, as in :func:`run_experiment`.
    n_workers : int, default=1
        Processes running (feature set, rotation) jobs side by side, BLAS
        on one thread each. Results do not depend on it.
    n_resamples : int, default=1000
        Bootstrap resamples.
    confidence_level : float, default=0.95
    selection : bool, default=False
        Score every rotation's validation folders instead of its test
        folders, which are left out entirely (``cv_folds(selection=True)``):
        the figures to choose between feature sets by, without seeing a test
        folder. Use a separate ``out`` for it.
    progress : bool, default=True
        A progress bar on stderr.

    Returns
    -------
    results : dict
        The content of ``cv_results.json`` (see Notes).

    Notes
    -----
    **Files.** ``cv_results.json``: ``"format"`` (``"msk.cv-results"``,
    version 1), ``"protocol"`` (folds, rotations run, metrics, resampling),
    ``"feature_sets"`` (per feature set: kind, whether learned, ``"means"``
    per metric and ``"rotations"``: per rotation the searched
    hyperparameters and every trial, every seed's figures, the per-rotation
    means, the predictions file and its SHA-256), ``"comparisons"`` (per
    feature set, baseline and metric: ``mean``, ``baseline_mean``,
    ``difference``, ``low``, ``high``, ``verdict`` in {"better", "worse",
    "tie"}, ``n_clips``), ``"dataset"`` and ``"settings"``.
    ``cv_summary.csv``: one row per (feature set, metric) with the mean
    alone, then one per baseline with the difference and its interval.
    ``cv_table.md``: :func:`cv_table` of the results.
    ``<name>/rot<r>/predictions.npz`` (:func:`load_cv_predictions`) and
    ``cv_result.json``; learned features keep their model and feature
    store in ``<name>/rot<r>/``, the others in ``<name>/``. A rerun with
    the same settings reuses models, features and head results.

    **Metric over rotations.** Each metric is computed per rotation and
    seed on that rotation's test clips (per-tag AUC needs one model's scores:
    scores of different rotations' models are not pooled), then averaged
    over seeds and over rotations, each rotation weighing the same.
    Clips a feature set lacks (failed extraction, an external store without
    them) are left out of its comparisons, which use the clips both sides
    have. The 1-NN and NCA outcomes of a clip are computed once, among all
    the test clips of its rotation, and resampled as they are.

    Examples
    --------
    See ``tests/test_experiment.py`` and ``scripts/run_experiment.py
    --protocol cv``; a run needs a dataset on disk.
    """
    t_start = time.perf_counter()
    if isinstance(architectures, str):
        architectures = [architectures]
    if isinstance(baselines, str):
        baselines = [baselines]
    archs = [parse_architecture(a) for a in architectures]
    if len({a.name for a in archs}) != len(archs):
        raise ValueError(f"`architectures` lists a name twice: {[a.name for a in archs]}.")
    external, external_archs = _check_external(external, archs)
    baselines = list(dict.fromkeys(baselines))
    for b in baselines:
        if b not in external:
            parse_architecture(b)
    archs = archs + [parse_architecture(b) for b in baselines
                     if b not in external and b not in {a.name for a in archs}]
    archs = archs + external_archs
    if not archs:
        raise ValueError("`architectures`, `baselines` and `external` name no feature set.")
    if out is None or not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"`out` must be a folder path; got {type(out).__name__}.")
    folds = cv_folds(test_folders=test_folders, valid_folders=valid_folders, selection=bool(selection))
    if rotations is None:
        rotations = [f["rotation"] for f in folds]
    else:
        rotations = [check_int("rotations", r, low=0, high=len(folds) - 1) for r in rotations]
        if not rotations or len(set(rotations)) != len(rotations):
            raise ValueError(f"`rotations` must list distinct rotations of 0 ... {len(folds) - 1}; got {rotations}.")
    folds = [folds[r] for r in rotations]
    n_runs = check_int("n_runs", n_runs, low=1)
    n_trials = check_int("n_trials", n_trials, low=1)
    random_state = check_int("random_state", random_state, low=0)
    n_jobs = check_int("n_jobs", n_jobs, low=1)
    n_workers = check_int("n_workers", n_workers, low=1)
    n_resamples = check_int("n_resamples", n_resamples, low=1)
    confidence_level = check_float("confidence_level", confidence_level, low=0.0, high=1.0, low_inclusive=False,
                                   high_inclusive=False)
    features = _check_dict("features", features, _MSF_KEYS)
    mlp = _head_params("mlp", MLPTagger, mlp, ("learning_rate_init", "alpha", "random_state", "standardize"))
    MLPTagger(**mlp)._check_params()
    nca = _head_params("nca", NCA, nca, ("random_state",))
    learning_rate_range = check_log_range("learning_rate_range", learning_rate_range)
    alpha_range = check_log_range("alpha_range", alpha_range)
    for a in archs:
        if a.kind != "external":
            _extractor(a, features, random_state)._check_params()

    data = load_magnatagatune(root, n_tags=n_tags, folders={c: c for c in _FOLDER_NAMES})
    _check_tracks_in_folders(data)
    for fold in folds:
        _rotation_data(data, fold)  # every split holds clips
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    cfg = {"features": features, "mlp": mlp, "nca": nca, "n_runs": n_runs, "n_trials": n_trials,
           "ranges": [list(learning_rate_range), list(alpha_range)], "random_state": random_state,
           "progress": progress, "n_jobs": n_jobs, "external": external}
    ctx = _Context(data, out, cfg)

    shared = [(a,) for a in archs if not _learned(a)]
    jobs = [(a, fold) for a in archs for fold in folds]
    with _bar(total=len(shared) + len(jobs), progress=progress, desc="cross-validation", unit="job") as bar:
        _map_jobs(_cv_features, ctx, shared, n_workers, lambda i, r: bar.update())
        rows = _map_jobs(_cv_job, ctx, jobs, n_workers, lambda i, r: bar.update())
    per_set = {a.name: [] for a in archs}
    for (a, _), row in zip(jobs, rows):
        per_set[a.name].append(row)
    results = _cv_summarize(out, data, archs, baselines, per_set, folds, cfg,
                            n_resamples=n_resamples, confidence_level=confidence_level,
                            test_folders=test_folders, valid_folders=valid_folders)
    results["timings"] = {"total_seconds": time.perf_counter() - t_start}
    _write_json(os.path.join(out, "cv_results.json"), results)
    return results


def _common(ids_a, ids_b):
    """Positions in ``ids_a`` and in ``ids_b`` of the clips both hold, in ``ids_a``'s order."""
    where_b = {int(c): i for i, c in enumerate(ids_b.tolist())}
    ia = [i for i, c in enumerate(ids_a.tolist()) if int(c) in where_b]
    return np.array(ia, dtype=np.intp), np.array([where_b[int(ids_a[i])] for i in ia], dtype=np.intp)


def _cv_compare(preds, names, baselines, *, seed, n_resamples, confidence_level):
    """Means and paired comparisons of feature sets from their predictions, one stratum per rotation.

    ``preds`` maps a feature set's name to its predictions (:func:`load_cv_predictions`), one per
    stratum, in the same order for every name. Returns ``(means, comparisons)``: ``means[name][metric]``
    and the list of comparison dicts of ``cv_results.json``.
    """
    from .metrics import PairedBootstrapResult, bootstrap_metric

    memo = {}

    def distribution(name, metric, positions):
        """bootstrap_metric of ``name`` on the clips at ``positions`` of each stratum (memoised)."""
        key = (name, metric, tuple(zlib.crc32(preds[name][k]["clip_ids"][p].tobytes()) for k, p in enumerate(positions)))
        if key not in memo:
            ps = preds[name]
            groups = [ps[k]["tracks"][p] for k, p in enumerate(positions)]
            if metric == "tag_auc":
                memo[key] = bootstrap_metric([ps[k]["tag_scores"][:, p] for k, p in enumerate(positions)],
                                             y_true=[ps[k]["y_true"][p] for k, p in enumerate(positions)],
                                             groups=groups, n_resamples=n_resamples, random_state=seed)
            else:
                memo[key] = bootstrap_metric([ps[k][metric][:, p] for k, p in enumerate(positions)], groups=groups,
                                             n_resamples=n_resamples, random_state=seed)
        return memo[key]

    means, comparisons = {}, []
    for name in names:
        everything = [np.arange(len(p["clip_ids"])) for p in preds[name]]
        means[name] = {m: distribution(name, m, everything)[0] for m in CV_METRICS}
    for name in names:
        for b in baselines:
            if b == name:
                continue
            pairs = [_common(pa["clip_ids"], pb["clip_ids"]) for pa, pb in zip(preds[name], preds[b])]
            for m in CV_METRICS:
                res = PairedBootstrapResult.from_distributions(
                    distribution(name, m, [p[0] for p in pairs]), distribution(b, m, [p[1] for p in pairs]),
                    confidence_level=confidence_level)
                comparisons.append({
                    "feature_set": name, "baseline": b, "metric": m, "mean": res.mean_a,
                    "baseline_mean": res.mean_b, "difference": res.difference, "low": res.low, "high": res.high,
                    "verdict": "tie" if res.tie else ("better" if res.low > 0 else "worse"),
                    "n_clips": int(sum(len(p[0]) for p in pairs))})
    return means, comparisons


def _cv_summarize(out, data, archs, baselines, per_set, folds, cfg, *, n_resamples, confidence_level,
                  test_folders, valid_folders):
    """Means and paired comparisons from the predictions files; cv_summary.csv and cv_table.md written."""
    preds = {name: [load_cv_predictions(os.path.join(out, row["predictions"])) for row in rows]
             for name, rows in per_set.items()}
    seed = _arch_seed(cfg["random_state"], "cv-bootstrap")
    means, comparisons = _cv_compare(preds, [a.name for a in archs], baselines, seed=seed, n_resamples=n_resamples,
                                     confidence_level=confidence_level)
    feature_sets = [{"name": a.name, "kind": a.kind, "learned": _learned(a), "baseline": a.name in baselines,
                     "means": means[a.name], "n_test_clips": int(sum(len(p["clip_ids"]) for p in preds[a.name])),
                     "rotations": per_set[a.name]} for a in archs]
    results = _canonical({
        "format": "msk.cv-results", "format_version": 1,
        "protocol": {
            "folds": folds, "rotations": [f["rotation"] for f in folds], "n_rotations": 16 // test_folders,
            "test_folders": test_folders, "valid_folders": valid_folders, "metrics": list(CV_METRICS),
            "scored": "validation folders (selection; test folders held out)" if "held_out" in folds[0]
                      else "test folders",
            "baselines": list(baselines), "n_runs": cfg["n_runs"],
            "resampling": "tracks within the test folders of each rotation (msk.metrics.bootstrap_metric)",
            "n_resamples": n_resamples, "confidence_level": confidence_level, "bootstrap_seed": seed,
            "interval": "percentile",
        },
        "feature_sets": feature_sets,
        "comparisons": comparisons,
        "dataset": {"root": data.root, "n_clips": len(data), "n_tracks": len(set(data.tracks.tolist())),
                    "n_artists": len(set(data.artists.tolist())), "tags": list(data.tag_names)},
        "settings": {k: v for k, v in cfg.items() if k not in ("progress", "n_jobs")},
    })
    _write_cv_tables(out, results)
    return results


def _write_cv_tables(out, results):
    """``cv_summary.csv`` and ``cv_table.md`` of ``results`` in ``out`` (each written atomically)."""
    with open(os.path.join(out, f"cv_summary.csv.{os.getpid()}.tmp"), "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(_CV_CSV_COLUMNS)
        for fs in results["feature_sets"]:
            for m in CV_METRICS:
                w.writerow([fs["name"], m, _fmt(fs["means"][m])] + [""] * (len(_CV_CSV_COLUMNS) - 3))
                for c in results["comparisons"]:
                    if c["feature_set"] == fs["name"] and c["metric"] == m:
                        w.writerow([_fmt(c[k]) if c.get(k) is not None else "" for k in _CV_CSV_COLUMNS])
    os.replace(os.path.join(out, f"cv_summary.csv.{os.getpid()}.tmp"), os.path.join(out, "cv_summary.csv"))
    with open(os.path.join(out, f"cv_table.md.{os.getpid()}.tmp"), "w", encoding="utf-8") as f:
        f.write(cv_table(results))
    os.replace(os.path.join(out, f"cv_table.md.{os.getpid()}.tmp"), os.path.join(out, "cv_table.md"))


_CV_CSV_COLUMNS = ("feature_set", "metric", "mean", "baseline", "baseline_mean", "difference", "low", "high",
                   "verdict", "n_clips")


def combine_cv(outs, *, out=None, baselines=None):
    """Paired comparisons over several cross-validated runs together, e.g. one per corpus.

    Every rotation of every run is one stratum: a metric is the mean over
    all the runs' rotations, each weighing the same (two runs of 8 rotations
    each weigh half), and the paired differences get their intervals from
    the same bootstrap as :func:`run_cv`'s (tracks resampled within every
    stratum, the same draws for every feature set), so a difference that
    each corpus alone leaves inside its interval can be told apart on their
    union. The runs must score the same kind of folders (all test folders,
    or all selection folders) and the feature sets compared must be in
    every run; their predictions files are read, nothing is recomputed.

    Parameters
    ----------
    outs : sequence of str or os.PathLike
        Output folders of :func:`run_cv` (each with ``cv_results.json`` and
        its predictions files), at least one.
    out : str or os.PathLike, default=None
        Folder for ``cv_results.json``, ``cv_summary.csv`` and
        ``cv_table.md`` of the combination; None writes nothing.
    baselines : sequence of str, default=None
        What every feature set is compared with; None: the first run's
        baselines (those that every run has).

    Returns
    -------
    results : dict
        Like :func:`run_cv`'s (``format`` "msk.cv-combined"): ``"protocol"``
        (the runs, with their dataset roots and rotations; the bootstrap
        settings of the first run, which every run shares by default),
        ``"feature_sets"`` (name, ``"means"``, ``"n_test_clips"``) and
        ``"comparisons"``; :func:`cv_table` renders it.

    Raises
    ------
    ValueError
        If a folder holds no ``cv_results.json``, the runs score different
        kinds of folders, a baseline is missing from a run, or no feature
        set is in every run.
    """
    outs = [os.fspath(o) for o in outs]
    if not outs:
        raise ValueError("`outs` must name at least one run_cv output folder.")
    runs = []
    for o in outs:
        path = os.path.join(o, "cv_results.json")
        try:
            with open(path, encoding="utf-8") as f:
                res = json.load(f)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{o!r} holds no readable cv_results.json: {exc}") from None
        if not isinstance(res, dict) or res.get("format") != "msk.cv-results":
            raise ValueError(f"{path!r} is not a cv_results.json of run_cv.")
        runs.append(res)
    kinds = {r["protocol"]["scored"] for r in runs}
    if len(kinds) > 1:
        raise ValueError(f"the runs score different folders ({sorted(kinds)}); combine like with like.")
    (scored,) = kinds
    names = [fs["name"] for fs in runs[0]["feature_sets"]
             if all(any(g["name"] == fs["name"] for g in r["feature_sets"]) for r in runs[1:])]
    if not names:
        raise ValueError("no feature set is in every run.")
    baselines = [b for b in runs[0]["protocol"]["baselines"] if b in names] if baselines is None else list(baselines)
    for b in baselines:
        if b not in names:
            raise ValueError(f"baseline {b!r} is not a feature set of every run.")
    preds = {name: [] for name in names}
    for o, r in zip(outs, runs):
        rows = {fs["name"]: fs["rotations"] for fs in r["feature_sets"]}
        for name in names:
            preds[name] += [load_cv_predictions(os.path.join(o, row["predictions"])) for row in rows[name]]
    proto = runs[0]["protocol"]
    means, comparisons = _cv_compare(preds, names, baselines, seed=proto["bootstrap_seed"],
                                     n_resamples=proto["n_resamples"], confidence_level=proto["confidence_level"])
    n_strata = len(preds[names[0]])
    results = _canonical({
        "format": "msk.cv-combined", "format_version": 1,
        "protocol": {
            "runs": [{"root": r["dataset"]["root"], "n_clips": r["dataset"]["n_clips"],
                      "n_tracks": r["dataset"]["n_tracks"], "rotations": r["protocol"]["rotations"],
                      "n_runs": r["protocol"]["n_runs"]} for r in runs],
            "rotations": list(range(n_strata)), "n_rotations": n_strata, "scored": scored,
            "n_runs": min(r["protocol"]["n_runs"] for r in runs), "metrics": list(CV_METRICS),
            "baselines": baselines, "weighting": "every rotation of every run weighs the same",
            "resampling": "tracks within the scored folders of each rotation of each run "
                          "(msk.metrics.bootstrap_metric)",
            "n_resamples": proto["n_resamples"], "confidence_level": proto["confidence_level"],
            "bootstrap_seed": proto["bootstrap_seed"], "interval": "percentile",
        },
        "feature_sets": [{"name": n, "means": means[n], "n_test_clips": int(sum(len(p["clip_ids"]) for p in preds[n]))}
                         for n in names],
        "comparisons": comparisons,
    })
    if out is not None:
        out = os.fspath(out)
        os.makedirs(out, exist_ok=True)
        _write_json(os.path.join(out, "cv_results.json"), results)
        _write_cv_tables(out, results)
    return results


def cv_table(results, *, metrics=_CV_TABLE_METRICS, digits=3):
    """Markdown tables of a cross-validated run: each metric's means and paired differences to the baselines.

    One table per metric: a row per feature set with its mean, then per
    baseline the difference ``feature set - baseline`` and its interval;
    "tie" marks an interval that contains 0. The README's tables are this
    function's output on ``cv_results.json``.

    Parameters
    ----------
    results : dict
        What :func:`run_cv` returns, or ``cv_results.json`` loaded.
    metrics : sequence of str, default=("tag_auc", "nn_accuracy_other_tracks", "nca_probability_other_tracks")
        Among :data:`CV_METRICS`.
    digits : int, default=3
        Decimals shown.

    Returns
    -------
    markdown : str

    Examples
    --------
    >>> from msk.experiment import cv_table
    >>> res = {"protocol": {"rotations": [0, 1], "n_rotations": 8, "n_runs": 2, "confidence_level": 0.95,
    ...                     "n_resamples": 1000, "baselines": ["mfcc"]},
    ...        "feature_sets": [{"name": "mfcc", "means": {"tag_auc": 0.8}},
    ...                         {"name": "new", "means": {"tag_auc": 0.82}}],
    ...        "comparisons": [{"feature_set": "new", "baseline": "mfcc", "metric": "tag_auc", "difference": 0.02,
    ...                         "low": 0.01, "high": 0.03, "verdict": "better"}]}
    >>> print(cv_table(res, metrics=["tag_auc"]))
    **Mean tag AUC** (2 of 8 rotations, 2 seeds per head; difference to each baseline with its 95 % interval, bootstrap over tracks)
    <BLANKLINE>
    | features | mean | vs mfcc |
    |---|---:|---:|
    | mfcc | 0.800 | |
    | new | 0.820 | +0.020 [+0.010, +0.030] |
    <BLANKLINE>
    """
    if not isinstance(results, dict) or "feature_sets" not in results or "protocol" not in results:
        raise TypeError("`results` must be the dict of run_cv (or cv_results.json loaded).")
    digits = check_int("digits", digits, low=0)
    for m in metrics:
        if m not in CV_METRICS:
            raise ValueError(f"`metrics` must be among {list(CV_METRICS)}; got {m!r}.")
    proto = results["protocol"]
    baselines = list(proto.get("baselines", []))
    comps = {(c["feature_set"], c["baseline"], c["metric"]): c for c in results.get("comparisons", [])}

    def num(v, sign=False):
        return "" if v is None else f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"

    n_rot = len(proto["rotations"])
    done = "all" if n_rot == proto["n_rotations"] else f"{n_rot} of"
    level = round(100 * proto["confidence_level"])
    parts = []
    for m in metrics:
        lines = [f"**{_CV_METRIC_TITLES[m]}** ({done} {proto['n_rotations']} rotations, {proto['n_runs']} seeds per "
                 f"head; difference to each baseline with its {level} % interval, bootstrap over tracks)", "",
                 "| features | mean | " + " | ".join(f"vs {b}" for b in baselines) + " |",
                 "|---|---:|" + "---:|" * len(baselines)]
        for fs in results["feature_sets"]:
            cells = []
            for b in baselines:
                c = comps.get((fs["name"], b, m))
                if c is None:
                    cells.append("")
                else:
                    cells.append(f"{num(c['difference'], True)} [{num(c['low'], True)}, {num(c['high'], True)}]"
                                 + (" tie" if c["verdict"] == "tie" else ""))
            lines.append(f"| {fs['name']} | {num(fs['means'].get(m))} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines).replace("|  |", "| |") + "\n")
    return "\n".join(parts)
