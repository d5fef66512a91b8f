"""The feature store of msk 0.1 (format version 1), kept verbatim to write old stores in tests.

msk >= 0.2 reads such stores only through ``msk.store.migrate``. Original docstring:

On-disk feature store: one array of pooled features per clip, crash-safe and resumable.

A :class:`FeatureStore` is a directory in the `Zarr version 3
<https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html>`_ format, so any
Zarr reader (zarr-python >= 3, xarray, zarr.js, tensorstore) reads it without msk::

    features.zarr/
        zarr.json                 root group; attributes["msk"] = format, version, model
        clips/zarr.json           group of the entries
        clips/<name>/zarr.json    one array per clip: shape (n_pools, n_features),
                                  attributes {"key": ..., "meta": {...}}
        clips/<name>/c/0/0        its one chunk: raw little-endian values, C order
        _state/zarr.json          group holding msk's bookkeeping:
        _state/manifest.jsonl     append-only log, one JSON object per line
        _state/tmp/               entries being written

(Zarr readers list ``clips`` and ``_state`` as the root's groups; listing the
members of ``_state`` itself warns that ``manifest.jsonl`` is not a Zarr node.)

Why Zarr, written by msk itself
-------------------------------
A directory per entry makes every write atomic without a journal: an entry is
written completely in a temporary directory, its files are flushed to disk, and the
directory is renamed from ``_state/tmp/`` into ``clips/`` in one ``os.rename``. A process killed at
any moment leaves either no entry or a complete one, and concurrent writers
(threads or processes) never touch the same file. An HDF5 file, by contrast, is
one file that a crash in the middle of a write can leave unreadable, and h5py
serialises all threads on one lock. The format is simple enough (a JSON header
and one raw chunk, no compression) that msk writes and reads it with the
standard library and NumPy: zarr-python is not a dependency (it is the test
oracle), and writing an entry costs a few hundred microseconds instead of the
~3 ms of zarr-python's asynchronous machinery, which would be a third of the
extraction time of a 30 s clip. Features are not compressed: pooled float32
codes compress by a few percent only.

Keys and entry names
--------------------
A key is any non-empty string (a clip id, a path). Its entry name under
``clips/`` is the key percent-encoded as UTF-8, keeping ``A-Z a-z 0-9 - _ .``
and encoding everything else (``/`` becomes ``%2F``, ``%`` becomes ``%25``, a
space ``%20``); a leading ``.`` or ``_`` is encoded too, so that no name is
hidden, ``.``/``..`` or reserved by Zarr (``__``). A name longer than 200
characters is cut to 160 and followed by ``~`` and 32 hex digits of the key's
SHA-256 (``~`` never occurs otherwise, since it is encoded as ``%7E``). The
exact key is stored in the entry's attributes and checked when it is read, so
two keys that map to one name on a case-insensitive file system are detected
instead of mixed up. :func:`entry_name` gives the name of a key.

Manifest and status
-------------------
``_state/manifest.jsonl`` records every outcome, one JSON object per line, written
with a single ``write`` on a file opened in append mode and then ``fsync``-ed:
``{"key": ..., "status": "done", "shape": [n, f], "dtype": "float32", "time": ...}``
or ``{"key": ..., "status": "failed", "reason": "...", "time": ...}``. The
directory is the truth for what is done: a key is done when its entry exists
(entries are complete by construction). A key is failed when its last manifest
record says so and it is not done. On opening for writing, entries that a crash
left without a manifest record are recorded, a torn last line is cut off, and
the temporary directories of dead writers on this host are removed.

The model
---------
A store records the model its features came from (:func:`model_fingerprint`:
the class, every parameter, the output width and a SHA-256 of the fitted
arrays). Opening an existing store with another model's ``model_info`` raises
a ``ValueError`` naming the store, so that features of two models are never
mixed in one store.
"""

import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import socket
import threading
import uuid
from collections.abc import Mapping

import numpy as np

__all__ = ["FeatureStore", "entry_name", "model_fingerprint"]

_FORMAT = "msk.FeatureStore"
_FORMAT_VERSION = 1
_ENTRIES = "clips"
_STATE = "_state"
_MANIFEST = os.path.join(_STATE, "manifest.jsonl")
_TMP = os.path.join(_STATE, "tmp")
_CHUNK = ("c", "0", "0")
_MAX_NAME = 200
_CUT_NAME = 160
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}
_MODES = ("r", "a", "w")


