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

__all__ = ["atomic_write", "check_feature_arrays", "load_model", "model_fingerprint", "msk_version", "save_model"]

FORMAT = "msk.MultiscaleFeatures"
# Version 2 names the parameters width, n_clusters, pool_size and threshold; version 1 (still
# read, e.g. the shipped models) named them frames, n_means, pool and alpha. Version 3 adds the
# parameters whitening, pooled_normalization, window_normalization and window_normalization_eps
# (with each level's absolute floor, "window_eps", in the level's description), the encodings
# "split" and "triangle", n_clusters as one K per level, and the members pooled.mean_ and
# pooled.std_ ("standardize"); files of versions 1 and 2 load with the defaults, which compute
# what they did. Version 4 adds the parameter envelope (files of versions 1 to 3 load without it).
FORMAT_VERSION = 4
_READABLE_VERSIONS = (1, 2, 3, 4)
_VERSION1_NAMES = {"frames": "width", "n_means": "n_clusters", "pool": "pool_size", "alpha": "threshold"}
# Parameters added after version 1, with the values models written without them used: a file
# that lacks one loads with that value, and the fingerprint leaves it out at that value.
_ADDED_PARAMS = {"n_fft": 1024, "hop_length": 512, "n_mels": 200, "whitening": "pca",
                 "pooled_normalization": "none", "window_normalization": "none",
                 "window_normalization_eps": 0.1, "envelope": False}
_ENCODINGS = ("linear", "threshold", "split", "triangle")
_WINDOW_NORMALIZATIONS = ("none", "standardize")
# Fitted arrays saved per level, by estimator (the rest of their state is in the JSON header).
# whitening_ is not stored: load recomputes it from these with whitening_matrix, bit for bit.
# A model with "standardize" also stores pooled.mean_ and pooled.std_ (one value per column).
_PCA_ARRAYS = ("mean_", "components_", "explained_variance_", "explained_variance_ratio_")
_KMEANS_ARRAYS = ("cluster_centers_",)


