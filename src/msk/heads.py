"""The paper's two evaluation heads: an MLP tagger and NCA similarity.

Dieleman & Schrauwen (2013, §4) judge features by two tasks:

* **tag prediction** (:class:`MLPTagger`, :func:`search_mlp`,
  :func:`evaluate_tagging`): an MLP with one hidden layer of 1000 ReLU units
  and logistic outputs is trained on the feature vectors of the pooling
  windows; a clip's prediction is the mean over its windows; quality is the
  mean per-tag ROC AUC on the test split;
* **similarity** (:class:`NCA`, :func:`evaluate_similarity`): a linear map
  to 50 dimensions learned by Neighbourhood Components Analysis on clip-mean
  features so that clips of one artist lie close together; quality is NCA's
  probability of correct classification on the test split.

The heads take plain arrays. Window-level features come as a matrix ``X`` of
shape (n_windows, n_features) with a ``clip_index`` of shape (n_windows,)
giving, for every window, the row of its clip in the per-clip arrays (tag
matrix ``Y`` of shape (n_clips, n_tags), artist labels, split masks). Every
clip must own at least one window. :func:`clip_means` averages windows per
clip.

:func:`evaluate_tagging` and :func:`evaluate_similarity` are msk's one
implementation of the two protocols: ``msk evaluate``, ``msk experiment``
(:mod:`msk.experiment`) and ``scripts/musicnn_peer.py`` all call them, with
progress callbacks and a cache for searched hyperparameters as arguments.
Scores come from :mod:`msk.metrics`; this module imports nothing above it.

References
----------
.. [1] S. Dieleman and B. Schrauwen, "Multiscale approaches to music audio
   feature learning", ISMIR 2013.
.. [2] J. Goldberger, S. Roweis, G. Hinton and R. Salakhutdinov,
   "Neighbourhood components analysis", NIPS 2005.
"""

import dataclasses
import math

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _nca
from ._json import jsonable
from ._random import draw_seed
from ._validation import (as_float_array, check_float, check_int, check_log_range, check_option, label_codes,
                          one_per_row)
from .metrics import (mean_tag_auc, nca_probabilities, nca_probability, nearest_neighbor_accuracy,
                      nearest_neighbor_hits, per_tag_auc)

__all__ = [
    "MLPTagger",
    "NCA",
    "SearchResult",
    "SimilarityResult",
    "TaggingResult",
    "clip_means",
    "evaluate_similarity",
    "evaluate_tagging",
    "search_mlp",
]



# --------------------------------------------------------------------------- checks
def _check_clip_index(clip_index, n_windows, n_clips, *, name="clip_index", X_name="X"):
    """Validate ``clip_index`` (ints in [0, n_clips), every clip present)."""
    idx = one_per_row(name, clip_index, n_windows, n_name=X_name, what="an array of integers")
    if not np.issubdtype(idx.dtype, np.integer):
        if idx.dtype.kind == "f" and np.all(np.isfinite(idx)) and np.all(idx == np.round(idx)):
            idx = idx.astype(np.intp)
        else:
            raise TypeError(f"`{name}` must hold integers (clip rows); got dtype {idx.dtype}.")
    idx = idx.astype(np.intp, copy=False)
    if n_clips is None:
        n_clips = int(idx.max()) + 1 if len(idx) else 0
    if len(idx) and (idx.min() < 0 or idx.max() >= n_clips):
        raise ValueError(
            f"`{name}` values must lie in [0, {n_clips}) (one per clip); got range [{idx.min()}, {idx.max()}]."
        )
    counts = np.bincount(idx, minlength=n_clips)
    if np.any(counts == 0):
        missing = np.flatnonzero(counts == 0)
        raise ValueError(
            f"`{name}` leaves {len(missing)} clip(s) without a window (first: clip {missing[0]}); "
            "every clip needs at least one window."
        )
    return idx, n_clips, counts


