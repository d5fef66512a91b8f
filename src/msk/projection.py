"""A learned linear map of track vectors for similarity search.

Cosine similarity between raw track vectors weighs every feature alike,
whether it tells pieces apart or only varies within one. A
:class:`TrackProjection` is learned from track vectors of clips grouped by
the recording they were cut from: the vectors are standardised (each
feature's mean and standard deviation over the training clips), then mapped
onto the linear discriminant directions of the recordings (the
generalised eigenvectors of the between- and within-recording covariances,
with the within-recording covariance shrunk by the Ledoit-Wolf estimate, as
scikit-learn's ``LinearDiscriminantAnalysis(solver="eigen",
shrinkage="auto")`` computes them). Directions along which the clips of one
recording stay together and different recordings spread apart are kept and
stretched; those that vary as much within a recording as between them are
shrunk. No label of any evaluation is needed: the groups are the recordings
themselves.

msk ships one, learned on the unsupervised training pool's clips with the
default model (``msk/models/default-similarity.npz``);
:func:`msk.search.index_store` applies it to the track vectors of stores made
with that model. It records the fingerprint of the model and the track
summary it was learned for, and is applied only to those.

The file
--------
:meth:`TrackProjection.save` writes an uncompressed ``.npz`` (read back with
``allow_pickle=False``): a JSON header (format name and version, msk version,
sizes, the model fingerprint and summary, what it was trained on, and the
SHA-256 of its arrays) and three float32 arrays, ``mean``, ``scale`` and
``components``. The checksum is verified on loading.
"""

import hashlib
import json
import numbers
import os
import warnings
from importlib import resources

import numpy as np

from ._persist import atomic_write, msk_version, read_npz, write_npz

__all__ = ["TrackProjection", "shipped_projection"]

_FORMAT = "msk.TrackProjection"
_FORMAT_VERSION = 1
_MAX_FEATURES = 1 << 20  # bounds a header's claimed sizes before any array is used
#: The shipped projections (``msk/models/<name>.npz``).
SHIPPED = ("default-similarity",)


def _digest(arrays):
    h = hashlib.sha256()
    for name in ("mean", "scale", "components"):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}{a.dtype.str}{a.shape}".encode("ascii"))
        h.update(a.tobytes())
    return h.hexdigest()


def _check_matrix(X, name, n_features=None):
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(f"`{name}` must be a 2-D array of numbers; got {type(X).__name__}.")
    X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise TypeError(f"`{name}` must hold real numbers; got dtype {X.dtype}.")
    if X.ndim != 2 or X.shape[1] == 0:
        raise ValueError(f"`{name}` must be 2-D (n_tracks, n_features); got shape {X.shape}.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"`{name}` has {X.shape[1]} features per track; this projection was learned on "
            f"{n_features}-dimensional track vectors."
        )
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        row = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValueError(f"`{name}` must be finite; row {row} holds NaN or inf.")
    return X


