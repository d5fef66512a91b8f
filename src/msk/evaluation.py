"""Evaluation metrics of the paper's two tasks (Dieleman & Schrauwen 2013, §4).

Tag prediction is scored by the ROC AUC of every tag, averaged over tags
(:func:`per_tag_auc`, :func:`mean_tag_auc`). Similarity is scored by NCA's
probability of correct classification, the expected fraction of clips whose
stochastically chosen neighbour has the same artist (:func:`nca_probability`),
and by the accuracy of the nearest neighbour's artist
(:func:`nearest_neighbor_accuracy`). Both similarity metrics can leave out
neighbours from the same group (the same track): consecutive clips of one
track are near-duplicates, which makes the plain figures easy.

All functions take plain arrays: one row per clip.

The baselines of the experiment live here too: :func:`mfcc_stats` and
:func:`logmel_stats` (hand-crafted features pooled like the learned ones) and
:class:`BaselineFeatures`, their extractor with
:class:`msk.MultiscaleFeatures`' interface.
"""

import dataclasses

import numpy as np
from scipy.stats import rankdata

from . import _nca
from ._baselines import BaselineFeatures, logmel_stats, mfcc_stats
from ._validation import as_float_array, label_codes

__all__ = [
    "Architecture",
    "BASELINE_ARCHITECTURES",
    "BaselineFeatures",
    "DEFAULT_SEARCH",
    "PAPER_ARCHITECTURES",
    "SMALL_SEARCH",
    "SUBSET_ARCHITECTURES",
    "parse_architecture",
    "run_experiment",
    "logmel_stats",
    "mean_tag_auc",
    "mfcc_stats",
    "nca_probability",
    "nearest_neighbor_accuracy",
    "per_tag_auc",
]


def _check_tags(Y_true, Y_score):
    if Y_true is None or isinstance(Y_true, (str, bytes)):
        raise TypeError(f"`Y_true` must be an array of 0/1 tags; got {type(Y_true).__name__}.")
    Y = np.asarray(Y_true)
    if Y.dtype == object or not (np.issubdtype(Y.dtype, np.number) or Y.dtype == np.bool_):
        raise TypeError(f"`Y_true` must be an array of 0/1 tags; got dtype {Y.dtype}.")
    if Y.ndim not in (1, 2):
        raise ValueError(f"`Y_true` must be a 1-D or 2-D array; got shape {Y.shape}.")
    ndim = Y.ndim
    Y = Y.reshape(len(Y), -1)
    if Y.size and not np.all((Y == 0) | (Y == 1)):
        raise ValueError("`Y_true` must contain only 0 and 1 (or False and True).")
    S = np.asarray(Y_score)
    if S.ndim != ndim:
        raise ValueError(
            f"`Y_score` must have the shape of `Y_true`; got {S.shape} and {np.shape(Y_true)}."
        )
    S = as_float_array("Y_score", S.reshape(len(S), -1), ndim=2, min_len=0)
    if S.shape != Y.shape:
        raise ValueError(
            f"`Y_score` must have the shape of `Y_true`; got {np.shape(Y_score)} and {np.shape(Y_true)}."
        )
    return Y.astype(bool), S


