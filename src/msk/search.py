"""Similar tracks: a nearest-neighbour index over track vectors.

A :class:`TrackIndex` holds one vector per track (a key and a float32
vector, e.g. the mean of a clip's pooled features) and answers "which tracks
are most similar to this one?" by cosine similarity.

Similarity and distance
-----------------------
Vectors are L2-normalised when they enter the index; the score of a
neighbour is the cosine similarity ``<u, v> / (|u| |v|)`` in [-1, 1] (1:
same direction), and the distance, where one is wanted, is ``1 - score``.
Neighbours are ranked by decreasing score, ties by the order of the keys in
the index. Scores are always computed exactly from the stored vectors, also
when the candidates come from the approximate index.

Exact and approximate search
----------------------------
Small indexes are searched exactly: one matrix-vector product over all the
vectors and a partial sort (``argpartition``). A query reads every value from
memory, so its cost grows with ``n_items * n_dims``; above ``max_exact``
values (default ``2**23``, 32 MiB read per query: about 45 000 tracks of the 186 dimensions of
the default model's projected vectors, 6 000 of 1400, 2 800 of 3000; ``bench/bench_search.py``
times both methods on 100 000 tracks)
the candidates come from an HNSW graph built with `USearch
<https://github.com/unum-cloud/usearch>`_ (the ``search`` extra: ``pip install
'msk[search]'``). The graph keeps an 8-bit copy of the vectors (16 links per
node, 64 candidates examined per insertion), which makes it about four times
cheaper to build and to store than a float32 graph; each query takes four
times as many candidates from it as results wanted (at least 40) and re-scores
them exactly from the float32 vectors, which recovers the recall that the
8-bit distances lose. Without USearch every index is exact (with a warning
when it is large). The graph is built on one thread, so it is the same on
every run.

Why USearch: hnswlib, faiss-cpu and USearch were measured on the same
synthetic vectors (100 000 clustered vectors of 3000 dimensions, HNSW with 16
links per node; ``scripts/compare_ann.py``). All three reach a recall@10 of
at least 0.99 against exact search with queries far faster than the exact
product, so the choice rests on the rest: USearch publishes wheels for Linux,
macOS and Windows (hnswlib 0.8 publishes a source archive only, which needs a
C++ compiler to install), removes items in place (faiss's HNSW index cannot),
serialises an index to and from a byte buffer, and offers the 8-bit graph
above; faiss-cpu also installs about 66 MB against USearch's 57 MB
(with its SIMD kernels).

A learned projection
--------------------
An index may map the track vectors through a :class:`msk.projection.TrackProjection`
before normalising them (``projection=``): the stored vectors are then the
projected ones, and a vector query is a track vector of the store's model,
projected the same way. :func:`index_store` uses the projection shipped for
the store's model when there is one (``projection="auto"``): for msk's
default model, one learned on the unsupervised training pool from clips
grouped by recording, which puts a track of the same composer first more
often on the development corpus than plain cosine similarity does.

The index file
--------------
:meth:`TrackIndex.save` writes one uncompressed ``.npz`` file (read back
with ``allow_pickle=False``): a JSON header (format name and version, msk
version, metric, dimensions, keys, the source store's model fingerprint and
the track summary, the projection's header, SHA-256 checksums of the vectors
and of the graph), the normalised vectors (float32), the items' integer
labels, the projection's arrays when it has one and, for an approximate index,
USearch's own serialisation of the graph as bytes. The
checksums are verified on loading, so a damaged file is refused with a
message naming it. :func:`index_store` keeps the file beside a feature store
(``features.zarr`` -> ``features.zarr.index.npz``) and updates it when the
store changes: new keys are added, deleted keys removed and changed vectors
replaced, without rebuilding the graph.

Examples
--------
>>> import numpy as np
>>> from msk.search import build_index
>>> rng = np.random.default_rng(0)
>>> vectors = rng.standard_normal((100, 16)).astype(np.float32)
>>> keys = [f"track-{i}" for i in range(100)]
>>> index = build_index(keys, vectors)
>>> neighbours, scores = index.query("track-3", k=3)
>>> len(neighbours), scores.dtype, bool(scores[0] >= scores[-1])
(3, dtype('float32'), True)
"""