class TrackProjection:
    """A linear map of track vectors learned from clips grouped by recording.

    ``transform(X) = ((X - mean_) / scale_) @ components_``.

    Parameters
    ----------
    n_components : int or None, default=None
        Directions kept (at most ``n_groups - 1`` and ``n_features``); None
        keeps them all.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_features,), dtype float32
        The standardisation learned from the training vectors.
    components_ : ndarray of shape (n_features, n_components), dtype float32
        The discriminant directions, most discriminative first.
    info : dict
        Provenance saved with the projection: ``model`` (the fingerprint of
        the model whose track vectors it maps), ``summary`` and
        ``trained_on``.

    Examples
    --------
    >>> import numpy as np
    >>> from msk.projection import TrackProjection
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(20), 5)
    >>> X = rng.standard_normal((100, 8)) + rng.standard_normal((20, 8))[groups]
    >>> proj = TrackProjection().fit(X, groups)
    >>> proj.transform(X).shape
    (100, 8)
    """

    def __init__(self, n_components=None):
        self.n_components = n_components
        self.info = {}

    @property
    def n_features_in_(self):
        """Dimensions of the track vectors it takes."""
        return int(self.mean_.shape[0])

    @property
    def n_components_(self):
        """Dimensions of the vectors it gives."""
        return int(self.components_.shape[1])

    def __repr__(self):
        if not hasattr(self, "components_"):
            return "TrackProjection(not fitted)"
        return f"TrackProjection({self.n_features_in_} -> {self.n_components_})"

    def fit(self, X, groups, *, info=None):
        """Learn the map from track vectors ``X`` and the recording of each row, ``groups``.

        Parameters
        ----------
        X : array-like of shape (n_tracks, n_features)
        groups : array-like of shape (n_tracks,)
            A label per row (the recording the clip comes from); at least two
            groups, and at least one with two rows.
        info : dict or None, default=None
            Provenance to keep (``model``, ``summary``, ``trained_on``);
            JSON-serialisable.

        Returns
        -------
        self
        """
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        X = _check_matrix(X, "X")
        groups = np.asarray(groups)
        if groups.shape != (X.shape[0],):
            raise ValueError(f"`groups` must hold one label per row of X ({X.shape[0]}); got shape {groups.shape}.")
        _, counts = np.unique(groups, return_counts=True)
        if len(counts) < 2 or counts.max() < 2:
            raise ValueError(
                "`groups` must name at least two recordings, one of them with two or more clips; "
                f"got {len(counts)} groups of at most {counts.max() if len(counts) else 0} clips."
            )
        n = self.n_components
        if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
            raise ValueError(f"`n_components` must be a positive integer or None; got {n!r}.")
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        Z = (X - mean) / scale
        with warnings.catch_warnings():
            # a recording of one clip has no within-recording spread; scikit-learn says so per group
            warnings.filterwarnings("ignore", message="Only one sample available", category=UserWarning)
            lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(Z, groups)
        n_max = min(len(counts) - 1, X.shape[1])
        components = lda.scalings_[:, : n_max if n is None else min(n, n_max)]
        self._set_arrays(mean.astype(np.float32), scale.astype(np.float32),
                         np.ascontiguousarray(components, dtype=np.float32))
        try:
            self.info = json.loads(json.dumps(dict(info or {})))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"`info` must be JSON-serialisable: {exc}") from None
        return self

    def _set_arrays(self, mean, scale, components):
        """The float32 arrays that define the map, and their float64 copies that ``transform`` uses
        (converted once here, not on every query)."""
        self.mean_, self.scale_, self.components_ = mean, scale, components
        self._operator = tuple(a.astype(np.float64) for a in (mean, scale, components))

    def transform(self, X):
        """The projected vectors, shape (n_tracks, n_components_), float32.

        Raises
        ------
        ValueError
            If ``X`` is not 2-D with ``n_features_in_`` columns or is not finite.
        """
        if not hasattr(self, "components_"):
            raise ValueError("this TrackProjection is not fitted yet; call fit or load one.")
        X = _check_matrix(X, "X", self.n_features_in_)
        mean, scale, components = self._operator
        return (((X - mean) / scale) @ components).astype(np.float32)

    # -- files ---------------------------------------------------------------------------------

    def arrays(self):
        """The arrays that define the map (``mean``, ``scale``, ``components``) and their header."""
        arrays = {"mean": self.mean_, "scale": self.scale_, "components": self.components_}
        header = {"format": _FORMAT, "format_version": _FORMAT_VERSION, "msk_version": msk_version(),
                  "n_features": self.n_features_in_, "n_components": self.n_components_,
                  "sha256": _digest(arrays), **self.info}
        return header, arrays

    @classmethod
    def from_arrays(cls, header, arrays, where):
        """The projection that :meth:`arrays` described; ``where`` names it in messages."""
        try:
            if header.get("format") != _FORMAT:
                raise ValueError("it is not an msk track projection")
            if header.get("format_version") != _FORMAT_VERSION:
                raise ValueError(
                    f"it has track projection format version {header.get('format_version')!r}; "
                    f"this msk reads version {_FORMAT_VERSION}"
                )
            d, n = header["n_features"], header["n_components"]
            for name, value in (("n_features", d), ("n_components", n)):
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_FEATURES:
                    raise ValueError(f"its {name} {value!r} is not an integer in [1, {_MAX_FEATURES}]")
            shapes = {"mean": (d,), "scale": (d,), "components": (d, n)}
            got = {}
            for name, shape in shapes.items():
                a = arrays.get(name)
                if a is None or a.dtype != np.float32 or a.shape != shape:
                    raise ValueError(f"its array {name!r} is not float32 of shape {shape}")
                got[name] = np.ascontiguousarray(a)
            if _digest(got) != header.get("sha256"):
                raise ValueError("its arrays do not match their checksum")
            if not all(np.isfinite(a).all() for a in got.values()) or not (got["scale"] > 0).all():
                raise ValueError("its arrays hold NaN, inf or a non-positive scale")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{where} is not a readable msk track projection: {exc}.") from None
        proj = cls()
        proj._set_arrays(got["mean"], got["scale"], got["components"])
        proj.info = {k: header[k] for k in ("model", "summary", "trained_on") if k in header}
        proj.n_components = n
        return proj

    def save(self, path):
        """Write the projection to ``path`` (an ``.npz`` file), atomically."""
        header, arrays = self.arrays()
        blob = json.dumps(header, sort_keys=True, ensure_ascii=False).encode("utf-8")
        with atomic_write(path) as f:
            write_npz(f, {"header": np.frombuffer(blob, dtype=np.uint8), **arrays})

    @classmethod
    def load(cls, path):
        """Read a projection written by :meth:`save`, verifying its checksum.

        Raises
        ------
        FileNotFoundError
            If there is no file at ``path``.
        ValueError
            If the file is not an msk track projection or fails its checksum
            (the message names the file).
        """
        path = os.fspath(path)
        header, arrays = read_npz(path, "track projection")
        return cls.from_arrays(header, arrays, repr(path))

    def applies_to(self, fingerprint, summary):
        """Whether it was learned for track vectors of this model fingerprint and summary."""
        model = self.info.get("model") or {}
        return bool(fingerprint) and model.get("fingerprint") == fingerprint and self.info.get("summary") == summary


def shipped_projection(fingerprint, summary="mean"):
    """The shipped projection learned for this model fingerprint and track summary, or None."""
    for name in SHIPPED:
        resource = resources.files("msk").joinpath("models", f"{name}.npz")
        if not resource.is_file():
            continue
        with resources.as_file(resource) as path:
            proj = TrackProjection.load(path)
        if proj.applies_to(fingerprint, summary):
            return proj
    return None