def _check_tags(name, Y, n_clips=None):
    if Y is None or isinstance(Y, (str, bytes)):
        raise TypeError(f"`{name}` must be a binary tag matrix; got {type(Y).__name__}.")
    Y = np.asarray(Y)
    if Y.dtype == object or not (np.issubdtype(Y.dtype, np.number) or Y.dtype == np.bool_):
        raise TypeError(f"`{name}` must be a binary tag matrix; got dtype {Y.dtype}.")
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[1] == 0:
        raise ValueError(f"`{name}` must be of shape (n_clips, n_tags); got shape {Y.shape}.")
    if Y.dtype.kind == "f" and not np.all(np.isfinite(Y)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    if not np.all((Y == 0) | (Y == 1)):
        raise ValueError(f"`{name}` must contain only 0 and 1 (or False and True).")
    if n_clips is not None and len(Y) != n_clips:
        raise ValueError(f"`{name}` must have one row per clip ({n_clips}); got {len(Y)} rows.")
    return Y.astype(bool)


def _check_two_classes_per_some_tag(name, Y):
    both = Y.any(axis=0) & ~Y.all(axis=0)
    if not both.any():
        raise ValueError(
            f"`{name}` has no tag with both positive and negative clips; a split needs both classes."
        )


def _windows(name, X, Y, clip_index, *, Y_name, index_name):
    """Validate a (windows, tags, clip index) triple; ``clip_index=None`` = one window per clip."""
    X = as_float_array(name, X, ndim=2)
    if clip_index is None:
        Y = _check_tags(Y_name, Y, len(X))
        idx = np.arange(len(X))
        counts = np.ones(len(X), dtype=np.intp)
    else:
        Y = _check_tags(Y_name, Y)
        idx, _, counts = _check_clip_index(clip_index, len(X), len(Y), name=index_name, X_name=name)
    return X, Y, idx, counts


def clip_means(X, clip_index, *, n_clips=None):
    """Average window rows per clip.

    Parameters
    ----------
    X : array-like of shape (n_windows, n_features)
        One row per pooling window (or per-window predictions).
    clip_index : array-like of int of shape (n_windows,)
        Row of each window's clip, in ``[0, n_clips)``.
    n_clips : int, default=None
        Number of clips; ``clip_index.max() + 1`` if None. Every clip must
        own at least one window.

    Returns
    -------
    means : ndarray of shape (n_clips, n_features)
        float32 for float32 input, float64 otherwise.

    Raises
    ------
    ValueError
        If lengths differ, an index is out of range, a clip has no window or
        ``X`` has NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from msk.heads import clip_means
    >>> X = np.array([[1.0, 2.0], [3.0, 4.0], [10.0, 10.0]])
    >>> clip_means(X, [0, 0, 1])
    array([[ 2.,  3.],
           [10., 10.]])
    """
    X = as_float_array("X", X, ndim=2)
    if n_clips is not None:
        n_clips = check_int("n_clips", n_clips, low=1)
    idx, n_clips, counts = _check_clip_index(clip_index, len(X), n_clips)
    return _clip_means(X, idx, counts)


def _clip_means(X, idx, counts):
    n_clips = len(counts)
    weights = (1.0 / counts[idx]).astype(X.dtype)
    M = sp.csr_matrix((weights, (idx, np.arange(len(idx)))), shape=(n_clips, len(idx)))
    return np.asarray(M @ X, dtype=X.dtype)


def _check_masks(n_clips, **masks):
    out = {}
    for name, mask in masks.items():
        m = np.asarray(mask)
        if m.dtype != np.bool_:
            raise TypeError(f"`{name}` must be a boolean mask over the clips; got dtype {m.dtype}.")
        if m.shape != (n_clips,):
            raise ValueError(f"`{name}` must have shape ({n_clips},) (one entry per clip); got {m.shape}.")
        if not m.any():
            raise ValueError(f"`{name}` selects no clip.")
        out[name] = m
    names = list(out)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if np.any(out[a] & out[b]):
                raise ValueError(f"`{a}` and `{b}` overlap; a clip belongs to one split only.")
    return out


def _subset(X, idx, mask):
    """Windows of the clips in ``mask``, with the clip index renumbered."""
    keep = mask[idx]
    renumber = np.cumsum(mask) - 1
    return X[keep], renumber[idx[keep]]


# --------------------------------------------------------------------------- MLP tagger
class MLPTagger(BaseEstimator):
    """Multilabel MLP tagger trained on pooling windows, early-stopped on clip AUC.

    One hidden layer of ReLU units and one logistic output per tag
    (scikit-learn's :class:`~sklearn.neural_network.MLPClassifier` on a
    multilabel target), trained with minibatches and L2 weight decay
    (``alpha``) one epoch at a time with ``partial_fit``. After every epoch
    the validation split is scored: each clip's tag probabilities are the
    mean over its windows, and the score is the mean per-tag ROC AUC
    (:func:`msk.metrics.mean_tag_auc`). Training stops when the score has
    not improved by more than ``tol`` for ``patience`` epochs, and the
    weights of the best epoch are kept. Inputs are standardised with the
    mean and standard deviation of the training windows.

    Parameters
    ----------
    n_hidden : int, default=1000
        Hidden ReLU units (the paper's 1000).
    alpha : float, default=1e-4
        L2 weight decay (scikit-learn's ``alpha``).
    learning_rate_init : float, default=1e-3
        Step size of the optimiser.
    batch_size : int, default=200
        Windows per minibatch (clipped to the number of training windows).
    max_iter : int, default=200
        Maximum number of epochs.
    patience : int, default=10
        Epochs without improvement of the validation score before stopping.
    tol : float, default=1e-4
        Smallest improvement of the validation mean AUC that counts.
    solver : {'adam', 'sgd'}, default='adam'
        scikit-learn's stochastic solver.
    standardize : bool, default=True
        Standardise inputs with training statistics (``scaler_``). Set to
        False only if the data are standardised already.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation and minibatch shuffling.

    Attributes
    ----------
    mlp_ : MLPClassifier
        The fitted network, holding the best epoch's weights.
    scaler_ : StandardScaler or None
        Fitted on the training windows.
    n_features_in_ : int
    n_tags_ : int
    n_iter_ : int
        Epochs run.
    best_iteration_ : int
        Epoch (1-based) whose weights are kept; the last epoch without
        validation data.
    best_score_ : float or None
        Validation mean AUC of that epoch (None without validation data).
    validation_scores_ : list of float
        Validation mean AUC after every epoch.
    loss_curve_ : list of float
        Training loss after every epoch.

    See Also
    --------
    search_mlp : random search of ``learning_rate_init`` and ``alpha``.
    evaluate_tagging : the paper's protocol on split masks.

    Notes
    -----
    Training is in the input's dtype: pass float32 to train in float32.
    ``fit`` keeps one standardised copy of the training windows.

    Examples
    --------
    >>> import numpy as np
    >>> from msk.heads import MLPTagger
    >>> rng = np.random.default_rng(0)
    >>> def clips(n):                   # 4 noisy windows around each clip's vector
    ...     C = rng.standard_normal((n, 5)).astype(np.float32)
    ...     clip_index = np.repeat(np.arange(n), 4)
    ...     X = C[clip_index] + 0.5 * rng.standard_normal((4 * n, 5)).astype(np.float32)
    ...     return X, np.stack([C[:, 0] > 0, C[:, 1] > 0], axis=1), clip_index
    >>> X, Y, clip_index = clips(100)
    >>> Xv, Yv, ci_v = clips(50)
    >>> tagger = MLPTagger(n_hidden=16, learning_rate_init=1e-2, batch_size=50, max_iter=30,
    ...                    random_state=0)
    >>> tagger = tagger.fit(X, Y, clip_index, X_valid=Xv, Y_valid=Yv, clip_index_valid=ci_v)
    >>> tagger.predict_proba(Xv, ci_v).shape
    (50, 2)
    >>> bool(tagger.score(Xv, Yv, ci_v) > 0.9)
    True
    """

    def __init__(self, n_hidden=1000, *, alpha=1e-4, learning_rate_init=1e-3, batch_size=200,
                 max_iter=200, patience=10, tol=1e-4, solver="adam", standardize=True,
                 random_state=None):
        self.n_hidden = n_hidden
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.patience = patience
        self.tol = tol
        self.solver = solver
        self.standardize = standardize
        self.random_state = random_state

    def _check_params(self):
        check_int("n_hidden", self.n_hidden, low=1)
        check_float("alpha", self.alpha, low=0.0)
        check_float("learning_rate_init", self.learning_rate_init, low=0.0, low_inclusive=False)
        check_int("batch_size", self.batch_size, low=1)
        check_int("max_iter", self.max_iter, low=1)
        check_int("patience", self.patience, low=1)
        check_float("tol", self.tol, low=0.0)
        check_option("solver", self.solver, ("adam", "sgd"))
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise TypeError(f"`standardize` must be a bool; got {self.standardize!r}.")

    def fit(self, X, Y, clip_index=None, *, X_valid=None, Y_valid=None, clip_index_valid=None):
        """Train on the windows of the training clips, early-stopped on validation.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_features)
            Feature vector of every pooling window of the training clips.
        Y : array-like of shape (n_clips, n_tags)
            Binary tags per clip; every window is trained on its clip's tags.
        clip_index : array-like of int of shape (n_windows,), default=None
            Row of ``Y`` for every window. None means one window per clip
            (``Y`` then has one row per row of ``X``).
        X_valid, Y_valid, clip_index_valid : default=None
            The validation split in the same form. Without it there is no
            early stopping: the tagger trains ``max_iter`` epochs.

        Returns
        -------
        self : MLPTagger
        """
        self._check_params()
        X, Y, idx, _ = _windows("X", X, Y, clip_index, Y_name="Y", index_name="clip_index")
        _check_two_classes_per_some_tag("Y", Y)
        valid = None
        if X_valid is not None or Y_valid is not None:
            if X_valid is None or Y_valid is None:
                raise ValueError("`X_valid` and `Y_valid` must be given together.")
            Xv, Yv, idx_v, counts_v = _windows("X_valid", X_valid, Y_valid, clip_index_valid,
                                               Y_name="Y_valid", index_name="clip_index_valid")
            if Xv.shape[1] != X.shape[1]:
                raise ValueError(
                    f"`X_valid` must have the features of `X`; got {Xv.shape[1]} and {X.shape[1]} columns."
                )
            if Yv.shape[1] != Y.shape[1]:
                raise ValueError(f"`Y_valid` must have the tags of `Y`; got {Yv.shape[1]} and {Y.shape[1]} columns.")
            _check_two_classes_per_some_tag("Y_valid", Yv)
            valid = (Xv, Yv, idx_v, counts_v)

        self.n_features_in_ = X.shape[1]
        self.n_tags_ = Y.shape[1]
        if self.standardize:
            self.scaler_ = StandardScaler().fit(X)
            Xs = self.scaler_.transform(X)
            if valid is not None:
                valid = (self.scaler_.transform(valid[0]),) + valid[1:]
        else:
            self.scaler_ = None
            Xs = X
        Yw = Y[idx]
        if self.n_tags_ == 1:  # scikit-learn treats one column as a binary target
            Yw, classes = Yw[:, 0].astype(np.int8), np.array([0, 1])
        else:
            classes = np.arange(self.n_tags_)

        self.mlp_ = MLPClassifier(
            hidden_layer_sizes=(self.n_hidden,), activation="relu", solver=self.solver,
            alpha=self.alpha, batch_size=min(self.batch_size, len(Xs)),
            learning_rate_init=self.learning_rate_init, shuffle=True,
            # one RandomState object shared by every partial_fit call, so the
            # shuffles differ from epoch to epoch (an int would repeat them)
            random_state=check_random_state(draw_seed(self.random_state)),
        )
        self.validation_scores_ = []
        best = (-np.inf, None, None, 0)
        for epoch in range(1, self.max_iter + 1):
            if epoch == 1:
                self.mlp_.partial_fit(Xs, Yw, classes=classes)
            else:
                self.mlp_.partial_fit(Xs, Yw)
            if valid is None:
                continue
            Xv, Yv, idx_v, counts_v = valid
            score = mean_tag_auc(Yv, _clip_means(self._proba(Xv), idx_v, counts_v))
            self.validation_scores_.append(score)
            if score > best[0] + self.tol or best[1] is None:
                best = (score, [c.copy() for c in self.mlp_.coefs_],
                        [b.copy() for b in self.mlp_.intercepts_], epoch)
            elif epoch - best[3] >= self.patience:
                break
        self.n_iter_ = epoch
        self.loss_curve_ = list(self.mlp_.loss_curve_)
        if valid is None:
            self.best_score_, self.best_iteration_ = None, epoch
        else:
            self.best_score_, self.mlp_.coefs_, self.mlp_.intercepts_, self.best_iteration_ = best
            self.best_score_ = float(self.best_score_)
        return self

    def _proba(self, Xs):
        P = self.mlp_.predict_proba(Xs)
        return P[:, 1:] if self.n_tags_ == 1 else P

    def predict_proba(self, X, clip_index=None):
        """Tag probabilities per window, or per clip (mean over its windows).

        Parameters
        ----------
        X : array-like of shape (n_windows, n_features)
        clip_index : array-like of int of shape (n_windows,), default=None
            If given, average the windows of each clip.

        Returns
        -------
        proba : ndarray of shape (n_windows, n_tags) or (n_clips, n_tags)
        """
        check_is_fitted(self, "mlp_")
        X = as_float_array("X", X, ndim=2)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"`X` must have {self.n_features_in_} features (as in fit); got {X.shape[1]}.")
        Xs = self.scaler_.transform(X) if self.scaler_ is not None else X
        P = self._proba(Xs)
        if clip_index is None:
            return P
        idx, _, counts = _check_clip_index(clip_index, len(X), None)
        return _clip_means(P, idx, counts)

    def predict(self, X, clip_index=None):
        """Binary tags: probability above one half (see :meth:`predict_proba`)."""
        return (self.predict_proba(X, clip_index) > 0.5).astype(np.int8)

    def score(self, X, Y, clip_index=None):
        """Mean per-tag ROC AUC of the clip predictions (single-class tags skipped)."""
        P = self.predict_proba(X, clip_index)
        Y = _check_tags("Y", Y, len(P))
        return mean_tag_auc(Y, P)


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """Outcome of :func:`search_mlp`.

    Attributes
    ----------
    best_params : dict
        ``learning_rate_init`` and ``alpha`` of the best trial.
    best_score : float
        Its validation mean AUC.
    trials : list of dict
        Every trial: ``learning_rate_init``, ``alpha``, ``score`` (validation
        mean AUC of the best epoch) and ``n_iter`` (epochs run).
    """

    best_params: dict
    best_score: float
    trials: list

    def to_dict(self):
        """JSON-ready dict."""
        return dataclasses.asdict(self)