import hashlib
import json
import numbers
import os
import warnings
from collections.abc import Mapping

import numpy as np

from ._persist import atomic_write, msk_version, read_npz, write_npz
from .projection import TrackProjection, shipped_projection

__all__ = ["TrackIndex", "build_index", "index_path", "index_store"]

_FORMAT = "msk.TrackIndex"
_FORMAT_VERSION = 2  # 2: an optional projection; version 1 files (none) are read too
_READS = (1, 2)
_METRIC = "cosine"
_METHODS = ("auto", "exact", "ann")
MAX_EXACT = 1 << 23  # values (n_items * n_dims) searched exactly by method="auto"
_CHUNK_ROWS = 8192  # rows per matrix-vector product of the exact search (bounded memory)
_CONNECTIVITY = 16  # HNSW links per node
_EXPANSION_ADD = 64  # candidates examined while inserting
_EXPANSION_SEARCH = 64  # candidates examined while searching (at least the candidates fetched)
_GRAPH_DTYPE = "i8"  # the graph's copy of the vectors: 8-bit, re-scored exactly afterwards
_OVERSAMPLE = 4  # candidates fetched from the graph per result wanted, re-scored exactly
_MIN_CANDIDATES = 40


def _usearch():
    try:
        from usearch.index import Index
    except ImportError:
        return None
    return Index


def _check_keys(keys, name="keys"):
    if isinstance(keys, (str, bytes)):
        raise TypeError(f"`{name}` must be a sequence of str; got a single {type(keys).__name__}.")
    keys = list(keys)
    for i, k in enumerate(keys):
        if not isinstance(k, str) or not k:
            raise TypeError(f"`{name}` must hold non-empty str; item {i} is {k!r}.")
    if len(set(keys)) != len(keys):
        seen, dups = set(), []
        for k in keys:
            if k in seen:
                dups.append(k)
            seen.add(k)
        raise ValueError(f"`{name}` must be unique; repeated: {', '.join(map(repr, dups[:5]))}.")
    return keys


def _checked(vectors, keys, name="vectors"):
    """A float32 copy of a 2-D matrix of one finite row per key; refuses NaN/inf, naming the key."""
    if isinstance(vectors, (str, bytes)) or vectors is None:
        raise TypeError(f"`{name}` must be a 2-D array of numbers; got {type(vectors).__name__}.")
    X = np.asarray(vectors)
    if X.dtype.kind == "c":
        raise TypeError(f"`{name}` must be real; got dtype {X.dtype}.")
    if X.dtype.kind not in "fiub":
        raise TypeError(f"`{name}` must be an array of numbers; got dtype {X.dtype}.")
    if X.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (n_items, n_dims); got shape {X.shape}.")
    if X.shape[0] != len(keys):
        raise ValueError(f"`{name}` has {X.shape[0]} rows for {len(keys)} keys; give one row per key.")
    if X.shape[1] == 0:
        raise ValueError(f"`{name}` must have at least one column; got shape {X.shape}.")
    X = X.astype(np.float32)  # a copy: normalised in place by _normalised
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"`{name}` must be finite; the vector of {keys[i]!r} holds NaN or inf.")
    return X


def _normalised(vectors, keys, name="vectors", projection=None):
    """float32 rows of unit L2 norm (after ``projection``); refuses NaN/inf and zero rows, naming the key."""
    X = _checked(vectors, keys, name)
    if projection is not None:
        if X.shape[1] != projection.n_features_in_:
            raise ValueError(
                f"`{name}` have {X.shape[1]} dimensions; this index's projection takes "
                f"{projection.n_features_in_}-dimensional track vectors."
            )
        X = projection.transform(X)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))
    zero = norms == 0
    if zero.any():
        i = int(np.flatnonzero(zero)[0])
        raise ValueError(
            f"`{name}`: the vector of {keys[i]!r} is all zeros, so it has no direction (cosine "
            "similarity is undefined); leave it out."
        )
    X /= norms[:, None].astype(np.float32)
    return np.ascontiguousarray(X)