def msk_version():
    """The installed msk version (recorded in every file msk writes; ``msk.__version__``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("msk")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


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


def write_npz(f, arrays):
    """np.savez with fixed zip timestamps and no pickle: the same arrays give the same bytes."""
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
    if params["n_clusters"] is not None and not isinstance(params["n_clusters"], numbers.Integral):
        params["n_clusters"] = [int(k) for k in params["n_clusters"]]  # one K per level
    levels_info, arrays = [], {}
    for lev, pca in enumerate(model.pca_):
        info = {
            "n_features": int(pca.n_features_in_), "n_components": int(pca.n_components_),
            "eps": float(pca.eps_), "n_samples": int(pca.n_samples_),
        }
        for name in _PCA_ARRAYS:
            arrays[f"level{lev}.pca.{name}"] = np.asarray(getattr(pca, name))
        arrays[f"level{lev}.pca.components_"] = pca.components_.astype(np.float32)
        if model.window_eps_ is not None:
            info["window_eps"] = float(model.window_eps_[lev])
        if model.kmeans_ is not None:
            km = model.kmeans_[lev]
            info["n_clusters"] = int(km.cluster_centers_.shape[0])
            info["n_iter"] = int(km.n_iter_)
            for name in _KMEANS_ARRAYS:
                arrays[f"level{lev}.kmeans.{name}"] = np.asarray(getattr(km, name))
        levels_info.append(info)
    if getattr(model, "pooled_mean_", None) is not None:
        arrays["pooled.mean_"], arrays["pooled.std_"] = model.pooled_mean_, model.pooled_std_
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "msk_version": msk_version(),
        "params": params, "n_mels": model.n_mels_, "n_clips": model.n_clips_, "levels": levels_info,
        "n_features_out": int(model.n_features_out_),
    }
    blob = np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as f:
        write_npz(f, {"header": blob, **arrays})


# Bounds every model file must respect (beyond the shapes its header declares).
_SR_RANGE = (1000, 384_000)
_MAX_N_FFT = 65536  # the spectral kernel's largest FFT
_MAX_DIM = 1 << 20  # any one dimension: frames per window, mel bands, components, clusters, pool
_MAX_HEADER_BYTES = 1 << 20
_NPY_HEADER_BYTES = 4096  # allowance for a member's .npy header on top of its data


class _Corrupt(ValueError):
    """A model file whose content contradicts itself (reported as 'corrupt')."""


def _check_bound(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise _Corrupt(f"`{name}` must be an integer from {low} to {high}; got {value!r}")
    return int(value)


def _check_params(params):
    """Bounds of the parameters that size arrays or reach the kernels."""
    _check_bound("sr", params.get("sr", 16000), *_SR_RANGE)
    levels = _check_bound("levels", params.get("levels", 6), 1, 8)
    n_fft = _check_bound("n_fft", params.get("n_fft", 1024), 16, _MAX_N_FFT)
    if n_fft & (n_fft - 1):
        raise _Corrupt(f"`n_fft` must be a power of two; got {n_fft}")
    if params.get("representation") == "multiresolution" and n_fft << (levels - 1) > _MAX_N_FFT:
        raise _Corrupt(f"`n_fft`={n_fft} with {levels} multiresolution levels exceeds {_MAX_N_FFT}")
    _check_bound("hop_length", params.get("hop_length", 512), 1, _MAX_N_FFT)
    _check_bound("n_mels", params.get("n_mels", 200), 1, n_fft // 2 + 1)
    for name, default in (("width", 1), ("pool_size", 128)):
        _check_bound(name, params.get(name, default), 1, _MAX_DIM)
    k = params.get("n_clusters", 500)
    if isinstance(k, (list, tuple)):
        if len(k) != levels:
            raise _Corrupt(f"`n_clusters` has {len(k)} entries for levels={levels}")
        for lev, value in enumerate(k):
            _check_bound(f"n_clusters[{lev}]", value, 1, _MAX_DIM)
    elif k is not None:
        _check_bound("n_clusters", k, 1, _MAX_DIM)
    for name, options in (("encoding", _ENCODINGS), ("window_normalization", _WINDOW_NORMALIZATIONS)):
        value = params.get(name, options[0])
        if not isinstance(value, str) or value not in options:
            raise _Corrupt(f"`{name}` must be one of {', '.join(map(repr, options))}; got {value!r}")
    if not isinstance(params.get("envelope", False), bool):
        raise _Corrupt(f"`envelope` must be true or false; got {params.get('envelope')!r}")
    if params.get("encoding") == "triangle" and k is None:
        raise _Corrupt("`encoding`='triangle' needs a dictionary, but n_clusters is None")
    _check_positive("window_normalization_eps", params.get("window_normalization_eps", 0.1))
    threshold = params.get("threshold", 0.25)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not abs(threshold) < float("inf"):
        raise _Corrupt(f"`threshold` must be a finite number; got {threshold!r}")


def _check_positive(name, value):
    """A finite number > 0 (JSON's NaN and Infinity included in what is refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise _Corrupt(f"`{name}` must be a finite number > 0; got {value!r}")
    return float(value)


def _expected_arrays(model, header):
    """{member name: shape} of every array the header declares; checks the header's shapes."""
    n_mels = _check_bound("n_mels", header.get("n_mels"), 1, _MAX_DIM)
    _check_bound("n_clips", header.get("n_clips"), 0, 1 << 62)
    infos = header.get("levels")
    if not isinstance(infos, list) or len(infos) != model.levels:
        got = len(infos) if isinstance(infos, list) else type(infos).__name__
        raise _Corrupt(f"{got} levels stored for levels={model.levels}")
    shapes = {}
    level_k = model._level_clusters()
    for lev, info in enumerate(infos):
        if not isinstance(info, dict):
            raise _Corrupt(f"level {lev}: its description is not a mapping")
        n_features = _check_bound(f"level {lev} n_features", info.get("n_features"), 1, _MAX_DIM)
        if n_features != model.width * n_mels:
            raise _Corrupt(
                f"level {lev}: {n_features} features per window, but width={model.width} frames of "
                f"{n_mels} mel bands make {model.width * n_mels}"
            )
        n_comp = _check_bound(f"level {lev} n_components", info.get("n_components"), 1, n_features)
        _check_bound(f"level {lev} n_samples", info.get("n_samples"), 2, 1 << 62)
        eps = info.get("eps")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < float("inf"):
            raise _Corrupt(f"level {lev}: eps must be a finite number >= 0; got {eps!r}")
        if model.window_normalization == "standardize":
            _check_positive(f"level {lev} window_eps", info.get("window_eps"))
        elif "window_eps" in info:
            raise _Corrupt(f"level {lev}: a window_eps is stored for window_normalization='none'")
        shapes[f"level{lev}.pca.mean_"] = (n_features,)
        shapes[f"level{lev}.pca.components_"] = (n_comp, n_features)
        shapes[f"level{lev}.pca.explained_variance_"] = (n_comp,)
        shapes[f"level{lev}.pca.explained_variance_ratio_"] = (n_comp,)
        if level_k is not None:
            k = info.get("n_clusters", info.get("n_means"))
            if k != level_k[lev]:
                raise _Corrupt(f"level {lev}: {k!r} clusters stored for n_clusters={level_k[lev]}")
            _check_bound(f"level {lev} n_iter", info.get("n_iter"), 0, 1 << 30)
            # the dictionary lives in the whitened space: n_comp dimensions, or n_features for ZCA
            n_whitened = n_features if model.whitening == "zca" else n_comp
            shapes[f"level{lev}.kmeans.cluster_centers_"] = (level_k[lev], n_whitened)
    if model.pooled_normalization.endswith("standardize"):
        # one value per feature column; the caller checks the number against its encoders
        n_out = _check_bound("n_features_out", header.get("n_features_out"), 1, _MAX_DIM << 6)
        shapes["pooled.mean_"] = shapes["pooled.std_"] = (n_out,)
    return shapes


def check_feature_arrays(model, path):
    """Refuse a loaded model whose per-feature arrays do not match its encoders' output."""
    if model.pooled_mean_ is not None and model.pooled_mean_.shape != (model.n_features_out_,):
        raise ValueError(
            f"{os.fspath(path)!r} is a corrupt msk model file: pooled.mean_ and pooled.std_ hold "
            f"{model.pooled_mean_.shape[0]} values for {model.n_features_out_} features."
        )


def _array_name(member):
    """'level1.kmeans.cluster_centers_.npy' -> 'level 1: kmeans.cluster_centers_'."""
    name = member[:-4] if member.endswith(".npy") else member
    return name.replace("level", "level ", 1).replace(".", ": ", 1) if name.startswith("level") else name


def _read_member(zf, info, shape):
    """The array of one zip member, with its shape and a float dtype checked."""
    with zf.open(info) as f:
        arr = np.lib.format.read_array(f, allow_pickle=False)
    if arr.shape != shape or arr.dtype not in (np.float32, np.float64):
        raise _Corrupt(
            f"{_array_name(info.filename)} has shape {arr.shape} and dtype {arr.dtype}; the header "
            f"declares shape {shape} (float32 or float64)"
        )
    if not np.isfinite(arr).all():
        raise _Corrupt(f"{_array_name(info.filename)} holds NaN or infinite values")
    return arr


def _check_member_size(info, shape):
    """Refuse a member whose uncompressed size exceeds what its shape needs (before decompressing)."""
    limit = _NPY_HEADER_BYTES + 8 * int(np.prod(shape, dtype=np.int64))
    if info.file_size > limit:
        raise _Corrupt(
            f"{_array_name(info.filename)} would decompress to {info.file_size} bytes; its shape {shape} needs "
            f"at most {limit}"
        )


def _read_header(zf):
    info = zf.getinfo("header.npy")
    if info.file_size > _MAX_HEADER_BYTES:
        raise _Corrupt(f"its header would decompress to {info.file_size} bytes (at most {_MAX_HEADER_BYTES})")
    with zf.open(info) as f:
        blob = np.lib.format.read_array(f, allow_pickle=False)
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise _Corrupt(f"its header is an array of {blob.dtype} and shape {blob.shape}, not JSON bytes")
    try:
        return json.loads(blob.tobytes().decode("utf-8"))
    except RecursionError:
        raise _Corrupt("its JSON header is nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Corrupt(f"its header is not JSON: {exc}") from None


def read_npz(path, what):
    """``(header, arrays)`` of an ``.npz`` file written by :func:`write_npz` (taggers, indexes).

    Every member must be an ``.npy`` array stored uncompressed, as
    :func:`write_npz` writes them, so that no member can decompress to more
    than the file's own size; the JSON header is bounded as a model's is.
    Nothing is unpickled.

    Parameters
    ----------
    path : str or os.PathLike
    what : str
        What the file is, for messages (``"tagger"``, ``"track index"``).

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is not such an archive (the message names it).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r}: no such {what} file.")
    size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if "header.npy" not in {info.filename for info in infos}:
                raise _Corrupt("it has no msk header")
            for info in infos:
                if (not info.filename.endswith(".npy") or info.compress_type != zipfile.ZIP_STORED
                        or info.file_size > size):
                    raise _Corrupt(f"member {info.filename!r} is not an uncompressed .npy array")
            header = _read_header(zf)
            arrays = {}
            for info in infos:
                if info.filename != "header.npy":
                    with zf.open(info) as f:
                        arrays[info.filename[:-4]] = np.lib.format.read_array(f, allow_pickle=False)
    except (_Corrupt, OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path!r} is not a readable msk {what} file: {exc}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path!r} is not a readable msk {what} file: its header is not a JSON object")
    return header, arrays


def load_model(cls, path):
    """A ``cls`` instance with the parameters and fitted arrays of the file ``path``.

    Every header value is checked against sane bounds and against the shapes
    of the arrays before anything is decompressed beyond the header: a zip
    member larger than its declared shape needs, an unknown member, a shape
    the parameters contradict, or a non-finite value is refused with a
    ``ValueError`` naming the file. The caller builds whatever it derives from
    the fitted arrays (the encoders).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path!r}: no such model file.")
    try:
        with open(path, "rb") as fh:
            if not zipfile.is_zipfile(fh):
                raise ValueError("it is not an .npz (zip) archive")
            fh.seek(0)
            with zipfile.ZipFile(fh) as zf:
                if "header.npy" not in zf.namelist():
                    raise ValueError("it has no msk header")
                try:
                    header = _read_header(zf)
                except _Corrupt:
                    raise
                except (ValueError, TypeError, EOFError, OSError, zipfile.BadZipFile) as exc:
                    raise ValueError(f"its header cannot be read: {exc}") from None
                model, shapes = _model_from_header(cls, header, path)
                try:
                    members = {i.filename: i for i in zf.infolist()}
                    unknown = sorted(set(members) - {"header.npy"} - {f"{k}.npy" for k in shapes})
                    if unknown:
                        raise _Corrupt(f"unknown members {', '.join(map(repr, unknown[:5]))}")
                    missing = sorted(k for k in shapes if f"{k}.npy" not in members)
                    if missing:
                        raise _Corrupt(f"missing arrays {', '.join(_array_name(m) for m in missing[:5])}")
                    for name, shape in shapes.items():
                        _check_member_size(members[f"{name}.npy"], shape)
                    arrays = {name: _read_member(zf, members[f"{name}.npy"], shape)
                              for name, shape in shapes.items()}
                    if "pooled.std_" in arrays and not (arrays["pooled.std_"] > 0).all():
                        raise _Corrupt("pooled.std_ holds values that are not positive")
                except _Corrupt:
                    raise
                except (ValueError, TypeError, EOFError, OSError, zipfile.BadZipFile) as exc:
                    raise _Corrupt(str(exc)) from None
    except _Corrupt as exc:
        raise ValueError(f"{path!r} is a corrupt msk model file: {exc}.") from None
    except ValueError as exc:
        if str(exc).startswith(repr(path)):
            raise
        raise ValueError(f"{path!r} is not a readable msk model file: {exc}.") from None
    except (OSError, EOFError, zipfile.BadZipFile, RuntimeError, NotImplementedError) as exc:
        raise ValueError(f"{path!r} is not a readable msk model file: {exc}.") from None
    _set_fitted(model, header, arrays)
    return model


def _model_from_header(cls, header, path):
    """The unfitted model the header describes, and the array shapes it declares."""
    fmt = header.get("format") if isinstance(header, dict) else None
    if fmt != FORMAT:
        raise ValueError(f"{path!r} is not an msk model file (format {fmt!r}).")
    version = header.get("format_version")
    if version not in _READABLE_VERSIONS:
        raise ValueError(
            f"{path!r} has model format version {version!r}; this msk ({msk_version()}) reads "
            f"versions {', '.join(map(str, _READABLE_VERSIONS))}. Refit or use a matching msk."
        )
    params = header.get("params")
    if not isinstance(params, dict):
        raise _Corrupt("its header has no parameters")
    if version == 1:
        params = {_VERSION1_NAMES.get(k, k): v for k, v in params.items()}
    names = set(cls().get_params())
    if not set(params) <= names:
        raise _Corrupt(f"unknown parameters {sorted(set(params) - names)[:5]}")
    params = {**_ADDED_PARAMS, **params}  # a file written before a parameter existed: its old behaviour
    for name in ("pooling", "n_clusters"):
        if isinstance(params.get(name), list):  # JSON has no tuples
            params[name] = tuple(params[name])
    _check_params(params)
    try:
        model = cls(**params)
        model._check_params()
    except (TypeError, ValueError) as exc:
        raise _Corrupt(str(exc).rstrip(".")) from None
    return model, _expected_arrays(model, header)


def _set_fitted(model, header, arrays):
    pcas, kms = [], []
    level_k = model._level_clusters()
    for lev, info in enumerate(header["levels"]):
        pca = PCAWhitening(variance=model.variance, eps=model.eps, whitening=model.whitening)
        for name in _PCA_ARRAYS:
            setattr(pca, name, np.asarray(arrays[f"level{lev}.pca.{name}"], dtype=np.float64))
        pca.n_components_ = int(info["n_components"])
        pca.n_features_in_ = int(info["n_features"])
        pca.n_samples_ = int(info["n_samples"])
        pca.eps_ = float(info["eps"])
        pca.whitening_ = whitening_matrix(pca.components_, pca.explained_variance_, pca.eps_, model.whitening)
        pcas.append(pca)
        if level_k is not None:
            km = SphericalKMeans(n_clusters=level_k[lev], max_iter=model.max_iter)
            for name in _KMEANS_ARRAYS:
                setattr(km, name, arrays[f"level{lev}.kmeans.{name}"])
            km.n_features_in_ = pca.n_features_out_
            km.n_iter_ = int(info["n_iter"])
            kms.append(km)
    model.pca_ = pcas
    model.kmeans_ = kms if level_k is not None else None
    model.window_eps_ = ([float(info["window_eps"]) for info in header["levels"]]
                         if model.window_normalization == "standardize" else None)
    model.pooled_mean_ = np.asarray(arrays["pooled.mean_"], np.float64) if "pooled.mean_" in arrays else None
    model.pooled_std_ = np.asarray(arrays["pooled.std_"], np.float64) if "pooled.std_" in arrays else None
    model.n_mels_ = int(header["n_mels"])
    model.n_clips_ = int(header["n_clips"])
    model.skipped_ = []


# -- fingerprint ----------------------------------------------------------------------------

_VERSION1_TO_OLD = {new: old for old, new in _VERSION1_NAMES.items()}


def _param_value(value):
    """A parameter value as the fingerprint hashes it: JSON types (tuples become lists), and None
    for what does not change the features (e.g. a RandomState object)."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_param_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _param_value(v) for k, v in value.items()}
    return None  # e.g. a RandomState object: not part of what the model computes


def model_fingerprint(model):
    """``{"class", "params", "n_features", "fingerprint"}`` of a fitted model (see msk.store)."""
    params = {k: _param_value(v) for k, v in sorted(model.get_params().items())}
    info = {
        "class": f"msk.{type(model).__name__}",
        "params": params,
        "n_features": int(model.n_features_out_),
    }
    # The hash names the parameters as version-1 files do and leaves out spectrogram parameters
    # at their version-1 values, so that a model keeps its fingerprint across the renaming
    # (and stores made with it stay valid).
    version1 = {_VERSION1_TO_OLD.get(k, k): v for k, v in params.items()
                if not (k in _ADDED_PARAMS and v == _ADDED_PARAMS[k])}
    h = hashlib.sha256(json.dumps({**info, "params": version1}, sort_keys=True).encode("utf-8"))
    arrays = []
    for pca in model.pca_:
        arrays += [pca.mean_, pca.whitening_]
    if model.window_eps_ is not None:
        arrays.append(np.asarray(model.window_eps_, dtype=np.float64))
    for km in model.kmeans_ or ():
        arrays.append(km.cluster_centers_)
    if getattr(model, "pooled_mean_", None) is not None:
        arrays += [model.pooled_mean_, model.pooled_std_]
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode("ascii"))
        h.update(a.tobytes())
    info["fingerprint"] = h.hexdigest()
    return info