def _check_progress(progress):
    if progress is not None and not callable(progress):
        raise TypeError(f"`progress` must be a callable or None; got {type(progress).__name__}.")
    return progress if progress is not None else (lambda stage, done, total: None)


def search_mlp(X, Y, clip_index=None, *, X_valid, Y_valid, clip_index_valid=None, n_trials=10,
               learning_rate_range=(1e-4, 1e-2), alpha_range=(1e-6, 1e-1), random_state=None,
               progress=None, **params):
    """Random search of learning rate and weight decay on the validation split.

    Each trial draws ``learning_rate_init`` and ``alpha`` log-uniformly from
    their ranges and a network seed, trains an :class:`MLPTagger` with early
    stopping on ``(X_valid, Y_valid)`` and records the best validation mean
    AUC. Inputs are standardised once with the training statistics.

    Parameters
    ----------
    X, Y, clip_index
        Training windows, per-clip tags and window-to-clip index, as in
        :meth:`MLPTagger.fit`.
    X_valid, Y_valid, clip_index_valid
        The validation split.
    n_trials : int, default=10
    learning_rate_range : (float, float), default=(1e-4, 1e-2)
        Range of ``learning_rate_init`` searched (log-uniform).
    alpha_range : (float, float), default=(1e-6, 1e-1)
        Range of the weight decay ``alpha`` searched (log-uniform).
    random_state : int, RandomState instance or None, default=None
        Seeds the draws and each trial's network.
    progress : callable, default=None
        Called as ``progress("search", done, n_trials)`` after every trial
        (e.g. to advance a progress bar).
    **params
        Further :class:`MLPTagger` parameters (``n_hidden``, ``max_iter``,
        ``patience``, ...), fixed across trials; :class:`MLPTagger`'s
        defaults otherwise.

    Returns
    -------
    result : SearchResult
        The chosen values in ``best_params``, all trials in ``trials``.

    Examples
    --------
    >>> import numpy as np
    >>> from msk.heads import search_mlp
    >>> rng = np.random.default_rng(0)
    >>> X, Xv = rng.standard_normal((2, 120, 4)).astype(np.float32)
    >>> Y, Yv = X[:, :1] > 0, Xv[:, :1] > 0
    >>> res = search_mlp(X, Y, X_valid=Xv, Y_valid=Yv, n_trials=2, n_hidden=8,
    ...                  max_iter=5, random_state=0)
    >>> sorted(res.best_params), len(res.trials)
    (['alpha', 'learning_rate_init'], 2)
    """
    n_trials = check_int("n_trials", n_trials, low=1)
    lr_range = check_log_range("learning_rate_range", learning_rate_range)
    alpha_range = check_log_range("alpha_range", alpha_range)
    progress = _check_progress(progress)
    for key in ("learning_rate_init", "alpha", "random_state", "standardize"):
        if key in params:
            raise TypeError(f"`{key}` is set by search_mlp and cannot be passed in **params.")
    MLPTagger(**params)._check_params()
    X, Y, idx, _ = _windows("X", X, Y, clip_index, Y_name="Y", index_name="clip_index")
    Xv, Yv, idx_v, _ = _windows("X_valid", X_valid, Y_valid, clip_index_valid,
                                Y_name="Y_valid", index_name="clip_index_valid")
    scaler = StandardScaler().fit(X)
    X, Xv = scaler.transform(X), scaler.transform(Xv)
    return _search(X, Y, idx, Xv, Yv, idx_v, n_trials, lr_range, alpha_range,
                   check_random_state(random_state), params, progress)