def _query_vector(vector, n_dims, projection=None):
    if isinstance(vector, (bytes, dict)) or vector is None:
        raise TypeError(f"a query must be a key (str) or a vector; got {type(vector).__name__}.")
    v = np.asarray(vector)
    if v.dtype.kind not in "fiub":
        raise TypeError(f"a query vector must hold real numbers; got dtype {v.dtype}.")
    if v.ndim != 1 or v.shape[0] != n_dims:
        raise ValueError(f"a query vector must have shape ({n_dims},), like the index's track vectors; got {v.shape}.")
    return _normalised(v[None, :], ["the query"], name="vector", projection=projection)[0]


def _digest(keys, vectors):
    h = hashlib.sha256(json.dumps(keys, ensure_ascii=False).encode("utf-8"))
    h.update(f"{vectors.dtype.str}{vectors.shape}".encode("ascii"))
    h.update(np.ascontiguousarray(vectors).tobytes())
    return h.hexdigest()


def _check_method(method):
    if method not in _METHODS:
        raise ValueError(f"`method` must be one of 'auto', 'exact' or 'ann'; got {method!r}.")
    return method


def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"`k` must be a positive integer; got {k!r}.")
    return int(k)


class TrackIndex:
    """Cosine-similarity search over track vectors, exact or through an HNSW graph.

    Build one with :func:`build_index` (from arrays) or :func:`index_store`
    (from a feature store), load a saved one with :meth:`load`.

    Attributes
    ----------
    keys : list of str
        The tracks, in the order of ``vectors``.
    vectors : ndarray of shape (n_items, n_dims), dtype float32
        The L2-normalised track vectors, projected when there is a
        projection (read-only).
    projection : TrackProjection or None
        The map applied to track vectors before they are normalised.
    method : {"exact", "ann"}
        How queries are answered now.
    source : dict
        Where the vectors come from (the store's model fingerprint and the
        track summary, when known); saved in the header.

    See Also
    --------
    build_index, index_store
    """

    def __init__(self, keys, vectors, labels, *, method, next_label, ann=None, source=None,
                 max_exact=MAX_EXACT, requested="auto", projection=None):
        self.projection = projection
        self.keys = keys
        self.vectors = vectors
        self.vectors.flags.writeable = False
        self._labels = labels
        self._row = {k: i for i, k in enumerate(keys)}
        self._row_of_label = {int(lab): i for i, lab in enumerate(labels)}
        self._ann = ann
        self._next_label = int(next_label)
        self.method = method
        self.source = dict(source or {})
        self.max_exact = max_exact
        self._requested = requested

    # -- sizes ---------------------------------------------------------------------------------

    def __len__(self):
        return len(self.keys)

    def __contains__(self, key):
        return key in self._row

    @property
    def n_dims(self):
        """Dimensions of the stored (projected, when there is a projection) vectors."""
        return int(self.vectors.shape[1])

    @property
    def n_features(self):
        """Dimensions of the track vectors it takes (the projection's input, else ``n_dims``)."""
        return self.n_dims if self.projection is None else self.projection.n_features_in_

    def __repr__(self):
        projected = "" if self.projection is None else f" (projected from {self.n_features})"
        return f"TrackIndex({len(self)} tracks, {self.n_dims} dims{projected}, method={self.method!r})"

    # -- search --------------------------------------------------------------------------------

    def _exact_scores(self, v):
        scores = np.empty(len(self), dtype=np.float32)
        for a in range(0, len(self), _CHUNK_ROWS):
            b = min(a + _CHUNK_ROWS, len(self))
            np.dot(self.vectors[a:b], v, out=scores[a:b])
        return scores

    def _candidates(self, v, n):
        """Rows of candidates for the ``n`` best matches of ``v`` (at least ``n``, any order).

        Exact: the ``n`` best. Graph: ``4 n`` (at least 40) approximate best, to be
        re-scored exactly, which makes up for the graph's 8-bit copy of the vectors.
        """
        if n >= len(self):
            return np.arange(len(self))
        if self._ann is None:
            scores = self._exact_scores(v)
            return np.argpartition(-scores, n - 1)[:n]
        m = min(len(self), max(_OVERSAMPLE * n, _MIN_CANDIDATES))
        self._ann.expansion_search = max(_EXPANSION_SEARCH, m)
        matches = self._ann.search(v, m, threads=1)
        rows = np.fromiter((self._row_of_label[int(lab)] for lab in matches.keys), dtype=np.int64,
                           count=len(matches.keys))
        return rows

    def _search(self, v, k, exclude):
        """Top ``k`` rows for unit vector ``v``, leaving out the rows in ``exclude``."""
        n = min(len(self), k + len(exclude))
        rows = self._candidates(v, n)
        if exclude:
            rows = rows[~np.isin(rows, np.fromiter(exclude, dtype=np.int64, count=len(exclude)))]
        scores = np.clip(self.vectors[rows] @ v, -1.0, 1.0)  # rounding can pass 1
        order = np.lexsort((rows, -scores))[:k]  # by score, ties by position
        return rows[order], scores[order].astype(np.float32)

    def query(self, query, k=10, *, groups=None, group=None):
        """The ``k`` tracks most similar to a key or a vector, best first.

        Parameters
        ----------
        query : str or array-like of shape (n_features,)
            A key of the index (the track itself is left out of its
            neighbours) or a track vector (it need not be normalised; the
            index's projection, if any, is applied to it).
        k : int, default=10
            Neighbours to return (fewer if the index has fewer tracks).
        groups : mapping of str to hashable or None, default=None
            A group label per key (an artist, an album). Tracks of the
            query's group are left out; tracks without a label are kept.
        group : hashable or None, default=None
            The query's group; for a key query it defaults to
            ``groups[query]``.

        Returns
        -------
        keys : list of str
            The neighbours, most similar first.
        scores : ndarray of shape (len(keys),), dtype float32
            Their cosine similarities to the query.

        Raises
        ------
        KeyError
            If ``query`` is a str that is not a key of the index.
        TypeError, ValueError
            If the vector has the wrong shape, is not finite or is all zeros,
            or ``k`` is not a positive integer.
        """
        k = _check_k(k)
        if groups is not None and not isinstance(groups, Mapping):
            raise TypeError(f"`groups` must be a mapping from key to label or None; got {type(groups).__name__}.")
        exclude = set()
        if isinstance(query, str):
            if query not in self._row:
                raise KeyError(f"{query!r} is not a key of this index ({len(self)} tracks).")
            row = self._row[query]
            v = self.vectors[row]
            exclude.add(row)
            if group is None and groups is not None:
                group = groups.get(query)
        else:
            v = _query_vector(query, self.n_features, self.projection)
        if group is not None and groups is not None:
            exclude.update(self._row[key] for key, g in groups.items() if g == group and key in self._row)
        if len(self) == 0:
            return [], np.empty(0, dtype=np.float32)
        rows, scores = self._search(v, k, exclude)
        return [self.keys[r] for r in rows], scores

    def query_audio(self, path_or_array, k=10, *, model=None, sr=None, groups=None, group=None):
        """The ``k`` tracks most similar to a new recording (features extracted on the fly).

        The recording's features are extracted with ``model`` (:func:`msk.extract`)
        and summarised as the index's tracks were (``source["summary"]``).

        Parameters
        ----------
        path_or_array : str, os.PathLike or array-like of shape (n_samples,)
            An audio file, or a mono waveform with its rate ``sr``.
        k : int, default=10
            Neighbours to return.
        model : MultiscaleFeatures, str, os.PathLike or None, default=None
            The model the index's vectors come from. None uses the shipped
            model with the representation recorded in the index, and checks
            that it is the one (by its fingerprint) when the index knows it.
        sr : int or None, default=None
            Rate of a waveform (see :func:`msk.extract`).
        groups, group : see :meth:`query`.

        Returns
        -------
        keys : list of str
        scores : ndarray of shape (len(keys),), dtype float32
        """
        from .batch import extract

        model = self._model(model)
        features = extract(path_or_array, model=model, sr=sr)
        return self.query(_summarise(features, self.source.get("summary", "mean")), k,
                          groups=groups, group=group)

    def _model(self, model):
        from .batch import default_model, shipped_model_with
        from . import MultiscaleFeatures
        from .store import model_fingerprint

        expected = self.source.get("model") or {}
        if model is None:
            model = shipped_model_with(expected["fingerprint"]) if expected.get("fingerprint") else None
            if model is None:
                model = default_model()
        elif isinstance(model, (str, os.PathLike)):
            model = MultiscaleFeatures.load(model)
        elif not isinstance(model, MultiscaleFeatures):
            raise TypeError(
                "`model` must be a fitted MultiscaleFeatures, the path of a saved model, or None "
                f"(the shipped model); got {type(model).__name__}."
            )
        if expected.get("fingerprint") and model_fingerprint(model)["fingerprint"] != expected["fingerprint"]:
            raise ValueError(
                "the index's tracks were extracted with another model than the one given (their "
                "fingerprints differ); pass the store's model (`model=` or `--model`)."
            )
        return model

    # -- updates -------------------------------------------------------------------------------

    def _resolve(self, method):
        if method == "exact":
            return "exact"
        Index = _usearch()
        if method == "ann":
            if Index is None:
                raise ImportError(
                    "method='ann' needs USearch: pip install 'msk[search]' (or usearch)."
                )
            return "ann"
        if len(self) * self.n_dims <= self.max_exact:
            return "exact"
        if Index is None:
            warnings.warn(
                f"{len(self)} tracks are searched exactly (each query reads all {len(self)} vectors) "
                "because USearch is not installed; pip install 'msk[search]' for fast approximate "
                "search.",
                UserWarning,
                stacklevel=3,
            )
            return "exact"
        return "ann"

    def _build_ann(self):
        Index = _usearch()
        ann = Index(ndim=self.n_dims, metric="ip", dtype=_GRAPH_DTYPE, connectivity=_CONNECTIVITY,
                    expansion_add=_EXPANSION_ADD, expansion_search=_EXPANSION_SEARCH)
        if len(self):
            ann.add(self._labels.astype(np.uint64), self.vectors, threads=1)
        return ann

    def _set_method(self, method):
        self._requested = method
        method = self._resolve(method)
        if method == "ann" and self._ann is None:
            self._ann = self._build_ann()
        elif method == "exact":
            self._ann = None
        self.method = method

    def update(self, keys, vectors, *, method=None):
        """Bring the index up to date with a new set of tracks, without rebuilding it.

        Keys no longer given are removed, new keys are added, and keys whose
        vector changed are removed and added again; the rest of the graph is
        kept.

        Parameters
        ----------
        keys : sequence of str
            All the tracks that the index must hold now.
        vectors : array-like of shape (len(keys), n_features)
            Their track vectors (as the index was built from; the index's
            projection, if any, is applied to them).
        method : {"auto", "exact", "ann"} or None, default=None
            As in :func:`build_index`; None keeps the method the index was
            built with. "auto" is decided again for the new size.

        Returns
        -------
        summary : dict
            ``{"added", "removed", "changed", "unchanged"}`` counts.
        """
        method = self._requested if method is None else _check_method(method)
        keys = _check_keys(keys)
        if np.ndim(vectors) == 2 and np.shape(vectors)[1] != self.n_features:
            raise ValueError(
                f"`vectors` have {np.shape(vectors)[1]} dimensions; this index takes {self.n_features}. "
                "Build a new index for vectors of another model or summary."
            )
        X = _normalised(vectors, keys, projection=self.projection)
        new_row = {k: i for i, k in enumerate(keys)}
        keep, changed = [], 0
        for i, k in enumerate(self.keys):
            j = new_row.get(k)
            if j is not None and np.array_equal(self.vectors[i], X[j]):
                keep.append(i)
            elif j is not None:
                changed += 1
        keep = np.asarray(keep, dtype=np.int64)
        kept = {self.keys[i] for i in keep}
        gone = np.setdiff1d(np.arange(len(self)), keep)
        add = [k for k in keys if k not in kept]
        add_labels = np.arange(self._next_label, self._next_label + len(add), dtype=np.uint64)
        add_vectors = X[[new_row[k] for k in add]] if add else np.empty((0, self.n_dims), np.float32)
        if self._ann is not None and len(gone):
            self._ann.remove(self._labels[gone].astype(np.uint64))
        if self._ann is not None and add:
            self._ann.add(add_labels, add_vectors, threads=1)
        summary = {"added": len(add) - changed, "removed": len(gone) - changed, "changed": changed,
                   "unchanged": len(keep)}
        self.keys = [self.keys[i] for i in keep] + add
        self.vectors = np.ascontiguousarray(np.vstack([self.vectors[keep], add_vectors]))
        self.vectors.flags.writeable = False
        self._labels = np.concatenate([self._labels[keep], add_labels]).astype(np.uint64)
        self._next_label += len(add)
        self._row = {k: i for i, k in enumerate(self.keys)}
        self._row_of_label = {int(lab): i for i, lab in enumerate(self._labels)}
        self._set_method(method)
        return summary

    # -- files ---------------------------------------------------------------------------------

    def save(self, path):
        """Write the index to ``path`` (an ``.npz`` file; see the module notes).

        The file is written to a temporary name and moved into place, so an
        interrupted save leaves the previous file intact.
        """
        ann = None
        if self._ann is not None:
            ann = np.frombuffer(bytes(self._ann.save()), dtype=np.uint8)
        projection = None if self.projection is None else self.projection.arrays()
        header = {
            "format": _FORMAT, "format_version": _FORMAT_VERSION, "msk_version": msk_version(),
            "projection": None if projection is None else projection[0],
            "metric": _METRIC, "n_items": len(self), "n_dims": self.n_dims, "method": self.method,
            "keys": self.keys, "next_label": self._next_label, "source": self.source,
            "max_exact": self.max_exact, "requested_method": self._requested,
            "vectors_sha256": _digest(self.keys, self.vectors),
            "ann": None if ann is None else {
                "library": "usearch", "version": _usearch_version(), "metric": "ip", "dtype": _GRAPH_DTYPE,
                "connectivity": _CONNECTIVITY, "expansion_add": _EXPANSION_ADD,
                "sha256": hashlib.sha256(ann.tobytes()).hexdigest(),
            },
        }
        arrays = {
            "header": np.frombuffer(json.dumps(header, sort_keys=True, ensure_ascii=False).encode("utf-8"),
                                    dtype=np.uint8),
            "vectors": self.vectors, "labels": self._labels.astype(np.uint64),
        }
        if ann is not None:
            arrays["ann"] = ann
        if projection is not None:
            arrays.update({f"projection_{name}": a for name, a in projection[1].items()})
        with atomic_write(path) as f:
            write_npz(f, arrays)

    @classmethod
    def load(cls, path):
        """Read an index written by :meth:`save`, verifying its checksums.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        index : TrackIndex

        Raises
        ------
        FileNotFoundError
            If there is no file at ``path``.
        ValueError
            If the file is not an msk track index, has another format
            version, or fails its checksums (the message names the file).
        ImportError
            If the index is approximate and USearch is not installed.
        """
        path = os.fspath(path)
        header, data = read_npz(path, "track index")
        try:
            if header.get("format") != _FORMAT:
                raise ValueError("it is not an msk track index")
            if header.get("format_version") not in _READS:
                raise ValueError(
                    f"it has track index format version {header.get('format_version')!r}; this msk "
                    f"reads versions {', '.join(map(str, _READS))}. Rebuild it with `msk index`"
                )
            vectors = np.ascontiguousarray(data["vectors"], dtype=np.float32)
            labels = np.asarray(data["labels"], dtype=np.uint64)
            ann_bytes = data.get("ann")
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{path!r} is not a readable msk track index: {exc}.") from None
        try:
            keys = _check_keys(header["keys"])
            projection = None
            if header.get("projection") is not None:
                projection = TrackProjection.from_arrays(
                    header["projection"],
                    {name[len("projection_"):]: a for name, a in data.items() if name.startswith("projection_")},
                    "its projection")
                if projection.n_components_ != int(header["n_dims"]):
                    raise ValueError(f"its projection gives {projection.n_components_} dimensions, "
                                     f"its vectors have {header['n_dims']}")
            n, d = int(header["n_items"]), int(header["n_dims"])
            if vectors.shape != (n, d) or labels.shape != (n,) or len(keys) != n:
                raise ValueError(f"arrays of shapes {vectors.shape}, {labels.shape} for {n} x {d}")
            if _digest(keys, vectors) != header["vectors_sha256"]:
                raise ValueError("the vectors do not match their checksum")
            ann = None
            if header.get("ann") is not None:
                if ann_bytes is None or hashlib.sha256(ann_bytes.tobytes()).hexdigest() != header["ann"]["sha256"]:
                    raise ValueError("the graph does not match its checksum")
                Index = _usearch()
                if Index is None:
                    raise ImportError(
                        f"{path!r} is an approximate index, which needs USearch: "
                        "pip install 'msk[search]' (or usearch)."
                    )
                ann = Index.restore(ann_bytes.tobytes())
                if ann is None or ann.ndim != d or len(ann) != n:
                    raise ValueError("its graph does not hold the stored vectors")
            index = cls(keys, vectors, labels, method=header["method"], ann=ann,
                        next_label=int(header["next_label"]), source=header.get("source"),
                        max_exact=int(header["max_exact"]),
                        requested=_check_method(header["requested_method"]), projection=projection)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path!r} is a corrupt msk track index: {exc}.") from None
        return index


