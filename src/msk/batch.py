"""Feature extraction as a product: one clip, a batch on one machine, a batch on a Dask cluster.

- :func:`extract` turns one file or waveform into multiscale features with a
  fitted model (by default the model shipped with msk for the representation):
  argument checks, model lookup, then :meth:`MultiscaleFeatures.transform`
  (which analyses long audio in segments of bounded memory).
- :func:`extract_many` runs :func:`extract` over many files on a thread pool
  (the kernels release the GIL) or on a Dask cluster, writing every clip's
  features to a :class:`msk.store.FeatureStore` as soon as they are computed.
  A bad file is recorded with its reason and the batch goes on; a re-run skips
  what is done; a run killed at any moment loses no completed clip and leaves
  no corrupt entry.
"""

import contextlib
import dataclasses
import functools
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as _wait_futures
from importlib import resources

import numpy as np

from ._blas_threads import SingleThreadedBlas
from ._validation import as_float_array, check_int, check_option, check_sample_rate
from .audio import decoder_messages, library_key
from .multiscale import LAST_WINDOWS, REPRESENTATIONS, SUMMARIES, MultiscaleFeatures, track_vector

__all__ = ["PRESETS", "BatchSummary", "default_model", "extract", "extract_many", "library_key",
           "shipped_model_with"]


# =====================================================================================
# Models
# =====================================================================================


def _check_representation(representation):
    if representation is not None:
        check_option("representation", representation, REPRESENTATIONS)
    return representation


#: The shipped presets: "default", msk's own settings chosen by cross-validation (one model,
#: ``models/default.npz``), and "paper", the paper's settings (one model per representation,
#: ``models/<representation>.npz``).
PRESETS = ("default", "paper")


@functools.lru_cache(maxsize=None)
def _shipped_model(name):
    resource = resources.files("msk").joinpath("models", f"{name}.npz")
    if not resource.is_file():
        raise FileNotFoundError(
            f"msk's shipped {name} model (msk/models/{name}.npz, expected at "
            f"{str(resource)!r}) is not installed in this copy of msk. Train the shipped models "
            "with `python scripts/train_models.py` in msk's source tree (it writes "
            "src/msk/models/*.npz) and reinstall, or pass `model=` a fitted MultiscaleFeatures "
            "or the path of a model saved with MultiscaleFeatures.save."
        )
    with resources.as_file(resource) as path:
        return MultiscaleFeatures.load(path)


def default_model(representation=None, *, preset=None):
    """A fitted model shipped with msk (loaded once per process).

    Parameters
    ----------
    representation : {"laplacian", "gaussian", "multiresolution"} or None, default=None
        With ``preset="paper"``, which of its three models (None:
        "laplacian"). With ``preset="default"`` it must be None or the
        default model's representation.
    preset : {"default", "paper"} or None, default=None
        "default": msk's default features, the settings chosen by
        cross-validation on the development corpus and learned on the
        unsupervised training pool (see ``msk/models/README.md``).
        "paper": the paper's settings (K = 500 means, 6 levels, windows of 1
        frame, or 2 for the Gaussian pyramid, max-pooling, linear encoding).
        None: "default" without a representation (or with the default
        model's), "paper" with another representation, so that
        ``representation="gaussian"`` alone names the paper's Gaussian model.

    Returns
    -------
    model : MultiscaleFeatures
        Shared by every caller in the process: do not refit it.

    Raises
    ------
    FileNotFoundError
        If this installation of msk has no such model file.
    ValueError
        If ``preset="default"`` is asked for another representation than
        its model's.

    Examples
    --------
    >>> from msk.batch import default_model
    >>> default_model(preset="paper").get_params()["n_clusters"]
    500
    >>> default_model(preset="paper", representation="gaussian").width
    2
    """
    representation = _check_representation(representation)
    if preset is not None:
        check_option("preset", preset, PRESETS)
    if preset is None:
        preset = "default"
        if representation is not None and representation != _shipped_model("default").representation:
            preset = "paper"
    if preset == "paper":
        return _shipped_model(representation or "laplacian")
    model = _shipped_model("default")
    if representation is not None and representation != model.representation:
        raise ValueError(
            f"the default preset's model is a {model.representation} model, not {representation}; "
            f"use preset='paper' for the paper's {representation} model, or fit one of your own."
        )
    return model