def _msk_version():
    return "0.1.0"


# =====================================================================================
# Key escaping
# =====================================================================================


def _check_key(key):
    if not isinstance(key, str):
        raise TypeError(f"a store key must be a str; got {type(key).__name__} ({key!r}).")
    if not key:
        raise ValueError("a store key must be a non-empty string; got ''.")
    return key


def entry_name(key):
    """The directory name of ``key``'s entry under ``clips/`` (see the module notes).

    Parameters
    ----------
    key : str
        A non-empty key.

    Returns
    -------
    name : str
        The percent-encoded key, cut and suffixed with a hash when longer than
        200 characters.

    Examples
    --------
    >>> from msk.store import entry_name
    >>> entry_name("music/a b.mp3")
    'music%2Fa%20b.mp3'
    >>> entry_name(".hidden")
    '%2Ehidden'
    """
    _check_key(key)
    out = []
    for i, byte in enumerate(key.encode("utf-8")):
        if byte in _SAFE and not (i == 0 and byte in b"._"):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    name = "".join(out)
    if len(name) > _MAX_NAME:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
        name = f"{name[:_CUT_NAME]}~{digest}"
    return name


def _unescape(name):
    """The key of an entry name, or None if the name was cut (the key is in its attributes)."""
    if "~" in name:
        return None
    try:
        return re.sub(
            rb"%([0-9A-F]{2})", lambda m: bytes([int(m[1], 16)]), name.encode("ascii")
        ).decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return None


# =====================================================================================
# Model fingerprints
# =====================================================================================


def _jsonable(value):
    """A JSON-compatible copy of a parameter value (tuples become lists)."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return None  # e.g. a RandomState object: not part of what the model computes


def model_fingerprint(model):
    """Identify a fitted model: class, parameters, output width and a hash of its arrays.

    Two models give the same fingerprint exactly when they compute the same
    features: a model and its copy saved and loaded again agree; a model
    refitted with another seed or on other clips does not.

    Parameters
    ----------
    model : MultiscaleFeatures
        A fitted model.

    Returns
    -------
    info : dict
        ``{"class", "params", "n_features", "fingerprint"}``, JSON-serialisable;
        ``fingerprint`` is the SHA-256 (hex) of the canonical JSON of the rest
        and of the bytes of every fitted array.

    Examples
    --------
    >>> import msk
    >>> model = msk.MultiscaleFeatures(levels=2, n_means=8, n_samples=500, random_state=0)
    >>> model = model.fit([msk.example_audio()])
    >>> info = msk.store.model_fingerprint(model)
    >>> info["n_features"], len(info["fingerprint"])
    (16, 64)
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, "pca_")
    params = {k: _jsonable(v) for k, v in sorted(model.get_params().items())}
    info = {
        "class": f"msk.{type(model).__name__}",
        "params": params,
        "n_features": int(model.n_features_out_),
    }
    h = hashlib.sha256(json.dumps(info, sort_keys=True).encode("utf-8"))
    arrays = []
    for pca in model.pca_:
        arrays += [pca.mean_, pca.whitening_]
    for km in model.kmeans_ or ():
        arrays.append(km.cluster_centers_)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode("ascii"))
        h.update(a.tobytes())
    info["fingerprint"] = h.hexdigest()
    return info


def _as_model_info(model_info):
    if model_info is None:
        return None
    if hasattr(model_info, "get_params") and hasattr(model_info, "transform"):
        return model_fingerprint(model_info)
    if not isinstance(model_info, Mapping):
        raise TypeError(
            "`model_info` must be a fitted MultiscaleFeatures, a mapping (e.g. from "
            f"msk.store.model_fingerprint) or None; got {type(model_info).__name__}."
        )
    try:
        return json.loads(json.dumps(dict(model_info), sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`model_info` must be JSON-serialisable: {exc}") from None


def _same_model(a, b):
    if "fingerprint" in a and "fingerprint" in b:
        return a["fingerprint"] == b["fingerprint"]
    return a == b


def _describe(info):
    if "fingerprint" in info:
        params = info.get("params", {})
        rep = params.get("representation")
        k = params.get("n_means")
        what = f"{rep}, K={k}, " if rep is not None else ""
        return f"{info.get('class', 'model')} ({what}{info.get('n_features')} features, fingerprint {info['fingerprint'][:12]})"
    return json.dumps(info, sort_keys=True)[:200]


# =====================================================================================
# Files
# =====================================================================================


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _write_file(path, data, *, durable):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data).cast("B")
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path):
    with contextlib.suppress(OSError):  # some file systems refuse to fsync directories
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _dump(obj):
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _group_json(attributes):
    return _dump({"zarr_format": 3, "node_type": "group", "attributes": attributes})


