"""Taggers on your own labels: train the paper's MLP head from a CSV, save it, tag new audio.

:func:`train_tagger` reads the window features of the labelled clips of a
feature store (:func:`msk.extract_many`, ``msk extract``), holds out a
validation part of the clips (by group when the labels have a group column,
so that no artist or album is on both sides), trains
:class:`msk.heads.MLPTagger` (one hidden layer of 1000 ReLU units, one
logistic output per tag, early stopping on the validation clips' mean
per-tag ROC AUC) and returns a :class:`Tagger` with the validation AUC of
every tag.

A :class:`Tagger` is small and self-contained: the tag names, the
standardisation statistics, the network's weights and the fingerprint of the
feature model its inputs came from (:func:`msk.store.model_fingerprint`).
:meth:`Tagger.save` writes it as an ``.npz`` file without pickle (see the
Notes of :class:`Tagger` for the format); :meth:`Tagger.tag` extracts a new
file with the same feature model and returns its tags, most probable first.
Tagging with features of another model is refused, since the weights mean
nothing there.

:func:`evaluate_labels` runs the paper's tagging protocol
(:func:`msk.heads.evaluate_tagging`) on a store and a labels CSV, with
training, validation and test clips drawn by group.
"""

import hashlib
import json
import os

import numpy as np
from scipy.special import expit

from ._persist import msk_version
from ._random import draw_seed
from ._validation import as_float_array, check_float, check_int
from .datasets import Labels, load_labels

__all__ = ["Tagger", "evaluate_labels", "split_groups", "train_tagger"]

_FORMAT = "msk.Tagger"
_FORMAT_VERSION = 1
_ARRAYS = ("mean", "scale", "coef0", "intercept0", "coef1", "intercept1")