def shipped_model_with(fingerprint):
    """The shipped model whose :func:`msk.store.model_fingerprint` is ``fingerprint``, or None.

    How a tagger or an index made with a shipped model finds it again.
    """
    from ._persist import model_fingerprint

    for name in ("default", *REPRESENTATIONS):
        try:
            model = _shipped_model(name)
        except FileNotFoundError:
            continue
        if model_fingerprint(model)["fingerprint"] == fingerprint:
            return model
    return None


@functools.lru_cache(maxsize=8)
def _model_from_file(path, mtime_ns, size):
    return MultiscaleFeatures.load(path)


def _load_model_file(path):
    path = os.path.realpath(os.fspath(path))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path!r}: no such model file.") from None
    return _model_from_file(path, st.st_mtime_ns, st.st_size)


def _resolve_model(model, representation, preset=None):
    """The fitted model to use, from ``model`` (estimator, path or None), ``representation`` and ``preset``."""
    if model is None:
        return default_model(representation, preset=preset)
    if preset is not None:
        check_option("preset", preset, PRESETS)
        raise ValueError("`preset` names a shipped model: give `model` or `preset`, not both.")
    if isinstance(model, (str, os.PathLike)):
        model = _load_model_file(model)
    elif not isinstance(model, MultiscaleFeatures):
        raise TypeError(
            "`model` must be a fitted MultiscaleFeatures, the path of a saved model, or None "
            f"(the shipped default); got {type(model).__name__}."
        )
    if not hasattr(model, "pca_"):
        raise ValueError("`model` is not fitted: call model.fit(clips) first.")
    if representation is not None and representation != model.representation:
        raise ValueError(
            f"`representation`={representation!r} does not match the model's representation "
            f"{model.representation!r}; leave representation out when passing a model."
        )
    return model