def per_tag_auc(Y_true, Y_score):
    """ROC AUC of every tag; NaN for a tag with a single class.

    The AUC is computed from ranks (the Mann-Whitney statistic, ties counted
    as one half), which equals ``sklearn.metrics.roc_auc_score`` column by
    column.

    Parameters
    ----------
    Y_true : array-like of shape (n_clips, n_tags) or (n_clips,)
        Binary tag matrix (0/1 or bool).
    Y_score : array-like of the same shape
        Scores, higher meaning more likely (e.g. predicted probabilities).

    Returns
    -------
    auc : ndarray of shape (n_tags,)
        float64; NaN where the tag is all-positive or all-negative in
        ``Y_true``, since the AUC is undefined there.

    Raises
    ------
    ValueError
        If the shapes differ, ``Y_true`` is not binary or ``Y_score`` has
        NaN or infinite values.

    See Also
    --------
    mean_tag_auc : the mean over the tags that have both classes.

    Examples
    --------
    >>> import numpy as np
    >>> from msk.evaluation import per_tag_auc
    >>> Y = np.array([[1, 0], [0, 0], [1, 1], [0, 0]])
    >>> S = np.array([[0.9, 0.2], [0.1, 0.3], [0.8, 0.7], [0.3, 0.1]])
    >>> per_tag_auc(Y, S).round(2)
    array([1., 1.])
    """
    Y, S = _check_tags(Y_true, Y_score)
    n_pos = Y.sum(axis=0)
    n_neg = Y.shape[0] - n_pos
    ranks = rankdata(S, axis=0)  # average ranks for ties
    rank_sum = np.where(Y, ranks, 0.0).sum(axis=0)
    auc = np.full(Y.shape[1], np.nan)
    ok = (n_pos > 0) & (n_neg > 0)
    auc[ok] = (rank_sum[ok] - n_pos[ok] * (n_pos[ok] + 1) / 2.0) / (n_pos[ok] * n_neg[ok])
    return auc


def mean_tag_auc(Y_true, Y_score, *, return_skipped=False):
    """Mean per-tag ROC AUC over the tags that have both classes.

    A tag with only positive or only negative clips in the evaluated split
    has no AUC; it is skipped, and ``return_skipped=True`` says which.

    Parameters
    ----------
    Y_true : array-like of shape (n_clips, n_tags) or (n_clips,)
        Binary tag matrix (0/1 or bool).
    Y_score : array-like of the same shape
        Scores, higher meaning more likely.
    return_skipped : bool, default=False
        Also return the indices of the skipped tags.

    Returns
    -------
    auc : float
        Mean of :func:`per_tag_auc` over the tags with both classes.
    skipped : ndarray of shape (n_skipped,)
        Indices of the single-class tags (only if ``return_skipped``).

    Raises
    ------
    ValueError
        If no tag has both classes (message names ``Y_true``), or the
        inputs are invalid as in :func:`per_tag_auc`.

    Examples
    --------
    >>> import numpy as np
    >>> from msk.evaluation import mean_tag_auc
    >>> Y = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 1], [0, 0, 1]])
    >>> S = np.array([[0.9, 0.2, 0.5], [0.4, 0.3, 0.5], [0.3, 0.7, 0.5], [0.1, 0.1, 0.5]])
    >>> auc, skipped = mean_tag_auc(Y, S, return_skipped=True)
    >>> print(round(auc, 3), skipped)
    0.875 [2]
    """
    auc = per_tag_auc(Y_true, Y_score)
    skipped = np.flatnonzero(np.isnan(auc))
    if len(skipped) == len(auc):
        raise ValueError(
            "`Y_true` has no tag with both positive and negative clips, so no AUC is defined; "
            "evaluate on a larger split."
        )
    mean = float(np.nanmean(auc))
    return (mean, skipped) if return_skipped else mean




def _check_neighbours(embedding, labels, groups):
    E = as_float_array("embedding", embedding, ndim=2, min_len=2)
    y = label_codes("labels", labels, len(E), n_name="embedding")
    if y.max() == 0:
        raise ValueError("`labels` must contain at least two classes; got one.")
    g = None if groups is None else label_codes("groups", groups, len(E), n_name="embedding")
    return E, y, g