def _usearch_version():
    try:
        from importlib.metadata import version

        return version("usearch")
    except Exception:  # pragma: no cover
        return None


def _summarise(features, summary):
    """One track vector from a clip's pooled features (rows are pooling windows), as the store makes it."""
    from .multiscale import SUMMARIES, track_vector

    if summary not in SUMMARIES:
        raise ValueError(f"the index's track summary {summary!r} is not one msk computes "
                         f"({', '.join(map(repr, SUMMARIES))}).")
    return track_vector(features, summary)


def build_index(keys, vectors, *, method="auto", max_exact=MAX_EXACT, source=None, projection=None):
    """Build a :class:`TrackIndex` over track vectors.

    Parameters
    ----------
    keys : sequence of str
        One unique key per track.
    vectors : array-like of shape (len(keys), n_dims)
        The track vectors (normalised to unit L2 norm by the index; all-zero
        or non-finite rows are refused).
    method : {"auto", "exact", "ann"}, default="auto"
        "exact": a matrix product per query; "ann": an HNSW graph (needs
        USearch); "auto": exact up to ``max_exact`` values, the graph above.
    max_exact : int, default=2**23
        Largest ``n_items * n_dims`` searched exactly by ``method="auto"``.
    source : dict or None, default=None
        Provenance saved with the index: ``{"model": model_info, "summary":
        "mean"}`` (what :func:`index_store` records) lets
        :meth:`TrackIndex.query_audio` check the model.
    projection : TrackProjection or None, default=None
        A learned map applied to the vectors (and to vector queries) before
        they are normalised; None compares the vectors themselves.

    Returns
    -------
    index : TrackIndex

    Examples
    --------
    >>> import numpy as np
    >>> from msk.search import build_index
    >>> index = build_index(["a", "b", "c"], np.eye(3, dtype=np.float32) + 0.1)
    >>> index.method, len(index)
    ('exact', 3)
    >>> keys, scores = index.query([1.0, 0.2, 0.0], k=2)
    >>> keys, [round(float(s), 3) for s in scores]
    (['a', 'b'], [0.99, 0.283])
    """
    _check_method(method)
    if isinstance(max_exact, bool) or not isinstance(max_exact, numbers.Integral) or max_exact < 0:
        raise ValueError(f"`max_exact` must be a non-negative integer; got {max_exact!r}.")
    if source is not None and not isinstance(source, Mapping):
        raise TypeError(f"`source` must be a dict or None; got {type(source).__name__}.")
    if projection is not None and not isinstance(projection, TrackProjection):
        raise TypeError(f"`projection` must be a TrackProjection or None; got {type(projection).__name__}.")
    keys = _check_keys(keys)
    X = _normalised(vectors, keys, projection=projection)
    try:
        source = json.loads(json.dumps(dict(source or {})))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`source` must be JSON-serialisable: {exc}") from None
    index = TrackIndex(keys, X, np.arange(len(keys), dtype=np.uint64), method="exact",
                       next_label=len(keys), source=source, max_exact=int(max_exact), projection=projection)
    index._set_method(method)
    return index


