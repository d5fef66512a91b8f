"""The feature store: the window features of a music library as one Zarr dataset.

A :class:`FeatureStore` is a directory in the `Zarr version 3
<https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html>`_ format,
written with zarr-python. Without msk it opens as one dataset with
``xarray.open_zarr(path)``, array by array with ``dask.array.from_zarr(path,
component="windows")``, and with plain ``zarr.open_group(path, mode="r")``::

    features.zarr/
        zarr.json          root group: attributes["msk"] (format, version, msk version,
                           model fingerprint, extraction settings) and the consolidated
                           metadata of every array (the committed shapes)
        windows/           (window, feature)        float32  every clip's window features
        clip_index/        (window,)                int64    the clip of each window row
        start/, end/       (window,)                float64  seconds covered by each row
        tracks/            (clip, track_feature)    float32  one vector per clip (the summary)
        clip/              (clip,)                  str      the key of each clip
        status/            (clip,)                  str      ok, failed, replaced, pruned
        offset/, n_windows/ (clip,)                 int64    its rows of ``windows``
        duration/          (clip,)                  float64  seconds
        clip/msk-table.jsonl   the clip table and msk's commit log (the truth; see below)
        clip/msk-writer.lock   the writer's lock

The clip table holds one JSON line per clip: its key, source path, size,
mtime (ns), SHA-256, duration, rows, status and failure reason
(:meth:`FeatureStore.record`); the per-clip arrays repeat what readers
without msk need to select clips and find their rows. Every array uses the
``crc32c`` codec, so a flipped bit in a chunk is an error on reading, not a
silent change. ``windows`` is sharded along rows (shards of about 16 MB
holding chunks of about 1 MB), so a store has a few files per batch of
clips, not per clip, and reading one clip reads about 1 MB. ``xarray`` sees
the dimensions ``window``, ``feature``, ``clip`` and ``track_feature``;
``clip`` is indexed by the keys, ``clip_index`` maps rows to clips. A clip
whose status is not ``"ok"`` (a failure, a file re-extracted since, or one
pruned) keeps its place in the ``clip`` dimension: select ``status == "ok"``.

Commits, crashes and concurrent readers and writers
---------------------------------------------------
Clips are buffered and written in batches, in this order:

1. the batch's rows are written after the last committed row of every
   array, beyond the shapes that the arrays' metadata publishes (each chunk
   to a temporary file, then renamed; a chunk that also holds committed rows
   is rewritten with the same values for them), and flushed to disk
   (``durable=True``);
2. the batch is committed by appending one JSON line per clip to
   ``clip/msk-table.jsonl`` in a single ``write`` (then ``fsync``): the
   commit point. Each line names the clip's rows (``offset``,
   ``n_windows``) and carries a CRC-32 of its own text;
3. the ``status`` of clips the batch replaced is updated, and the new
   shapes are published: each array's ``zarr.json``, then the root's
   consolidated metadata (each replaced atomically).

The table is the truth: msk reads the rows that it commits, with the
arrays' metadata taken from the root, whatever shape is published. Readers
without msk (xarray, Dask, zarr) see the published shapes, so they never see
rows of a batch that is not committed: only the state of some commit (an
array's own ``zarr.json`` and the root are replaced one after the other, so
an array read alone may be one batch ahead of another; the consolidated
root read by xarray is one consistent commit). A run killed at any moment
loses only its batch in flight: rows that no line references are ignored,
and the next writer removes their chunk files, overwrites the rest and
publishes the committed shapes if a crash came between the commit and the
publication.

A line that fails its CRC (or is not a record) is skipped with a warning
naming it; the store stays readable, the clip it described is extracted
again by the next run, and :meth:`FeatureStore.check` (``msk store check
--repair``) rewrites the table without it. An unterminated last line (a
write in flight, or one a crash cut) is ignored by readers and cut off by
the next writer. One process writes a store at a time: a
writer holds an exclusive lock (``flock``) on ``clip/msk-writer.lock``,
which records its host and pid; a second writer is refused with a message
naming them (or waits, with ``wait=``). The lock of a process that died is
released by the operating system and taken over. Readers need no lock.

Format versions
---------------
This msk writes format 3. Format 2 also had ``path``, ``size``, ``mtime``,
``hash`` and ``reason`` arrays (the same values as the table); it is read
as it is, and the first writer that opens such a store upgrades it in place
(removing those arrays). Stores of msk 0.1 (format 1) are converted by
:func:`migrate`.

Keys
----
A key is a non-empty ``str``. :func:`msk.extract_many` uses the file's
path relative to the library root, with ``/`` separators
(:func:`msk.audio.library_key`). File names that are not valid UTF-8 are
kept exactly as Python represents them (``os.fsdecode``, lone surrogates):
the table's JSON escapes them, and the ``clip`` array, which must hold
UTF-8, shows such bytes as ``\\xNN``.
"""

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Mapping

import numpy as np

from . import _persist
from ._json import jsonable
from ._persist import msk_version
from .multiscale import SUMMARIES as _SUMMARIES
from .multiscale import SUMMARY_WIDTHS as _SUMMARY_WIDTHS
from .multiscale import track_vector

__all__ = ["FeatureStore", "export", "file_hash", "migrate", "model_fingerprint", "track_vector"]

_FORMAT = "msk.FeatureStore"
_FORMAT_VERSION = 3
_READABLE_VERSIONS = (2, 3)  # 2: the same table and arrays, plus five per-clip arrays that 3 keeps in the table only
_TABLE = os.path.join("clip", "msk-table.jsonl")
_LOCK = os.path.join("clip", "msk-writer.lock")
_MODES = ("r", "a", "w")
_STATUS = ("ok", "failed", "replaced", "pruned")
# Per-clip arrays: name -> (numpy dtype, fill value). The rest of a clip's record (source path,
# size, mtime, hash, failure reason) is in the table only.
_CLIP_ARRAYS = {
    "clip": (str, ""), "status": (str, ""), "offset": (np.int64, 0), "n_windows": (np.int64, 0),
    "duration": (np.float64, np.nan),
}
_V2_ONLY_ARRAYS = ("path", "size", "mtime", "hash", "reason")
_WINDOW_ARRAYS = {"clip_index": (np.int64, -1), "start": (np.float64, np.nan), "end": (np.float64, np.nan)}
_CLIP_CHUNK = 16384
_STR_CHUNK = 1024  # string chunks inside shards of _CLIP_CHUNK: a batch re-encodes only the chunks it touches
_ROW_CHUNK = 65536
_CHUNK_BYTES = 1 << 20
_CHUNKS_PER_SHARD = 16
_DEFAULT_BATCH = 256
_BATCH_BYTES = 64 << 20
# msk reads and writes through arrays of this many rows; the extent readers see is the one the
# table commits (the published metadata says it to readers without msk)
_UNBOUNDED = 1 << 40


def _msk_version():
    return msk_version()


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _check_key(key):
    if not isinstance(key, str):
        raise TypeError(f"a store key must be a str; got {type(key).__name__} ({key!r}).")
    if not key:
        raise ValueError("a store key must be a non-empty string; got ''.")
    return key


def _text(s):
    """``s`` as valid UTF-8 text: undecodable bytes (lone surrogates) shown as ``\\xNN``."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# =====================================================================================
# Model fingerprints
# =====================================================================================


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
    >>> model = msk.MultiscaleFeatures(levels=2, n_clusters=8, n_samples=500, random_state=0)
    >>> model = model.fit([msk.example_audio()])
    >>> info = msk.store.model_fingerprint(model)
    >>> info["n_features"], len(info["fingerprint"])
    (16, 64)
    """
    return _persist.model_fingerprint(model)


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
        k = params.get("n_clusters", params.get("n_means"))
        what = f"{rep}, K={k}, " if rep is not None else ""
        return (f"{info.get('class', 'model')} ({what}{info.get('n_features')} features, "
                f"fingerprint {info['fingerprint'][:12]})")
    return json.dumps(info, sort_keys=True)[:200]


# =====================================================================================
# Files
# =====================================================================================


def _fsync_path(path, directory=False):
    with contextlib.suppress(OSError):  # some file systems refuse to fsync directories
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory and hasattr(os, "O_DIRECTORY") else 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def file_hash(path):
    """SHA-256 (hex) of a file's content, read in blocks of 1 MiB.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    digest : str
        64 hex digits.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _line(record):
    """One table line: the record's canonical JSON with its CRC-32."""
    body = json.dumps(record, sort_keys=True, ensure_ascii=True, allow_nan=True)
    crc = zlib.crc32(body.encode("ascii"))
    return f'{{"crc": {crc}, "record": {body}}}\n'.encode("ascii")