def _search(X, Y, idx, Xv, Yv, idx_v, n_trials, lr_range, alpha_range, rng, params, progress):
    trials = []
    for i in range(n_trials):
        lr = float(math.exp(rng.uniform(math.log(lr_range[0]), math.log(lr_range[1]))))
        a = float(math.exp(rng.uniform(math.log(alpha_range[0]), math.log(alpha_range[1]))))
        tagger = MLPTagger(**params, learning_rate_init=lr, alpha=a, standardize=False,
                           random_state=draw_seed(rng))
        tagger.fit(X, Y, idx, X_valid=Xv, Y_valid=Yv, clip_index_valid=idx_v)
        trials.append({"learning_rate_init": lr, "alpha": a, "score": tagger.best_score_,
                       "n_iter": tagger.n_iter_})
        progress("search", i + 1, n_trials)
    best = max(trials, key=lambda t: t["score"])
    return SearchResult(best_params={"learning_rate_init": best["learning_rate_init"], "alpha": best["alpha"]},
                        best_score=best["score"], trials=trials)


@dataclasses.dataclass(frozen=True)
class TaggingResult:
    """Outcome of :func:`evaluate_tagging`.

    Attributes
    ----------
    mean_auc : float
        Test mean per-tag AUC, averaged over the runs.
    std_auc : float
        Its standard deviation over the runs (``ddof=0``).
    run_aucs : ndarray of shape (n_runs,)
    per_tag_auc : ndarray of shape (n_tags,)
        Per-tag test AUC averaged over the runs; NaN for skipped tags.
    per_tag_auc_std : ndarray of shape (n_tags,)
    skipped_tags : ndarray of int
        Tags with a single class on the test split (no AUC).
    params : dict
        Learning rate and weight decay used by every run.
    n_iter : ndarray of shape (n_runs,)
        Epochs run per run.
    valid_aucs : ndarray of shape (n_runs,)
        Validation mean AUC of the epoch each run kept.
    search : SearchResult or None
        The random search, if one was run or loaded from ``search_cache``.
    per_clip : ndarray of shape (n_runs, n_test_clips, n_tags) or None
        With ``per_clip=True``: every run's tag probabilities of the test
        clips (float32, clips in the order of the ``test`` mask), from which
        per-tag AUCs can be recomputed on any resample of the clips.
    """

    mean_auc: float
    std_auc: float
    run_aucs: np.ndarray
    per_tag_auc: np.ndarray
    per_tag_auc_std: np.ndarray
    skipped_tags: np.ndarray
    params: dict
    n_iter: np.ndarray
    valid_aucs: np.ndarray
    search: "SearchResult | None" = None
    per_clip: "np.ndarray | None" = None

    def to_dict(self):
        """JSON-ready dict (arrays as lists, NaN as None)."""
        return jsonable(dataclasses.asdict(self))


