"""Model files: saving and loading :class:`msk.MultiscaleFeatures`, its fingerprint, atomic writes.

A model file is an uncompressed ``.npz`` (a zip of ``.npy`` members, fixed
timestamps: the same model gives the same bytes) holding a JSON header
(format name and version, msk version, every parameter, per-level shapes)
and the fitted arrays of every level. Nothing is pickled.

:func:`atomic_write` is the package's one way to write a file atomically
(a temporary file in the same folder, then ``os.replace``).
"""

import contextlib
import hashlib
import json
import numbers
import os
import uuid
import zipfile
from collections.abc import Mapping

import numpy as np

from .kmeans import SphericalKMeans
from .pca import PCAWhitening, whitening_matrix

__all__ = ["atomic_write", "load_model", "model_fingerprint", "msk_version", "save_model"]

FORMAT = "msk.MultiscaleFeatures"
# Version 2 names the parameters width, n_clusters, pool_size and threshold; version 1 (still
# read, e.g. the shipped models) named them frames, n_means, pool and alpha.
FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_VERSION1_NAMES = {"frames": "width", "n_means": "n_clusters", "pool": "pool_size", "alpha": "threshold"}
# Parameters added after version 1, with the values version-1 models used.
_SPECTROGRAM_DEFAULTS = {"n_fft": 1024, "hop_length": 512, "n_mels": 200}
# Fitted arrays saved per level, by estimator (the rest of their state is in the JSON header).
# whitening_ is not stored: load recomputes it from these with whitening_matrix, bit for bit.
_PCA_ARRAYS = ("mean_", "components_", "explained_variance_", "explained_variance_ratio_")
_KMEANS_ARRAYS = ("cluster_centers_",)


def msk_version():
    """The installed msk version (recorded in every file msk writes)."""
    from . import __version__

    return __version__