def _parse_line(raw):
    obj = json.loads(raw.decode("ascii"))
    if not isinstance(obj, dict) or set(obj) != {"crc", "record"}:
        raise ValueError("not a table line")
    body = json.dumps(obj["record"], sort_keys=True, ensure_ascii=True, allow_nan=True)
    if zlib.crc32(body.encode("ascii")) != obj["crc"]:
        raise ValueError("CRC mismatch")
    rec = obj["record"]
    if not isinstance(rec.get("key"), str) or not rec["key"] or rec.get("status") not in ("ok", "failed", "pruned"):
        raise ValueError("not a clip record")
    if rec["status"] != "pruned":
        for name in ("clip", "offset", "n_windows"):
            if not isinstance(rec.get(name), int) or rec[name] < 0:
                raise ValueError(f"bad {name!r}")
    return rec


class _Lock:
    """An exclusive writer lock on a file: flock, with the holder's host and pid written in it."""

    def __init__(self, path, store, wait):
        import fcntl

        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    holder = os.pread(self.fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
                    os.close(self.fd)
                    raise ValueError(
                        f"feature store {store!r} is being written by {holder}; one process writes a "
                        "store at a time. Wait for it to finish (or pass wait=SECONDS, "
                        "`msk extract --wait`), or write to another store."
                    ) from None
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        info = f"host {socket.gethostname()} pid {os.getpid()} since {_now()}".encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, info, 0)

    def release(self):
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing releases the flock
            self.fd = None


# =====================================================================================
# The store
# =====================================================================================


