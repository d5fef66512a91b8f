"""Evaluation metrics of the paper's two tasks (Dieleman & Schrauwen 2013, §4).

Tag prediction is scored by the ROC AUC of every tag, averaged over tags
(:func:`per_tag_auc`, :func:`mean_tag_auc`). Similarity is scored by NCA's
probability of correct classification, the expected fraction of clips whose
stochastically chosen neighbour has the same artist (:func:`nca_probability`),
and by the accuracy of the nearest neighbour's artist
(:func:`nearest_neighbor_accuracy`). Both similarity metrics can leave out
neighbours from the same group (the same track): consecutive clips of one
track are near-duplicates, which makes the plain figures easy.

The similarity metrics also come per clip (:func:`nca_probabilities`,
:func:`nearest_neighbor_hits`), so that a comparison can resample clips:
:func:`bootstrap_metric` and :func:`paired_bootstrap` give the bootstrap
distribution of a metric (mean tag AUC or a per-clip mean) and the
confidence interval of the paired difference between two systems scored on
the same clips, resampling whole groups (tracks) within strata (folds).

All functions take plain arrays: one row per clip. This module is the bottom
of the evaluation layers: :mod:`msk.heads` trains and scores with it, and
:mod:`msk.experiment` runs the heads; it imports neither.
"""

import dataclasses

import numpy as np

from . import _nca
from ._json import jsonable
from ._validation import as_float_array, check_float, check_int, label_codes

__all__ = ["PairedBootstrapResult", "bootstrap_metric", "mean_tag_auc", "nca_probabilities", "nca_probability",
           "nearest_neighbor_accuracy", "nearest_neighbor_hits", "paired_bootstrap", "per_tag_auc"]


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
    >>> from msk.metrics import per_tag_auc
    >>> Y = np.array([[1, 0], [0, 0], [1, 1], [0, 0]])
    >>> S = np.array([[0.9, 0.2], [0.1, 0.3], [0.8, 0.7], [0.3, 0.1]])
    >>> per_tag_auc(Y, S).round(2)
    array([1., 1.])
    """
    from scipy.stats import rankdata  # here, not at the top: scipy.stats is slow to import

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
    >>> from msk.metrics import mean_tag_auc
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
    >>> from msk.metrics import nca_probability
    >>> E = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> print(round(nca_probability(E, ["a", "a", "b", "b"]), 3))
    1.0
    """
    return _mean_over_clips(nca_probabilities(embedding, labels, groups))


def _mean_over_clips(values):
    if np.all(np.isnan(values)):
        raise ValueError("every clip shares its `groups` value with all others; no neighbour is left.")
    return float(np.nanmean(values))