def extract(path_or_array, *, representation=None, model=None, preset=None, sr=None, last_window="keep",
            return_times=False, summary=None):
    """Multiscale features of one clip: one row per pooling window of about 4 s.

    Parameters
    ----------
    path_or_array : str, os.PathLike or array-like of shape (n_samples,)
        An audio file (WAV, FLAC, OGG/Vorbis, MP3, ...; channels are averaged,
        any rate is resampled to the model's), or a mono waveform with its
        rate given as ``sr``.
    representation : {"laplacian", "gaussian", "multiresolution"} or None, default=None
        The multiscale representation. With ``model=None`` it picks a
        shipped model with ``preset`` (:func:`default_model`: alone, it names
        the paper's model of that representation unless it is the default
        model's); with a model it must match the model's representation or
        be None.
    model : MultiscaleFeatures, str, os.PathLike or None, default=None
        A fitted model, the path of one saved with
        :meth:`MultiscaleFeatures.save` (loaded once per process and file
        version), or None for a model shipped with msk (``preset``), loaded
        once per process.
    preset : {"default", "paper"} or None, default=None
        Which shipped model (with ``model=None``): msk's default features, or
        the paper's settings (see :func:`default_model`).
    sr : int or None, default=None
        Sampling rate of a waveform (required for arrays; resampled with soxr
        when it differs from the model's). Ignored for a file, whose header
        gives the rate.
    last_window : {"keep", "drop", "pad"}, default="keep"
        The partial pooling window at the end of the clip (see
        :meth:`MultiscaleFeatures.transform`). "keep" (the default, so that
        every second of the audio is in a row): one more row, pooled over what
        there is; the rows of the full windows are those of "drop" bit for
        bit. "drop": only full windows, the paper's setting (and
        :meth:`MultiscaleFeatures.transform`'s default). "pad": the audio is
        extended with silence to fill the last window.
    return_times : bool, default=False
        Also return each row's start and end in seconds.
    summary : {"mean", "mean+max", "mean+std"} or None, default=None
        Also return the clip's track vector (:func:`msk.multiscale.track_vector`
        of the features, as a feature store's ``tracks`` holds).

    Returns
    -------
    features : ndarray of shape (n_pools, n_features), dtype float32
        ``n_features = model.n_features_out_`` (1400 for the default model, 3000 for the paper's);
        ``n_pools`` is :meth:`MultiscaleFeatures.n_pools` of the clip's frames
        (with the defaults: the 4.1 s windows that hold any of the audio, e.g.
        3 for 10.5 s, the last over 2.3 s; with "drop", 2).
    start, end : ndarray of shape (n_pools,), dtype float64
        Only with ``return_times=True``: the seconds each row covers (row
        ``i`` from ``i * 4.096`` s with the default analysis; the last row of
        "keep" and "pad" ends at the end of the audio).
    track : ndarray of shape (n_features,) or (2 * n_features,), dtype float32
        Only with ``summary`` (``2 * n_features`` for "mean+max" and "mean+std").

    The results are returned as a tuple in this order (features first) when
    more than the features are asked for, as NumPy's ``return_*`` arguments do.

    Raises
    ------
    FileNotFoundError
        If the file does not exist, or ``model=None`` and the shipped model
        file is not installed (the message says how to get it).
    TypeError
        If ``path_or_array`` or ``model`` is of the wrong kind.
    ValueError
        If the file cannot be decoded (the message names it), the waveform is
        not 1-D or not finite, ``sr`` is missing for a waveform or outside
        1 Hz to 1 MHz, the audio lasts longer than ``msk.audio.MAX_DURATION``
        (24 hours), the representation is unknown or contradicts the model,
        or ``last_window`` or ``summary`` is not an option.

    See Also
    --------
    extract_many : many files into a feature store, in parallel or on a cluster.
    MultiscaleFeatures : fit a model of your own.

    Notes
    -----
    The work is :meth:`MultiscaleFeatures.transform`: audio longer than
    about 4.4 minutes is decoded, resampled and analysed in segments, so that
    the memory used does not grow with the length of the recording, with the
    same features as the whole signal (see its Notes).

    Examples
    --------
    >>> import msk
    >>> model = msk.MultiscaleFeatures("laplacian", levels=3, n_clusters=16,
    ...                                n_samples=2000, random_state=0)
    >>> model = model.fit([msk.example_audio()])
    >>> F = msk.extract(msk.example_audio(), model=model)
    >>> F.shape, F.dtype
    ((8, 48), dtype('float32'))
    >>> F, start, end, track = msk.extract(msk.example_audio(), model=model,
    ...                                    return_times=True, summary="mean")
    >>> round(float(start[-1]), 3), round(float(end[-1]), 3), track.shape   # the last 0.52 s
    (28.672, 29.196, (48,))
    >>> msk.extract(msk.example_audio(), model=model, last_window="drop").shape
    (7, 48)
    """
    rep = _check_representation(representation)
    check_option("last_window", last_window, LAST_WINDOWS)
    if summary is not None:
        check_option("summary", summary, SUMMARIES)
    model = _resolve_model(model, rep, preset)
    if isinstance(path_or_array, (str, os.PathLike)):
        clip, sr = os.fspath(path_or_array), None
    else:
        if isinstance(path_or_array, (bytes, dict)) or path_or_array is None:
            raise TypeError(
                "`path_or_array` must be an audio file path or a 1-D waveform; got "
                f"{type(path_or_array).__name__}."
            )
        if sr is None:
            raise ValueError(
                "`sr` must be given with a waveform (its sampling rate in Hz); got sr=None."
            )
        sr = check_sample_rate("sr", sr)
        y = np.asarray(path_or_array)
        if y.ndim != 1:
            raise ValueError(
                f"`path_or_array` must be a mono waveform of shape (n_samples,); got shape {y.shape}. "
                "Mix channels first, e.g. y.mean(axis=1) for (n_samples, n_channels)."
            )
        if y.shape[0] == 0:
            raise ValueError("`path_or_array` must hold at least one sample; got an empty array.")
        clip = as_float_array("path_or_array", y, ndim=1, dtype=np.float32)
    F, start, end = model.transform(clip, sr=sr, last_window=last_window, return_times=True)
    out = (F, start, end) if return_times else (F,)
    if summary is not None:
        out += (track_vector(F, summary),)
    return out[0] if len(out) == 1 else out