class FeatureStore:
    """The window features of many clips in one Zarr dataset, written in batches.

    See the module notes for the layout, the commit protocol and how to read
    a store without msk.

    Parameters
    ----------
    path : str or os.PathLike
        The store directory (conventionally ending in ``.zarr``).
    mode : {"a", "r", "w"}, default="a"
        "a": read and write, creating the store if it does not exist; "r":
        read only (the store must exist); "w": create, deleting an existing
        msk store (or an empty directory) at ``path`` first.
    model_info : MultiscaleFeatures, mapping or None, default=None
        The model the features come from (a fitted model, whose
        :func:`model_fingerprint` is taken, or such a dict). A new store
        records it; a store made with another model raises ``ValueError``.
    summary : {"mean", "mean+max", "mean+std"} or None, default=None
        How a clip's track vector (the ``tracks`` array) is made from its
        windows (:func:`msk.multiscale.track_vector`): their mean, or their
        mean followed by their maximum or their standard deviation. None:
        the store's setting ("mean" for a new store).
    settings : mapping or None, default=None
        Extraction settings recorded in the store's attributes (e.g. the
        library root); merged into what is recorded.
    durable : bool, default=True
        Flush each batch's chunks and table lines to disk (``fsync``) before
        the commit, so that a power failure, not only a killed process, loses
        at most the batch in flight.
    batch_size : int, default=256
        Clips buffered before a batch is written (also written when the
        buffered features reach 64 MB, on :meth:`flush`, on :meth:`close` and
        before any read).
    wait : float, default=0
        Seconds to wait for another writer's lock before refusing.

    Attributes
    ----------
    path : str
        The store directory (absolute).
    mode : str
    model_info : dict or None
        The model recorded in the store.
    damage : list of str
        Problems found when opening (corrupt or torn table lines); see
        :meth:`check`.

    Raises
    ------
    FileNotFoundError
        If ``mode="r"`` and there is no store at ``path``.
    ValueError
        If ``path`` is not an msk feature store, was written by msk 0.1 (the
        message says how to convert it), was made with another model, or is
        being written by another process.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from msk.store import FeatureStore
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "features.zarr")
    >>> with FeatureStore(path, mode="w") as store:
    ...     store.put("a.wav", np.ones((3, 4), np.float32), start=[0, 4, 8], end=[4, 8, 12])
    ...     store.fail("b.wav", "could not be decoded")
    >>> store = FeatureStore(path, mode="r")
    >>> store.keys(), store.failures()
    (['a.wav'], {'b.wav': 'could not be decoded'})
    >>> store.get("a.wav").shape, store.times("a.wav")[1].tolist()
    ((3, 4), [4.0, 8.0, 12.0])
    >>> import xarray as xr
    >>> ds = xr.open_zarr(path)
    >>> dict(ds.windows.sizes)
    {'window': 3, 'feature': 4}
    >>> tmp.cleanup()
    """

    def __init__(self, path, *, mode="a", model_info=None, summary=None, settings=None, durable=True,
                 batch_size=_DEFAULT_BATCH, wait=0.0):
        from ._validation import check_int, check_option

        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"`path` must be a str or os.PathLike; got {type(path).__name__}.")
        if mode not in _MODES:
            raise ValueError(f"`mode` must be one of 'a', 'r' or 'w'; got {mode!r}.")
        if summary is not None:
            check_option("summary", summary, _SUMMARIES)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.path = os.path.abspath(os.fspath(path))
        self.mode = mode
        self.durable = bool(durable)
        self.damage = []
        self._lock = threading.RLock()
        self._writer_lock = None
        self._arrays = {}
        self._pending = []
        self._pending_bytes = 0
        info = _as_model_info(model_info)
        if mode == "w":
            self._remove_existing()
        exists = os.path.exists(os.path.join(self.path, "zarr.json"))
        if not exists:
            if mode == "r":
                raise FileNotFoundError(f"{self.path!r}: no feature store here.")
            if os.path.exists(self.path) and not os.path.isdir(self.path):
                raise ValueError(f"{self.path!r} exists and is not a directory.")
            if os.path.isdir(self.path) and os.listdir(self.path):
                raise ValueError(
                    f"{self.path!r} is a non-empty directory that is not an msk feature store; "
                    "give a new or empty directory."
                )
            self._create_atomically(info, summary or "mean", settings)
        self._zstore = None
        self._load_root()
        if mode != "r":
            from ._validation import check_float

            wait = check_float("wait", wait, low=0.0)
            self._writer_lock = _Lock(os.path.join(self.path, _LOCK), self.path, wait)
        try:
            if mode != "r":
                self._load_root()  # as the previous writer left it
            self._load_table()
            if summary is not None and summary != self._attrs["summary"]:
                raise ValueError(
                    f"feature store {self.path!r} holds track vectors of the summary "
                    f"{self._attrs['summary']!r}; got {summary!r} (`summary`, --summary). A store's "
                    "summary is chosen when it is created: use another store."
                )
            if mode != "r":
                self._truncate_uncommitted()
            if info is not None:
                self._check_model(info)
            if mode != "r":
                if settings:
                    self._set_attrs(settings=dict(self._attrs.get("settings", {}), **jsonable(dict(settings))))
        except BaseException:
            self.close()
            raise

    # -- creating and opening -----------------------------------------------------------------

    def _remove_existing(self):
        if not os.path.exists(self.path):
            return
        if not os.path.isdir(self.path):
            raise ValueError(f"{self.path!r} exists and is not a directory; not overwriting it.")
        if os.listdir(self.path):
            try:
                with open(os.path.join(self.path, "zarr.json"), "rb") as f:
                    fmt = json.loads(f.read())["attributes"]["msk"]["format"]
            except (OSError, ValueError, KeyError, TypeError):
                fmt = None
            if fmt != _FORMAT:
                raise ValueError(
                    f"{self.path!r} is a non-empty directory that is not an msk feature store; "
                    "mode='w' refuses to delete it."
                )
            if os.path.exists(os.path.join(self.path, _LOCK)):  # never delete a store being written
                _Lock(os.path.join(self.path, _LOCK), self.path, 0.0).release()
        shutil.rmtree(self.path)

    def _create_atomically(self, info, summary, settings):
        """Build the new store beside ``path`` and rename it into place (one creator wins)."""
        final = self.path
        tmp = f"{final}.creating-{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}"
        parent = os.path.dirname(final)
        if parent:
            os.makedirs(parent, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        self.path = tmp
        try:
            self._create(info, summary, settings)
        finally:
            self.path = final
        try:
            os.rename(tmp, final)  # fails if another process created a store there meanwhile
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not os.path.exists(os.path.join(final, "zarr.json")):
                raise
        if self.durable:
            _fsync_path(parent or ".", directory=True)

    def _create(self, info, summary, settings):
        self._root = {"zarr_format": 3, "node_type": "group", "attributes": {}}
        self._attrs = {
            "format": _FORMAT, "format_version": _FORMAT_VERSION, "msk_version": _msk_version(),
            "created": _now(), "model": info, "summary": summary,
            "settings": jsonable(dict(settings or {})),
            "description": "window features of audio clips; see the msk documentation (msk.store)",
        }
        self._meta = {}
        specs = {}
        for name, (dtype, fill) in _CLIP_ARRAYS.items():
            # strings: small chunks in shards, so that appending a batch re-encodes few of them
            geometry = ({"chunks": (_STR_CHUNK,), "shards": (_CLIP_CHUNK,)} if dtype is str
                        else {"chunks": (_CLIP_CHUNK,)})
            specs[name] = dict(shape=(0,), dtype=dtype, fill_value=fill, dimension_names=["clip"], **geometry)
        for name, (dtype, fill) in _WINDOW_ARRAYS.items():
            specs[name] = dict(shape=(0,), chunks=(_ROW_CHUNK,), dtype=dtype, fill_value=fill,
                               dimension_names=["window"])
        if info is not None and "n_features" in info:
            specs.update(self._matrix_specs(int(info["n_features"]), summary))
            self._attrs["n_features"] = int(info["n_features"])
        self._create_arrays(specs, with_root=True)
        with open(os.path.join(self.path, _TABLE), "ab"):
            pass
        self._write_root()

    @staticmethod
    def _matrix_specs(n_features, summary):
        rows = 1 << max(4, min(14, int(np.log2(max(1, _CHUNK_BYTES // (4 * n_features))))))
        width = n_features * _SUMMARY_WIDTHS[summary]
        return {
            "windows": dict(shape=(0, n_features), chunks=(rows, n_features),
                            shards=(rows * _CHUNKS_PER_SHARD, n_features), dtype="float32", fill_value=0.0,
                            dimension_names=["window", "feature"]),
            "tracks": dict(shape=(0, width), chunks=(max(16, rows // 2), width),
                           shards=(max(16, rows // 2) * _CHUNKS_PER_SHARD, width), dtype="float32",
                           fill_value=float("nan"), dimension_names=["clip", "track_feature"]),
        }

    def _create_arrays(self, specs, with_root=False):
        """Create arrays (``{name: create_array keywords}``) with zarr, all in one call.

        zarr builds their metadata in memory and writes it with
        ``zarr.create_hierarchy``: creating arrays one by one in the store
        checks the directory and writes each node separately, several
        milliseconds an array.
        """
        import zarr
        from zarr.codecs import Crc32cCodec
        from zarr.storage import LocalStore, MemoryStore

        template = zarr.open_group(MemoryStore(), mode="w", zarr_format=3)
        nodes = {"": template.metadata} if with_root else {}
        for name, spec in specs.items():
            nodes[name] = template.create_array(name, compressors=[Crc32cCodec()], **spec).metadata
        list(zarr.create_hierarchy(store=LocalStore(self.path), nodes=nodes))
        for name in specs:
            self._meta[name] = self._member_json(name)
            self._arrays.pop(name, None)

    def _create_matrices(self, n_features, summary):
        """Create ``windows`` and ``tracks`` once the width is known; the root records them."""
        self._create_arrays(self._matrix_specs(n_features, summary))
        self._attrs = dict(self._attrs, n_features=n_features)
        self._write_root()

    def _member_json(self, name):
        """An array's own ``zarr.json`` as written by zarr (read when it is created or has no root copy)."""
        with open(os.path.join(self.path, name, "zarr.json"), "rb") as f:
            meta = json.loads(f.read().decode("utf-8"))
        if not isinstance(meta, dict) or meta.get("node_type") != "array" or not isinstance(meta.get("shape"), list):
            raise ValueError("not the metadata of an array")
        return meta

    def _load_root(self, check=True):
        """Read the root ``zarr.json``: msk's attributes and, consolidated, every array's metadata.

        msk takes the arrays' metadata from here (one file, replaced atomically
        by each commit), never from the arrays' own ``zarr.json``, which are
        copies published for readers without msk.
        """
        root = os.path.join(self.path, "zarr.json")
        try:
            with open(root, "rb") as f:
                doc = json.loads(f.read().decode("utf-8"))
            attrs = doc["attributes"]["msk"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{self.path!r} is not an msk feature store ({exc}).") from None
        if not isinstance(attrs, dict) or attrs.get("format") != _FORMAT:
            raise ValueError(f"{self.path!r} is not an msk feature store.")
        if check and attrs.get("format_version") == 1:
            raise ValueError(
                f"{self.path!r} is a feature store written by msk 0.1 (one array per clip), which this "
                f"msk ({_msk_version()}) does not read. Convert it with `msk store migrate "
                f"{self.path} NEW.zarr` (msk.store.migrate), or extract the audio again into a new store."
            )
        if check and attrs.get("format_version") not in _READABLE_VERSIONS:
            raise ValueError(
                f"{self.path!r} has feature store format version {attrs.get('format_version')!r}; "
                f"this msk ({_msk_version()}) reads versions {', '.join(map(str, _READABLE_VERSIONS))}."
            )
        if check and attrs.get("summary") not in _SUMMARIES:
            raise ValueError(
                f"{self.path!r} records the track summary {attrs.get('summary')!r}, which this msk "
                f"({_msk_version()}) does not compute ({', '.join(map(repr, _SUMMARIES))})."
            )
        members = doc.get("consolidated_metadata")
        members = members.get("metadata") if isinstance(members, dict) else None
        meta = {}
        for name, m in (members if isinstance(members, dict) else {}).items():
            if isinstance(m, dict) and m.get("node_type") == "array" and isinstance(m.get("shape"), list):
                meta[name] = m
        self._root, self._attrs, self._meta = doc, attrs, meta
        self._arrays = {}
        return attrs

    def _set_attrs(self, **changes):
        self._attrs = dict(self._attrs, **changes)
        self._write_root()

    def _extent(self, name):
        """Committed rows of an array: windows for the per-window arrays, clips for the others."""
        return self._n_windows if name in _WINDOW_ARRAYS or name == "windows" else self._n_clips

    def _write_root(self):
        """Write the root ``zarr.json``: msk's attributes and the consolidated metadata of the arrays.

        The consolidated metadata is each array's ``zarr.json``, inline, as
        ``zarr.consolidate_metadata`` writes it, with the committed shapes.
        It is written from memory, without that call, which re-reads every
        member and warns on every use (a warning filter changed around it
        would not be thread-safe: the batch writer runs beside the extracting
        threads).
        """
        doc = dict(self._root)
        doc["attributes"] = dict(doc.get("attributes") or {}, msk=self._attrs)
        doc["consolidated_metadata"] = {
            "kind": "inline", "must_understand": False,
            "metadata": {name: self._meta[name] for name in sorted(self._meta)},
        }
        data = json.dumps(doc)
        with _persist.atomic_write(os.path.join(self.path, "zarr.json"), "w", durable=self.durable,
                                   encoding="utf-8") as f:
            f.write(data)
        self._root = doc

    def _publish(self, force=False):
        """Give every array the committed extent as its shape, in its ``zarr.json`` and in the root.

        This is what makes committed rows visible to readers without msk: an
        array's rows are written beyond its published shape, flushed, committed
        in the table, and only then published, so such a reader never sees a
        row that the table does not commit. The arrays' own files are written
        without ``fsync``: the root is the durable copy, and a writer opening
        the store publishes again (``force``).
        """
        for name in sorted(self._meta):
            meta = self._meta[name]
            n = self._extent(name)
            if meta["shape"][0] == n and not force:
                continue
            meta = dict(meta, shape=[n, *meta["shape"][1:]])
            data = json.dumps(meta)
            if os.path.isdir(os.path.join(self.path, name)):
                with _persist.atomic_write(os.path.join(self.path, name, "zarr.json"), "w",
                                           encoding="utf-8") as f:
                    f.write(data)
            self._meta[name] = meta
        self._write_root()

    @property
    def model_info(self):
        return self._attrs.get("model")

    @property
    def summary(self):
        """How the track vectors are made: "mean", "mean+max" or "mean+std"."""
        return self._attrs["summary"]

    @property
    def settings(self):
        """The extraction settings recorded in the store (a dict)."""
        return dict(self._attrs.get("settings", {}))

    def update_settings(self, settings):
        """Merge ``settings`` into the extraction settings recorded in the store.

        Parameters
        ----------
        settings : mapping
            JSON-serialisable values (e.g. ``{"last_window": "keep"}``).

        Raises
        ------
        ValueError
            If the store is open read-only or closed.
        """
        self._writable()
        if not isinstance(settings, Mapping):
            raise TypeError(f"`settings` must be a mapping; got {type(settings).__name__}.")
        with self._lock:
            self._set_attrs(settings=dict(self._attrs.get("settings", {}), **jsonable(dict(settings))))

    @property
    def n_features(self):
        """Columns of ``windows`` (None before the first clip of a store without a model)."""
        return self._attrs.get("n_features")

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
            store and both models), or holds clips of an unrecorded model.
        """
        info = _as_model_info(model_info)
        if info is None:
            raise TypeError("`model_info` must be a fitted MultiscaleFeatures or a mapping; got None.")
        self._check_model(info)

    def _check_model(self, info):
        recorded = self.model_info
        if recorded is None:
            if self._live:
                raise ValueError(
                    f"feature store {self.path!r} holds {len(self._live)} clips of an unrecorded "
                    f"model; refusing to add features of {_describe(info)}. Use a new store."
                )
            if self.mode == "r":
                return
            self._set_attrs(model=info)
            if "n_features" in info and self.n_features is None:
                self._create_matrices(int(info["n_features"]), self.summary)
        elif not _same_model(recorded, info):
            raise ValueError(
                f"feature store {self.path!r} holds features of {_describe(recorded)}; refusing to "
                f"mix in features of {_describe(info)}. Write them to another store, or replace this one "
                "(delete it first)."
            )

    # -- the table ----------------------------------------------------------------------------

    def _load_table(self):
        """Read the commit log: the live record of each key, and the committed extents."""
        path = os.path.join(self.path, _TABLE)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
            self.damage.append(f"{_TABLE} is missing")
        live, failed, superseded, by_clip = {}, {}, [], {}
        n_clips = n_windows = 0
        damage = []
        good = bytearray()
        lines = data.split(b"\n")
        for i, raw in enumerate(lines):
            if i == len(lines) - 1:
                if raw:
                    damage.append(f"{_TABLE}: line {i + 1} is torn (no end of line; a write in flight or "
                                  "interrupted)")
                break
            if not raw.strip():
                continue
            try:
                rec = _parse_line(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                damage.append(f"{_TABLE}: line {i + 1} is corrupt ({exc}); its clip is ignored")
                continue
            good += raw + b"\n"
            key = rec["key"]
            old = live.pop(key, None)
            if old is not None:
                superseded.append((old["clip"], "pruned" if rec["status"] == "pruned" else "replaced"))
            old = failed.pop(key, None)
            if old is not None:
                superseded.append((old["clip"], "pruned" if rec["status"] == "pruned" else "replaced"))
            if rec["status"] == "pruned":
                continue
            by_clip[rec["clip"]] = rec
            n_clips = max(n_clips, rec["clip"] + 1)
            n_windows = max(n_windows, rec["offset"] + rec["n_windows"])
            (live if rec["status"] == "ok" else failed)[key] = rec
        with self._lock:
            self._live, self._failed = live, failed
            self._superseded, self._by_clip = superseded, by_clip
            self._n_clips, self._n_windows = n_clips, n_windows
            self._good_table = bytes(good)
            self._table_damaged = bool(damage)
        torn_only = len(damage) == 1 and damage[0].endswith("interrupted)") and self.mode == "r"
        self.damage += damage
        if damage and not torn_only:
            warnings.warn(
                f"feature store {self.path!r} is damaged: {'; '.join(damage[:3])}"
                f"{' ...' if len(damage) > 3 else ''}. It is readable without those lines; "
                "`msk store check --repair STORE` rewrites its table.",
                UserWarning, stacklevel=3,
            )

    def refresh(self):
        """Re-read the table (to see what another process committed since opening).

        Returns
        -------
        self : FeatureStore
        """
        self.damage = []
        self._load_root()
        self._load_table()
        return self

    def _truncate_uncommitted(self):
        """A writer's start: forget what a killed writer left beyond the commit, publish the commit.

        Cuts a torn last line off the table, removes temporary files and the
        chunk files that lie wholly beyond the committed rows (a batch killed
        before its commit), upgrades a format 2 store in place (its five extra
        per-clip arrays are dropped: the table holds their values), makes the
        ``status`` array agree with the table and publishes the committed
        shapes (a writer killed between its commit and its publication left
        them behind).
        """
        path = os.path.join(self.path, _TABLE)
        with open(path, "rb") as f:
            data = f.read()
        if data and not data.endswith(b"\n"):  # a line torn by a crash: cut it off
            os.truncate(path, data.rfind(b"\n") + 1)
        # temporary files of a writer killed mid-write (zarr writes a chunk to NAME.<uuid>.partial,
        # msk its metadata to NAME.<pid>.<hex>.tmp, then each is renamed)
        for dirpath, _, files in os.walk(self.path):
            for name in files:
                if name.endswith((".partial", ".tmp")):
                    with contextlib.suppress(OSError):
                        os.remove(os.path.join(dirpath, name))
        upgraded = self._attrs.get("format_version") == 2
        if upgraded:
            for name in _V2_ONLY_ARRAYS:
                self._meta.pop(name, None)
                shutil.rmtree(os.path.join(self.path, name), ignore_errors=True)
            self._attrs = dict(self._attrs, format_version=_FORMAT_VERSION, upgraded_from_format=2)
        for name in list(self._meta):
            try:
                meta = self._meta[name]
                # one file per chunk of the grid (a shard, when the array is sharded)
                step = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
            except (AttributeError, KeyError, IndexError, TypeError):
                continue  # damaged metadata: _array reports it when the array is used
            first_beyond = -(-self._extent(name) // step)
            base = os.path.join(self.path, name, "c")
            for entry in os.listdir(base) if os.path.isdir(base) else []:
                if entry.isdigit() and int(entry) >= first_beyond:
                    target = os.path.join(base, entry)
                    if os.path.isdir(target) and not os.path.islink(target):
                        shutil.rmtree(target, ignore_errors=True)
                    else:
                        with contextlib.suppress(OSError):
                            os.remove(target)
        try:
            self._sync_view(range(self._n_clips))
        except ValueError as exc:  # a damaged chunk of the view: `check(repair=True)` rebuilds it
            self.damage.append(str(exc))
        # the arrays' files are published before the root: a root with the committed shapes
        # means they have them too
        if any(meta["shape"][0] != self._extent(name) for name, meta in self._meta.items()) or upgraded:
            self._publish(force=True)

    def _array(self, name):
        """The array ``name``, opened from the root's metadata with room for any number of rows.

        Reads stay within the committed rows (the table says where a clip's
        rows are) and a batch writes its rows beyond them, so the shape that
        zarr checks selections against is not the committed extent but a bound
        no store reaches; the committed extent is published by :meth:`_publish`.
        """
        arr = self._arrays.get(name)
        if arr is None:
            import zarr
            from zarr.storage import LocalStore, StorePath

            try:
                meta = self._meta.get(name) or self._member_json(name)
                meta = dict(meta, shape=[_UNBOUNDED, *meta["shape"][1:]])
                if self._zstore is None:
                    self._zstore = LocalStore(self.path, read_only=self.mode == "r")
                # every chunk a batch writes is written, even one equal to the fill value: no
                # comparison of each chunk with it
                arr = zarr.Array(zarr.AsyncArray(metadata=meta, store_path=StorePath(self._zstore, name),
                                                 config={"write_empty_chunks": True}))
            except Exception as exc:  # zarr raises many kinds of errors for broken metadata
                raise ValueError(f"feature store {self.path!r}: array {name!r} cannot be opened ({exc}).") from None
            self._validate_array(name, arr)
            self._arrays[name] = arr
        return arr

    def _validate_array(self, name, arr):
        """Refuse arrays whose metadata was altered (wrong data type, dimensions or width)."""
        expected = {**{k: v[0] for k, v in _CLIP_ARRAYS.items()}, **{k: v[0] for k, v in _WINDOW_ARRAYS.items()},
                    "windows": np.float32, "tracks": np.float32}[name]
        ok_dtype = (arr.dtype.kind in "OTU") if expected is str else arr.dtype == np.dtype(expected)
        ndim = 2 if name in ("windows", "tracks") else 1
        problem = None
        if not ok_dtype:
            problem = f"data type {arr.dtype} (expected {np.dtype(expected) if expected is not str else 'string'})"
        elif arr.ndim != ndim:
            problem = f"{arr.ndim} dimensions (expected {ndim})"
        elif name == "windows" and arr.shape[1] != self.n_features:
            problem = f"{arr.shape[1]} columns (the store records {self.n_features})"
        elif name == "tracks" and arr.shape[1] != self.n_features * _SUMMARY_WIDTHS[self.summary]:
            problem = f"{arr.shape[1]} columns"
        if problem is not None:
            raise ValueError(f"feature store {self.path!r}: array {name!r} has {problem}; its metadata "
                             "was altered or is damaged.")

    def _check_chunk_files(self, name, rows):
        """Chunk files must be regular files no larger than a chunk can be (no /dev/zero, no FIFO)."""
        arr = self._array(name)
        shard = arr.shards or arr.chunks
        per_row = int(np.prod(shard[1:])) if len(shard) > 1 else 1
        itemsize = 4 if name in ("windows", "tracks") else 8
        limit = shard[0] * per_row * itemsize + 16 * (shard[0] + 16) + 4096
        base = os.path.join(self.path, name, "c")
        lo, hi = rows
        if hi <= lo:
            return
        for s in range(lo // shard[0], (hi - 1) // shard[0] + 1):
            path = os.path.join(base, str(s), *(["0"] * (arr.ndim - 1)))
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue  # never written: zarr returns the fill value
            import stat

            if not stat.S_ISREG(st.st_mode):
                raise ValueError(f"feature store {self.path!r}: chunk file {os.path.relpath(path, self.path)!r} "
                                 "is not a regular file (a link or a device); refusing to read it.")
            if name in ("windows", "tracks") and st.st_size > limit:
                raise ValueError(f"feature store {self.path!r}: chunk file {os.path.relpath(path, self.path)!r} "
                                 f"holds {st.st_size} bytes, more than a chunk of {shard} can; refusing to read it.")

    def _read(self, name, lo, hi):
        """Rows [lo, hi) of an array, with a clear error for damaged chunks."""
        self._check_chunk_files(name, (lo, hi))
        arr = self._array(name)
        try:
            return arr[lo:hi]
        except Exception as exc:  # zarr's checksum and decoding errors
            raise ValueError(
                f"feature store {self.path!r}: array {name!r} rows {lo}..{hi} cannot be read "
                f"({type(exc).__name__}: {exc}); a chunk is damaged. `msk store check --repair "
                f"{self.path}` marks the affected clips for extraction again."
            ) from None

    # -- writing ------------------------------------------------------------------------------

    def _writable(self):
        if self.mode == "r":
            raise ValueError(f"feature store {self.path!r} is open read-only (mode='r').")
        if self._writer_lock is None:
            raise ValueError(f"feature store {self.path!r} is closed.")

    def put(self, key, features, *, start=None, end=None, source=None):
        """Add (or replace) the features of ``key``; written with the next batch.

        Parameters
        ----------
        key : str
            The clip's key.
        features : array-like of shape (n_windows, n_features)
            Finite values, stored as float32.
        start, end : array-like of shape (n_windows,) or None, default=None
            The seconds each window covers (NaN when not given).
        source : mapping or None, default=None
            The source file: ``path``, ``size``, ``mtime`` (ns), ``hash``,
            ``duration`` (any may be missing).

        Raises
        ------
        ValueError
            If the store is read-only, ``features`` is not a finite non-empty
            2-D array or has the wrong width, or ``start``/``end`` do not
            match its rows.
        """
        from ._validation import as_float_array

        self._writable()
        _check_key(key)
        X = np.ascontiguousarray(as_float_array("features", features, ndim=2), dtype=np.float32)
        n = X.shape[0]
        times = []
        for name, t in (("start", start), ("end", end)):
            if t is None:
                t = np.full(n, np.nan)
            t = np.asarray(t, dtype=np.float64)
            if t.shape != (n,):
                raise ValueError(f"`{name}` must have shape ({n},) for {n} windows; got {t.shape}.")
            times.append(t)
        with self._lock:
            if self.n_features is None:
                self._create_matrices(X.shape[1], self.summary)
            if X.shape[1] != self.n_features:
                raise ValueError(
                    f"`features` of {key!r} have {X.shape[1]} columns; feature store {self.path!r} "
                    f"holds {self.n_features}."
                )
            self._pending.append(("ok", key, X, times, dict(source or {}), None))
            self._pending_bytes += X.nbytes
            full = len(self._pending) >= self.batch_size or self._pending_bytes >= _BATCH_BYTES
        if full:
            self.flush()

    def fail(self, key, reason, *, source=None):
        """Record that ``key`` could not be processed, and why (written with the next batch).

        A failed key is not done: a later :meth:`put` of it succeeds and
        replaces the failure.

        Parameters
        ----------
        key : str
        reason : str
        source : mapping or None, default=None
            As in :meth:`put`.
        """
        self._writable()
        _check_key(key)
        with self._lock:
            self._pending.append(("failed", key, None, None, dict(source or {}), str(reason)))
            full = len(self._pending) >= self.batch_size
        if full:
            self.flush()

    def prune(self, keys):
        """Drop ``keys`` from the store (committed at once); their rows stay, marked "pruned".

        Parameters
        ----------
        keys : iterable of str

        Returns
        -------
        n : int
            How many keys were in the store and are dropped.
        """
        self._writable()
        self.flush()
        with self._lock:
            keys = [k for k in keys if k in self._live or k in self._failed]
            if not keys:
                return 0
            dirty = []
            for k in keys:
                rec = self._live.pop(k, None) or self._failed.pop(k)
                self._superseded.append((rec["clip"], "pruned"))
                dirty.append(rec["clip"])
            self._commit([{"key": k, "status": "pruned", "time": _now()} for k in keys])
            self._sync_view(dirty)
        return len(keys)

    def flush(self):
        """Write and commit the buffered clips (a no-op when nothing is buffered)."""
        with self._lock:
            if not self._pending:
                return
            self._writable()
            pending, self._pending, self._pending_bytes = self._pending, [], 0
            c0, w0 = self._n_clips, self._n_windows
            records, rows, dirty = [], [], []
            w = w0
            for i, (status, key, X, times, source, reason) in enumerate(pending):
                n = 0 if X is None else X.shape[0]
                rec = {
                    "key": key, "clip": c0 + i, "status": status, "offset": w, "n_windows": n,
                    "path": source.get("path"), "size": source.get("size"), "mtime": source.get("mtime"),
                    "hash": source.get("hash"), "duration": source.get("duration"),
                    "reason": reason, "time": _now(),
                }
                records.append(rec)
                if X is not None:
                    rows.append((X, times, c0 + i))
                w += n
            # later records of one key in this batch supersede earlier ones
            for rec in records:
                for table in (self._live, self._failed):
                    old = table.pop(rec["key"], None)
                    if old is not None:
                        self._superseded.append((old["clip"], "replaced"))
                        dirty.append(old["clip"])
                (self._live if rec["status"] == "ok" else self._failed)[rec["key"]] = rec
                self._by_clip[rec["clip"]] = rec
            try:
                # 1. rows beyond the published shapes (no reader without msk sees them yet)
                self._write_rows(w0, w, rows, c0, len(records))
                self._write_clips(records, c0)
                if self.durable:
                    self._fsync_chunks(w0, w, c0, c0 + len(records))
                # 2. the commit point: one append to the table
                self._commit(records)
            except BaseException:
                # what is on disk beyond the commit is ignored; reopen to resume
                self._load_table()
                raise
            self._n_clips, self._n_windows = c0 + len(records), w
            # 3. the view of what the commit superseded, then the new shapes
            self._sync_view(dirty)
            self._publish()

    def _write_rows(self, w0, w1, rows, c0, n_clips):
        if w1 > w0:
            X = rows[0][0] if len(rows) == 1 else np.concatenate([r[0] for r in rows])
            start = np.concatenate([r[1][0] for r in rows])
            end = np.concatenate([r[1][1] for r in rows])
            clip = np.repeat(np.array([r[2] for r in rows], np.int64), [r[0].shape[0] for r in rows])
            for name, values in (("windows", X), ("clip_index", clip), ("start", start), ("end", end)):
                self._array(name)[w0:w1] = values
        if n_clips:
            arr = self._array("tracks")
            T = np.full((n_clips, arr.shape[1]), np.nan, np.float32)
            for X, _, c in rows:
                T[c - c0] = track_vector(X, self.summary)
            arr[c0 : c0 + n_clips] = T

    def _write_clips(self, records, c0):
        n = len(records)
        cols = {
            "clip": [_text(r["key"]) for r in records],
            "status": [r["status"] for r in records],
            "offset": [r["offset"] for r in records],
            "n_windows": [r["n_windows"] for r in records],
            "duration": [np.nan if r["duration"] is None else r["duration"] for r in records],
        }
        for name, values in cols.items():
            self._array(name)[c0 : c0 + n] = np.array(values, dtype=_CLIP_ARRAYS[name][0])

    def _status_of(self, c, superseded):
        """The status a clip's row shows: its record's, or why the record is no longer live."""
        rec = self._by_clip.get(c)
        if rec is None:
            return superseded.get(c, "")
        live = self._live.get(rec["key"]) is rec or self._failed.get(rec["key"]) is rec
        return rec["status"] if live else superseded.get(c, "replaced")

    def _sync_view(self, clips):
        """Make the ``status`` array agree with the table for ``clips`` (the rows between the first and last)."""
        clips = sorted(set(clips))
        if not clips or not self._n_clips:
            return
        superseded = dict(self._superseded)
        status = self._array("status")
        lo, hi = clips[0], min(clips[-1] + 1, self._n_clips)
        wanted = [self._status_of(c, superseded) for c in range(lo, hi)]
        try:
            same = [str(v) for v in self._read("status", lo, hi).tolist()] == wanted
        except ValueError:  # a damaged chunk: written again below
            same = False
        if not same:
            status[lo:hi] = np.array(wanted, dtype=str)

    def _rewrite_clip_view(self, name, lo, hi):
        """Rewrite rows [lo, hi) of a per-clip array from the table (after its chunk was lost)."""
        if hi <= lo:
            return
        superseded = dict(self._superseded)
        values = []
        for c in range(lo, hi):
            rec = self._by_clip.get(c)
            if name == "status":
                values.append(self._status_of(c, superseded))
            elif rec is None:
                values.append(_CLIP_ARRAYS[name][1])
            elif name == "clip":
                values.append(_text(rec["key"]))
            else:
                v = rec.get(name)
                values.append(_CLIP_ARRAYS[name][1] if v is None else v)
        self._array(name)[lo:hi] = np.array(values, dtype=_CLIP_ARRAYS[name][0])

    def _fsync_chunks(self, w0, w1, c0, c1):
        for name in list(_WINDOW_ARRAYS) + ["windows"]:
            self._fsync_array(name, w0, w1)
        for name in list(_CLIP_ARRAYS) + ["tracks"]:
            self._fsync_array(name, c0, c1)

    def _fsync_array(self, name, lo, hi):
        if hi <= lo or name not in self._arrays:
            return
        arr = self._arrays[name]
        step = (arr.shards or arr.chunks)[0]
        for s in range(lo // step, (hi - 1) // step + 1):
            _fsync_path(os.path.join(self.path, name, "c", str(s), *(["0"] * (arr.ndim - 1))))

    def _commit(self, records):
        data = b"".join(_line(r) for r in records)
        fd = os.open(os.path.join(self.path, _TABLE), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:  # one write in practice: a batch's lines are committed together
                view = view[os.write(fd, view):]
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    def close(self):
        """Write what is buffered and release the writer's lock (reading stays possible)."""
        try:
            if self._writer_lock is not None and self._pending:
                self.flush()
        finally:
            if self._writer_lock is not None:
                self._writer_lock.release()
                self._writer_lock = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:  # do not commit a batch that an exception interrupted
            with self._lock:
                self._pending = []
            self.close()
        return False

    def __del__(self):
        # A store dropped without close(): commit what is buffered (best effort), release the lock.
        lock = getattr(self, "_writer_lock", None)
        if lock is not None:
            with contextlib.suppress(Exception):
                if self._pending:
                    self.flush()
            lock.release()

    # -- reading ------------------------------------------------------------------------------

    def _flush_for_read(self):
        if self._pending and self._writer_lock is not None:
            self.flush()

    def _record(self, key):
        _check_key(key)
        self._flush_for_read()
        with self._lock:
            rec = self._live.get(key)
            if rec is None:
                failed = self._failed.get(key)
        if rec is None:
            why = f" (it failed: {failed['reason']})" if failed is not None else ""
            raise KeyError(f"{key!r} is not in feature store {self.path!r}{why}")
        return rec

    def __len__(self):
        self._flush_for_read()
        with self._lock:
            return len(self._live)

    def __contains__(self, key):
        return isinstance(key, str) and self.done(key)

    def __iter__(self):
        return iter(self.keys())

    def keys(self):
        """The keys whose features are in the store, sorted.

        Returns
        -------
        keys : list of str
        """
        self._flush_for_read()
        with self._lock:
            return sorted(self._live)

    def done(self, key):
        """Whether ``key``'s features are in the store.

        Parameters
        ----------
        key : str

        Returns
        -------
        bool
        """
        self._flush_for_read()
        with self._lock:
            return key in self._live

    def failures(self):
        """The failed keys (not extracted since) and their reasons.

        Returns
        -------
        failures : dict of str to str
        """
        self._flush_for_read()
        with self._lock:
            return {k: self._failed[k]["reason"] for k in sorted(self._failed)}

    def record(self, key):
        """The table record of ``key`` (source path, size, mtime, hash, duration, rows, status).

        Returns
        -------
        record : dict
        """
        _check_key(key)
        self._flush_for_read()
        with self._lock:
            rec = self._live.get(key) or self._failed.get(key)
        if rec is None:
            raise KeyError(f"{key!r} is not in feature store {self.path!r}")
        return dict(rec)

    def meta(self, key):
        """The source of ``key``'s features: ``path``, ``size``, ``mtime``, ``hash``, ``duration``.

        Only the fields that were recorded (a clip stored with :meth:`put`
        without ``source`` has none but ``n_windows``).

        Returns
        -------
        meta : dict
        """
        rec = self.record(key)
        return {f: rec[f] for f in ("path", "size", "mtime", "hash", "duration", "n_windows")
                if rec.get(f) is not None}

    def key_of(self, path):
        """The key whose features were extracted from the file at ``path``, or None.

        Parameters
        ----------
        path : str or os.PathLike
            An audio file; compared with the recorded source paths (absolute,
            as recorded at extraction) after resolving symbolic links.

        Returns
        -------
        key : str or None
        """
        path = os.fspath(path)
        wanted = {os.path.abspath(path), os.path.realpath(path)}
        self._flush_for_read()
        with self._lock:
            for key, rec in self._live.items():
                if rec.get("path") in wanted:
                    return key
        return None

    def compare(self, key, path):
        """Whether the file at ``path`` is what ``key``'s record was made from.

        The file is unchanged when its size and modification time equal the
        record's, or, when they differ, its SHA-256 equals the record's (a
        copy or a ``touch`` is not a change).

        Parameters
        ----------
        key : str
        path : str or os.PathLike

        Returns
        -------
        state : {"new", "failed", "changed", "unchanged"}
            "new": no record of ``key``; "failed": its last attempt failed
            (it is tried again); "changed" / "unchanged": see above.
        """
        self._flush_for_read()
        with self._lock:
            rec = self._live.get(key)
            failed = key in self._failed
        if rec is None:
            return "failed" if failed else "new"
        try:
            st = os.stat(path)
        except OSError:
            return "changed"
        if st.st_size == rec.get("size") and st.st_mtime_ns == rec.get("mtime"):
            return "unchanged"
        if st.st_size == rec.get("size") and rec.get("hash"):
            with contextlib.suppress(OSError):
                if file_hash(path) == rec["hash"]:
                    return "unchanged"
        return "changed"

    def get(self, key):
        """The window features of ``key``.

        Parameters
        ----------
        key : str

        Returns
        -------
        features : ndarray of shape (n_windows, n_features), dtype float32

        Raises
        ------
        KeyError
            If ``key`` is not in the store (the message gives the failure
            reason if any).
        ValueError
            If its chunk is damaged (the message names the store).
        """
        rec = self._record(key)
        return self._read("windows", rec["offset"], rec["offset"] + rec["n_windows"])

    __getitem__ = get

    def times(self, key):
        """The start and end (seconds) of each window of ``key``.

        Returns
        -------
        start, end : ndarray of shape (n_windows,), dtype float64
        """
        rec = self._record(key)
        lo, hi = rec["offset"], rec["offset"] + rec["n_windows"]
        return self._read("start", lo, hi), self._read("end", lo, hi)

    def shape(self, key):
        """``(n_windows, n_features)`` of ``key`` (without reading its features)."""
        return (self._record(key)["n_windows"], self.n_features)

    def tracks(self, keys=None):
        """The track vectors: one row per clip (see ``summary``).

        Parameters
        ----------
        keys : sequence of str or None, default=None
            The clips, in order; None takes :meth:`keys`.

        Returns
        -------
        keys : list of str
        matrix : ndarray of shape (n_clips, n_track_features), dtype float32
        """
        keys = self.keys() if keys is None else list(keys)
        recs = [self._record(k) for k in keys]
        width = self.n_features * _SUMMARY_WIDTHS[self.summary] if self.n_features else 0
        if not recs:
            return keys, np.empty((0, width), np.float32)
        T = self._read("tracks", 0, self._n_clips)
        return keys, np.ascontiguousarray(T[[r["clip"] for r in recs]])

    def concatenated(self, keys=None, *, missing="raise", dtype=np.float32):
        """Stack the window features of ``keys`` into one matrix.

        Parameters
        ----------
        keys : sequence of str or None, default=None
            The clips, in order; None takes :meth:`keys`.
        missing : {"raise", "skip"}, default="raise"
            A key that is not in the store raises ``KeyError`` (naming the
            first few), or is left out.
        dtype : dtype, default=np.float32
            dtype of ``X``.

        Returns
        -------
        X : ndarray of shape (n_rows, n_features)
            Every window of every clip, clip after clip.
        clip_index : ndarray of shape (n_rows,), dtype int64
            For each row, the position in ``keys`` of its clip.
        """
        if missing not in ("raise", "skip"):
            raise ValueError(f"`missing` must be one of 'raise' or 'skip'; got {missing!r}.")
        keys = self.keys() if keys is None else list(keys)
        for k in keys:
            _check_key(k)
        self._flush_for_read()
        with self._lock:
            recs = [self._live.get(k) for k in keys]
        absent = [k for k, r in zip(keys, recs) if r is None]
        if absent and missing == "raise":
            more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
            raise KeyError(
                f"{len(absent)} of the keys are not in feature store {self.path!r}: "
                f"{', '.join(map(repr, absent[:5]))}{more}"
            )
        n_features = self.n_features or 0
        spans = [(i, r["offset"], r["n_windows"]) for i, r in enumerate(recs) if r is not None]
        counts = np.array([n for _, _, n in spans], dtype=np.int64)
        n_rows = int(counts.sum())
        clip_index = np.repeat(np.array([i for i, _, _ in spans], dtype=np.int64), counts)
        if not n_rows:
            return np.empty((0, n_features), dtype=dtype), clip_index
        # the source row of every output row
        offsets = np.array([off for _, off, _ in spans], dtype=np.int64)
        starts = np.cumsum(counts) - counts
        src = np.arange(n_rows, dtype=np.int64) + np.repeat(offsets - starts, counts)
        # read contiguous runs of rows (the whole array when most of it is wanted)
        if n_rows > self._n_windows // 2:
            runs = [(0, self._n_windows)]
        else:
            runs = []
            for off, n in sorted(zip(offsets.tolist(), counts.tolist())):
                if runs and off <= runs[-1][1] + 64:
                    runs[-1] = (runs[-1][0], max(runs[-1][1], off + n))
                else:
                    runs.append((off, off + n))
        if len(runs) == 1:
            lo, hi = runs[0]
            block = self._read("windows", lo, hi)
            if n_rows == hi - lo and src[0] == lo and bool(np.all(np.diff(src) == 1)):
                return block.astype(dtype, copy=False), clip_index  # storage order: no copy
            return np.take(block, src - lo, axis=0).astype(dtype, copy=False), clip_index
        X = np.empty((n_rows, n_features), dtype=dtype)
        for lo, hi in runs:
            block = self._read("windows", lo, hi)
            mask = (src >= lo) & (src < hi)
            X[mask] = block[src[mask] - lo]
        return X, clip_index

    def digest(self):
        """SHA-256 (hex) of the committed table: changes whenever the store's content does."""
        self._flush_for_read()
        return hashlib.sha256(self._good_table).hexdigest()

    # -- checking -----------------------------------------------------------------------------

    def check(self, repair=False):
        """Look for damage (table lines, chunk checksums, array metadata) and optionally repair it.

        Every chunk of every array is read (and its CRC-32C verified).
        Repairs: the table is rewritten without its corrupt lines (the clips
        they described are then extracted again by the next run); clips whose
        window chunks are damaged are recorded as failed, so that the next
        run extracts them again; the arrays are cut to the committed rows and
        the consolidated metadata rewritten.

        Parameters
        ----------
        repair : bool, default=False
            Repair what can be repaired (needs a store open for writing).

        Returns
        -------
        report : dict
            ``{"store", "clips", "failed", "problems": [...], "repaired": [...]}``.
        """
        if repair:
            self._writable()
            self.flush()
        problems = list(self.damage)
        repaired = []
        damaged_clips = []
        for name in list(_CLIP_ARRAYS) + list(_WINDOW_ARRAYS) + (["windows", "tracks"] if self.n_features else []):
            try:
                arr = self._array(name)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            n = self._n_windows if name in _WINDOW_ARRAYS or name == "windows" else self._n_clips
            step = arr.chunks[0]
            for lo in range(0, n, step):
                hi = min(n, lo + step)
                try:
                    self._read(name, lo, hi)
                except ValueError as exc:
                    problems.append(str(exc))
                    damaged_clips.append((name, lo, hi))
        # the arrays' own metadata, which readers without msk use, must say what the root says
        stale = []
        for name in sorted(self._meta):
            try:
                shape = self._member_json(name)["shape"]
            except (OSError, ValueError, KeyError, TypeError):
                shape = None
            if shape != self._meta[name]["shape"] or shape[0] != self._extent(name):
                stale.append(name)
                problems.append(f"array {name!r}: its zarr.json gives the shape {shape}, not the committed "
                                f"{[self._extent(name), *self._meta[name]['shape'][1:]]} (readers without msk "
                                "see other rows than msk); `msk store check --repair` publishes it again")
        # a damaged chunk is repaired by deleting its file (shard) and what it held: the clips
        # with rows in it are extracted again; the per-clip view is rewritten from the table
        files = {}
        for name, lo, hi in damaged_clips:
            arr = self._array(name)
            step = (arr.shards or arr.chunks)[0]
            f = lo // step
            files[(name, f)] = (f * step, (f + 1) * step)
        keys_hit = set()
        with self._lock:
            for (name, _), (lo, hi) in files.items():
                if name in _CLIP_ARRAYS:
                    continue  # rebuilt from the table
                by_row = name in _WINDOW_ARRAYS or name == "windows"
                for k, r in list(self._live.items()) + list(self._failed.items()):
                    a, b = (r["offset"], r["offset"] + r["n_windows"]) if by_row else (r["clip"], r["clip"] + 1)
                    if a < hi and b > lo:
                        keys_hit.add(k)
        if repair:
            if self._table_damaged or self.damage:
                path = os.path.join(self.path, _TABLE)
                tmp = path + ".repair"
                with open(tmp, "wb") as f:
                    f.write(self._good_table)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
                repaired.append(f"rewrote {_TABLE} without its {len(self.damage)} damaged line(s)")
                self.damage = []
                self._table_damaged = False
            for (name, f), (lo, hi) in sorted(files.items()):
                arr = self._array(name)
                chunk = os.path.join(self.path, name, "c", str(f), *(["0"] * (arr.ndim - 1)))
                with contextlib.suppress(FileNotFoundError):
                    os.remove(chunk)
                repaired.append(f"deleted the damaged chunk file {os.path.relpath(chunk, self.path)!r}")
                if name in _CLIP_ARRAYS:
                    self._rewrite_clip_view(name, lo, min(hi, self._n_clips))
            for k in sorted(keys_hit):
                rec = self._live.get(k) or self._failed[k]
                self.fail(k, "damaged chunk found by `msk store check`: extract it again",
                          source={f: rec.get(f) for f in ("path", "duration")})
            if keys_hit:
                self.flush()
                repaired.append(f"recorded {len(keys_hit)} clip(s) with damaged chunks as failed "
                                "(the next run extracts them again)")
            self._sync_view(range(self._n_clips))
            self._publish(force=True)
            if stale:
                repaired.append(f"published the committed shapes of {', '.join(stale)}")
            self._load_table()
        return {"store": self.path, "clips": len(self._live), "failed": len(self._failed),
                "problems": problems, "damaged_keys": sorted(keys_hit), "repaired": repaired}

    def __repr__(self):
        with self._lock:
            n_done, n_failed = len(self._live), len(self._failed)
        model = "" if self.model_info is None else f", model={_describe(self.model_info)}"
        return f"FeatureStore({self.path!r}, mode={self.mode!r}: {n_done} clips, {n_failed} failed{model})"


# =====================================================================================
# Migration and export
# =====================================================================================


def _v1_entries(path):
    """(key, features, meta) of every entry of an msk 0.1 store, and its failures."""
    with open(os.path.join(path, "zarr.json"), "rb") as f:
        header = json.loads(f.read())["attributes"]["msk"]
    entries = []
    base = os.path.join(path, "clips")
    for name in sorted(os.listdir(base)):
        d = os.path.join(base, name)
        if not os.path.isdir(d):
            continue
        with open(os.path.join(d, "zarr.json"), "rb") as f:
            meta = json.loads(f.read())
        shape = tuple(meta["shape"])
        dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        chunk = os.path.join(d, "c", "0", "0")
        if os.path.getsize(chunk) != int(np.prod(shape)) * dtype.itemsize:
            raise ValueError(f"msk 0.1 store {path!r}: entry {name!r} has a damaged chunk.")
        X = np.fromfile(chunk, dtype=dtype).reshape(shape)
        entries.append((meta["attributes"]["key"], X, meta["attributes"].get("meta", {})))
    failures = {}
    with contextlib.suppress(FileNotFoundError), open(os.path.join(path, "_state", "manifest.jsonl"), "rb") as f:
        for line in f.read().split(b"\n"):
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if rec.get("status") == "failed":
                    failures[rec["key"]] = rec.get("reason", "")
                elif rec.get("status") == "done":
                    failures.pop(rec["key"], None)
    return header, entries, failures


def _source_of(path, n_windows, step):
    """The source record (path, size, mtime, hash, duration) of a migrated clip's file, or why not.

    A file whose length does not give the clip's number of windows (give or
    take one) has changed since it was extracted: its record is not filled,
    so that the next run extracts it again.
    """
    import soundfile as sf

    st = os.stat(path)
    if not os.path.isfile(path):
        raise ValueError("not a regular file")
    try:
        duration = float(sf.info(os.fsencode(path)).duration)
    except Exception as exc:  # any decoder error: the file is not what was extracted
        raise ValueError(f"cannot be decoded ({exc})") from None
    if step is not None and abs(duration / step - n_windows) > 1.5:
        raise ValueError(f"lasts {duration:.1f} s, not the {n_windows} windows stored")
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime": st.st_mtime_ns,
            "hash": file_hash(path), "duration": duration}


def migrate(old, new, *, root=None, model=None):
    """Convert a feature store written by msk 0.1 into the current format.

    Keys, features, failures and the model are copied. Window times are
    computed from the model's pooling geometry when the store records the
    model (a short clip's single window is given the nominal span). msk 0.1
    recorded neither the source files' size, mtime and hash nor a library
    root: with ``root``, each clip whose source file (its recorded path, or
    else its key read as a path) is inside ``root`` gets its key relative to
    ``root`` (as :func:`msk.extract_many` gives it) and its file's size,
    mtime, hash and duration, so that a later ``msk extract ROOT`` into the
    new store skips it while the file is unchanged. The file is taken to be
    the one that was extracted if its length matches the clip's number of
    windows. Clips whose file is missing, outside ``root`` or changed keep
    their key and an empty source, and are extracted again by such a run.

    Parameters
    ----------
    old : str or os.PathLike
        An msk 0.1 store (left untouched).
    new : str or os.PathLike
        The new store (must not exist, or be an empty directory).
    root : str, os.PathLike or None, default=None
        The library root of the extraction to come (``msk extract ROOT``,
        ``--root``). None keeps the keys as they are and fills the sources
        of clips whose recorded path exists.
    model : MultiscaleFeatures or None, default=None
        The model that computed the features, as this msk loads it (msk 0.1
        identified models differently, so without it the new store accepts
        no features of a current model). It is checked by extracting the
        first clip whose file is found again and comparing its windows with
        the stored ones (msk 0.1 dropped a partial last window: the new
        store records ``last_window="drop"``).

    Returns
    -------
    store : FeatureStore
        The new store, open for reading. Its ``settings["migration"]`` counts
        the clips whose source was filled (``"filled"``), those it could not
        fill (``"not_filled"``, with ``"not_filled_keys"``: up to 20 of them
        and why) and the old keys merged because they named one file
        (``"merged"``).
    """
    from .audio import library_key

    old, new = os.fspath(old), os.fspath(new)
    if root is not None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"`root` must be a folder path or None; got {type(root).__name__}.")
        root = os.path.abspath(os.fspath(root))
        if not os.path.isdir(root):
            raise ValueError(f"`root` {root!r} (--root) is not a folder.")
    version = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        with open(os.path.join(old, "zarr.json"), "rb") as f:
            version = json.loads(f.read())["attributes"]["msk"]["format_version"]
    if version in _READABLE_VERSIONS:
            raise ValueError(
                f"{old!r} is a feature store of format version {version}, which this msk reads: it needs no "
                "migration (a format 2 store is upgraded in place by the first process that writes to it, "
                f"e.g. `msk store check --repair {old}`)."
            )
    try:
        header, entries, failures = _v1_entries(old)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{old!r} is not a readable msk 0.1 feature store ({exc}).") from None
    if header.get("format") != _FORMAT or header.get("format_version") != 1:
        raise ValueError(f"{old!r} is not an msk 0.1 feature store (format version "
                         f"{header.get('format_version')!r}).")
    if os.path.exists(new) and (not os.path.isdir(new) or os.listdir(new)):
        raise ValueError(f"{new!r} exists; give a new path for the converted store.")
    info = header.get("model")
    params = (info or {}).get("params", {})
    step = None
    pool = params.get("pool_size", params.get("pool"))  # the parameter's name in msk 0.1 was pool
    hop = params.get("hop_length", 512)
    if isinstance(pool, int) and isinstance(hop, int) and isinstance(params.get("sr"), int):
        step = pool * hop / params["sr"]

    def rekey(key, path):
        """(new key, source file) of an old key: relative to ``root`` when the file is inside it."""
        src = path if isinstance(path, str) and path else key
        if root is None:
            return key, src
        try:
            return library_key(src, root), src
        except ValueError:
            raise ValueError(f"not inside the root {root!r}") from None

    settings = {"migrated_from": os.path.abspath(old), "last_window": "drop"}
    if root is not None:
        settings["root"] = root
    checked = model is None
    if model is not None:
        info = model_fingerprint(model)
        if info["n_features"] != header.get("model", {}).get("n_features", info["n_features"]):
            raise ValueError(f"`model` (--model) gives {info['n_features']} features; the store {old!r} holds "
                             f"{header['model']['n_features']}: not the model of its features.")
    counts = {"filled": 0, "not_filled": 0, "merged": 0}
    unfilled, seen = [], set()
    with FeatureStore(new, mode="w", model_info=info, settings=settings) as st:
        for key, X, meta in entries:
            n = X.shape[0]
            start = end = None
            if step is not None:
                start, end = np.arange(n) * step, (np.arange(n) + 1) * step
            path = meta.get("path") if isinstance(meta.get("path"), str) else None
            source = {"path": path}
            try:
                # a key inside the root takes its root-relative form even when its source cannot be
                # filled: the next run then extracts it again under that key, replacing it
                new_key, src = rekey(key, path)
            except ValueError as exc:
                new_key, src, why = key, None, str(exc)
            if new_key in seen:  # the same file under two keys (typed from two working directories)
                counts["merged"] += 1
                continue
            seen.add(new_key)
            if src is not None:
                try:
                    source = _source_of(src, n, step)
                except OSError as exc:
                    why = exc.strerror or str(exc)
                except ValueError as exc:
                    why = str(exc)
            if source.get("hash") and not checked:
                ref = model.transform(src, last_window="drop")
                scale = max(1.0, float(np.abs(X).max()))
                if ref.shape[0] != n or not np.allclose(ref, X, rtol=1e-4, atol=1e-5 * scale):
                    raise ValueError(
                        f"the features of {key!r} in {old!r} differ from what `model` (--model) computes from "
                        f"{src!r}: not the model of the store (or the file changed since). Give the model "
                        "the store was extracted with, or extract the audio again into a new store."
                    )
                checked = True
            if source.get("hash"):
                counts["filled"] += 1
            else:
                counts["not_filled"] += 1
                unfilled.append(f"{key}: {why}")
            st.put(new_key, X, start=start, end=end, source=source)
        for key, reason in failures.items():
            try:
                key = rekey(key, None)[0]
            except ValueError:
                pass
            if key not in seen:
                st.fail(key, reason)
        st.update_settings({"migration": dict(counts, not_filled_keys=unfilled[:20])})
    return FeatureStore(new, mode="r")


def export(store, output):
    """Write a store's window features with keys and times to .parquet, .npz or .csv.

    Parameters
    ----------
    store : FeatureStore, str or os.PathLike
    output : str or os.PathLike
        ``.npz``: arrays ``keys`` (str, one per clip), ``clip_index``,
        ``start``, ``end``, ``features`` and ``tracks``. ``.parquet`` (needs
        pyarrow: ``pip install 'msk[export]'``) and ``.csv``: one row per
        window with columns ``key``, ``start``, ``end``, ``f0`` ... Keys
        that are not valid UTF-8 are written with ``\\xNN`` escapes in
        Parquet (whose strings are UTF-8) and as their raw bytes in CSV and
        npz.

    Returns
    -------
    n_rows : int
        Windows written.
    """
    st = store if isinstance(store, FeatureStore) else FeatureStore(store, mode="r")
    output = os.fspath(output)
    ext = os.path.splitext(output)[1].lower()
    if ext not in (".parquet", ".npz", ".csv"):
        raise ValueError(f"`output` must end in .parquet, .npz or .csv; got {output!r}.")
    pa = None
    if ext == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError("exporting to Parquet needs pyarrow: pip install 'msk[export]'.") from None
    keys = st.keys()
    X, clip_index = st.concatenated(keys)
    start = np.empty(len(clip_index))
    end = np.empty(len(clip_index))
    row = 0
    for k in keys:
        s, e = st.times(k)
        start[row : row + len(s)] = s
        end[row : row + len(s)] = e
        row += len(s)
    if ext == ".npz":
        _, T = st.tracks(keys)
        np.savez(output, keys=np.array(keys, dtype=str), clip_index=clip_index, start=start, end=end,
                 features=X, tracks=T)
    elif ext == ".parquet":
        cols = {"key": pa.array([_text(keys[i]) for i in clip_index], pa.string()),
                "start": pa.array(start), "end": pa.array(end)}
        for j in range(X.shape[1]):
            cols[f"f{j}"] = pa.array(X[:, j])
        pq.write_table(pa.table(cols), output)
    else:
        import csv

        with open(output, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
            w = csv.writer(f)
            w.writerow(["key", "start", "end"] + [f"f{j}" for j in range(X.shape[1])])
            for r in range(X.shape[0]):
                w.writerow([keys[clip_index[r]], repr(float(start[r])), repr(float(end[r]))]
                           + [repr(float(v)) for v in X[r]])
    return int(X.shape[0])