def nca_probabilities(embedding, labels, groups=None):
    """NCA's probability of correct classification of every clip.

    The per-clip terms of :func:`nca_probability` (their mean over the
    clips that have a candidate neighbour): the probability that clip ``i``,
    picking a neighbour ``j`` with probability proportional to
    ``exp(-|e_i - e_j|²)``, picks one with its label.

    Parameters
    ----------
    embedding : array-like of shape (n_clips, n_components)
    labels : array-like of shape (n_clips,)
    groups : array-like of shape (n_clips,), default=None
        If given, clips of the same group are never each other's neighbours.

    Returns
    -------
    probabilities : ndarray of shape (n_clips,)
        float64; NaN for a clip with no candidate neighbour.

    Raises
    ------
    ValueError
        As :func:`nca_probability`, except that clips without candidates
        are NaN rather than an error.

    Examples
    --------
    >>> import numpy as np
    >>> from msk.metrics import nca_probabilities
    >>> E = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> nca_probabilities(E, ["a", "a", "b", "b"], groups=[0, 0, 1, 2]).round(3)
    array([0., 0., 1., 1.])
    """
    E, y, g = _check_neighbours(embedding, labels, groups)
    return np.asarray(_nca.probabilities(E, y, g), dtype=np.float64)


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
    >>> from msk.metrics import nearest_neighbor_accuracy
    >>> E = np.array([[0.0], [0.1], [0.4], [0.5]])
    >>> labels = ["a", "a", "b", "b"]
    >>> print(nearest_neighbor_accuracy(E, labels))
    1.0
    >>> print(nearest_neighbor_accuracy(E, labels, groups=[0, 1, 2, 2]))
    0.5
    """
    return _mean_over_clips(nearest_neighbor_hits(embedding, labels, groups))


def nearest_neighbor_hits(embedding, labels, groups=None):
    """Whether each clip's nearest neighbour (Euclidean) has the clip's label.

    The per-clip terms of :func:`nearest_neighbor_accuracy`, whose value is
    their mean over the clips that have a candidate neighbour. Ties between
    neighbours at the same distance go to the first in order.

    Parameters
    ----------
    embedding : array-like of shape (n_clips, n_components)
    labels : array-like of shape (n_clips,)
    groups : array-like of shape (n_clips,), default=None
        If given, neighbours from the clip's own group (its track) are
        excluded.

    Returns
    -------
    hits : ndarray of shape (n_clips,)
        float64: 1.0 where the nearest neighbour has the same label, 0.0
        where not, NaN where the clip has no candidate neighbour.

    Examples
    --------
    >>> import numpy as np
    >>> from msk.metrics import nearest_neighbor_hits
    >>> E = np.array([[0.0], [0.1], [0.4], [0.5]])
    >>> nearest_neighbor_hits(E, ["a", "a", "b", "b"], groups=[0, 1, 2, 2])
    array([1., 1., 0., 0.])
    """
    E, y, g = _check_neighbours(embedding, labels, groups)
    E = E - E.mean(axis=0)
    n = len(E)
    sq = np.einsum("ij,ij->i", E, E)
    E2 = 2.0 * E
    hits = np.full(n, np.nan)
    b = _nca.block_rows(n)
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
        hits[start:start + b][ok] = y[start:start + b][ok] == y[nn[ok]]
    return hits


# --------------------------------------------------------------------------- bootstrap
def _as_strata(name, x):
    """A list of arrays: ``x`` itself if an ndarray (one stratum), else its items."""
    if isinstance(x, np.ndarray):
        return [x]
    if isinstance(x, (list, tuple)) and len(x):
        return [np.asarray(v) for v in x]
    raise TypeError(f"`{name}` must be an ndarray (one stratum) or a non-empty list of arrays (one per "
                    f"stratum); got {type(x).__name__}.")


def _check_bootstrap_input(x, y_true, groups):
    """Strata as (values of shape (n_runs, n_clips[, n_tags]), Y or None, unit codes)."""
    xs = _as_strata("x", x)
    single = isinstance(x, np.ndarray)  # one stratum: y_true and groups are its arrays
    ys = None if y_true is None else [np.asarray(y_true)] if single else _as_strata("y_true", y_true)
    gs = None if groups is None else [np.asarray(groups)] if single else _as_strata("groups", groups)
    for name, other in (("y_true", ys), ("groups", gs)):
        if other is not None and len(other) != len(xs):
            raise ValueError(f"`{name}` must have one array per stratum ({len(xs)}); got {len(other)}.")
    out = []
    for s, v in enumerate(xs):
        if v.dtype == object or not np.issubdtype(v.dtype, np.number):
            raise TypeError(f"`x[{s}]` must hold numbers; got dtype {v.dtype}.")
        if ys is None:
            if v.ndim not in (1, 2):
                raise ValueError(f"`x[{s}]` must be of shape (n_clips,) or (n_runs, n_clips); got {v.shape}.")
            v = v.reshape(-1, v.shape[-1]).astype(np.float64)
            Y = None
        else:
            if v.ndim not in (2, 3):
                raise ValueError(f"`x[{s}]` must be of shape (n_clips, n_tags) or (n_runs, n_clips, n_tags) "
                                 f"with `y_true`; got {v.shape}.")
            v = v.reshape((-1,) + v.shape[-2:]).astype(np.float64)
            if not np.all(np.isfinite(v)):
                raise ValueError(f"`x[{s}]` (tag scores) contains NaN or infinite values.")
            Y, _ = _check_tags(ys[s], v[0])
        n = v.shape[1]
        if n == 0:
            raise ValueError(f"`x[{s}]` has no clip.")
        if gs is None:
            codes = np.arange(n)
        else:
            codes = label_codes(f"groups[{s}]", gs[s], n, n_name=f"x[{s}]")
        out.append((v, Y, codes))
    return out


def _draw_weights(codes, n_resamples, rng):
    """Clip weights of shape (n_resamples, n_clips): how often each clip's unit was drawn."""
    n_units = int(codes.max()) + 1
    draws = rng.integers(0, n_units, size=(n_resamples, n_units))
    flat = (draws + n_units * np.arange(n_resamples)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_resamples * n_units).reshape(n_resamples, n_units)
    return counts[:, codes].astype(np.float64)