# =====================================================================================
# Batches
# =====================================================================================


@dataclasses.dataclass(frozen=True)
class BatchSummary:
    """What :func:`extract_many` did.

    Attributes
    ----------
    store : str
        Path of the feature store.
    new : int
        Files not in the store before, extracted and stored by this run.
    changed : int
        Files whose size, mtime and content changed since they were stored,
        extracted again by this run.
    unchanged : int
        Files already in the store, unchanged (not recomputed).
    pruned : int
        Keys dropped because their files are gone (``prune=True``).
    failed : dict of str to str
        Files that failed in this run, by key, with the reason (also recorded
        in the store: see ``FeatureStore.failures``).
    not_audio : list of str
        Files of the input folders that are not audio (skipped, see
        :func:`msk.audio.audio_files`).
    seconds : float
        Wall-clock time of the run.
    """

    store: str
    new: int
    changed: int
    unchanged: int
    pruned: int
    failed: dict
    not_audio: list
    seconds: float

    @property
    def done(self):
        """Files extracted and stored by this run (new and changed)."""
        return self.new + self.changed

    @property
    def total(self):
        """Audio files in the batch."""
        return self.new + self.changed + self.unchanged + len(self.failed)

    def as_dict(self):
        """A JSON-serialisable dict of the summary."""
        return dataclasses.asdict(self)

    def __str__(self):
        return (
            f"{self.new} new, {self.changed} changed, {self.unchanged} unchanged, {self.pruned} pruned, "
            f"{len(self.failed)} failed, {len(self.not_audio)} skipped (not audio) in {self.seconds:.1f} s "
            f"-> {self.store}"
        )


def _list_paths(paths):
    """(files, not-audio files, default root) of a folder, one file, or an iterable of files."""
    from .audio import audio_files

    if isinstance(paths, (str, os.PathLike)):
        path = os.fspath(paths)
        if os.path.isdir(path):
            audio, other = audio_files(path)
            return audio, other, path
        return [path], [], os.path.dirname(os.path.abspath(path))
    if isinstance(paths, (bytes, np.ndarray)) or not hasattr(paths, "__iter__"):
        raise TypeError(
            f"`paths` must be an iterable of file paths or a directory; got {type(paths).__name__}."
        )
    out = []
    for p in paths:
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"`paths` must hold str or os.PathLike items; got {type(p).__name__} ({p!r}).")
        out.append(os.fspath(p))
    root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in out]) if out else os.getcwd()
    return out, [], root


def _check_n_jobs(n_jobs):
    n_jobs = check_int("n_jobs", n_jobs)
    n_cpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if n_jobs == 0:
        raise ValueError("`n_jobs` must be a positive number of threads or negative (-1: all cores); got 0.")
    return max(1, n_cpu + 1 + n_jobs) if n_jobs < 0 else n_jobs


def _failure_reason(exc):
    return f"{type(exc).__name__}: {exc}"