@contextlib.contextmanager
def atomic_write(path, mode="wb", *, durable=False, **open_kwargs):
    """Open a temporary file beside ``path``; on success move it onto ``path`` in one step.

    Readers see the old file or the complete new one, never a part: an
    exception (or a killed process) leaves ``path`` untouched and the
    temporary file removed (or, after a kill, named ``<path>.<pid>.<hex>.tmp``).
    The temporary name is unique, so several processes may write into one
    folder. ``durable=True`` also ``fsync``-s the file before the move.
    """
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "x" + mode.replace("w", ""), **open_kwargs) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_npz(f, arrays):
    """np.savez with fixed zip timestamps: the same model gives the same bytes."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(arr), allow_pickle=False)


def save_model(model, path):
    """Write the fitted ``model`` to ``path`` (see the module docstring)."""
    params = model.get_params()
    if not (params["random_state"] is None or isinstance(params["random_state"], numbers.Integral)):
        params["random_state"] = None  # a RandomState object is not reproducible from JSON
    if isinstance(params["pooling"], (list, tuple)):
        params["pooling"] = list(params["pooling"])
    levels_info, arrays = [], {}
    for lev, pca in enumerate(model.pca_):
        info = {
            "n_features": int(pca.n_features_in_), "n_components": int(pca.n_components_),
            "eps": float(pca.eps_), "n_samples": int(pca.n_samples_),
        }
        for name in _PCA_ARRAYS:
            arrays[f"level{lev}.pca.{name}"] = np.asarray(getattr(pca, name))
        arrays[f"level{lev}.pca.components_"] = pca.components_.astype(np.float32)
        if model.kmeans_ is not None:
            km = model.kmeans_[lev]
            info["n_clusters"] = int(km.cluster_centers_.shape[0])
            info["n_iter"] = int(km.n_iter_)
            for name in _KMEANS_ARRAYS:
                arrays[f"level{lev}.kmeans.{name}"] = np.asarray(getattr(km, name))
        levels_info.append(info)
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "msk_version": msk_version(),
        "params": params, "n_mels": model.n_mels_, "n_clips": model.n_clips_, "levels": levels_info,
    }
    blob = np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as f:
        _write_npz(f, {"header": blob, **arrays})


def load_model(cls, path):
    """A ``cls`` instance with the parameters and fitted arrays of the file ``path``.

    The caller builds whatever it derives from the fitted arrays (the encoders).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path!r}: no such model file.")
    try:
        # Our own handle: np.load leaks its file when the zip directory is corrupt.
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            if "header" not in data.files:
                raise ValueError("it has no msk header")
            header = json.loads(bytes(data["header"]).decode("utf-8"))
            arrays = {k: data[k] for k in data.files if k != "header"}
    except (OSError, ValueError, TypeError, AttributeError, EOFError, KeyError,
            zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ValueError(f"{path!r} is not a readable msk model file: {exc}") from None
    fmt = header.get("format") if isinstance(header, dict) else None
    if fmt != FORMAT:
        raise ValueError(f"{path!r} is not an msk model file (format {fmt!r}).")
    version = header.get("format_version")
    if version not in _READABLE_VERSIONS:
        raise ValueError(
            f"{path!r} has model format version {version!r}; this msk ({msk_version()}) reads "
            f"versions {', '.join(map(str, _READABLE_VERSIONS))}. Refit or use a matching msk."
        )
    try:
        params = dict(header["params"])
        if version == 1:
            params = {_VERSION1_NAMES.get(k, k): v for k, v in params.items()}
        if isinstance(params.get("pooling"), list):  # JSON has no tuples
            params["pooling"] = tuple(params["pooling"])
        model = cls(**params)
        model._check_params()
        pcas, kms = [], []
        for lev, info in enumerate(header["levels"]):
            pca = PCAWhitening(variance=model.variance, eps=model.eps)
            for name in _PCA_ARRAYS:
                setattr(pca, name, np.asarray(arrays[f"level{lev}.pca.{name}"], dtype=np.float64))
            pca.n_components_ = int(info["n_components"])
            pca.n_features_in_ = int(info["n_features"])
            pca.n_samples_ = int(info["n_samples"])
            pca.eps_ = float(info["eps"])
            pca.whitening_ = whitening_matrix(pca.components_, pca.explained_variance_, pca.eps_)
            if pca.whitening_.shape != (pca.n_components_, pca.n_features_in_):
                raise ValueError(f"level {lev}: whitening matrix of shape {pca.whitening_.shape}")
            pcas.append(pca)
            if model.n_clusters is not None:
                km = SphericalKMeans(n_clusters=model.n_clusters, max_iter=model.max_iter)
                for name in _KMEANS_ARRAYS:
                    setattr(km, name, arrays[f"level{lev}.kmeans.{name}"])
                km.n_features_in_ = pca.n_components_
                km.n_iter_ = int(info["n_iter"])
                if km.cluster_centers_.shape != (model.n_clusters, pca.n_components_):
                    raise ValueError(
                        f"level {lev}: dictionary of shape {km.cluster_centers_.shape}"
                    )
                kms.append(km)
        if len(pcas) != model.levels:
            raise ValueError(f"{len(pcas)} levels stored for levels={model.levels}")
        model.pca_ = pcas
        model.kmeans_ = kms if model.n_clusters is not None else None
        model.n_mels_ = int(header["n_mels"])
        model.n_clips_ = int(header["n_clips"])
        model.skipped_ = []
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path!r} is a corrupt msk model file: {exc}") from None
    return model


# -- fingerprint ----------------------------------------------------------------------------

_VERSION1_TO_OLD = {new: old for old, new in _VERSION1_NAMES.items()}


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
    """``{"class", "params", "n_features", "fingerprint"}`` of a fitted model (see msk.store)."""
    params = {k: _jsonable(v) for k, v in sorted(model.get_params().items())}
    info = {
        "class": f"msk.{type(model).__name__}",
        "params": params,
        "n_features": int(model.n_features_out_),
    }
    # The hash names the parameters as version-1 files do and leaves out spectrogram parameters
    # at their version-1 values, so that a model keeps its fingerprint across the renaming
    # (and stores made with it stay valid).
    version1 = {_VERSION1_TO_OLD.get(k, k): v for k, v in params.items()
                if not (k in _SPECTROGRAM_DEFAULTS and v == _SPECTROGRAM_DEFAULTS[k])}
    h = hashlib.sha256(json.dumps({**info, "params": version1}, sort_keys=True).encode("utf-8"))
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