def evaluate_tagging(X, Y, clip_index, *, train, valid, test, n_runs=10, params=None, n_trials=10,
                     learning_rate_range=(1e-4, 1e-2), alpha_range=(1e-6, 1e-1), random_state=None,
                     search_cache=None, progress=None, per_clip=False, **mlp_params):
    """The paper's tagging protocol: search on validation, train ``n_runs`` taggers, score test.

    Windows are split by their clip's mask, standardised once with the
    training windows' statistics, and (unless ``params`` is given) a
    :func:`search_mlp` of ``n_trials`` picks the learning rate and weight
    decay on the validation split. Then ``n_runs`` taggers with different
    seeds are trained with early stopping on validation and scored on the
    test split (clip prediction = mean over its windows).

    This function is msk's one tagging evaluation: ``msk evaluate``,
    :func:`msk.experiment.run_experiment` and :func:`msk.experiment.evaluate_features`
    call it. Its settings are :class:`MLPTagger`'s defaults (1000 hidden
    units, minibatches of 200 windows, at most 200 epochs, patience 10,
    Adam) unless ``mlp_params`` says otherwise.

    Parameters
    ----------
    X : array-like of shape (n_windows, n_features)
        Features of every pooling window of every clip.
    Y : array-like of shape (n_clips, n_tags)
        Binary tags per clip.
    clip_index : array-like of int of shape (n_windows,)
        Row of ``Y`` for every window.
    train, valid, test : array-like of bool of shape (n_clips,)
        Disjoint split masks over the clips.
    n_runs : int, default=10
        Seeds trained with the chosen hyperparameters (the paper: 10).
    params : dict, default=None
        ``learning_rate_init`` and ``alpha`` to use (e.g. a previous search's
        ``best_params``); None runs the search.
    n_trials : int, default=10
        Trials of the search (ignored when ``params`` is given).
    learning_rate_range, alpha_range : (float, float)
        Search ranges, as in :func:`search_mlp`.
    random_state : int, RandomState instance or None, default=None
        Seeds the search and the runs. The search's seed is drawn first
        whether or not the search runs, so the runs' seeds do not depend on
        ``params`` or on ``search_cache``.
    search_cache : object, default=None
        Keeps searched hyperparameters between calls: an object with a
        ``load()`` method returning a :class:`SearchResult` (or None when it
        holds none) and a ``save(result)`` method. When ``params`` is None,
        a loaded result is used instead of searching, and a fresh search is
        saved. The caller keys the cache by everything the search depends on.
    progress : callable, default=None
        Called as ``progress(stage, done, total)`` after every trained
        tagger, ``stage`` being ``"search"`` or ``"runs"``.
    per_clip : bool, default=False
        Keep every run's test-clip probabilities in ``per_clip`` of the
        result (for paired comparisons by :func:`msk.metrics.paired_bootstrap`).
    **mlp_params
        Further :class:`MLPTagger` parameters (``n_hidden``, ``batch_size``,
        ``max_iter``, ``patience``, ...).

    Returns
    -------
    result : TaggingResult

    Examples
    --------
    >>> import numpy as np
    >>> from msk.heads import evaluate_tagging
    >>> rng = np.random.default_rng(0)
    >>> C = rng.standard_normal((300, 3)).astype(np.float32)   # one vector per clip
    >>> clip_index = np.repeat(np.arange(300), 2)                # two windows per clip
    >>> X = C[clip_index] + 0.3 * rng.standard_normal((600, 3)).astype(np.float32)
    >>> Y = np.stack([C[:, 0] > 0, rng.random(300) < 0.5], axis=1)  # learnable, random
    >>> split = np.arange(300) % 3
    >>> res = evaluate_tagging(X, Y, clip_index, train=split == 0, valid=split == 1,
    ...                        test=split == 2, n_runs=2, n_trials=2, n_hidden=8,
    ...                        batch_size=32, max_iter=30, learning_rate_range=(3e-3, 3e-2),
    ...                        random_state=0)
    >>> bool(res.per_tag_auc[0] > 0.9), bool(abs(res.per_tag_auc[1] - 0.5) < 0.15)
    (True, True)
    """
    n_runs = check_int("n_runs", n_runs, low=1)
    n_trials = check_int("n_trials", n_trials, low=1)
    lr_range = check_log_range("learning_rate_range", learning_rate_range)
    alpha_range = check_log_range("alpha_range", alpha_range)
    progress = _check_progress(progress)
    if search_cache is not None and not (callable(getattr(search_cache, "load", None))
                                         and callable(getattr(search_cache, "save", None))):
        raise TypeError(f"`search_cache` must have load() and save(result) methods; "
                        f"got {type(search_cache).__name__}.")
    for key in ("random_state", "standardize"):
        if key in mlp_params:
            raise TypeError(f"`{key}` cannot be passed in **mlp_params.")
    X = as_float_array("X", X, ndim=2)
    Y = _check_tags("Y", Y)
    idx, n_clips, _ = _check_clip_index(clip_index, len(X), len(Y))
    masks = _check_masks(n_clips, train=train, valid=valid, test=test)
    if params is None:
        params = {}
    else:
        if not isinstance(params, dict) or set(params) - {"learning_rate_init", "alpha"}:
            raise ValueError(f"`params` must be a dict of 'learning_rate_init' and/or 'alpha'; got {params!r}.")
        params = dict(params)
    MLPTagger(**mlp_params, **params)._check_params()

    splits = {}
    for name, mask in masks.items():
        Xs, ci = _subset(X, idx, mask)
        splits[name] = (Xs, Y[mask], ci)
        _check_two_classes_per_some_tag(f"Y[{name}]", Y[mask])
    scaler = StandardScaler(copy=False).fit(splits["train"][0])
    for name in splits:  # the subsets are our own copies: standardise in place
        splits[name] = (scaler.transform(splits[name][0]),) + splits[name][1:]
    Xtr, Ytr, itr = splits["train"]
    Xva, Yva, iva = splits["valid"]
    Xte, Yte, ite = splits["test"]

    rng = check_random_state(random_state)
    search_seed = draw_seed(rng)
    search = None
    if not params:
        search = None if search_cache is None else search_cache.load()
        if search is None:
            search = _search(Xtr, Ytr, itr, Xva, Yva, iva, n_trials, lr_range, alpha_range,
                             np.random.RandomState(search_seed), mlp_params, progress)
            if search_cache is not None:
                search_cache.save(search)
        params = dict(search.best_params)
    counts_te = np.bincount(ite, minlength=len(Yte))
    aucs, n_iter, valid_aucs, scores = [], [], [], []
    for i in range(n_runs):
        tagger = MLPTagger(**mlp_params, **params, standardize=False, random_state=draw_seed(rng))
        tagger.fit(Xtr, Ytr, itr, X_valid=Xva, Y_valid=Yva, clip_index_valid=iva)
        P = _clip_means(tagger._proba(Xte), ite, counts_te)
        aucs.append(per_tag_auc(Yte, P))
        if per_clip:
            scores.append(P.astype(np.float32))
        n_iter.append(tagger.n_iter_)
        valid_aucs.append(tagger.best_score_)
        progress("runs", i + 1, n_runs)
    aucs = np.array(aucs)
    skipped = np.flatnonzero(np.isnan(aucs[0]))
    run_aucs = np.nanmean(aucs, axis=1)
    return TaggingResult(
        mean_auc=float(run_aucs.mean()), std_auc=float(run_aucs.std()), run_aucs=run_aucs,
        per_tag_auc=aucs.mean(axis=0), per_tag_auc_std=aucs.std(axis=0), skipped_tags=skipped,
        params=params, n_iter=np.array(n_iter), valid_aucs=np.array(valid_aucs), search=search,
        per_clip=np.stack(scores) if per_clip else None,
    )