def _checksum(arrays):
    """SHA-256 (hex) of the arrays' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode("ascii"))
        h.update(a.tobytes())
    return h.hexdigest()


class Tagger:
    """A trained tagger: standardisation, a one-hidden-layer network and its tag names.

    Made by :func:`train_tagger` (or :meth:`load`); not meant to be built by
    hand. Probabilities are ``sigmoid(relu(z @ coef0 + intercept0) @ coef1 +
    intercept1)`` with ``z = (x - mean) / scale`` for every window's feature
    vector ``x``; a clip's probabilities are the mean over its windows. Each
    tag (or class of a single-label file) has its own logistic output, so
    the probabilities of the classes need not sum to one.

    Attributes
    ----------
    tag_names : tuple of str
    kind : {"multilabel", "single-label"}
    model_info : dict or None
        Fingerprint of the feature model (:func:`msk.store.model_fingerprint`)
        the tagger was trained on; None if the store recorded none.
    model_path : str or None
        The model file named at training, tried when tagging audio.
    mean, scale : ndarray of shape (n_features,)
        Standardisation of the inputs (training windows' statistics).
    coefs : list of ndarray
        ``[coef0 (n_features, n_hidden), coef1 (n_hidden, n_tags)]``.
    intercepts : list of ndarray
        ``[intercept0 (n_hidden,), intercept1 (n_tags,)]``.
    training : dict
        How it was trained: parameters, clips per split, epochs and the
        validation AUC per tag (``validation_auc``, None where a tag has one
        class on the validation clips) and their mean.

    Notes
    -----
    File format (:meth:`save`): an uncompressed ``.npz`` read with
    ``allow_pickle=False`` holding ``header`` (UTF-8 JSON as a uint8 array)
    and the arrays ``mean``, ``scale``, ``coef0``, ``intercept0``, ``coef1``,
    ``intercept1`` (float32). The header has ``format`` ("msk.Tagger"),
    ``format_version`` (1), ``msk_version``, ``kind``, ``tag_names``,
    ``model`` (the fingerprint dict), ``model_path``, ``training`` and
    ``sha256``: the SHA-256 of every array's name, dtype, shape and bytes in
    name order, checked on loading.
    """

    def __init__(self, *, tag_names, kind, mean, scale, coefs, intercepts, model_info=None,
                 model_path=None, training=None):
        self.tag_names = tuple(str(t) for t in tag_names)
        self.kind = kind
        self.mean = np.asarray(mean, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)
        self.coefs = [np.ascontiguousarray(c, dtype=np.float32) for c in coefs]
        self.intercepts = [np.asarray(b, dtype=np.float32) for b in intercepts]
        self.model_info = None if model_info is None else dict(model_info)
        self.model_path = model_path
        self.training = {} if training is None else dict(training)
        self._check()

    def _check(self):
        d = self.mean.shape[0] if self.mean.ndim == 1 else -1
        shapes = {"mean": self.mean.shape, "scale": self.scale.shape, "coef0": self.coefs[0].shape,
                  "intercept0": self.intercepts[0].shape, "coef1": self.coefs[1].shape,
                  "intercept1": self.intercepts[1].shape}
        h = shapes["coef0"][1] if len(shapes["coef0"]) == 2 else -1
        want = {"mean": (d,), "scale": (d,), "coef0": (d, h), "intercept0": (h,),
                "coef1": (h, len(self.tag_names)), "intercept1": (len(self.tag_names),)}
        if len(self.coefs) != 2 or len(self.intercepts) != 2 or d < 1 or h < 1 or shapes != want:
            raise ValueError(f"inconsistent tagger arrays: shapes {shapes} for {len(self.tag_names)} tags.")
        if self.kind not in ("multilabel", "single-label"):
            raise ValueError(f"tagger kind must be 'multilabel' or 'single-label'; got {self.kind!r}.")
        if len(set(self.tag_names)) != len(self.tag_names) or not self.tag_names:
            raise ValueError(f"tag names must be unique and non-empty; got {list(self.tag_names)}.")
        for a in [self.mean, self.scale] + self.coefs + self.intercepts:
            if not np.all(np.isfinite(a)):
                raise ValueError("tagger arrays contain NaN or infinite values.")
        if np.any(self.scale <= 0):
            raise ValueError("tagger `scale` must be positive.")
        if self.model_info is not None and self.model_info.get("n_features") not in (None, d):
            raise ValueError(
                f"the tagger takes {d} features but its feature model gives {self.model_info['n_features']}."
            )

    @property
    def n_features(self):
        """Number of input features (the feature model's output width)."""
        return int(self.mean.shape[0])

    def __repr__(self):
        model = "" if self.model_info is None else f", model {str(self.model_info.get('fingerprint'))[:12]}"
        return f"Tagger({self.kind}, {len(self.tag_names)} tags, {self.n_features} features{model})"

    # -- prediction ------------------------------------------------------------------------

    def predict_proba(self, X, clip_index=None):
        """Tag probabilities of feature windows, or of clips (mean over their windows).

        Parameters
        ----------
        X : array-like of shape (n_windows, n_features)
            Window features of the tagger's feature model.
        clip_index : array-like of int of shape (n_windows,), default=None
            Clip of every window; None returns one row per window.

        Returns
        -------
        proba : ndarray of shape (n_windows, n_tags) or (n_clips, n_tags), dtype float32
        """
        from .heads import clip_means

        X = as_float_array("X", X, ndim=2, dtype=np.float32)
        if X.shape[1] != self.n_features:
            raise ValueError(f"`X` must have {self.n_features} features (the tagger's); got {X.shape[1]}.")
        Z = (X - self.mean) / self.scale
        H = np.maximum(Z @ self.coefs[0] + self.intercepts[0], 0)
        P = expit(H @ self.coefs[1] + self.intercepts[1])
        return P if clip_index is None else clip_means(P, clip_index)

    def feature_model(self, model=None):
        """The feature model whose features this tagger reads, checked by fingerprint.

        Parameters
        ----------
        model : MultiscaleFeatures, str, os.PathLike or None, default=None
            A fitted model or a model file to use; None tries the model file
            recorded at training, then msk's shipped model of the same
            representation.

        Returns
        -------
        model : MultiscaleFeatures

        Raises
        ------
        ValueError
            If ``model`` is not the tagger's model, or None is given and
            neither the recorded file nor a shipped model is it.
        """
        from .batch import shipped_model_with
        from .multiscale import MultiscaleFeatures
        from .store import model_fingerprint

        def load(m):
            if isinstance(m, (str, os.PathLike)):
                return MultiscaleFeatures.load(m)
            if not isinstance(m, MultiscaleFeatures) or not hasattr(m, "pca_"):
                raise TypeError(f"`model` must be a fitted MultiscaleFeatures or a model file; got {m!r}.")
            return m

        if self.model_info is None:
            raise ValueError("this tagger records no feature model (its store had none); tag feature "
                             "arrays with predict_proba instead of audio.")
        want = self.model_info.get("fingerprint")
        if model is not None:
            m = load(model)
            got = model_fingerprint(m)["fingerprint"]
            if got != want:
                raise ValueError(
                    f"the tagger was trained on features of model {want[:12]}, not of the given model "
                    f"{got[:12]}; use the model the feature store was extracted with."
                )
            return m
        tried = []
        if self.model_path and os.path.isfile(self.model_path):
            m = load(self.model_path)
            if model_fingerprint(m)["fingerprint"] == want:
                return m
            tried.append(f"{self.model_path!r} (changed since)")
        m = shipped_model_with(want)
        if m is not None:
            return m
        tried.append("any of msk's shipped models")
        raise ValueError(
            f"the tagger's feature model (fingerprint {want[:12]}) is not "
            f"{' nor '.join(tried) or 'known'}; give the model file it was trained with "
            "(`model=`, or `--model` on the command line)."
        )

    def tag(self, audio, *, model=None, sr=None):
        """Tags of one clip, most probable first.

        The clip is extracted with the tagger's feature model
        (:meth:`feature_model`) by :func:`msk.extract`, every window is
        scored and the window probabilities are averaged.

        Parameters
        ----------
        audio : str, os.PathLike or array-like of shape (n_samples,)
            An audio file, or a mono waveform with its rate ``sr``.
        model : MultiscaleFeatures, str, os.PathLike or None, default=None
            See :meth:`feature_model`.
        sr : int or None, default=None
            Sampling rate of a waveform.

        Returns
        -------
        tags : list of (str, float)
            Every tag with its probability, in decreasing probability.
        """
        from .batch import extract

        m = self.feature_model(model)
        P = self.predict_proba(extract(audio, model=m, sr=sr)).mean(axis=0)
        return self.ranked(P)

    def ranked(self, proba):
        """``(tag, probability)`` pairs of one clip's probabilities, most probable first (ties by name order)."""
        p = np.asarray(proba, dtype=np.float64).reshape(-1)
        if p.shape != (len(self.tag_names),):
            raise ValueError(f"`proba` must have one value per tag ({len(self.tag_names)}); got shape {p.shape}.")
        order = np.argsort(-p, kind="stable")
        return [(self.tag_names[i], float(p[i])) for i in order]

    # -- persistence -----------------------------------------------------------------------

    def _arrays(self):
        return {"mean": self.mean, "scale": self.scale, "coef0": self.coefs[0],
                "intercept0": self.intercepts[0], "coef1": self.coefs[1], "intercept1": self.intercepts[1]}

    def save(self, path):
        """Write the tagger to ``path`` (``.npz``, no pickle, checksummed; atomic).

        Parameters
        ----------
        path : str or os.PathLike
        """
        from ._persist import atomic_write, write_npz

        arrays = self._arrays()
        header = {
            "format": _FORMAT, "format_version": _FORMAT_VERSION, "msk_version": msk_version(),
            "kind": self.kind, "tag_names": list(self.tag_names), "model": self.model_info,
            "model_path": self.model_path, "training": self.training, "sha256": _checksum(arrays),
        }
        blob = np.frombuffer(json.dumps(header, sort_keys=True, allow_nan=False).encode("utf-8"), dtype=np.uint8)
        with atomic_write(path) as f:
            write_npz(f, {"header": blob, **arrays})

    @classmethod
    def load(cls, path):
        """Read a tagger written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not an msk tagger, has another format version, or
            its arrays do not match the checksum of its header (the message
            names the file).
        """
        from ._persist import read_npz

        path = os.fspath(path)
        header, arrays = read_npz(path, "tagger")
        fmt = header.get("format")
        if fmt != _FORMAT:
            raise ValueError(f"{path!r} is not an msk tagger file (format {fmt!r}).")
        if header.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"{path!r} has tagger format version {header.get('format_version')!r}; this msk "
                f"({msk_version()}) reads version {_FORMAT_VERSION}. Retrain it with this msk."
            )
        if sorted(arrays) != sorted(_ARRAYS):
            raise ValueError(f"{path!r} is a corrupt msk tagger file: arrays {sorted(arrays)}.")
        if _checksum(arrays) != header.get("sha256"):
            raise ValueError(f"{path!r} is a corrupt msk tagger file: its arrays do not match its checksum.")
        try:
            return cls(tag_names=header["tag_names"], kind=header["kind"], mean=arrays["mean"],
                       scale=arrays["scale"], coefs=[arrays["coef0"], arrays["coef1"]],
                       intercepts=[arrays["intercept0"], arrays["intercept1"]],
                       model_info=header.get("model"), model_path=header.get("model_path"),
                       training=header.get("training"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path!r} is a corrupt msk tagger file: {exc}") from None


# --------------------------------------------------------------------------- the store


def _labelled_windows(store, labels):
    """Window features of the labelled clips of a feature store.

    The one place that reads the store here. Returns the window matrix
    (float32), the clip index of every window (into the returned rows), the
    labels' row of every clip, the clips' keys, the store's model info and
    its path.
    """
    from .store import FeatureStore

    st = store if isinstance(store, FeatureStore) else FeatureStore(store, mode="r")
    keys = st.keys()
    exact = set(labels.keys.tolist())
    paths = [None if k in exact else st.meta(k).get("path") for k in keys]
    rows = labels.rows_for(keys, [k if p is None else p for k, p in zip(keys, paths)])
    keep = np.flatnonzero(rows >= 0)
    matched = [keys[i] for i in keep]
    if not matched:
        example = f" (e.g. {keys[0]!r})" if keys else ""
        raise ValueError(
            f"no clip of feature store {st.path!r} is in {labels.path!r}: the labels' keys must be the "
            f"store's keys{example} or the paths of the extracted files."
        )
    X, clip_index = st.concatenated(matched)
    return X, clip_index, rows[keep], matched, st.model_info, st.path


def split_groups(groups, fraction, *, random_state=None):
    """Hold out a random fraction of the groups: a boolean mask over the clips.

    Parameters
    ----------
    groups : array-like of shape (n_clips,)
        Group of each clip (its key when clips are independent).
    fraction : float
        Fraction of the groups held out, in (0, 1); at least one group is
        held out and one kept.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    held_out : ndarray of bool of shape (n_clips,)

    Examples
    --------
    >>> from msk.tagger import split_groups
    >>> mask = split_groups(["a", "a", "b", "c", "d"], 0.25, random_state=0)
    >>> int(mask.sum()) in (1, 2), bool(mask[0] == mask[1])
    (True, True)
    """
    from sklearn.utils import check_random_state

    from ._validation import label_codes

    fraction = check_float("fraction", fraction, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    g = np.asarray(groups)
    codes = label_codes("groups", g, len(g), n_name="groups")
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    if n_groups < 2:
        raise ValueError(f"`groups` must hold at least two groups to split; got {n_groups}.")
    n_out = min(max(1, int(round(fraction * n_groups))), n_groups - 1)
    out = check_random_state(random_state).permutation(n_groups)[:n_out]
    return np.isin(codes, out)


def _train_valid(labels, rows, keys, valid_fraction, random_state):
    groups = np.asarray(keys) if labels.groups is None else labels.groups[rows]
    return split_groups(groups, valid_fraction, random_state=random_state)


def _check_learnable(labels, Y, where):
    count = Y.sum(axis=0)
    flat = [t for t, n in zip(labels.tag_names, count.tolist()) if n in (0, len(Y))]
    if flat:
        raise ValueError(
            f"{os.path.basename(labels.path)}: tag(s) {', '.join(map(repr, flat))} are 1 on every or on no "
            f"one of the {len(Y)} labelled clips {where}; no tagger can learn them. Drop the column(s) "
            "or label more clips."
        )


def train_tagger(store, labels, *, valid_fraction=0.2, random_state=0, n_hidden=1000, n_trials=0,
                 model_path=None, key_column=None, label_column=None, group_column=None, **mlp_params):
    """Train a tagger on the labelled clips of a feature store.

    Parameters
    ----------
    store : str, os.PathLike or FeatureStore
        Features of the clips (``msk extract DIR -o STORE``).
    labels : str, os.PathLike or Labels
        A labels CSV (:func:`msk.datasets.load_labels`) or its contents.
        Clips of the store without labels are ignored; labels without
        features are counted in ``training["labels_without_features"]``.
    valid_fraction : float, default=0.2
        Fraction of the clips (of the groups, with a group column) held out
        for early stopping and the reported validation AUC.
    random_state : int, RandomState instance or None, default=0
        Seeds the split, the search and the network.
    n_hidden : int, default=1000
        Hidden ReLU units (the paper's 1000).
    n_trials : int, default=0
        Random-search trials of learning rate and weight decay on the
        validation clips (:func:`msk.heads.search_mlp`); 0 uses
        ``learning_rate_init`` and ``alpha`` as given (or their defaults).
    model_path : str, os.PathLike or None, default=None
        The feature model file the store was extracted with, recorded in the
        tagger so that :meth:`Tagger.tag` finds it (checked against the
        store's model). Not needed for msk's shipped models.
    key_column, label_column, group_column : str or None
        Passed to :func:`msk.datasets.load_labels` when ``labels`` is a path.
    **mlp_params
        Further :class:`msk.heads.MLPTagger` parameters (``alpha``,
        ``learning_rate_init``, ``batch_size``, ``max_iter``, ``patience``).

    Returns
    -------
    tagger : Tagger
        ``tagger.training["validation_auc"]`` holds each tag's validation
        ROC AUC (None for a tag with one class on the validation clips).

    Raises
    ------
    ValueError
        If no labelled clip is in the store, a tag is 1 on all or none of
        the labelled clips, or there are too few clips (groups) to split.

    Examples
    --------
    >>> import os, tempfile, numpy as np, msk
    >>> from msk.tagger import train_tagger
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = msk.store.FeatureStore(os.path.join(tmp.name, "f.zarr"), mode="w")
    >>> rng = np.random.default_rng(0)
    >>> with open(os.path.join(tmp.name, "labels.csv"), "w") as f:
    ...     _ = f.write("key,loud\\n")
    ...     for i in range(40):
    ...         loud = i % 2
    ...         store.put(f"clip{i}", (rng.standard_normal((3, 4)) + 2 * loud).astype(np.float32))
    ...         _ = f.write(f"clip{i},{loud}\\n")
    >>> tagger = train_tagger(store, os.path.join(tmp.name, "labels.csv"), n_hidden=8,
    ...                       learning_rate_init=0.01, max_iter=20)
    >>> tagger.tag_names, tagger.training["n_train_clips"], tagger.training["n_valid_clips"]
    (('loud',), 32, 8)
    >>> bool(tagger.training["validation_auc"][0] > 0.9)
    True
    >>> tmp.cleanup()
    """
    from sklearn.utils import check_random_state

    from .heads import MLPTagger, search_mlp
    from .store import model_fingerprint

    if not isinstance(labels, Labels):
        labels = load_labels(labels, key_column=key_column, label_column=label_column,
                             group_column=group_column)
    n_trials = check_int("n_trials", n_trials, low=0)
    for key in ("random_state", "standardize", "n_hidden"):
        if key in mlp_params:
            raise TypeError(f"`{key}` cannot be passed in **mlp_params.")
    if n_trials and ({"learning_rate_init", "alpha"} & set(mlp_params)):
        raise TypeError("`learning_rate_init` and `alpha` are searched when n_trials > 0; do not pass them.")
    MLPTagger(n_hidden, **mlp_params)._check_params()
    X, clip_index, rows, keys, model_info, store_path = _labelled_windows(store, labels)
    if model_path is not None:
        from .multiscale import MultiscaleFeatures

        model_path = os.path.abspath(os.fspath(model_path))
        given = model_fingerprint(MultiscaleFeatures.load(model_path))
        if model_info is not None and given["fingerprint"] != model_info.get("fingerprint"):
            raise ValueError(f"`model_path` {model_path!r} is not the model of feature store {store_path!r}.")
        model_info = model_info or given
    Y = labels.tags[rows].astype(bool)
    _check_learnable(labels, Y, "in the store")
    rng = check_random_state(random_state)
    valid = _train_valid(labels, rows, keys, valid_fraction, rng)
    train = ~valid
    tr_windows, va_windows = train[clip_index], valid[clip_index]
    renumber_tr, renumber_va = np.cumsum(train) - 1, np.cumsum(valid) - 1
    Xtr, itr = X[tr_windows], renumber_tr[clip_index[tr_windows]]
    Xva, iva = X[va_windows], renumber_va[clip_index[va_windows]]
    Ytr, Yva = Y[train], Y[valid]
    if not (Ytr.any(axis=0) & ~Ytr.all(axis=0)).any():
        raise ValueError("no tag has both classes on the training clips; label more clips.")
    params = dict(mlp_params)
    search = None
    if n_trials:
        res = search_mlp(Xtr, Ytr, itr, X_valid=Xva, Y_valid=Yva, clip_index_valid=iva, n_trials=n_trials,
                         random_state=draw_seed(rng), n_hidden=n_hidden, **mlp_params)
        params.update(res.best_params)
        search = res.to_dict()
    mlp = MLPTagger(n_hidden, **params, random_state=draw_seed(rng))
    if (Yva.any(axis=0) & ~Yva.all(axis=0)).any():
        mlp.fit(Xtr, Ytr, itr, X_valid=Xva, Y_valid=Yva, clip_index_valid=iva)
    else:  # no tag can be scored on these validation clips: no early stopping
        import warnings

        warnings.warn(
            f"no tag has both classes among the {int(valid.sum())} validation clips: training runs "
            f"{mlp.max_iter} epochs without early stopping and no validation AUC is reported; hold out "
            "more clips (valid_fraction) or use smaller groups.", UserWarning, stacklevel=2)
        mlp.fit(Xtr, Ytr, itr)
    tagger = Tagger(
        tag_names=labels.tag_names, kind=labels.kind, mean=mlp.scaler_.mean_, scale=mlp.scaler_.scale_,
        coefs=mlp.mlp_.coefs_, intercepts=mlp.mlp_.intercepts_, model_info=model_info, model_path=model_path,
    )
    from .metrics import per_tag_auc

    auc = per_tag_auc(Yva, tagger.predict_proba(Xva, iva))
    scored = auc[np.isfinite(auc)]
    tagger.training = {
        "store": store_path, "labels": labels.path, "n_train_clips": int(train.sum()),
        "n_valid_clips": int(valid.sum()), "n_train_windows": int(len(Xtr)), "n_valid_windows": int(len(Xva)),
        "positives_train": Ytr.sum(axis=0).tolist(), "positives_valid": Yva.sum(axis=0).tolist(),
        "validation_auc": [None if not np.isfinite(a) else float(a) for a in auc],
        "mean_validation_auc": float(scored.mean()) if len(scored) else None,
        "labels_without_features": int(len(labels) - len(keys)), "valid_fraction": float(valid_fraction),
        "grouped_by": labels.group_column, "n_hidden": int(n_hidden),
        "params": {k: v for k, v in params.items()}, "search": search, "n_iter": int(mlp.n_iter_),
        "best_iteration": int(mlp.best_iteration_),
    }
    return tagger


def evaluate_labels(store, labels, *, valid_fraction=0.15, test_fraction=0.2, random_state=0, n_runs=10,
                    n_trials=10, key_column=None, label_column=None, group_column=None, **mlp_params):
    """The paper's tagging protocol on a feature store and a labels CSV.

    The labelled clips of the store are split into training, validation and
    test clips by group (:func:`split_groups`; by clip without a group
    column), then :func:`msk.heads.evaluate_tagging` searches learning rate
    and weight decay on validation and scores ``n_runs`` taggers on test.

    Parameters
    ----------
    store : str, os.PathLike or FeatureStore
    labels : str, os.PathLike or Labels
    valid_fraction, test_fraction : float, default=0.15, 0.2
        Fractions of the groups held out for validation and for test.
    random_state : int, RandomState instance or None, default=0
    n_runs, n_trials : int, default=10
        As in :func:`msk.heads.evaluate_tagging`.
    key_column, label_column, group_column : str or None
        Passed to :func:`msk.datasets.load_labels` when ``labels`` is a path.
    **mlp_params
        Further :class:`msk.heads.MLPTagger` parameters.

    Returns
    -------
    result : TaggingResult
    split : dict
        Keys of the training, validation and test clips.
    """
    from sklearn.utils import check_random_state

    from .heads import evaluate_tagging

    if not isinstance(labels, Labels):
        labels = load_labels(labels, key_column=key_column, label_column=label_column,
                             group_column=group_column)
    X, clip_index, rows, keys, _, _ = _labelled_windows(store, labels)
    Y = labels.tags[rows]
    _check_learnable(labels, Y.astype(bool), "in the store")
    rng = check_random_state(random_state)
    groups = np.asarray(keys) if labels.groups is None else labels.groups[rows]
    test = split_groups(groups, test_fraction, random_state=rng)
    rest = np.flatnonzero(~test)
    valid = np.zeros(len(keys), dtype=bool)
    valid[rest[split_groups(groups[rest], valid_fraction / (1 - test_fraction), random_state=rng)]] = True
    train = ~(test | valid)
    result = evaluate_tagging(X, Y, clip_index, train=train, valid=valid, test=test, n_runs=n_runs,
                              n_trials=n_trials, random_state=rng, **mlp_params)
    keys = np.asarray(keys)
    return result, {name: keys[m].tolist() for name, m in (("train", train), ("valid", valid), ("test", test))}
