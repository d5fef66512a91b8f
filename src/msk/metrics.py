"""Evaluation metrics of the paper's two tasks (Dieleman & Schrauwen 2013, §4).

Tag prediction is scored by the ROC AUC of every tag, averaged over tags
(:func:`per_tag_auc`, :func:`mean_tag_auc`). Similarity is scored by NCA's
probability of correct classification, the expected fraction of clips whose
stochastically chosen neighbour has the same artist (:func:`nca_probability`),
and by the accuracy of the nearest neighbour's artist
(:func:`nearest_neighbor_accuracy`). Both similarity metrics can leave out
neighbours from the same group (the same track): consecutive clips of one
track are near-duplicates, which makes the plain figures easy.

All functions take plain arrays: one row per clip. This module is the bottom
of the evaluation layers: :mod:`msk.heads` trains and scores with it, and
:mod:`msk.experiment` runs the heads; it imports neither.
"""

import numpy as np

from . import _nca
from ._validation import as_float_array, label_codes

__all__ = ["mean_tag_auc", "nca_probability", "nearest_neighbor_accuracy", "per_tag_auc"]


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
    >>> from msk.metrics import nearest_neighbor_accuracy
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
        hits += int(np.sum(y[start:start + b][ok] == y[nn[ok]]))
        count += int(ok.sum())
    if count == 0:
        raise ValueError("every clip shares its `groups` value with all others; no neighbour is left.")
    return hits / count