def nca_probability(embedding, labels, groups=None):
    """NCA's probability of correct classification (Goldberger et al. 2005).

    Each clip ``i`` picks a neighbour ``j`` with probability proportional to
    ``exp(-|e_i - e_j|²)`` among the other clips of the set and inherits its
    label; the result is the mean over clips of the probability that the
    label is right. This is the quantity NCA maximises and the paper's
    similarity figure.

    Parameters
    ----------
    embedding : array-like of shape (n_clips, n_components)
        Embedded clips (e.g. ``NCA.transform`` of clip-mean features).
    labels : array-like of shape (n_clips,)
        Class of each clip (the artist).
    groups : array-like of shape (n_clips,), default=None
        If given, clips that share a group (the track) are never picked as
        each other's neighbours. Clips left with no candidate are skipped.

    Returns
    -------
    probability : float

    Raises
    ------
    ValueError
        If the lengths differ, ``labels`` has a single class, the embedding
        has NaN, or no clip has a candidate neighbour.

    See Also
    --------
    msk.heads.NCA : learns the embedding; its ``score`` is this function.
    nearest_neighbor_accuracy : the hard (1-NN) version.

    Examples
    --------
    >>> import numpy as np
    >>> from msk.evaluation import nca_probability
    >>> E = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> print(round(nca_probability(E, ["a", "a", "b", "b"]), 3))
    1.0
    """
    E, y, g = _check_neighbours(embedding, labels, groups)
    p = _nca.probabilities(E, y, g)
    if np.all(np.isnan(p)):
        raise ValueError("every clip shares its `groups` value with all others; no neighbour is left.")
    return float(np.nanmean(p))


def nearest_neighbor_accuracy(embedding, labels, groups=None):
    """Fraction of clips whose nearest neighbour (Euclidean) has the same label.

    Parameters
    ----------
    embedding : array-like of shape (n_clips, n_components)
        Embedded clips.
    labels : array-like of shape (n_clips,)
        Class of each clip (the artist).
    groups : array-like of shape (n_clips,), default=None
        If given, neighbours from the clip's own group (its track) are
        excluded, so that a clip is not matched with the next 30 seconds of
        the same recording. Clips left with no candidate are skipped.

    Returns
    -------
    accuracy : float

    Raises
    ------
    ValueError
        As :func:`nca_probability`.

    Examples
    --------
    >>> import numpy as np
    >>> from msk.evaluation import nearest_neighbor_accuracy
    >>> E = np.array([[0.0], [0.1], [0.4], [0.5]])
    >>> labels = ["a", "a", "b", "b"]
    >>> print(nearest_neighbor_accuracy(E, labels))
    1.0
    >>> print(nearest_neighbor_accuracy(E, labels, groups=[0, 1, 2, 2]))
    0.5
    """
    E, y, g = _check_neighbours(embedding, labels, groups)
    E = E - E.mean(axis=0)
    n = len(E)
    sq = np.einsum("ij,ij->i", E, E)
    E2 = 2.0 * E
    hits = 0
    count = 0
    b = _nca._block_rows(n)
    for start in range(0, n, b):
        # |e_i - e_j|² - |e_i|² = |e_j|² - 2 e_i.e_j: the row's argmin is the same
        D = E[start:start + b] @ E2.T
        np.subtract(sq, D, out=D)
        rows = np.arange(len(D))
        if g is None:
            D[rows, start + rows] = np.inf
        else:
            np.putmask(D, g[start:start + b, None] == g[None, :], np.inf)
        nn = D.argmin(axis=1)
        ok = np.isfinite(D[rows, nn])
        hits += int(np.sum(y[start:start + b][ok] == y[nn[ok]]))
        count += int(ok.sum())
    if count == 0:
        raise ValueError("every clip shares its `groups` value with all others; no neighbour is left.")
    return hits / count


# --------------------------------------------------------------------------- the experiment
_REPRESENTATION_NAMES = ("gaussian", "laplacian", "multiresolution")
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
    >>> from msk.evaluation import parse_architecture, PAPER_ARCHITECTURES
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
    import re

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
        :class:`msk.heads.MLPTagger` parameters (default ``n_hidden=1000,
        batch_size=200, max_iter=100, patience=10``).
    nca : dict, default=None
        :class:`msk.heads.NCA` parameters (default ``n_components=50``,
        capped at the number of features and of training clips).
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
        architecture, the rows of ``results.csv``), ``"per_level"``,
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
    from ._experiment import run

    return run(root, architectures=architectures, out=out, n_runs=n_runs, n_trials=n_trials,
               random_state=random_state, features=features, mlp=mlp, nca=nca,
               learning_rate_range=learning_rate_range, alpha_range=alpha_range, search=search,
               per_level=per_level, n_tags=n_tags, folders=folders, n_jobs=n_jobs, figures=figures,
               progress=progress, external=external, n_workers=n_workers)


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