def index_path(store_path):
    """Where :func:`index_store` keeps the index of a store: ``<store>.index.npz`` beside it."""
    return os.path.abspath(os.fspath(store_path)).rstrip(os.sep) + ".index.npz"


def _store_tracks(store):
    """(keys, matrix, summary) of a store's track vectors."""
    if hasattr(store, "tracks"):
        keys, X = store.tracks()
        return list(keys), np.asarray(X, dtype=np.float32), getattr(store, "summary", "mean")
    keys = store.keys()
    n_dims = store.shape(keys[0])[1] if keys else 0
    X = np.empty((len(keys), n_dims), dtype=np.float32)
    for i, key in enumerate(keys):
        X[i] = _summarise(store.get(key), "mean")
    return keys, X, "mean"


def _resolve_projection(projection, fingerprint, summary):
    """The projection ``index_store`` applies: "auto" -> the shipped one for this model, if any."""
    if projection is None or isinstance(projection, TrackProjection):
        return projection
    if isinstance(projection, str) and projection == "auto":
        return shipped_projection(fingerprint, summary)
    if isinstance(projection, (str, os.PathLike)):
        return TrackProjection.load(projection)
    raise TypeError(
        "`projection` must be 'auto', None, a TrackProjection or the path of a saved one; "
        f"got {type(projection).__name__}."
    )