def _array_json(shape, dtype, attributes):
    return _dump({
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shape),
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(shape)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0.0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "dimension_names": ["pool", "feature"],
        "attributes": attributes,
    })


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# =====================================================================================
# The store
# =====================================================================================


class FeatureStore:
    """A directory of per-clip feature arrays in Zarr v3 format, with a manifest.

    Each entry is one clip's features, an array of shape
    ``(n_pools, n_features)`` stored under a string key (a clip id or a path),
    with a small JSON-serialisable metadata dict. Writes are atomic (an entry is
    either absent or complete, whatever kills the writer), outcomes are logged
    in an append-only manifest that survives crashes, failures are kept with
    their reasons, and the store refuses features of a model other than the one
    it was made with. See the module notes for the layout.

    Parameters
    ----------
    path : str or os.PathLike
        The store directory (conventionally ending in ``.zarr``).
    mode : {"a", "r", "w"}, default="a"
        "a": open for reading and writing, creating the store if it does not
        exist; "r": read only (the store must exist); "w": create, deleting an
        existing store at ``path`` first (only an msk store or an empty
        directory is ever deleted).
    model_info : MultiscaleFeatures, mapping or None, default=None
        The model the features come from (a fitted model, whose
        :func:`model_fingerprint` is taken, or such a dict). A new store
        records it; an existing store made with another model raises
        ``ValueError``. None skips the check (for reading).
    durable : bool, default=True
        Flush every entry's files and its manifest line to disk (``fsync``)
        before :meth:`put` returns, so that after a power failure an entry is
        complete or absent (not only after a killed process, which needs no
        flushing). It costs a few milliseconds of waiting per entry (not CPU
        time); False skips it.

    Attributes
    ----------
    path : str
        The store directory.
    mode : str
        The mode it was opened in.
    model_info : dict or None
        The model recorded in the store.

    Raises
    ------
    FileNotFoundError
        If ``mode="r"`` and there is no store at ``path``.
    ValueError
        If ``path`` is not an msk feature store (or, for "w", is a non-empty
        directory that is not one), has another format version, or was made
        with another model than ``model_info``.

    Notes
    -----
    Any number of threads may write to one ``FeatureStore`` object, and
    several processes on one machine may write to one store directory (each
    entry and each manifest line is written by one system call). A process
    sees entries added by others through :meth:`done`, ``in`` and
    :meth:`get` at once, and in :meth:`keys` after :meth:`refresh`. On a
    network file system, let one process write (as
    :func:`msk.extract_many` does with a Dask cluster).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from msk.store import FeatureStore
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "features.zarr")
    >>> store = FeatureStore(path, mode="w")
    >>> store.put("clip-1", np.ones((3, 4), np.float32), meta={"sr": 16000})
    >>> store.fail("clip-2", "could not be decoded")
    >>> len(store), "clip-1" in store, store.failures()
    (1, True, {'clip-2': 'could not be decoded'})
    >>> X, clip_index = store.concatenated(["clip-1"])
    >>> X.shape, clip_index.tolist()
    ((3, 4), [0, 0, 0])
    >>> tmp.cleanup()
    """

    def __init__(self, path, *, mode="a", model_info=None, durable=True):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"`path` must be a str or os.PathLike; got {type(path).__name__}.")
        if mode not in _MODES:
            raise ValueError(f"`mode` must be one of 'a', 'r' or 'w'; got {mode!r}.")
        self.path = os.path.abspath(os.fspath(path))
        self.mode = mode
        self.durable = bool(durable)
        self._lock = threading.Lock()
        self._names = {}  # key -> entry name, done entries
        self._shapes = {}  # key -> (n_pools, n_features) when known
        self._failed = {}  # key -> reason
        self._n_features = None
        info = _as_model_info(model_info)
        exists = os.path.exists(os.path.join(self.path, "zarr.json"))
        if mode == "w":
            self._remove_existing()
            exists = False
        if not exists:
            if mode == "r":
                raise FileNotFoundError(f"{self.path!r}: no feature store here.")
            if os.path.isdir(self.path) and os.listdir(self.path):
                raise ValueError(
                    f"{self.path!r} is a non-empty directory that is not an msk feature store; "
                    "give a new or empty directory."
                )
            if os.path.exists(self.path) and not os.path.isdir(self.path):
                raise ValueError(f"{self.path!r} exists and is not a directory.")
            self._create(info)
        header = self._read_header()
        self.model_info = header.get("model")
        self._scan()
        if info is not None:
            self._check_model(info)
        if mode != "r":
            self._clean_tmp()

    # -- opening -----------------------------------------------------------------------------

    def _remove_existing(self):
        if not os.path.exists(self.path):
            return
        if not os.path.isdir(self.path):
            raise ValueError(f"{self.path!r} exists and is not a directory; not overwriting it.")
        if os.listdir(self.path):
            try:
                self._read_header()
            except ValueError:
                raise ValueError(
                    f"{self.path!r} is a non-empty directory that is not an msk feature store; "
                    "mode='w' refuses to delete it."
                ) from None
        shutil.rmtree(self.path)

    def _create(self, info):
        os.makedirs(os.path.join(self.path, _ENTRIES), exist_ok=True)
        os.makedirs(os.path.join(self.path, _TMP), exist_ok=True)
        for group in (_ENTRIES, _STATE, _TMP):
            _write_file(os.path.join(self.path, group, "zarr.json"), _group_json({}), durable=self.durable)
        header = {
            "format": _FORMAT, "format_version": _FORMAT_VERSION, "msk_version": _msk_version(),
            "created": _now(), "model": info,
        }
        self._write_header(header)
        with open(os.path.join(self.path, _MANIFEST), "ab"):
            pass

    def _write_header(self, header):
        tmp = os.path.join(self.path, f".zarr.json.{uuid.uuid4().hex}")
        _write_file(tmp, _group_json({"msk": header}), durable=self.durable)
        os.replace(tmp, os.path.join(self.path, "zarr.json"))
        if self.durable:
            _fsync_dir(self.path)

    def _read_header(self):
        root = os.path.join(self.path, "zarr.json")
        try:
            with open(root, "rb") as f:
                header = json.loads(f.read().decode("utf-8"))["attributes"]["msk"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{self.path!r} is not an msk feature store ({exc}).") from None
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise ValueError(f"{self.path!r} is not an msk feature store.")
        if header.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"{self.path!r} has feature store format version {header.get('format_version')!r}; "
                f"this msk ({_msk_version()}) reads version {_FORMAT_VERSION}."
            )
        if not os.path.isdir(os.path.join(self.path, _ENTRIES)):
            raise ValueError(f"{self.path!r} is an msk feature store without its '{_ENTRIES}' directory.")
        return header

    def check_model(self, model_info):
        """Record the store's model if it has none, else check that ``model_info`` is it.

        Parameters
        ----------
        model_info : MultiscaleFeatures or mapping
            A fitted model or its :func:`model_fingerprint`.

        Raises
        ------
        ValueError
            If the store was made with another model (the message names the
            store and both models), or holds entries of an unrecorded model.
        """
        info = _as_model_info(model_info)
        if info is None:
            raise TypeError("`model_info` must be a fitted MultiscaleFeatures or a mapping; got None.")
        self._check_model(info)

    def _check_model(self, info):
        recorded = self.model_info
        if recorded is None:
            if self._names:
                raise ValueError(
                    f"feature store {self.path!r} holds {len(self._names)} entries of an unrecorded "
                    f"model; refusing to add features of {_describe(info)}. Use a new store."
                )
            if self.mode == "r":
                return
            header = self._read_header()
            header["model"] = info
            self._write_header(header)
            self.model_info = info
        elif not _same_model(recorded, info):
            raise ValueError(
                f"feature store {self.path!r} holds features of {_describe(recorded)}; refusing to "
                f"mix in features of {_describe(info)}. Use another store, or mode='w' to replace it."
            )
        if "n_features" in info:
            self._n_features = int(info["n_features"])

    def _read_manifest(self):
        """Manifest records, and the byte length of its complete lines."""
        path = os.path.join(self.path, _MANIFEST)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return [], 0
        records, good = [], 0
        lines = data.split(b"\n")
        for i, line in enumerate(lines):
            last = i == len(lines) - 1
            if last:  # the text after the final newline: empty, or a line torn by a crash
                break
            if line.strip():
                try:
                    rec = json.loads(line.decode("utf-8"))
                    if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
                        raise ValueError("not a record")
                except ValueError as exc:
                    raise ValueError(
                        f"feature store {self.path!r}: line {i + 1} of {_MANIFEST} is corrupt ({exc})."
                    ) from None
                records.append(rec)
            good += len(line) + 1
        return records, good

    def _scan(self):
        """Build the in-memory index from the entries on disk and the manifest."""
        records, good = self._read_manifest()
        last = {}
        for rec in records:
            last[rec["key"]] = rec
        by_name = {}
        for key in last:
            with contextlib.suppress(ValueError, TypeError):
                by_name[entry_name(key)] = key
        names, shapes, failed, recovered = {}, {}, {}, []
        entries = os.path.join(self.path, _ENTRIES)
        with os.scandir(entries) as it:
            for de in it:
                if not de.is_dir():
                    continue
                key = by_name.get(de.name)
                if key is None:
                    key = _unescape(de.name)
                    if key is None or entry_name(key) != de.name:
                        key = self._read_entry_json(de.name)["attributes"]["key"]
                    recovered.append(key)
                names[key] = de.name
                rec = last.get(key)
                if rec is not None and rec.get("status") == "done" and "shape" in rec:
                    shapes[key] = tuple(rec["shape"])
        for key, rec in last.items():
            if key not in names and rec.get("status") == "failed":
                failed[key] = str(rec.get("reason", ""))
        with self._lock:
            self._names, self._shapes, self._failed = names, shapes, failed
        if self.mode != "r":
            self._repair_manifest(good, recovered)

    def _repair_manifest(self, good, recovered):
        path = os.path.join(self.path, _MANIFEST)
        with contextlib.suppress(FileNotFoundError):
            if os.path.getsize(path) > good:  # a line torn by a crash: cut it off
                os.truncate(path, good)
        for key in recovered:
            shape = self._read_entry_json(self._names[key])["shape"]
            self._shapes[key] = tuple(shape)
            self._log({"key": key, "status": "done", "shape": shape, "recovered": True})

    def _clean_tmp(self):
        """Remove the temporary entries of writers on this host that are no longer running."""
        tmp = os.path.join(self.path, _TMP)
        os.makedirs(tmp, exist_ok=True)
        host = socket.gethostname()
        with os.scandir(tmp) as it:
            for de in it:
                parts = de.name.rsplit("-", 2)
                if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
                    continue
                if not _pid_alive(int(parts[1])):
                    shutil.rmtree(de.path, ignore_errors=True)

    def refresh(self):
        """Re-read the entries and the manifest (to see what other processes wrote).

        Returns
        -------
        self : FeatureStore
        """
        self._scan()
        return self

    # -- writing -----------------------------------------------------------------------------

    def _writable(self):
        if self.mode == "r":
            raise ValueError(f"feature store {self.path!r} is open read-only (mode='r').")

    def _log(self, record):
        record = dict(record, time=_now())
        line = (json.dumps(record, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")
        fd = os.open(os.path.join(self.path, _MANIFEST), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write of one line: appends never interleave
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    def put(self, key, features, meta=None, *, overwrite=False):
        """Store the features of ``key`` (atomically) and record it as done.

        Parameters
        ----------
        key : str
            The clip's key (clip id or path).
        features : array-like of shape (n_pools, n_features)
            Finite float values; float32 and float64 are stored as they are,
            other types as float64. Every entry of a store has the same
            ``n_features``.
        meta : mapping or None, default=None
            Small JSON-serialisable metadata stored with the entry (e.g. the
            source file, its duration).
        overwrite : bool, default=False
            Replace an existing entry of ``key``. Without it, storing a key
            that is done raises ``ValueError``.

        Raises
        ------
        ValueError
            If the store is read-only, ``features`` is not a finite non-empty
            2-D array or has the wrong width, or ``key`` is done and
            ``overwrite`` is False.
        """
        from msk._validation import as_float_array

        self._writable()
        _check_key(key)
        X = as_float_array("features", features, ndim=2)
        if meta is not None and not isinstance(meta, Mapping):
            raise TypeError(f"`meta` must be a mapping or None; got {type(meta).__name__}.")
        try:
            attrs = json.loads(json.dumps({"key": key, "meta": dict(meta or {})}))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"`meta` must be JSON-serialisable: {exc}") from None
        with self._lock:
            n_features = self._n_features or next(
                (s[1] for s in self._shapes.values()), None
            )
        if n_features is not None and X.shape[1] != n_features:
            raise ValueError(
                f"`features` of {key!r} have {X.shape[1]} columns; the entries of feature store "
                f"{self.path!r} have {n_features}."
            )
        name = entry_name(key)
        final = os.path.join(self.path, _ENTRIES, name)
        if os.path.isdir(final):
            other = self._read_entry_json(name)["attributes"].get("key")
            if other != key:
                raise ValueError(
                    f"keys {key!r} and {other!r} map to one entry {name!r} of feature store "
                    f"{self.path!r} (a case-insensitive file system?); use distinct keys."
                )
            if not overwrite:
                raise ValueError(
                    f"{key!r} is already in feature store {self.path!r}; pass overwrite=True to replace it."
                )
        tmp = os.path.join(
            self.path, _TMP, f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"
        )
        try:
            chunk_dir = os.path.join(tmp, *_CHUNK[:-1])
            os.makedirs(chunk_dir)
            data = X.astype(X.dtype.newbyteorder("<"), copy=False)
            _write_file(os.path.join(chunk_dir, _CHUNK[-1]), np.ascontiguousarray(data), durable=self.durable)
            _write_file(os.path.join(tmp, "zarr.json"), _array_json(X.shape, _DTYPES[X.dtype], attrs),
                        durable=self.durable)
            if os.path.isdir(final):  # overwrite: move the old entry out of the way first
                trash = tmp + ".old"
                os.rename(final, trash)
                os.rename(tmp, final)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                try:
                    os.rename(tmp, final)
                except OSError:
                    if os.path.isdir(final):  # another writer stored the key first
                        raise ValueError(
                            f"{key!r} was stored in feature store {self.path!r} by another writer "
                            "at the same time."
                        ) from None
                    raise
        finally:
            if os.path.exists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
        self._log({"key": key, "status": "done", "shape": list(X.shape), "dtype": _DTYPES[X.dtype]})
        with self._lock:
            self._names[key] = name
            self._shapes[key] = tuple(X.shape)
            self._failed.pop(key, None)

    def fail(self, key, reason):
        """Record that ``key`` could not be processed, and why.

        A failed key is not done: a later :meth:`put` of it succeeds and clears
        the failure. Recording a failure for a key that is done changes nothing
        but the manifest's history.

        Parameters
        ----------
        key : str
            The clip's key.
        reason : str
            What went wrong (e.g. the exception's message).
        """
        self._writable()
        _check_key(key)
        reason = str(reason)
        self._log({"key": key, "status": "failed", "reason": reason})
        with self._lock:
            if key not in self._names:
                self._failed[key] = reason

    # -- reading -----------------------------------------------------------------------------

    def _read_entry_json(self, name):
        path = os.path.join(self.path, _ENTRIES, name, "zarr.json")
        try:
            with open(path, "rb") as f:
                return json.loads(f.read().decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"feature store {self.path!r}: entry {name!r} is unreadable ({exc}).") from None

    def done(self, key):
        """Whether ``key``'s features are in the store (checked on disk).

        Parameters
        ----------
        key : str

        Returns
        -------
        bool
        """
        return os.path.isdir(os.path.join(self.path, _ENTRIES, entry_name(key)))

    def __contains__(self, key):
        return isinstance(key, str) and bool(key) and self.done(key)

    def __len__(self):
        with self._lock:
            return len(self._names)

    def keys(self):
        """The done keys, sorted.

        Returns
        -------
        keys : list of str
        """
        with self._lock:
            return sorted(self._names)

    def __iter__(self):
        return iter(self.keys())

    def failures(self):
        """The failed keys (not done since) and their reasons.

        Returns
        -------
        failures : dict of str to str
        """
        with self._lock:
            return dict(sorted(self._failed.items()))

    def status(self, key):
        """``"done"``, ``"failed"`` or None (never attempted) for ``key``."""
        if self.done(key):
            return "done"
        with self._lock:
            return "failed" if key in self._failed else None

    def _entry(self, key):
        _check_key(key)
        name = entry_name(key)
        if not os.path.isdir(os.path.join(self.path, _ENTRIES, name)):
            with self._lock:
                reason = self._failed.get(key)
            why = f" (it failed: {reason})" if reason is not None else ""
            raise KeyError(f"{key!r} is not in feature store {self.path!r}{why}")
        header = self._read_entry_json(name)
        if header.get("attributes", {}).get("key") != key:
            raise ValueError(
                f"feature store {self.path!r}: entry {name!r} holds key "
                f"{header.get('attributes', {}).get('key')!r}, not {key!r}."
            )
        return name, header

    def get(self, key):
        """The features of ``key``.

        Parameters
        ----------
        key : str

        Returns
        -------
        features : ndarray of shape (n_pools, n_features)
            In the dtype stored (float32 for extracted features).

        Raises
        ------
        KeyError
            If ``key`` is not done (the message gives the failure reason if any).
        """
        name, header = self._entry(key)
        return self._read_chunk(name, header)

    __getitem__ = get

    def _read_chunk(self, name, header, out=None):
        shape = tuple(header["shape"])
        dtype = np.dtype(header["data_type"]).newbyteorder("<")
        path = os.path.join(self.path, _ENTRIES, name, *_CHUNK)
        n = int(np.prod(shape))
        if out is None:
            out = np.empty(shape, dtype=dtype.newbyteorder("="))
        with open(path, "rb") as f:
            raw = f.read()
        if len(raw) != n * dtype.itemsize:
            raise ValueError(
                f"feature store {self.path!r}: entry {name!r} has {len(raw)} bytes of data for "
                f"shape {shape} {dtype.name}."
            )
        out[...] = np.frombuffer(raw, dtype=dtype).reshape(shape)
        return out

    def meta(self, key):
        """The metadata stored with ``key`` (a dict)."""
        return dict(self._entry(key)[1]["attributes"].get("meta", {}))

    def shape(self, key):
        """The shape ``(n_pools, n_features)`` of ``key``'s features (without reading them)."""
        with self._lock:
            shape = self._shapes.get(key)
        return shape if shape is not None else tuple(self._entry(key)[1]["shape"])

    def concatenated(self, keys=None, *, missing="raise", dtype=np.float32):
        """Stack the features of ``keys`` into one matrix, for the classifier heads.

        Parameters
        ----------
        keys : sequence of str or None, default=None
            The clips, in order; None takes :meth:`keys`.
        missing : {"raise", "skip"}, default="raise"
            What to do with a key that is not done: raise ``KeyError`` (naming
            the first few), or leave it out (it then has no rows).
        dtype : dtype, default=np.float32
            dtype of ``X``.

        Returns
        -------
        X : ndarray of shape (n_rows, n_features)
            Every pooling window of every clip, clip after clip.
        clip_index : ndarray of shape (n_rows,), dtype int64
            For each row, the position in ``keys`` of its clip.
        """
        if missing not in ("raise", "skip"):
            raise ValueError(f"`missing` must be one of 'raise' or 'skip'; got {missing!r}.")
        keys = self.keys() if keys is None else list(keys)
        for k in keys:
            _check_key(k)
        absent = [k for k in keys if not self.done(k)]
        if absent and missing == "raise":
            more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
            raise KeyError(
                f"{len(absent)} of the keys are not in feature store {self.path!r}: "
                f"{', '.join(map(repr, absent[:5]))}{more}"
            )
        absent = set(absent)
        headers = []
        for i, k in enumerate(keys):
            if k not in absent:
                name, header = self._entry(k)
                headers.append((i, name, header))
        widths = {h["shape"][1] for _, _, h in headers}
        if len(widths) > 1:
            raise ValueError(f"feature store {self.path!r} holds entries of widths {sorted(widths)}.")
        n_features = widths.pop() if widths else (self._n_features or 0)
        n_rows = sum(h["shape"][0] for _, _, h in headers)
        X = np.empty((n_rows, n_features), dtype=dtype)
        clip_index = np.empty(n_rows, dtype=np.int64)
        row = 0
        for i, name, header in headers:
            n = header["shape"][0]
            if np.dtype(header["data_type"]) == X.dtype:
                self._read_chunk(name, header, out=X[row : row + n])
            else:
                X[row : row + n] = self._read_chunk(name, header)
            clip_index[row : row + n] = i
            row += n
        return X, clip_index

    # -- misc --------------------------------------------------------------------------------

    def __repr__(self):
        with self._lock:
            n_done, n_failed = len(self._names), len(self._failed)
        model = "" if self.model_info is None else f", model={_describe(self.model_info)}"
        return f"FeatureStore({self.path!r}, mode={self.mode!r}: {n_done} done, {n_failed} failed{model})"

    def close(self):
        """Nothing to release (every write is complete when it returns); for ``with`` blocks."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