def _nanmean_rows(values, axis):
    """Mean ignoring NaN, NaN where all are NaN (without numpy's warning)."""
    ok = np.isfinite(values)
    count = ok.sum(axis=axis)
    total = np.where(ok, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _weighted_means(v, W):
    """Per-clip values ``v`` (n_clips,) averaged with each row of weights ``W``; NaN values ignored."""
    ok = np.isfinite(v)
    num = W @ np.where(ok, v, 0.0)
    den = W @ ok.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1e-300), np.nan)


def _weighted_mean_auc(S, Y, W):
    """Mean per-tag ROC AUC of scores ``S`` (n, T) for the clip weights of every row of ``W`` (B, n).

    A weight is a clip's multiplicity in a resample: the AUC is the
    Mann-Whitney statistic of the expanded sample, from weighted mid-ranks
    (ties, including a clip's copies, count one half). Tags with a single
    class in a resample are left out of its mean.
    """
    n, T = S.shape
    order = np.argsort(S, axis=0, kind="stable")
    Ss = np.take_along_axis(S, order, axis=0)
    Ys = np.take_along_axis(Y, order, axis=0).astype(np.float64)
    new = np.ones((n, T), dtype=bool)
    new[1:] = Ss[1:] != Ss[:-1]
    ties = not new.all()
    if ties:
        pos = np.arange(n)[:, None]
        start = np.maximum.accumulate(np.where(new, pos, 0), axis=0)  # first row of each tie group
        last = np.ones((n, T), dtype=bool)
        last[:-1] = new[1:]
        end = np.minimum.accumulate(np.where(last, pos, n - 1)[::-1], axis=0)[::-1]  # its last row
    out = np.empty(len(W))
    chunk = max(1, (1 << 22) // (n * T))
    for b0 in range(0, len(W), chunk):
        Wc = W[b0:b0 + chunk][:, order]  # (b, n, T): each tag's clips in score order
        cum = np.cumsum(Wc, axis=1)
        if ties:
            before = np.where(start > 0, np.take_along_axis(cum, np.maximum(start - 1, 0)[None], axis=1), 0.0)
            size = np.take_along_axis(cum, end[None], axis=1) - before
        else:
            before = cum - Wc
            size = Wc
        midrank = before + (size + 1.0) / 2.0
        WY = Wc * Ys
        n_pos = WY.sum(axis=1)
        n_neg = Wc.sum(axis=1) - n_pos
        u = (WY * midrank).sum(axis=1) - n_pos * (n_pos + 1.0) / 2.0
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = np.where((n_pos > 0) & (n_neg > 0), u / np.maximum(n_pos * n_neg, 1e-300), np.nan)
        out[b0:b0 + chunk] = _nanmean_rows(auc, axis=1)
    return out


def _stratum_metric(v, Y, W):
    """The metric of one stratum, mean over runs, for every row of ``W``."""
    runs = [_weighted_mean_auc(r, Y, W) if Y is not None else _weighted_means(r, W) for r in v]
    return _nanmean_rows(np.array(runs), axis=0)


def bootstrap_metric(x, *, y_true=None, groups=None, n_resamples=1000, random_state=0):
    """A metric of one system and its bootstrap distribution, resampling groups within strata.

    The metric is the mean over strata (e.g. cross-validation folds) of the
    mean over runs (e.g. seeds of a head) of:

    * with ``y_true``: the mean per-tag ROC AUC of the tag scores
      (:func:`mean_tag_auc`; tags with a single class left out);
    * without: the mean of per-clip values, NaN values left out (e.g.
      :func:`nearest_neighbor_hits` or :func:`nca_probabilities`).

    Each resample draws, within every stratum, as many units as the stratum
    has, with replacement, and scores every clip as often as its unit was
    drawn. The units are the ``groups`` (e.g. tracks: clips of one
    recording are correlated, so resampling them one by one would make the
    interval too narrow) or, without ``groups``, the clips. The same
    ``random_state`` gives the same draws for every system scored on the
    same clips, which is what makes :func:`paired_bootstrap` paired.

    Parameters
    ----------
    x : ndarray or list of ndarray
        One array per stratum (an ndarray alone is one stratum, and then
        ``y_true`` and ``groups`` are that stratum's arrays): tag scores
        of shape (n_runs, n_clips, n_tags) or (n_clips, n_tags) with
        ``y_true``; per-clip values of shape (n_runs, n_clips) or
        (n_clips,) without.
    y_true : ndarray or list of ndarray, default=None
        Binary tags of shape (n_clips, n_tags), one per stratum.
    groups : ndarray or list of ndarray, default=None
        The unit (e.g. track) of every clip, one array of shape (n_clips,)
        per stratum.
    n_resamples : int, default=1000
    random_state : int, numpy.random.Generator or None, default=0
        Seeds ``numpy.random.default_rng``. The draws: for every stratum in
        order, ``rng.integers(0, n_units, size=(n_resamples, n_units))``,
        the units being ``numpy.unique(groups)`` in sorted order.

    Returns
    -------
    value : float
        The metric on the clips as they are.
    distribution : ndarray of shape (n_resamples,)
        The metric of every resample (NaN where no stratum has a defined
        metric, e.g. every tag single-class).

    Raises
    ------
    TypeError, ValueError
        For inputs of the wrong kind or shape, NaN tag scores, or
        non-binary ``y_true``.

    See Also
    --------
    paired_bootstrap : the difference between two systems.

    Examples
    --------
    >>> import numpy as np
    >>> from msk.metrics import bootstrap_metric
    >>> hits = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    >>> value, dist = bootstrap_metric(hits, groups=[0, 0, 1, 1, 2, 2], n_resamples=200)
    >>> round(value, 3), dist.shape
    (0.667, (200,))
    """
    n_resamples = check_int("n_resamples", n_resamples, low=1)
    strata = _check_bootstrap_input(x, y_true, groups)
    rng = np.random.default_rng(random_state)
    observed, dist = [], []
    for v, Y, codes in strata:
        W = _draw_weights(codes, n_resamples, rng)
        observed.append(_stratum_metric(v, Y, np.ones((1, v.shape[1])))[0])
        dist.append(_stratum_metric(v, Y, W))
    value = float(_nanmean_rows(np.array(observed), axis=0))
    if not np.isfinite(value):
        raise ValueError("the metric is undefined on every stratum (no tag with both classes, or no value).")
    return value, _nanmean_rows(np.array(dist), axis=0)


@dataclasses.dataclass(frozen=True)
class PairedBootstrapResult:
    """Outcome of :func:`paired_bootstrap`.

    Attributes
    ----------
    mean_a, mean_b : float
        The metric of each system.
    difference : float
        ``mean_a - mean_b``.
    low, high : float
        The percentile bootstrap interval of the difference.
    confidence_level : float
    n_resamples : int
        Resamples drawn; those where the metric is undefined (NaN) are left
        out of the interval.
    distribution : ndarray of shape (n_resamples,)
        The difference in every resample.
    """

    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    confidence_level: float
    n_resamples: int
    distribution: np.ndarray

    @property
    def tie(self):
        """True when the interval contains 0: the data cannot tell the two systems apart."""
        return bool(self.low <= 0.0 <= self.high)

    @classmethod
    def from_distributions(cls, a, b, *, confidence_level=0.95):
        """The result from two :func:`bootstrap_metric` outputs ``(value, distribution)`` of the same draws.

        :func:`paired_bootstrap` is this applied to :func:`bootstrap_metric`
        of both systems; a caller comparing many systems on the same clips
        computes each distribution once and pairs them with this.
        """
        confidence_level = check_float("confidence_level", confidence_level, low=0.0, high=1.0,
                                       low_inclusive=False, high_inclusive=False)
        (va, da), (vb, db) = a, b
        da, db = np.asarray(da, dtype=np.float64), np.asarray(db, dtype=np.float64)
        if da.shape != db.shape or da.ndim != 1:
            raise ValueError(f"the two distributions must be 1-D of one length; got {da.shape} and {db.shape}.")
        d = da - db
        ok = d[np.isfinite(d)]
        if not len(ok):
            raise ValueError("every resample left the metric undefined; no interval.")
        low, high = np.quantile(ok, [(1 - confidence_level) / 2, (1 + confidence_level) / 2])
        return cls(mean_a=float(va), mean_b=float(vb), difference=float(va - vb), low=float(low),
                   high=float(high), confidence_level=float(confidence_level), n_resamples=len(d),
                   distribution=d)

    def to_dict(self):
        """JSON-ready dict without the distribution."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "distribution"}
        return jsonable(dict(out, tie=self.tie))


def paired_bootstrap(a, b, *, y_true=None, groups=None, n_resamples=1000, confidence_level=0.95, random_state=0):
    """Paired bootstrap interval of the difference of a metric between two systems on the same clips.

    Both systems are scored by :func:`bootstrap_metric` with the same
    draws: every resample weights the same clips the same way for ``a`` and
    for ``b``, so what they share (which clips are hard) cancels in the
    difference. The interval is the percentile interval of the resampled
    differences (``numpy.quantile``, linear interpolation, at
    ``(1 ± confidence_level) / 2``). An interval that contains 0 is a tie.

    Parameters
    ----------
    a, b : ndarray or list of ndarray
        The two systems' scores, as ``x`` of :func:`bootstrap_metric`, with
        the same clips in the same order (the number of runs may differ).
    y_true, groups, n_resamples, random_state
        As in :func:`bootstrap_metric`.
    confidence_level : float, default=0.95

    Returns
    -------
    result : PairedBootstrapResult

    Examples
    --------
    >>> import numpy as np
    >>> from msk.metrics import paired_bootstrap
    >>> rng = np.random.default_rng(0)
    >>> y = rng.random((400, 1)) < 0.3
    >>> good = y + rng.standard_normal((400, 1))        # AUC about 0.76
    >>> bad = y + 3 * rng.standard_normal((400, 1))     # AUC about 0.59
    >>> res = paired_bootstrap(good, bad, y_true=y, n_resamples=300)
    >>> bool(res.low > 0), res.tie
    (True, False)
    """
    n_a = [np.shape(v)[-2 if y_true is not None else -1] for v in _as_strata("a", a)]
    n_b = [np.shape(v)[-2 if y_true is not None else -1] for v in _as_strata("b", b)]
    if n_a != n_b:
        raise ValueError(f"`a` and `b` must score the same clips; got {n_a} and {n_b} clips per stratum.")
    if random_state is None or isinstance(random_state, np.random.Generator):
        # one seed for both systems: the same draws
        random_state = int(np.random.default_rng(random_state).integers(0, 2**63 - 1))
    kw = dict(y_true=y_true, groups=groups, n_resamples=n_resamples, random_state=random_state)
    return PairedBootstrapResult.from_distributions(bootstrap_metric(a, **kw), bootstrap_metric(b, **kw),
                                                    confidence_level=confidence_level)