# --------------------------------------------------------------------------- NCA


class NCA(TransformerMixin, BaseEstimator):
    """Neighbourhood Components Analysis by minibatch gradient ascent (NumPy).

    Learns a linear map ``A`` (``n_components`` × ``n_features``) such that,
    when every clip picks a neighbour with probability
    ``∝ exp(-|A x_i - A x_j|²)`` among the other clips of a minibatch, it
    picks one of the same class (artist) as often as possible [2]_. Fit on
    clip-level features: the mean of each clip's window features
    (:func:`clip_means`), so that the clip embedding is ``A`` applied to that
    mean [1]_.

    Objective per minibatch: ``mean_i p_i - alpha/2 · |A|²_F`` with ``p_i``
    the probability of a correct pick for clip ``i`` (self, and pairs of the
    same ``groups`` value if given, excluded). It is maximised with Adam
    (β₁ = 0.9, β₂ = 0.999) on shuffled minibatches of ``batch_size`` clips.
    After each epoch the objective on the validation set (neighbours drawn
    from the whole validation set, no weight decay) decides early stopping;
    the best epoch's map is kept. The objective and its gradient are
    computed together with five GEMMs (see ``msk._nca``).

    Parameters
    ----------
    n_components : int, default=50
        Embedding dimension (the paper's 50). None means ``n_features``.
    init : {'pca', 'identity', 'random'} or ndarray, default='pca'
        Initial map. ``'pca'``: the leading principal axes, whitened and
        scaled by ``1/sqrt(2·n_components)`` so that the mean squared
        distance between two training clips is about 1 (a soft start);
        ``'identity'``: the first ``n_components`` rows of the identity
        (scikit-learn's); ``'random'``: Gaussian entries of variance
        ``1/n_features``; an array of shape (n_components, n_features) is
        used as is (it acts on the standardised features if
        ``standardize``).
    alpha : float, default=1e-4
        Weight decay.
    learning_rate : float, default=1e-3
        Adam step size.
    batch_size : int, default=1000
        Clips per minibatch; the softmax runs within a minibatch.
    max_iter : int, default=200
        Maximum number of epochs.
    patience : int, default=10
        Epochs without improvement (by more than ``tol``) before stopping.
    tol : float, default=1e-4
        Smallest improvement of the monitored objective that counts.
    standardize : bool, default=True
        Learn the map on features standardised with training statistics.
        ``components_`` always acts on raw features (the scaling is folded
        in), so ``transform`` is a plain linear map.
    random_state : int, RandomState instance or None, default=None
        Seeds minibatches, the PCA solver and the random init.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The learned map on raw features.
    n_features_in_ : int
    n_iter_ : int
        Epochs run.
    best_iteration_ : int
        Epoch whose map is kept (0 = the initial map).
    best_score_ : float
        Monitored objective of that epoch: the validation probability, or
        without validation data the mean minibatch objective of the epoch.
    validation_scores_ : list of float
        Validation objective before training and after every epoch.
    train_objectives_ : list of float
        Mean minibatch objective (with weight decay) of every epoch.

    See Also
    --------
    msk.metrics.nca_probability : the score on a set.
    sklearn.neighbors.NeighborhoodComponentsAnalysis : full-batch L-BFGS.

    Examples
    --------
    >>> import numpy as np
    >>> from msk.heads import NCA
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(4), 25)
    >>> X = rng.standard_normal((100, 10)).astype(np.float32)
    >>> X[:, 0] += 6 * y                      # only feature 0 carries the class
    >>> nca = NCA(n_components=2, learning_rate=0.05, batch_size=50, max_iter=50,
    ...           random_state=0).fit(X, y)
    >>> nca.transform(X).shape
    (100, 2)
    >>> bool(nca.score(X, y) > 0.9)
    True
    """

    def __init__(self, n_components=50, *, init="pca", alpha=1e-4, learning_rate=1e-3,
                 batch_size=1000, max_iter=200, patience=10, tol=1e-4, standardize=True,
                 random_state=None):
        self.n_components = n_components
        self.init = init
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.patience = patience
        self.tol = tol
        self.standardize = standardize
        self.random_state = random_state

    def _check_params(self, n_features):
        m = n_features if self.n_components is None else check_int("n_components", self.n_components, low=1)
        if m > n_features:
            raise ValueError(f"`n_components` must be at most n_features ({n_features}); got {m}.")
        if not isinstance(self.init, np.ndarray):
            check_option("init", self.init, ("pca", "identity", "random"))
        check_float("alpha", self.alpha, low=0.0)
        check_float("learning_rate", self.learning_rate, low=0.0, low_inclusive=False)
        check_int("batch_size", self.batch_size, low=2)
        check_int("max_iter", self.max_iter, low=1)
        check_int("patience", self.patience, low=1)
        check_float("tol", self.tol, low=0.0)
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise TypeError(f"`standardize` must be a bool; got {self.standardize!r}.")
        return m

    def _initial_map(self, Xs, m, rng):
        d = Xs.shape[1]
        if isinstance(self.init, np.ndarray):
            A = as_float_array("init", self.init, ndim=2, dtype=Xs.dtype)
            if A.shape != (m, d):
                raise ValueError(f"`init` must have shape ({m}, {d}); got {A.shape}.")
            return A.copy()
        if self.init == "identity":
            return np.eye(m, d, dtype=Xs.dtype)
        if self.init == "random":
            return (rng.standard_normal((m, d)) / math.sqrt(d)).astype(Xs.dtype)
        if m > min(Xs.shape):
            raise ValueError(
                f"init='pca' needs `n_components` <= min(n_samples, n_features) = {min(Xs.shape)}; "
                f"got {m}. Use init='random' or 'identity'."
            )
        pca = PCA(n_components=m, random_state=rng).fit(Xs)
        scale = 1.0 / np.sqrt(np.maximum(pca.explained_variance_, 1e-12) * 2 * m)
        return (pca.components_ * scale[:, None]).astype(Xs.dtype)

    def fit(self, X, y, groups=None, *, X_valid=None, y_valid=None, groups_valid=None):
        """Learn the map from clip features and their classes.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_features)
            Clip-level features (mean of each clip's windows).
        y : array-like of shape (n_clips,)
            Class of each clip (the artist); at least two classes.
        groups : array-like of shape (n_clips,), default=None
            Optional group of each clip (the track): pairs from one group
            are never each other's neighbours in the objective.
        X_valid, y_valid, groups_valid : default=None
            Validation set for early stopping (neighbours drawn from it).
            Without it, the mean minibatch objective of each epoch is
            monitored instead.

        Returns
        -------
        self : NCA
        """
        # scikit-learn's checks first (sparse, complex, 1-D, sample count, NaN:
        # its messages), then the float32/float64 rule and C order
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", ensure_min_samples=2)
        m = self._check_params(X.shape[1])
        y = label_codes("y", y, len(X))
        if y.max() == 0:
            raise ValueError("`y` must contain at least two classes; got one.")
        g = None if groups is None else label_codes("groups", groups, len(X))
        valid = None
        if X_valid is not None or y_valid is not None:
            if X_valid is None or y_valid is None:
                raise ValueError("`X_valid` and `y_valid` must be given together.")
            Xv = as_float_array("X_valid", X_valid, ndim=2, min_len=2)
            if Xv.shape[1] != X.shape[1]:
                raise ValueError(
                    f"`X_valid` must have the features of `X`; got {Xv.shape[1]} and {X.shape[1]} columns."
                )
            yv = label_codes("y_valid", y_valid, len(Xv), n_name="X_valid")
            if yv.max() == 0:
                raise ValueError("`y_valid` must contain at least two classes; got one.")
            gv = None if groups_valid is None else label_codes("groups_valid", groups_valid, len(Xv),
                                                          n_name="X_valid")
            valid = (Xv, yv, gv)

        rng = check_random_state(self.random_state)
        dtype = X.dtype
        if self.standardize:
            self.mean_ = X.mean(axis=0, dtype=np.float64)
            std = X.std(axis=0, dtype=np.float64)
            self.scale_ = np.where(std > 0, std, 1.0)
            Xs = ((X - self.mean_) / self.scale_).astype(dtype)
        else:
            self.mean_ = np.zeros(X.shape[1])
            self.scale_ = np.ones(X.shape[1])
            Xs = X
        A = self._initial_map(Xs, m, rng)
        inv_scale = (1.0 / self.scale_).astype(dtype)

        def monitored(A_):
            Xv_, yv_, gv_ = valid
            return float(np.nanmean(_nca.probabilities(Xv_ @ (A_ * inv_scale).T, yv_, gv_)))

        n = len(Xs)
        n_batches = max(1, -(-n // self.batch_size))
        mom = np.zeros_like(A)
        vel = np.zeros_like(A)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        step = 0
        self.validation_scores_, self.train_objectives_ = [], []
        best_score, best_A, best_epoch = -np.inf, A.copy(), 0
        if valid is not None:
            best_score = monitored(A)
            self.validation_scores_.append(best_score)
        epoch = 0
        for epoch in range(1, self.max_iter + 1):
            perm = rng.permutation(n)
            total = 0.0
            for batch in np.array_split(perm, n_batches):
                batch.sort()  # contiguous-ish gathers
                f, grad = _nca.objective_grad(A, Xs[batch], y[batch], None if g is None else g[batch],
                                              alpha=self.alpha)
                total += f
                step += 1
                mom *= beta1
                mom += (1 - beta1) * grad
                vel *= beta2
                vel += (1 - beta2) * grad * grad
                lr = self.learning_rate * math.sqrt(1 - beta2**step) / (1 - beta1**step)
                A += lr * mom / (np.sqrt(vel) + eps)
            self.train_objectives_.append(total / n_batches)
            if valid is not None:
                score = monitored(A)
                self.validation_scores_.append(score)
            else:
                score = self.train_objectives_[-1]
            if score > best_score + self.tol:
                best_score, best_A, best_epoch = score, A.copy(), epoch
            elif epoch - best_epoch >= self.patience:
                break
        self.n_iter_ = epoch
        self.best_iteration_ = best_epoch
        self.best_score_ = float(best_score)
        self.components_ = (best_A * inv_scale).astype(dtype)
        return self

    def transform(self, X):
        """Embed clip features: ``X @ components_.T``.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_features)

        Returns
        -------
        E : ndarray of shape (n_clips, n_components)
        """
        check_is_fitted(self, "components_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
        return self._transform(X)

    def _transform(self, X):
        return X @ self.components_.T.astype(X.dtype, copy=False)

    def score(self, X, y, groups=None):
        """NCA probability of correct classification on a set (neighbours from that set).

        See :func:`msk.metrics.nca_probability`.
        """
        return nca_probability(self.transform(X), y, groups)


@dataclasses.dataclass(frozen=True)
class SimilarityResult:
    """Outcome of :func:`evaluate_similarity` (test split, mean ± std over runs).

    Attributes
    ----------
    probability, probability_std : float
        NCA probability of correct classification (the paper's figure).
    probability_other_groups : float
        The same with neighbours from the clip's own group (track) excluded.
    nn_accuracy, nn_accuracy_std : float
        Nearest-neighbour artist accuracy.
    nn_accuracy_other_groups, nn_accuracy_other_groups_std : float
        The same with neighbours from the clip's own group excluded (NaN
        without ``groups``).
    validation_probability : float
        Mean over runs of the validation probability of the kept map.
    n_components : int
        Embedding dimension used (after the cap, see
        :func:`evaluate_similarity`).
    runs : list of dict
        Per run: the four figures, ``n_iter`` and the validation score.
    per_clip : dict of str to ndarray, or None
        With ``per_clip=True``: for each of ``"probability"``,
        ``"nn_accuracy"``, ``"probability_other_groups"`` and
        ``"nn_accuracy_other_groups"``, an array of shape (n_runs,
        n_test_clips) of the per-clip terms whose mean is that figure
        (:func:`msk.metrics.nca_probabilities`,
        :func:`msk.metrics.nearest_neighbor_hits`; NaN for a clip without a
        candidate neighbour, and everywhere for the ``_other_groups`` ones
        without ``groups``). Clips in the order of the ``test`` mask.
    """

    probability: float
    probability_std: float
    probability_other_groups: float
    nn_accuracy: float
    nn_accuracy_std: float
    nn_accuracy_other_groups: float
    nn_accuracy_other_groups_std: float
    validation_probability: float
    n_components: int
    runs: list
    per_clip: "dict | None" = None

    def to_dict(self):
        """JSON-ready dict (NaN as None)."""
        return jsonable(dataclasses.asdict(self))


def evaluate_similarity(X, labels, clip_index=None, *, train, valid, test, groups=None, n_runs=10,
                        exclude_groups=False, random_state=None, progress=None, per_clip=False, **nca_params):
    """The paper's similarity protocol: NCA on clip means, scored on test.

    ``n_runs`` NCA maps with different seeds are learned on the training
    clips' means, early-stopped on the validation clips, and scored on the
    test clips (neighbours drawn from the test split). This function is
    msk's one similarity evaluation: ``msk evaluate``,
    :func:`msk.experiment.run_experiment` and
    :func:`msk.experiment.evaluate_features` call it. Its settings are
    :class:`NCA`'s defaults unless ``nca_params`` says otherwise, with one
    rule: ``n_components`` (the paper's 50 by default) is capped at the
    number of features and at the number of training clips, the most the
    PCA initialisation can give.

    Parameters
    ----------
    X : array-like of shape (n_windows, n_features) or (n_clips, n_features)
        Window features (with ``clip_index``) or clip features.
    labels : array-like of shape (n_clips,)
        Class (artist) of every clip.
    clip_index : array-like of int of shape (n_windows,), default=None
        Row of every window's clip; None if ``X`` is per clip already.
    train, valid, test : array-like of bool of shape (n_clips,)
        Disjoint split masks over the clips.
    groups : array-like of shape (n_clips,), default=None
        Track of every clip, for the figures that exclude same-track
        neighbours.
    n_runs : int, default=10
        Seeds to train (the paper: 10).
    exclude_groups : bool, default=False
        Also exclude same-group pairs from the training objective (the paper
        does not).
    random_state : int, RandomState instance or None, default=None
    progress : callable, default=None
        Called as ``progress("runs", done, n_runs)`` after every map.
    per_clip : bool, default=False
        Keep every run's per-clip test figures in ``per_clip`` of the result
        (for paired comparisons by :func:`msk.metrics.paired_bootstrap`).
    **nca_params
        :class:`NCA` parameters.

    Returns
    -------
    result : SimilarityResult

    Examples
    --------
    >>> import numpy as np
    >>> from msk.heads import evaluate_similarity
    >>> rng = np.random.default_rng(0)
    >>> labels = np.tile(np.arange(5), 60)
    >>> X = rng.standard_normal((300, 8)) + 2 * np.eye(8)[labels]
    >>> split = np.arange(300) % 3
    >>> res = evaluate_similarity(X, labels, train=split == 0, valid=split == 1,
    ...                           test=split == 2, n_runs=1, n_components=4, learning_rate=0.05,
    ...                           max_iter=30, random_state=0)
    >>> bool(res.probability > 0.6), bool(res.nn_accuracy > 0.6)
    (True, True)
    """
    n_runs = check_int("n_runs", n_runs, low=1)
    progress = _check_progress(progress)
    if "random_state" in nca_params:
        raise TypeError("`random_state` cannot be passed in **nca_params.")
    X = as_float_array("X", X, ndim=2)
    if clip_index is not None:
        idx, n_clips, counts = _check_clip_index(clip_index, len(X), None)
        C = _clip_means(X, idx, counts)
    else:
        C = X
    n_clips = len(C)
    lab = label_codes("labels", labels, n_clips, n_name="X" if clip_index is None else "clip means")
    grp = None if groups is None else label_codes("groups", groups, n_clips,
                                              n_name="X" if clip_index is None else "clip means")
    masks = _check_masks(n_clips, train=train, valid=valid, test=test)
    for name, mask in masks.items():
        if len(np.unique(lab[mask])) < 2:
            raise ValueError(f"`labels[{name}]` must contain at least two classes; got one.")
    params = dict(nca_params)
    m = params.get("n_components", NCA().n_components)
    if m is not None:
        m = min(check_int("n_components", m, low=1), C.shape[1], int(masks["train"].sum()))
    params["n_components"] = m
    NCA(**params)._check_params(C.shape[1])
    sub = {k: (C[m], lab[m], None if grp is None else grp[m]) for k, m in masks.items()}
    rng = check_random_state(random_state)
    runs, clips = [], []
    for i in range(n_runs):
        nca = NCA(**params, random_state=draw_seed(rng))
        tr, va, te = sub["train"], sub["valid"], sub["test"]
        nca.fit(tr[0], tr[1], tr[2] if exclude_groups else None, X_valid=va[0], y_valid=va[1],
                groups_valid=va[2] if exclude_groups else None)
        E = nca.transform(te[0])
        run = {"probability": nca_probability(E, te[1]),
               "nn_accuracy": nearest_neighbor_accuracy(E, te[1]),
               "probability_other_groups": float("nan"), "nn_accuracy_other_groups": float("nan"),
               "n_iter": nca.n_iter_, "validation_score": nca.best_score_}
        if te[2] is not None:
            run["probability_other_groups"] = nca_probability(E, te[1], te[2])
            run["nn_accuracy_other_groups"] = nearest_neighbor_accuracy(E, te[1], te[2])
        if per_clip:
            nan = np.full(len(E), np.nan)
            clips.append({"probability": nca_probabilities(E, te[1]), "nn_accuracy": nearest_neighbor_hits(E, te[1]),
                          "probability_other_groups": nan if te[2] is None else nca_probabilities(E, te[1], te[2]),
                          "nn_accuracy_other_groups": nan if te[2] is None else nearest_neighbor_hits(E, te[1], te[2])})
        runs.append(run)
        progress("runs", i + 1, n_runs)

    def stat(key, fn):
        return float(fn([r[key] for r in runs]))

    return SimilarityResult(
        probability=stat("probability", np.mean), probability_std=stat("probability", np.std),
        probability_other_groups=stat("probability_other_groups", np.mean),
        nn_accuracy=stat("nn_accuracy", np.mean), nn_accuracy_std=stat("nn_accuracy", np.std),
        nn_accuracy_other_groups=stat("nn_accuracy_other_groups", np.mean),
        nn_accuracy_other_groups_std=stat("nn_accuracy_other_groups", np.std),
        validation_probability=stat("validation_score", np.mean),
        n_components=C.shape[1] if m is None else m,
        runs=runs,
        per_clip={k: np.stack([c[k] for c in clips]) for k in clips[0]} if per_clip else None,
    )