class _DecodingGate:
    """Lets any number of threads decode at once, or one thread alone.

    A file that failed is decoded once more alone, with file descriptor 2
    captured, so that what the C decoders print on it is attributed to that
    file rather than to whichever files other threads were decoding.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._active = 0
        self._alone = False

    @contextlib.contextmanager
    def shared(self):
        with self._cond:
            while self._alone:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if not self._active:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def alone(self):
        with self._cond:
            while self._alone:
                self._cond.wait()
            self._alone = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._alone = False
                self._cond.notify_all()


_DECODING = _DecodingGate()


def _explained_failure(exc, path, sr):
    """The reason a file failed, followed by what the decoders print on it (one line each)."""
    from tqdm import tqdm

    printed = []
    # alone: no other thread decodes meanwhile; tqdm's lock: no progress bar writes on fd 2 meanwhile
    with contextlib.suppress(Exception), _DECODING.alone(), tqdm.get_lock():  # never a second failure
        printed = decoder_messages(path, sr=sr)
    return "\n".join([_failure_reason(exc), *(f"decoder: {line}" for line in printed)])


def _extract_one(model, path, last_window, with_source=True):
    """(result, None) or (None, reason) for one file: never raises for a bad file.

    ``result`` is a dict: ``features``, ``start``, ``end`` and ``source``
    (path, size, mtime in ns, SHA-256, duration), the file's state taken
    before it is read, so that a file changed meanwhile is seen as changed
    by the next run. ``reason`` is the error, then, one per line, what the
    audio decoders print on the file (``decoder: ...``), if anything.
    """
    import soundfile as sf

    try:
        source = {"path": os.path.abspath(path)}
        if with_source:
            st = os.stat(path)
            source.update(size=st.st_size, mtime=st.st_mtime_ns)
        with _DECODING.shared():
            X, start, end = model.transform(path, last_window=last_window, return_times=True)
        if with_source:
            from .store import file_hash

            if last_window == "keep" and len(end):
                # the kept last window ends where the decoded audio ends: no second opening of the
                # file (which for an MP3 costs about as much as hashing it)
                duration = float(end[-1])
            else:
                duration = None
                with contextlib.suppress(Exception):  # the features are what matters; duration is a courtesy
                    duration = float(sf.info(os.fsencode(path)).duration)
            source.update(hash=file_hash(path), duration=duration)
        return {"features": X, "start": start, "end": end, "source": source}, None
    except Exception as exc:  # any decoder or analysis error is this file's failure
        return None, _explained_failure(exc, path, model.sr)


def _run_threads(model, todo, n_jobs, last_window):
    """Yield (key, path, features, reason) as the clips are done, on ``n_jobs`` threads."""
    if n_jobs == 1:
        for key, path in todo:
            yield (key, path, *_extract_one(model, path, last_window))
        return
    queue = deque(todo)
    with ThreadPoolExecutor(n_jobs, thread_name_prefix="msk-extract") as pool:
        pending = {}
        try:
            while queue or pending:
                while queue and len(pending) < 2 * n_jobs:
                    key, path = queue.popleft()
                    pending[pool.submit(_extract_one, model, path, last_window)] = (key, path)
                finished, _ = _wait_futures(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    key, path = pending.pop(fut)
                    yield (key, path, *fut.result())
        finally:
            for fut in pending:
                fut.cancel()


# -- Dask ------------------------------------------------------------------------------------

_WORKER_MODELS = {}
_WORKER_LOCK = threading.Lock()


def _model_bytes(model):
    import tempfile

    with tempfile.TemporaryDirectory(prefix="msk-model-") as tmp:
        path = os.path.join(tmp, "model.npz")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def _worker_model(fingerprint, payload):
    """The model of ``fingerprint`` in this worker process, loaded from ``payload`` once."""
    with _WORKER_LOCK:
        model = _WORKER_MODELS.get(fingerprint)
        if model is None:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="msk-model-") as tmp:
                path = os.path.join(tmp, "model.npz")
                with open(path, "wb") as f:
                    f.write(payload)
                model = MultiscaleFeatures.load(path)
            _WORKER_MODELS[fingerprint] = model
    return model


def _dask_task(path, fingerprint, payload, last_window):
    """Run on a Dask worker: the features of one file, or the reason it failed."""
    model = _worker_model(fingerprint, payload)
    with SingleThreadedBlas():
        return _extract_one(model, path, last_window)


def _check_scheduler(scheduler):
    if isinstance(scheduler, str):
        if "://" not in scheduler:
            raise ValueError(
                f"`scheduler` must be a Dask scheduler address such as 'tcp://host:8786'; got {scheduler!r}."
            )
        return
    client_type = getattr(sys.modules.get("distributed"), "Client", None)
    if client_type is None or not isinstance(scheduler, client_type):
        raise TypeError(
            "`scheduler` must be a Dask scheduler address such as 'tcp://host:8786', a "
            f"distributed.Client, or None; got {type(scheduler).__name__}."
        )


def _run_dask(model, fingerprint, todo, scheduler, last_window):
    """Yield (key, path, features, reason) as a Dask cluster finishes the clips."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ImportError(
            "`scheduler` needs Dask's distributed scheduler: pip install 'msk[dask]'."
        ) from None
    if isinstance(scheduler, str):
        client, own = Client(scheduler, set_as_default=False), True
    else:
        client, own = scheduler, False
    try:
        [payload] = client.scatter([_model_bytes(model)], broadcast=True, hash=False)
        window = max(8, 4 * sum(client.nthreads().values()))
        queue = deque(todo)
        names = {}

        def submit():
            key, path = queue.popleft()
            fut = client.submit(_dask_task, path, fingerprint, payload, last_window, pure=False)
            names[fut.key] = (key, path)
            return fut

        futures = as_completed([submit() for _ in range(min(window, len(queue)))])
        for fut in futures:
            key, path = names.pop(fut.key)
            try:
                X, reason = fut.result()
            except Exception as exc:  # e.g. KilledWorker: the file crashed its workers
                X, reason = None, _failure_reason(exc)
            fut.release()
            yield key, path, X, reason
            if queue:
                futures.add(submit())
    finally:
        if own:
            client.close()