def _projection_digest(projection):
    return None if projection is None else projection.arrays()[0]["sha256"]


def index_store(store_path, *, path=None, method="auto", projection="auto"):
    """Build or update the track index of a feature store and save it beside the store.

    An existing index file at ``path`` made from a store of the same model,
    summary and projection is updated incrementally
    (:meth:`TrackIndex.update`); otherwise a new one is built.

    Parameters
    ----------
    store_path : str or os.PathLike
        A feature store (:class:`msk.store.FeatureStore`).
    path : str, os.PathLike or None, default=None
        The index file; None means :func:`index_path` of the store.
    method : {"auto", "exact", "ann"}, default="auto"
        As in :func:`build_index`.
    projection : "auto", None, TrackProjection, str or os.PathLike, default="auto"
        "auto": the projection shipped for the store's model and summary
        (:func:`msk.projection.shipped_projection`; msk's default model with
        the "mean" summary has one), else none. None: plain cosine similarity
        of the track vectors. A projection, or the path of a saved one, is
        used as given (its input dimensions must be the store's).

    Returns
    -------
    index : TrackIndex
    summary : dict
        ``{"path", "n_items", "method", "projection", "built", "added",
        "removed", "changed", "unchanged"}``; ``projection`` is the
        projection's checksum or None.
    """
    from .store import FeatureStore

    _check_method(method)
    store = FeatureStore(store_path, mode="r")
    path = index_path(store_path) if path is None else os.fspath(path)
    keys, X, summary_name = _store_tracks(store)
    if not keys:
        raise ValueError(f"feature store {store.path!r} holds no tracks yet: nothing to index.")
    source = {"model": store.model_info, "summary": summary_name}
    fingerprint = (store.model_info or {}).get("fingerprint")
    projection = _resolve_projection(projection, fingerprint, summary_name)
    digest = _projection_digest(projection)
    old = None
    if os.path.exists(path):
        old = TrackIndex.load(path)
        same_model = (old.source.get("model") or {}).get("fingerprint") == fingerprint
        if (not same_model or old.source.get("summary") != summary_name or old.n_features != X.shape[1]
                or _projection_digest(old.projection) != digest):
            old = None  # another model, summary or projection: start again
    if old is None:
        index = build_index(keys, X, method=method, source=source, projection=projection)
        counts = {"built": True, "added": len(keys), "removed": 0, "changed": 0, "unchanged": 0}
    else:
        counts = {"built": False, **old.update(keys, X, method=method)}
        old.source = json.loads(json.dumps(source))
        index = old
    index.save(path)
    return index, {"path": path, "n_items": len(index), "method": index.method, "projection": digest, **counts}