def extract_many(paths, *, store, model=None, representation=None, preset=None, n_jobs=-1, scheduler=None,
                 keys=None, root=None, prune=False, summary=None, last_window=None, progress=True, wait=0.0):
    """Extract the features of many files into a feature store, in parallel, resumably.

    Features are buffered and written to ``store`` in batches (see
    :class:`msk.store.FeatureStore`); a file that cannot be read or analysed
    is recorded with its reason and the batch goes on. A rerun is
    change-aware: files already stored and unchanged (same size and mtime,
    or same content) are skipped, changed files are extracted again, new
    ones added, and with ``prune=True`` the keys whose files are gone are
    dropped. A run killed at any moment loses at most the batch in flight;
    the same call then resumes.

    Parameters
    ----------
    paths : iterable of str or os.PathLike, a file, or a directory
        The audio files. A directory means its audio files, recursively (the
        rule of :func:`msk.audio.audio_files`: audio extensions only, hidden
        files and Zarr stores left out); its other files are listed in the
        summary as not audio.
    store : FeatureStore, str or os.PathLike
        The feature store, or its path (created if missing, resumed if it
        exists, closed at the end). The store records the model; a store
        made with another model is refused.
    model : MultiscaleFeatures, str, os.PathLike or None, default=None
        As in :func:`extract` (None: a shipped model, chosen by ``preset`` and ``representation``).
    representation, preset : str or None, default=None
        As in :func:`extract`.
    n_jobs : int, default=-1
        Threads (the compiled kernels release the GIL): -1 uses every core,
        -2 all but one, 1 runs in the calling thread. BLAS is limited to one
        thread while the batch runs. Ignored with ``scheduler``.
    scheduler : str, distributed.Client or None, default=None
        Run on a Dask cluster instead: the scheduler's address
        (``"tcp://host:8786"``) or a connected ``distributed.Client``. Needs
        the ``dask`` extra; see the Notes.
    keys : sequence of str or None, default=None
        The store key of each path, in order (e.g. clip ids). None: each
        file's path relative to ``root`` with ``/`` separators
        (:func:`library_key`), so the same file has the same key whatever the
        working directory.
    root : str, os.PathLike or None, default=None
        The library root the keys are relative to. None: the directory when
        ``paths`` is a directory, else the deepest folder holding every file
        (their common parent; a single file's folder).
    prune : bool, default=False
        Drop the keys of the store whose source files no longer exist.
    summary : {"mean", "mean+max", "mean+std"} or None, default=None
        How the track vector of each clip (the store's ``tracks``) is made;
        None: the store's setting ("mean" for a new store).
    last_window : {"keep", "drop", "pad"} or None, default=None
        The partial pooling window at the end of each clip, as in
        :func:`extract`; None: the store's setting ("keep" for a new store).
        A store holds the features of one setting: another one is refused.
    progress : bool, default=True
        Show a progress bar (tqdm) on stderr with counts, rate and ETA.
    wait : float, default=0
        Seconds to wait for another process writing the store before giving up.

    Returns
    -------
    summary : BatchSummary
        How many files were new, changed, unchanged, pruned, failed (with
        reasons) and not audio.

    Raises
    ------
    TypeError, ValueError
        For bad arguments (duplicate keys, a store made with another model or
        being written by another process, a file outside ``root``, ...).
    OSError
        If the store cannot be written (the batch stops: what was committed stays).

    See Also
    --------
    extract : one clip.
    msk.store.FeatureStore : reading the results (``get``, ``tracks``, ``concatenated``).

    Notes
    -----
    Features do not depend on ``n_jobs`` or on the scheduler: every clip is
    computed by single-threaded kernels in the same way.

    Each window's start and end are those of :func:`extract`
    (:meth:`MultiscaleFeatures.window_times`): window i covers
    ``[i, i + 1) * pool_size * hop_length / sr`` seconds (4.096 s with the
    defaults), and the last one, with "keep" or "pad" (or for a clip shorter
    than one window), ends at the end of the audio. The store records the
    setting in its attributes (``settings["last_window"]``).

    With a Dask ``scheduler``, the model is sent to every worker once (as its
    ``.npz`` bytes) and loaded once per worker process, cached by its
    fingerprint; the workers read the audio files themselves, so the paths
    must be valid on the workers (a shared file system), and need msk
    installed. Workers return the features to this process, which alone
    writes the store. A file that kills the workers repeatedly is recorded as
    failed (``KilledWorker``).

    Examples
    --------
    >>> import os, tempfile, msk
    >>> model = msk.MultiscaleFeatures("laplacian", levels=2, n_clusters=8,
    ...                                n_samples=1000, random_state=0)
    >>> model = model.fit([msk.example_audio()])
    >>> tmp = tempfile.TemporaryDirectory()
    >>> out = os.path.join(tmp.name, "features.zarr")
    >>> summary = msk.extract_many([msk.example_audio()], model=model, store=out,
    ...                            progress=False)
    >>> summary.new, summary.failed
    (1, {})
    >>> store = msk.store.FeatureStore(out, mode="r")
    >>> store.keys(), store.get("example.mp3").shape
    (['example.mp3'], (8, 16))
    >>> tmp.cleanup()
    """
    from tqdm.auto import tqdm

    from .store import FeatureStore, model_fingerprint

    rep = _check_representation(representation)
    model = _resolve_model(model, rep, preset)
    info = model_fingerprint(model)
    paths, not_audio, default_root = _list_paths(paths)
    root = default_root if root is None else os.fspath(root)
    if keys is None:
        keys = [library_key(p, root) for p in paths]
    else:
        if isinstance(keys, (str, bytes)):
            raise TypeError("`keys` must be a sequence of str, one per path; got a single string.")
        keys = list(keys)
        if len(keys) != len(paths):
            raise ValueError(f"`keys` must have one key per path: {len(keys)} keys for {len(paths)} paths.")
        for k in keys:
            if not isinstance(k, str) or not k:
                raise TypeError(f"`keys` must hold non-empty str; got {k!r}.")
    seen, dups = set(), []
    for k in keys:
        if k in seen:
            dups.append(k)
        seen.add(k)
    if dups:
        raise ValueError(f"`keys` must be unique; repeated: {', '.join(map(repr, dups[:5]))}.")
    if scheduler is None:
        n_jobs = _check_n_jobs(n_jobs)
    else:
        _check_scheduler(scheduler)
    if last_window is not None:
        check_option("last_window", last_window, LAST_WINDOWS)
        model.n_pools(1, last_window)  # a model whose windows do not line up refuses "keep" and "pad" here
    settings = {"root": os.path.abspath(root), "window_hop_seconds": model.pool_size * model.hop_length / model.sr}
    if isinstance(store, FeatureStore):
        if store.mode == "r":
            raise ValueError(f"`store` {store.path!r} is open read-only; open it with mode='a'.")
        if summary is not None and summary != store.summary:
            raise ValueError(f"`summary` (--summary) {summary!r} differs from the store's {store.summary!r}; "
                             "a store's summary is chosen when it is created.")
        store.check_model(info)
        own = False
    elif isinstance(store, (str, os.PathLike)):
        store = FeatureStore(store, mode="a", model_info=info, summary=summary, settings=settings, wait=wait)
        own = True
    else:
        raise TypeError(f"`store` must be a FeatureStore or a path; got {type(store).__name__}.")

    start = time.perf_counter()
    try:
        recorded = store.settings.get("last_window")
        if last_window is None:
            last_window = recorded or "keep"
            model.n_pools(1, last_window)
        elif recorded is not None and recorded != last_window:
            raise ValueError(
                f"feature store {store.path!r} holds features extracted with last_window={recorded!r}; got "
                f"last_window={last_window!r}. Leave it out to use the store's setting, or use another store."
            )
        if recorded is None:
            store.update_settings({"last_window": last_window})
        states = {k: store.compare(k, p) for k, p in zip(keys, paths)}
        todo = [(k, p) for k, p in zip(keys, paths) if states[k] != "unchanged"]
        unchanged = len(keys) - len(todo)
        n_pruned = 0
        if prune:
            listed = set(keys)
            gone = []
            for k in store.keys() + list(store.failures()):
                if k in listed:
                    continue
                src = store.record(k).get("path") or os.path.join(root, k)
                if not os.path.exists(src):
                    gone.append(k)
            n_pruned = store.prune(gone)
        counts = {"new": 0, "changed": 0}
        failed = {}
        bar = tqdm(total=len(keys), initial=unchanged, unit="clip", desc="msk extract", file=sys.stderr,
                   disable=not progress, dynamic_ncols=True)

        def record(key, path, result, reason):
            if reason is None:
                store.put(key, result["features"], start=result["start"], end=result["end"],
                          source=result["source"])
                counts["changed" if states[key] == "changed" else "new"] += 1
            else:
                store.fail(key, reason, source={"path": os.path.abspath(path)})
                failed[key] = reason
            bar.update(1)
            if failed:
                bar.set_postfix(failed=len(failed), refresh=False)

        results = (
            _run_threads(model, todo, n_jobs, last_window) if scheduler is None
            else _run_dask(model, info["fingerprint"], todo, scheduler, last_window)
        )
        # Batches are written on their own thread, so that computing never waits on the disk.
        with SingleThreadedBlas(), ThreadPoolExecutor(1, thread_name_prefix="msk-store") as writer:
            writes = set()
            try:
                for item in results:
                    writes.add(writer.submit(record, *item))
                    if len(writes) >= 64:
                        finished, writes = _wait_futures(writes, return_when=FIRST_COMPLETED)
                        for fut in finished:
                            fut.result()  # a store error stops the batch
                for fut in writes:
                    fut.result()
                store.flush()
            finally:
                results.close()
                for fut in writes:
                    fut.cancel()
                bar.close()
    finally:
        if own:
            store.close()
    return BatchSummary(store=store.path, new=counts["new"], changed=counts["changed"], unchanged=unchanged,
                        pruned=n_pruned, failed=dict(sorted(failed.items())), not_audio=not_audio,
                        seconds=time.perf_counter() - start)
